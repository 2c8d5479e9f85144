//! Putting back what a downgrade dropped on PostgreSQL (`rows::put_back`, `rows::census`), for
//! schema shapes that went wrong before: sequences not owned by their column (left at 1) and
//! serial/identity sequences moved only to the largest key put back (ids of rows deleted before
//! the run handed out again); table inheritance (a child's rows put back into the parent too);
//! `public."billing.invoices"` next to `billing.invoices` (one census entry); and types without
//! an `=` that tells sameness (`xml`, `point`, `box`). Each case is a snapshot copy and a live
//! database "after the upgrade" (the dropped tables and columns there again, empty, their
//! sequences at their start), on the test PostgreSQL server.

use rollback_core::DataLoss;
use rollback_core::db::rows::{census, keep_written};
use rollback_core::rt::block_on;
use rollback_testkit::db::PgDatabase;

use crate::rows_put_back::{Pg, database};

/// After the put-back every sequence hands out an id it never handed out before: one not owned
/// by its column (`CREATE SEQUENCE` + `DEFAULT nextval`) moves past the keys put back (before,
/// left at 1: the app's next insert failed on a duplicate key); an identity and a serial one go
/// where the snapshot had them, past the keys of rows deleted before the run (before, to the
/// largest key put back: the deleted order's id came again); a sequence no table put back uses
/// goes where the snapshot had it; one the app moved further while rolled back stays there.
#[test]
fn pg_sequences_go_where_the_snapshot_had_them_or_further() {
    let schema = "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);
                  CREATE SEQUENCE ticket_seq; CREATE SEQUENCE invoice_no;
                  CREATE TABLE tickets (id int PRIMARY KEY DEFAULT nextval('ticket_seq'), title text);
                  CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text);
                  CREATE TABLE refs (id serial PRIMARY KEY, note text);";
    let pg = Pg::new(
        &format!(
            "{schema}
             INSERT INTO users (name) VALUES ('ada');
             INSERT INTO tickets (title) VALUES ('t1'), ('t2'), ('t3');
             INSERT INTO orders (note) VALUES ('o1'), ('o2'), ('o3'), ('o4 deleted');
             DELETE FROM orders WHERE id = 4;
             INSERT INTO refs (note) VALUES ('r1'), ('r2 deleted');
             DELETE FROM refs WHERE id = 2;
             SELECT setval('invoice_no', 7);"
        ),
        &format!(
            "{schema}
             INSERT INTO users (name) VALUES ('ada'), ('written while rolled back'), ('and another');"
        ),
    );
    let losses = [DataLoss::table("tickets", 3), DataLoss::table("orders", 3), DataLoss::table("refs", 1)];
    let stats = pg.put_back(&losses).unwrap();
    assert_eq!(stats.rows_inserted, 7);
    assert_eq!(pg.live.psql("INSERT INTO tickets (title) VALUES ('new') RETURNING id"), "4");
    assert_eq!(pg.live.psql("INSERT INTO orders (note) VALUES ('new') RETURNING id"), "5");
    assert_eq!(pg.live.psql("INSERT INTO refs (note) VALUES ('new') RETURNING id"), "3");
    assert_eq!(pg.live.psql("SELECT nextval('invoice_no')"), "8");
    // The app's sequence is further than the snapshot's (at 1): it stays.
    assert_eq!(pg.live.psql("INSERT INTO users (name) VALUES ('new') RETURNING id"), "4");
}

