//! The PostgreSQL put-back moves a table's rows in batches (`FORGE_ROLLBACK_ROWS_BATCH` sets
//! the rows per batch in test builds), never as one value: before, a table was one JSON text,
//! which PostgreSQL caps at 1 GB, and a larger dropped table could not be put back. Small
//! batches on a small table stand in for a large one: the rows come back exactly, a conflict
//! in any batch is seen, and nothing changes on a conflict.
//!
//! The key column's domain notes, in `batch_log`, the transaction that checks each value: a
//! batch is read into the live database in a transaction of its own, so the notes tell how many
//! batches there were (before: one, the put-back's).

use rollback_core::DataLoss;
use rollback_core::rt::block_on;

use crate::rows_put_back::{Pg, database};

/// Rows per batch: 20 rows go in 7 batches.
const BATCH: &str = "3";

fn small_batches() {
    // SAFETY: nextest runs each test in its own process; only this module's tests set it.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("FORGE_ROLLBACK_ROWS_BATCH", BATCH);
    }
}

const SCHEMA: &str = "
    CREATE TABLE batch_log (xid text);
    CREATE FUNCTION noted(v int) RETURNS bool LANGUAGE plpgsql AS
      $$ BEGIN INSERT INTO batch_log VALUES (txid_current()::text); RETURN true; END $$;
    CREATE DOMAIN noted_id AS int CHECK (noted(VALUE));
    CREATE TABLE events (id noted_id PRIMARY KEY, note text, meta jsonb, at point, amount numeric);
    CREATE TABLE users (id int PRIMARY KEY, name text, nick text);
    CREATE TABLE tags (name text, n int);";

/// 20 events (every third one with NULLs, one with a JSON `null`), 10 users with a nick, tags
/// without a primary key (copies of the same row, NULLs).
const SNAPSHOT: &str = "
    INSERT INTO events
      SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ''' || g || E'''\\t,\"x\"' END,
             CASE WHEN g = 5 THEN 'null'::jsonb WHEN g % 3 = 0 THEN NULL ELSE jsonb_build_object('g', g) END,
             CASE WHEN g % 3 = 0 THEN NULL ELSE point(g, -g) END,
             CASE WHEN g % 3 = 0 THEN NULL ELSE g / 7.0 END
        FROM generate_series(1, 20) g;
    INSERT INTO users SELECT g, 'user ' || g, 'nick ' || g FROM generate_series(1, 10) g;
    INSERT INTO tags VALUES ('a', 1), ('a', 1), ('a', 1), ('b', NULL), ('b', NULL), (NULL, NULL), ('c', 2), ('d', 3);";

const EVENTS: &str = "SELECT id, note, meta, at::text, amount FROM events ORDER BY id";

