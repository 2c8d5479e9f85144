//! What an app or a DBA writes to PostgreSQL outside the tables' rows: large objects
//! (`lo_from_bytea`, `lo_put`), publications, foreign servers, casts. The fingerprint and the
//! canonical dump see them, so one written while rolled back (no row changes) is kept by the
//! undo instead of being restored over; a role that may not read a large object still gets a
//! fingerprint. On the test PostgreSQL server.

use rollback_core::db::Database;
use rollback_core::event::Recorder;
use rollback_core::prompt::AutoConfirm;
use rollback_core::rt::block_on;
use rollback_core::{Rollback, RunStatus};
use rollback_testkit::db::{MigratorKind as Fx, PgDatabase};

use super::full::{Engine, deploy, engine, full, sql, state};
use super::rows::{scalar, steps};
use super::rows_put_back::database;

fn fingerprint(url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    block_on(database(url, dir.path()).fingerprint()).unwrap()
}

fn canonical(url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    block_on(database(url, dir.path()).canonical_dump()).unwrap()
}

/// `run --full` to v1, `write` while rolled back, `undo`: both succeed, and the undo sees the
/// write (it keeps the database and puts back what the downgrade dropped: the 4 payments)
/// instead of restoring the snapshot over it.
fn undo_after_writing(rb: &Rollback, write: &str) {
    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    sql(rb, write);
    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    let names = steps(&undo);
    assert!(names.contains(&"put_back_rows") && !names.contains(&"restore_database"), "{write}: {names:?}");
    assert_eq!(scalar(rb, "SELECT count(*) FROM payments").as_deref(), Some("4"), "the dropped rows are back");
}

/// Content written in place, an object added or removed, its privileges: each changes the
/// fingerprint and the canonical dump; the same content again gives the same fingerprint.
#[test]
fn fingerprint_and_canonical_dump_see_large_object_content() {
    let db = PgDatabase::new();
    let url = db.url();
    let oid = db.psql("SELECT lo_from_bytea(0, 'hello')");
    let first = fingerprint(&url);
    assert_eq!(fingerprint(&url), first, "stable");
    let dump = canonical(&url);
    // The MD5 of the MD5 of its one chunk, "hello".
    let hello = "69a329523ce1ec88bf63061863d9cb14";
    assert!(dump.contains(&format!("large_object {oid} owner=")), "{dump}");
    assert!(dump.contains(&format!("acl=- content={hello}")), "{dump}");

    db.psql(&format!("SELECT lo_put({oid}, 0, 'j')"));
    assert_eq!(db.psql(&format!("SELECT convert_from(lo_get({oid}), 'UTF8')")), "jello");
    assert_ne!(fingerprint(&url), first, "content written in place");
    assert!(!canonical(&url).contains(hello), "the canonical dump too");
    db.psql(&format!("SELECT lo_put({oid}, 0, 'h')"));
    assert_eq!(fingerprint(&url), first, "written back");

    let other = db.psql("SELECT lo_from_bytea(0, 'more')");
    assert_ne!(fingerprint(&url), first, "one more");
    db.psql(&format!("SELECT lo_unlink({other})"));
    assert_eq!(fingerprint(&url), first, "removed again");

    db.psql(&format!("GRANT SELECT ON LARGE OBJECT {oid} TO PUBLIC"));
    assert_ne!(fingerprint(&url), first, "privileges");

    // Read 1 MiB at a time: a byte changed in the third chunk of 2.5 MiB shows, as does one
    // more byte after an object of exactly two chunks.
    let big = db.psql("SELECT lo_from_bytea(0, decode(repeat('ab', 2621440), 'hex'))");
    let before = fingerprint(&url);
    db.psql(&format!("SELECT lo_put({big}, 2200000, '\\x00')"));
    assert_ne!(fingerprint(&url), before, "a byte in the third chunk");
    let even = db.psql("SELECT lo_from_bytea(0, decode(repeat('cd', 2097152), 'hex'))");
    let before = fingerprint(&url);
    db.psql(&format!("SELECT lo_put({even}, 2097152, '\\xcd')"));
    assert_ne!(fingerprint(&url), before, "one byte after two whole chunks");
    db.psql(&format!("SELECT lo_truncate(lo_open({even}, 131072), 2097152)"));
    assert_eq!(fingerprint(&url), before, "cut back to two chunks");
}

/// A role that may read one large object and not another: the fingerprint does not fail on
/// `permission denied`; the readable one's content counts, the other is counted as unreadable.
#[test]
fn a_role_that_may_not_read_a_large_object_still_gets_a_fingerprint() {
    let db = PgDatabase::new();
    let server = db.server();
    let role = format!("{}_lo", db.name());
    server.psql("postgres", &format!("CREATE ROLE {role} LOGIN PASSWORD 'pw'"));
    let granted = db.psql("SELECT lo_from_bytea(0, 'granted')");
    let private = db.psql("SELECT lo_from_bytea(0, 'private')");
    db.psql(&format!("GRANT SELECT ON LARGE OBJECT {granted} TO {role}"));
    let url = server.url_with(&role, "pw", db.name());

    let dir = tempfile::tempdir().unwrap();
    let first = block_on(database(&url, dir.path()).fingerprint());
    let dump = block_on(database(&url, dir.path()).canonical_dump());
    db.psql(&format!("SELECT lo_put({granted}, 0, 'G')"));
    let after = block_on(database(&url, dir.path()).fingerprint());
    db.psql(&format!("DROP OWNED BY {role} CASCADE"));
    server.psql("postgres", &format!("DROP ROLE {role}"));

    let (first, dump, after) = (first.unwrap(), dump.unwrap(), after.unwrap());
    assert!(dump.contains(&format!("large_object {private} owner=")) && dump.contains("content=-"), "{dump}");
    assert!(dump.contains(&format!("large_object {granted} owner=")), "{dump}");
    assert_ne!(after, first, "the readable one's content counts");
}

