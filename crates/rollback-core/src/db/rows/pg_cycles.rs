//! PostgreSQL: dropped tables that reference each other through foreign keys checked at once
//! (not `DEFERRABLE`) cannot be put back one after the other, whatever the order: each insert
//! needs the other's rows first. The cycle is broken as a dump's data would be loaded by hand:
//! the rows go in with the referencing columns of those keys NULL, then, in the same
//! transaction, an update writes them as the snapshot had them, when every row is there.

use tokio_postgres::Client;

use super::compare::Pair;
use super::q;

/// For the tables `stuck` (indexes into `tables`, which could not be put back in any order):
/// per table of `tables`, the columns to insert as NULL and write afterwards: the referencing
/// columns of the foreign keys checked at once between two of them, where every such column
/// may hold NULL (a key with a `NOT NULL` column cannot be broken so). Empty when no table of
/// a cycle has such a key, or one of them has no primary key (the update matches by key).
pub(super) async fn nulled(
    client: &Client,
    tables: &[Pair<'_>],
    stuck: &[usize],
) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
    let mut oids = Vec::new();
    for &i in stuck {
        let oid: i64 = client.query_one("SELECT $1::text::regclass::oid::int8", &[&tables[i].live]).await?.get(0);
        oids.push(oid);
    }
    let keys = client
        .query(
            "SELECT c.conrelid::int8, array_agg(a.attname::text ORDER BY a.attnum), bool_and(NOT a.attnotnull)
               FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
              WHERE c.contype = 'f' AND NOT c.condeferrable AND c.conrelid <> c.confrelid
                AND c.conrelid::int8 = ANY($1) AND c.confrelid::int8 = ANY($1)
              GROUP BY c.oid, c.conrelid",
            &[&oids],
        )
        .await?;
    let mut out = vec![Vec::new(); tables.len()];
    for k in keys {
        let (rel, cols, nullable): (i64, Vec<String>, bool) = (k.get(0), k.get(1), k.get(2));
        let Some(at) = oids.iter().position(|o| *o == rel) else { continue };
        let p = &tables[stuck[at]];
        if !nullable || p.pk.is_empty() || cols.iter().any(|c| !p.cols.contains(c) || p.pk.contains(c)) {
            continue;
        }
        for c in cols {
            if !out[stuck[at]].contains(&c) {
                out[stuck[at]].push(c);
            }
        }
    }
    Ok(out)
}

/// The update that writes back, from the snapshot's rows (staged in this session as `src`: see
/// `pg_batches`), the columns `cols` of `p`'s table that went in as NULL: where the row's values
/// differ.
pub(super) fn set_back(p: &Pair<'_>, cols: &[String], src: &str) -> String {
    let list = |alias: &str| cols.iter().map(|c| format!("{alias}.{}", q(c))).collect::<Vec<_>>().join(", ");
    let cmp = |alias: &str| cols.iter().map(|c| p.cmp(alias, c)).collect::<Vec<_>>().join(", ");
    format!(
        "UPDATE {l} m SET ({bare}) = ROW({s}) FROM {src} s WHERE {j} AND ROW({m}) IS DISTINCT FROM ROW({sc})",
        l = p.live_rows(),
        bare = cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", "),
        s = list("s"),
        m = cmp("m"),
        sc = cmp("s"),
        j = p.join("m", "s")
    )
}
