//! PostgreSQL sequences after a put-back: where the snapshot had them, or further.
//!
//! A sequence the downgrade dropped is created again by the undo's upgrade at its start (1),
//! while the rows put back hold the keys it handed out before the run; one the downgrade left
//! was moved on by the app while rolled back. Either way, after the put-back every sequence is
//! moved to the furthest of: where the live database has it, where the snapshot had it, and
//! past the values of the columns put back that draw from it (a `DEFAULT nextval(…)`, owned or
//! not, or a serial or identity column). So its next value is one it never handed out: no
//! duplicate key on the app's next insert, no id of a row deleted before the run handed out
//! again.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use super::q;
use crate::db::{Result, UrlDatabase, postgres};

/// Where the snapshot copy had its sequences: `(schema, name)` → `(last_value, is_called)`.
pub(super) type Positions = BTreeMap<(String, String), (i64, bool)>;

/// The sequences of the user schemas `client` may read, and where each is. (One it may not
/// read or move, say an extension's owned by another role, is left as it is.)
async fn positions(client: &Client) -> std::result::Result<Positions, tokio_postgres::Error> {
    let user = postgres::USER_SCHEMA.replace("nspname", "n.nspname");
    let seqs = client
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind = 'S' AND {user}
                    AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'SELECT') END"
            ),
            &[],
        )
        .await?;
    let mut out = Positions::new();
    for s in seqs {
        let (schema, name): (String, String) = (s.get(0), s.get(1));
        let row =
            client.query_one(&format!("SELECT last_value, is_called FROM {}.{}", q(&schema), q(&name)), &[]).await?;
        out.insert((schema, name), (row.get(0), row.get(1)));
    }
    Ok(out)
}

/// Where the snapshot copy `snap` has its sequences (read before the put-back's transaction).
pub(super) async fn read(snap: &UrlDatabase) -> Result<Positions> {
    let pg = snap.pg();
    let client = pg.connect().await?;
    pg.within("reading sequences", async { positions(&client).await.map_err(|e| pg.query_err(&e)) }).await
}

/// The value `nextval` hands out next, from `last_value` and `is_called`.
fn next_of(last: i64, called: bool, inc: i64) -> i128 {
    if called { i128::from(last) + i128::from(inc) } else { i128::from(last) }
}

/// In the put-back's transaction on `client`: moves every sequence of the live database to the
/// furthest of its own position, the snapshot's (`snap`, for a sequence of the same schema and
/// name) and past the values put back into columns that draw from it: `written` holds each
/// table written (as SQL) with the column written, or `None` for rows (every column). Never
/// moves one back.
pub(super) async fn put_back(
    client: &Client,
    snap: &Positions,
    written: &[(&str, Option<&str>)],
) -> std::result::Result<(), tokio_postgres::Error> {
    let user = postgres::USER_SCHEMA.replace("nspname", "n.nspname");
    let mut by_oid = Vec::new();
    for (table, col) in written {
        let oid: i64 = client.query_one("SELECT $1::text::regclass::oid::int8", &[table]).await?.get(0);
        by_oid.push((oid, *col));
    }
    let put_back_into = |table: i64, col: &str| by_oid.iter().any(|(t, c)| *t == table && c.is_none_or(|c| c == col));
    let written: Vec<String> = written.iter().map(|(t, _)| (*t).to_owned()).collect();
    let seqs = client
        .query(
            &format!(
                "SELECT c.oid::int8, n.nspname::text, c.relname::text, s.seqincrement, s.seqmin, s.seqmax
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
                  WHERE c.relkind = 'S' AND {user}
                    AND CASE WHEN c.relkind = 'S'
                        THEN has_sequence_privilege(c.oid, 'SELECT') AND has_sequence_privilege(c.oid, 'UPDATE') END"
            ),
            &[],
        )
        .await?;
    // The columns of the tables written that draw from a sequence: through a column default
    // that calls `nextval` of it (owned by the column or not), or as the sequence's owner (a
    // serial or identity column). Integer columns only: their values are the sequence's.
    let cols = client
        .query(
            "WITH written AS (SELECT t::regclass::oid AS oid FROM unnest($1::text[]) t)
             SELECT d.refobjid::int8, ad.adrelid::int8, ad.adrelid::regclass::text, a.attname::text
               FROM pg_depend d JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
               JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
              WHERE d.refclassid = 'pg_class'::regclass AND ad.adrelid IN (SELECT oid FROM written)
                AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
             UNION
             SELECT d.objid::int8, d.refobjid::int8, d.refobjid::regclass::text, a.attname::text
               FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
              WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                AND d.deptype IN ('a', 'i') AND d.refobjid IN (SELECT oid FROM written)
                AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)",
            &[&written],
        )
        .await?;
    for s in seqs {
        let (oid, schema, name): (i64, String, String) = (s.get(0), s.get(1), s.get(2));
        let (inc, min, max): (i64, i64, i64) = (s.get(3), s.get(4), s.get(5));
        let seq = format!("{}.{}", q(&schema), q(&name));
        let row = client.query_one(&format!("SELECT last_value, is_called FROM {seq}"), &[]).await?;
        let now = next_of(row.get(0), row.get(1), inc);
        // Ascending sequences move up, descending ones down.
        let further = |a: i128, b: i128| if inc > 0 { a.max(b) } else { a.min(b) };
        let mut next = now;
        if let Some(&(last, called)) = snap.get(&(schema.clone(), name.clone())) {
            next = further(next, next_of(last, called, inc));
        }
        for c in cols.iter().filter(|c| c.get::<_, i64>(0) == oid && put_back_into(c.get(1), c.get(3))) {
            let (table, col): (String, String) = (c.get(2), c.get(3));
            let edge = if inc > 0 { "max" } else { "min" };
            let v: Option<i64> =
                client.query_one(&format!("SELECT {edge}({})::int8 FROM {table}", q(&col)), &[]).await?.get(0);
            if let Some(v) = v.filter(|v| (min..=max).contains(v)) {
                next = further(next, i128::from(v) + i128::from(inc));
            }
        }
        if next == now {
            continue;
        }
        // As `nextval` leaves it: the value before `next` handed out; at the sequence's start,
        // `next` not handed out yet; past its end, exhausted (its last value handed out).
        let within = |v: i128| i64::try_from(v).ok().filter(|v| (min..=max).contains(v));
        let (value, called) = match (within(next - i128::from(inc)), within(next)) {
            (Some(before), _) => (before, true),
            (None, Some(next)) => (next, false),
            (None, None) => (if inc > 0 { max } else { min }, true),
        };
        client.execute("SELECT setval($1::text::regclass, $2, $3)", &[&seq, &value, &called]).await?;
    }
    Ok(())
}