/// The app, rolled back, writes a large object in place and changes no row. Before, the
/// fingerprint counted large objects only, so the undo took the database for unchanged and
/// restored the snapshot over that write; now it sees the write and keeps it.
#[test]
fn a_large_object_written_in_place_while_rolled_back_is_kept_by_the_undo() {
    let d = deploy(Fx::Sql, Engine::Postgres);
    let rb = engine(&d);
    let oid = scalar(&rb, "SELECT lo_from_bytea(0, 'avatar v3')").unwrap();
    let before = state(&d, &rb);
    undo_after_writing(&rb, &format!("SELECT lo_put({oid}, 7, 'v1')"));
    assert_eq!(
        scalar(&rb, &format!("SELECT convert_from(lo_get({oid}), 'UTF8')")).as_deref(),
        Some("avatar v1"),
        "the write made while rolled back is kept"
    );
    // Apart from that write, the database is what it was before the rollback (the native
    // tracking table records when each migration was applied again).
    sql(&rb, &format!("SELECT lo_put({oid}, 7, 'v3')"));
    let strip = |s: &str| s.lines().filter(|l| !l.contains("add_")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(&state(&d, &rb).dump), strip(&before.dump));
}

/// A publication created, given a table, changed or dropped changes the fingerprint, and so
/// does a foreign server, its wrapper, a cast or an access method: what the exact restore drops
/// and re-creates outside the schemas. None gives the same fingerprint again.
#[test]
fn fingerprint_sees_what_a_restore_recreates_outside_the_schemas() {
    let db = PgDatabase::new();
    let url = db.url();
    db.psql(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY); CREATE TYPE mood AS ENUM ('ok')",
    );
    let first = fingerprint(&url);
    db.psql("CREATE PUBLICATION feed FOR TABLE a");
    let one = fingerprint(&url);
    assert_ne!(one, first, "a publication");
    assert!(canonical(&url).contains("publication feed owner="), "{}", canonical(&url));
    db.psql("ALTER PUBLICATION feed ADD TABLE b");
    assert_ne!(fingerprint(&url), one, "one more table");
    db.psql("ALTER PUBLICATION feed DROP TABLE b");
    assert_eq!(fingerprint(&url), one, "the same tables again");
    db.psql("ALTER PUBLICATION feed SET (publish = 'insert')");
    assert_ne!(fingerprint(&url), one, "what it publishes");
    db.psql("DROP PUBLICATION feed");
    assert_eq!(fingerprint(&url), first, "none again");

    for (make, change, undo) in [
        (
            "CREATE FOREIGN DATA WRAPPER w",
            "ALTER FOREIGN DATA WRAPPER w OPTIONS (ADD debug 'on')",
            "DROP FOREIGN DATA WRAPPER w",
        ),
        (
            "CREATE FOREIGN DATA WRAPPER w; CREATE SERVER s FOREIGN DATA WRAPPER w OPTIONS (host 'db1')",
            "ALTER SERVER s OPTIONS (SET host 'db2')",
            "DROP FOREIGN DATA WRAPPER w CASCADE",
        ),
        (
            "CREATE CAST (mood AS int) WITH INOUT",
            "DROP CAST (mood AS int); CREATE CAST (mood AS int) WITH INOUT AS IMPLICIT",
            "DROP CAST (mood AS int)",
        ),
        ("CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler", "", "DROP ACCESS METHOD heap2"),
    ] {
        db.psql(make);
        let made = fingerprint(&url);
        assert_ne!(made, first, "{make}");
        if !change.is_empty() {
            db.psql(change);
            assert_ne!(fingerprint(&url), made, "{change}");
        }
        db.psql(undo);
        assert_eq!(fingerprint(&url), first, "{undo}");
    }
}

/// A DBA creates a publication while the app runs rolled back (to stream changes elsewhere) and
/// no row changes. The restore drops publications and re-creates the snapshot's, so the undo
/// restored the snapshot over it before; now it sees it and keeps it.
#[test]
fn a_publication_created_while_rolled_back_is_kept_by_the_undo() {
    let d = deploy(Fx::Sql, Engine::Postgres);
    let rb = engine(&d);
    undo_after_writing(&rb, "CREATE PUBLICATION feed FOR TABLE users");
    assert_eq!(
        scalar(&rb, "SELECT string_agg(pubname || ':' || tablename, ',') FROM pg_publication_tables").as_deref(),
        Some("feed:users"),
        "kept"
    );
}