/// Inheritance: a child's rows are its own. The parent's census counts its own rows, and the
/// put-back puts each row back into its own table once (before, the child's row went into the
/// parent too, a duplicate). A partitioned table is still read through its partitions.
#[test]
fn pg_inheritance_children_rows_are_not_put_back_into_the_parent() {
    let schema = "CREATE TABLE vehicles (id int PRIMARY KEY, name text);
                  CREATE TABLE zcars (doors int) INHERITS (vehicles);
                  CREATE TABLE events (id int, at date, what text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
                  CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
                  CREATE TABLE users (id int PRIMARY KEY, name text);";
    let pg = Pg::new(
        &format!(
            "{schema}
             INSERT INTO vehicles VALUES (1, 'bike');
             INSERT INTO zcars VALUES (2, 'car', 4);
             INSERT INTO events VALUES (1, '2026-03-01', 'deploy');"
        ),
        &format!("{schema} INSERT INTO users VALUES (1, 'written while rolled back');"),
    );
    let c = pg.snap_census();
    assert_eq!(c.tables["vehicles"].rows, 1, "the parent's own rows");
    assert_eq!(c.tables["zcars"].rows, 1);
    assert_eq!(c.tables["events"].rows, 1, "a partitioned table counts its partitions' rows");
    let losses = [DataLoss::table("vehicles", 1), DataLoss::table("zcars", 1), DataLoss::table("events", 1)];
    let stats = pg.put_back(&losses).unwrap();
    assert_eq!((stats.rows_inserted, stats.rows_present), (3, 0));
    let all = "SELECT tableoid::regclass, id, name FROM vehicles ORDER BY id, tableoid::regclass::text";
    assert_eq!(pg.live.psql(all), "vehicles|1|bike\nzcars|2|car");
    assert_eq!(pg.live.psql("SELECT tableoid::regclass, what FROM events"), "events_2026|deploy");
    // Again: nothing more to do, nothing counted twice.
    let again = pg.put_back(&losses).unwrap();
    assert_eq!((again.rows_inserted, again.rows_present), (0, 3));
    assert_eq!(pg.live.psql(all), "vehicles|1|bike\nzcars|2|car");
}

/// `public."billing.invoices"` and `billing.invoices` are two tables, with two names: each is
/// counted and put back (before, one census entry: one table's rows were neither forecast nor
/// put back).
#[test]
fn pg_a_dotted_table_name_is_apart_from_the_schema_qualified_one() {
    let schema = "CREATE SCHEMA billing;
                  CREATE TABLE billing.invoices (id int PRIMARY KEY, total int);
                  CREATE TABLE public.\"billing.invoices\" (id int PRIMARY KEY, note text);";
    let pg = Pg::new(
        &format!(
            "{schema}
             INSERT INTO billing.invoices VALUES (1, 10), (2, 20);
             INSERT INTO public.\"billing.invoices\" VALUES (1, 'a'), (2, 'b'), (3, 'c');"
        ),
        schema,
    );
    let c = pg.snap_census();
    assert_eq!(c.tables["billing.invoices"].rows, 2);
    assert_eq!(c.tables["\"billing.invoices\""].rows, 3);
    let losses = [DataLoss::table("billing.invoices", 2), DataLoss::table("\"billing.invoices\"", 3)];
    assert_eq!(pg.put_back(&losses).unwrap().rows_inserted, 5);
    assert_eq!(pg.live.psql("SELECT count(*) FROM billing.invoices"), "2");
    assert_eq!(pg.live.psql("SELECT count(*) FROM public.\"billing.invoices\""), "3");
}

/// Values of types without an `=` (`xml`, `point`) or whose `=` is no sameness (`box` compares
/// areas) are compared by their text form: a dropped table and a dropped column of them come
/// back (before: "operator does not exist: xml = xml"), and a box of the same area but another
/// place is no match, so a conflict under the same key is seen.
#[test]
fn pg_values_without_an_equality_come_back() {
    let schema = "CREATE TABLE docs (id int PRIMARY KEY, body xml, at point, area box, c circle);
                  CREATE TABLE users (id int PRIMARY KEY, name text, home point);";
    let pg = Pg::new(
        &format!(
            "{schema}
             INSERT INTO docs VALUES (1, '<a>1</a>', '(1,2)', '((0,0),(1,1))', '<(0,0),1>'), (2, NULL, NULL, NULL, NULL);
             INSERT INTO users VALUES (1, 'ada', '(3,4)'), (2, 'bob', NULL);"
        ),
        &format!(
            "{schema}
             INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'bob'), (3, 'written while rolled back');"
        ),
    );
    let losses = [DataLoss::table("docs", 2), DataLoss::column("users", "home", 1)];
    let stats = pg.put_back(&losses).unwrap();
    assert_eq!((stats.rows_inserted, stats.values_set), (2, 1));
    let docs = "SELECT id, body::text, at::text, area::text, c::text FROM docs ORDER BY id";
    assert_eq!(pg.live.psql(docs), pg.snap.psql(docs));
    assert_eq!(pg.live.psql("SELECT id, home::text FROM users ORDER BY id"), "1|(3,4)\n2|\n3|");
    // Again: the rows are there, identical.
    let again = pg.put_back(&losses).unwrap();
    assert_eq!((again.rows_inserted, again.rows_present, again.values_set), (0, 2, 0));
    // A box of the same area elsewhere is other content.
    pg.live.psql("UPDATE docs SET area = '((5,5),(6,6))' WHERE id = 1");
    let e = pg.put_back(&losses).unwrap_err().to_string();
    assert!(e.contains("docs: 1 row(s) exist under the same primary key with other content"), "{e}");
}