/// Every row of a 20-row table, the values of a dropped column and the copies of a table
/// without a primary key come back in batches of 3, exactly as the snapshot had them; a row the
/// upgrade (or the app) wrote identical is counted there, one it wrote under a key of its own
/// stays.
#[test]
fn pg_a_table_put_back_in_many_batches_comes_back_exactly() {
    small_batches();
    let pg = Pg::new(
        &format!("{SCHEMA} {SNAPSHOT}"),
        &format!(
            "{SCHEMA}
             INSERT INTO events SELECT * FROM (VALUES (8, 'note ''8''' || E'\\t,\"x\"', '{{\"g\": 8}}'::jsonb, point(8, -8), 8 / 7.0)) v;
             INSERT INTO events VALUES (100, 'written while rolled back', NULL, NULL, NULL);
             INSERT INTO users (id, name) SELECT g, 'user ' || g FROM generate_series(1, 11) g;
             INSERT INTO tags VALUES ('a', 1);
             DELETE FROM batch_log;"
        ),
    );
    let losses = [DataLoss::table("events", 20), DataLoss::column("users", "nick", 10), DataLoss::table("tags", 8)];
    let stats = pg.put_back(&losses).unwrap();
    assert_eq!((stats.rows_inserted, stats.rows_present, stats.values_set), (19 + 7, 1 + 1, 10));
    assert_eq!(
        pg.live.psql(&format!("{EVENTS} LIMIT 20")),
        pg.snap.psql(EVENTS),
        "every value as the snapshot had it, NULLs and the JSON null included"
    );
    assert_eq!(pg.live.psql("SELECT note FROM events WHERE id = 100"), "written while rolled back");
    assert_eq!(pg.live.psql("SELECT meta IS NULL, meta::text FROM events WHERE id = 5"), "f|null");
    let users = "SELECT id, name, nick FROM users WHERE id <= 10 ORDER BY id";
    assert_eq!(pg.live.psql(users), pg.snap.psql(users));
    assert_eq!(pg.live.psql("SELECT nick IS NULL FROM users WHERE id = 11"), "t");
    let tags = "SELECT name, n, count(*) FROM tags GROUP BY 1, 2 ORDER BY 1, 2";
    assert_eq!(pg.live.psql(tags), pg.snap.psql(tags));
    // The 20 snapshot rows of `events` were read into the live database in 7 transactions.
    let batches: u32 = pg.live.psql("SELECT count(DISTINCT xid) FROM batch_log").parse().unwrap();
    assert!(batches >= 7, "{batches} batch(es)");
}

/// A row the app changed under a key of the snapshot is a conflict in whichever batch it is
/// (here the third and the last): both are counted, the put-back is refused and nothing
/// changes.
#[test]
fn pg_a_conflict_in_a_later_batch_is_seen_and_nothing_changes() {
    small_batches();
    let pg = Pg::new(
        &format!("{SCHEMA} {SNAPSHOT}"),
        &format!(
            "{SCHEMA}
             INSERT INTO events (id, note) VALUES (8, 'changed while rolled back'), (19, 'this one too');
             INSERT INTO users (id, name) SELECT g, 'user ' || g FROM generate_series(1, 10) g;"
        ),
    );
    let losses = [DataLoss::table("events", 20), DataLoss::column("users", "nick", 10)];
    let e = pg.put_back(&losses).unwrap_err().to_string();
    assert!(e.contains("events: 2 row(s) exist under the same primary key with other content"), "{e}");
    assert_eq!(pg.live.psql("SELECT count(*) FROM events"), "2", "nothing put back");
    assert_eq!(pg.live.psql("SELECT count(nick) FROM users"), "0", "nothing put back");
}

/// What the forecast compares between two databases moves in batches too: the values a
/// downgrade changed in a column that stays, counted row by row (the downgraded copy's rows
/// are read into a session on the database compared with it, where the notes are).
#[test]
fn pg_changed_values_are_counted_in_batches() {
    small_batches();
    let pg = Pg::new(
        &format!("{SCHEMA} {SNAPSHOT} DELETE FROM batch_log;"),
        &format!("{SCHEMA} {SNAPSHOT} UPDATE events SET note = upper(note) WHERE id IN (2, 17);"),
    );
    let dir = tempfile::tempdir().unwrap();
    let (before, down) = (database(&pg.snap.url(), dir.path()), database(&pg.live.url(), dir.path()));
    let census = rollback_core::db::rows::census;
    let (bc, dc) = (block_on(census(&before)).unwrap(), block_on(census(&down)).unwrap());
    // (`batch_log` is the notes, no data of the app's.)
    let skip = ["batch_log".to_owned()];
    let losses = block_on(rollback_core::db::rows::removed_and_changed(&before, &down, &bc, &dc, &skip)).unwrap();
    assert_eq!(rollback_core::db::rows::describe(&losses), "events.note (2 values changed)");
    let batches: u32 = pg.snap.psql("SELECT count(DISTINCT xid) FROM batch_log").parse().unwrap();
    assert!(batches >= 7, "{batches} batch(es)");
}
