//! The user triggers of the tables a put-back writes: off while it writes (restoring rows is
//! not a new event for them to count or audit), back on as they were before it commits, in the
//! same transaction.

use tokio_postgres::Client;

use super::q;

/// Drops the triggers of the `main` tables `tables`; returns their SQL, in the order they were
/// created, to create them again.
pub(super) fn drop_triggers(conn: &rusqlite::Connection, tables: &[String]) -> rusqlite::Result<Vec<String>> {
    let mut found: Vec<(i64, String, String)> = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT rowid, name, sql FROM main.sqlite_master WHERE type = 'trigger' AND lower(tbl_name) = lower(?1)",
    )?;
    for table in tables {
        for t in stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            found.push(t?);
        }
    }
    found.sort();
    found.dedup();
    for (_, name, _) in &found {
        conn.execute_batch(&format!("DROP TRIGGER main.{}", q(name)))?;
    }
    Ok(found.into_iter().map(|(_, _, sql)| sql).collect())
}

/// Turns off, for the transaction, the enabled user triggers of `table` (not the internal ones
/// that check foreign keys); returns `(table, trigger, how)` to turn each on again as it was
/// (`ENABLE {how} TRIGGER`: `""`, `REPLICA` or `ALWAYS`). Disabled triggers stay so.
pub(super) async fn triggers_off(
    client: &Client,
    table: &str,
) -> std::result::Result<Vec<(String, String, &'static str)>, tokio_postgres::Error> {
    let found = client
        .query(
            "SELECT tgname::text, tgenabled::text FROM pg_trigger WHERE tgrelid = $1::text::regclass AND NOT tgisinternal AND tgenabled <> 'D' ORDER BY tgname",
            &[&table],
        )
        .await?;
    let mut out = Vec::new();
    for row in found {
        let (trigger, enabled): (String, String) = (row.get(0), row.get(1));
        let how = match enabled.as_str() {
            "R" => "REPLICA",
            "A" => "ALWAYS",
            _ => "",
        };
        client.batch_execute(&format!("ALTER TABLE {table} DISABLE TRIGGER {}", q(&trigger))).await?;
        out.push((table.to_owned(), trigger, how));
    }
    Ok(out)
}

/// Turns on again, each as it was, the triggers [`triggers_off`] turned off, then commits the
/// transaction they were off in.
pub(super) async fn triggers_on_and_commit(
    client: &Client,
    triggers: &[(String, String, &'static str)],
) -> std::result::Result<(), tokio_postgres::Error> {
    for (table, name, how) in triggers {
        client.batch_execute(&format!("ALTER TABLE {table} ENABLE {how} TRIGGER {}", q(name))).await?;
    }
    client.batch_execute("COMMIT").await
}