/// What a scratch copy of `live` says of its `search_path` and `work_mem`, and how many rows
/// its unqualified `users` holds (the copy is discarded after).
fn settings_of_a_copy(live: &PgDatabase) -> String {
    let dir = tempfile::tempdir().unwrap();
    let db = database(&live.url(), dir.path());
    let copy = block_on(db.scratch_copy_to(&dir.path().join("unused.db"), dir.path())).unwrap();
    let copy_name = copy.database().url().pg_params().unwrap().dbname.unwrap();
    let read = live.server().psql(&copy_name, "SHOW search_path; SHOW work_mem; SELECT count(*) FROM users");
    block_on(copy.discard()).unwrap();
    read
}

/// A copy of a database whose app lives in a schema of its own, found through a database-level
/// `search_path` (`ALTER DATABASE … SET search_path = app, "$user"`), has that setting too, as
/// a list: its unqualified names find the app's tables (before, a dump did not carry it and
/// the copy found nothing: the forecast was unknown and the row-keeping undo refused).
#[test]
fn pg_a_scratch_copy_keeps_the_database_search_path() {
    let live = PgDatabase::new();
    let name = live.name().to_owned();
    live.psql(&format!(
        "DROP SCHEMA public; CREATE SCHEMA app; CREATE TABLE app.users (id int PRIMARY KEY);
         INSERT INTO app.users VALUES (1), (2);
         ALTER DATABASE {name} SET search_path = app, \"$user\"; ALTER DATABASE {name} SET work_mem = '5MB';"
    ));
    let read = settings_of_a_copy(&live);
    assert_eq!(read, "app, \"$user\"\n5MB\n2");
}

/// The settings of the role connected, in the live database (`ALTER ROLE … IN DATABASE … SET`),
/// are the copy's too, over the database's as on the live database: its unqualified names find
/// the app's tables, its limits are the same (before, only the database's were copied: the
/// copy found nothing and ran with other limits).
#[test]
fn pg_a_scratch_copy_keeps_the_roles_settings_in_the_database() {
    let live = PgDatabase::new();
    let name = live.name().to_owned();
    live.psql(&format!(
        "DROP SCHEMA public; CREATE SCHEMA app; CREATE TABLE app.users (id int PRIMARY KEY);
         INSERT INTO app.users VALUES (1), (2);
         ALTER DATABASE {name} SET work_mem = '5MB';
         ALTER ROLE CURRENT_USER IN DATABASE {name} SET search_path = app, \"$user\";
         ALTER ROLE CURRENT_USER IN DATABASE {name} SET work_mem = '7MB';"
    ));
    let read = settings_of_a_copy(&live);
    assert_eq!(read, "app, \"$user\"\n7MB\n2");
}

/// The migrator's own table, named without a schema (`forge_rollback_migrations`), is found
/// where the search path finds it: in the app's schema when `public` has none. The rows the
/// downgrade deleted from it are no loss of the app's (before, `app.forge_rollback_migrations`
/// was forecast as rows deleted, and the undo refused them as a conflict).
#[test]
fn pg_the_migrators_table_in_the_apps_schema_is_not_a_loss() {
    let schema = "DROP SCHEMA public; CREATE SCHEMA app;
                  CREATE TABLE app.forge_rollback_migrations (version text PRIMARY KEY);
                  CREATE TABLE app.users (id int PRIMARY KEY, email text);";
    let pg = Pg::new(
        &format!(
            "{schema} INSERT INTO app.forge_rollback_migrations VALUES ('0001'), ('0002');
             INSERT INTO app.users VALUES (1, 'a@example.com');"
        ),
        &format!(
            "{schema} INSERT INTO app.forge_rollback_migrations VALUES ('0001');
             ALTER TABLE app.users DROP COLUMN email; INSERT INTO app.users VALUES (1);"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let (before, down) = (database(&pg.snap.url(), dir.path()), database(&pg.live.url(), dir.path()));
    let (bc, dc) = (block_on(census(&before)).unwrap(), block_on(census(&down)).unwrap());
    let skip = ["forge_rollback_migrations".to_owned()];
    let mut losses = rollback_core::db::rows::dropped(&bc, &dc, &skip);
    losses.extend(block_on(rollback_core::db::rows::removed_and_changed(&before, &down, &bc, &dc, &skip)).unwrap());
    assert_eq!(rollback_core::db::rows::describe(&losses), "app.users.email (1 value)");
}

/// Two dropped tables that reference each other: through foreign keys declared `DEFERRABLE`
/// they go back together (checked at the commit); through keys checked at once, whose columns
/// may hold NULL, the rows go in with those columns NULL and get their values once both tables
/// are there; when every such column is `NOT NULL` neither can go first, and the refusal names
/// both tables and the cycle, nothing changed. (Before: a bare foreign-key error naming
/// neither, in every case.)
#[test]
fn pg_tables_referencing_each_other_go_back_or_are_named() {
    for (how, not_null) in [("DEFERRABLE", ""), ("", ""), ("", "NOT NULL")] {
        let schema = format!(
            "CREATE TABLE authors (id int PRIMARY KEY, name text, best_book int {not_null});
             CREATE TABLE books (id int PRIMARY KEY, title text, author_id int {not_null} REFERENCES authors {how});
             ALTER TABLE authors ADD FOREIGN KEY (best_book) REFERENCES books {how};"
        );
        // Both rows in one statement: its foreign keys are checked at its end.
        let pg = Pg::new(
            &format!(
                "{schema}
                 WITH a AS (INSERT INTO authors VALUES (1, 'ada', 10), (2, 'bob', 10))
                 INSERT INTO books VALUES (10, 'notes', 1);"
            ),
            &schema,
        );
        let losses = [DataLoss::table("authors", 2), DataLoss::table("books", 1)];
        let all = "SELECT a.name, b.title FROM authors a JOIN books b ON b.id = a.best_book ORDER BY a.id";
        let what = format!("{how} {not_null}");
        if not_null.is_empty() {
            let stats = pg.put_back(&losses).unwrap();
            assert_eq!((stats.rows_inserted, stats.rows_present), (3, 0), "{what}");
            assert_eq!(pg.live.psql(all), "ada|notes\nbob|notes", "{what}");
            assert_eq!(pg.live.psql("SELECT author_id FROM books"), "1", "{what}");
            // Again: nothing more to do.
            let again = pg.put_back(&losses).unwrap();
            assert_eq!((again.rows_inserted, again.rows_present), (0, 3), "{what}");
        } else {
            let e = pg.put_back(&losses).unwrap_err().to_string();
            assert!(e.contains("the rows of `authors`, `books` cannot be put back in any order"), "{what}: {e}");
            assert!(e.contains("reference cycle"), "{what}: {e}");
            assert_eq!(pg.live.psql("SELECT count(*) FROM authors"), "0", "{what}: nothing changed");
        }
    }
}

/// Rows written while a downgrade ran, kept after the snapshot is restored over it
/// (`rows::keep_written`): no id handed out meanwhile is handed out again. A sequence a
/// `DEFAULT nextval(...)` names but the column does not own goes where it was before the
/// restore (before, only owned sequences moved: this one stayed where the snapshot had it,
/// and the app's next insert failed on the key of a row kept); an owned one too.
#[test]
fn pg_rows_kept_after_a_failed_downgrade_move_every_sequence_past_them() {
    let schema = "CREATE SEQUENCE ticket_seq;
                  CREATE TABLE tickets (id int PRIMARY KEY DEFAULT nextval('ticket_seq'), title text);
                  CREATE TABLE orders (id serial PRIMARY KEY, note text);";
    // `snap`: the database just before the restore, with the rows written meanwhile; `live`:
    // the snapshot restored.
    let pg = Pg::new(
        &format!(
            "{schema}
             INSERT INTO tickets (title) VALUES ('a'), ('b'), ('c'), ('written meanwhile'), ('and another');
             INSERT INTO orders (note) VALUES ('x'), ('written meanwhile');"
        ),
        &format!(
            "{schema}
             INSERT INTO tickets (title) VALUES ('a'), ('b'), ('c');
             INSERT INTO orders (note) VALUES ('x');"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let (restored, before) = (database(&pg.live.url(), dir.path()), database(&pg.snap.url(), dir.path()));
    let kept = block_on(keep_written(&restored, &before, &[], &std::collections::BTreeSet::new(), "")).unwrap();
    assert_eq!(kept.rows_inserted(), 3, "{kept:?}");
    assert_eq!(pg.live.psql("INSERT INTO tickets (title) VALUES ('new') RETURNING id"), "6");
    assert_eq!(pg.live.psql("INSERT INTO orders (note) VALUES ('new') RETURNING id"), "3");
}
