//! Putting back what a downgrade dropped (`rows::put_back`), value kinds and schema features
//! the row-keeping undo meets: JSON `null` next to SQL `NULL`, triggers of the upgraded schema
//! (a put-back restores state, it fires none), identity and generated columns. Each case is a
//! snapshot copy and a live database "after the upgrade" (the dropped tables and columns are
//! there again, empty), on real SQLite files and the test PostgreSQL server.

use std::path::Path;

use rollback_core::DataLoss;
use rollback_core::db::rows::{PutBackStats, put_back};
use rollback_core::db::url::DbUrl;
use rollback_core::db::{Error, UrlDatabase};
use rollback_core::rt::block_on;
use rollback_core::secret::Secret;
use rollback_testkit::db::PgDatabase;

pub(crate) fn database(url: &str, workdir: &Path) -> UrlDatabase {
    UrlDatabase::new(DbUrl::parse(&Secret::new(url), workdir).unwrap(), 60, "pg_dump".into(), "pg_restore".into())
}

fn table(name: &str, rows: u64) -> DataLoss {
    DataLoss::table(name, rows)
}

/// What a put-back with nothing left out and no counter raised did: rows inserted, rows already
/// there, values set.
fn did(rows_inserted: u64, rows_present: u64, values_set: u64) -> PutBackStats {
    PutBackStats { rows_inserted, rows_present, values_set, values_left: Vec::new(), counters_raised: Vec::new() }
}

fn column(name: &str, col: &str, rows: u64) -> DataLoss {
    DataLoss::column(name, col, rows)
}

/// Two PostgreSQL databases: the snapshot copy and the live one.
pub(crate) struct Pg {
    pub(crate) snap: PgDatabase,
    pub(crate) live: PgDatabase,
}

impl Pg {
    pub(crate) fn new(snap_sql: &str, live_sql: &str) -> Self {
        let pg = Self { snap: PgDatabase::new(), live: PgDatabase::new() };
        pg.snap.psql(snap_sql);
        pg.live.psql(live_sql);
        pg
    }

    pub(crate) fn put_back(&self, losses: &[DataLoss]) -> Result<PutBackStats, Error> {
        let dir = tempfile::tempdir().unwrap();
        block_on(put_back(&database(&self.live.url(), dir.path()), &database(&self.snap.url(), dir.path()), losses))
    }

    /// The snapshot copy's census.
    pub(crate) fn snap_census(&self) -> rollback_core::db::rows::Census {
        let dir = tempfile::tempdir().unwrap();
        block_on(rollback_core::db::rows::census(&database(&self.snap.url(), dir.path()))).unwrap()
    }
}

/// A `jsonb` JSON `null` in a dropped table or column comes back as JSON `null`, not as SQL
/// `NULL` (`json_populate_recordset` reads both as SQL `NULL`); so does one inside an array.
/// SQL `NULL`s stay `NULL`, strings that read `null` stay strings.
#[test]
fn pg_jsonb_null_stays_apart_from_sql_null() {
    let schema = "CREATE TABLE things (id int PRIMARY KEY, meta jsonb, metas jsonb[], word text);
                  CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, prefs jsonb);";
    let pg = Pg::new(
        &format!(
            "{schema}
             INSERT INTO things VALUES
               (1, 'null', ARRAY['null'::jsonb, NULL], 'null'),
               (2, NULL, NULL, NULL),
               (3, '{{\"a\": [1, null]}}', ARRAY['\"null\"'::jsonb], ''),
               (4, '\"null\"', '{{}}', 'NULL');
             INSERT INTO users VALUES (1, 'ada', 'null'), (2, 'bob', NULL), (3, 'cy', '{{\"k\": null}}');"
        ),
        &format!(
            "{schema}
             INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'bob'), (3, 'cy'), (4, 'written while rolled back');"
        ),
    );
    let losses = [table("things", 4), column("users", "prefs", 2)];
    let stats = pg.put_back(&losses).unwrap();
    assert_eq!(stats, did(4, 0, 2));
    let things = "SELECT id, meta IS NULL, meta::text, metas::text, metas[1] IS NULL, word IS NULL, word FROM things ORDER BY id";
    assert_eq!(pg.live.psql(things), pg.snap.psql(things));
    assert!(pg.live.psql(things).starts_with("1|f|null|{\"null\",NULL}|f|f|null\n"), "{}", pg.live.psql(things));
    let users = "SELECT id, prefs IS NULL, prefs::text FROM users ORDER BY id";
    assert_eq!(pg.live.psql(users), "1|f|null\n2|t|\n3|f|{\"k\": null}\n4|t|");
    // Again: nothing more to do.
    assert_eq!(pg.put_back(&losses).unwrap(), did(0, 4, 0));
}

/// `json` values (which have no `=`) come back with their exact text, JSON `null` included.
#[test]
fn pg_json_values_come_back_exact() {
    let schema = "CREATE TABLE docs (id int PRIMARY KEY, doc json);
                  CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, raw json);";
    let pg = Pg::new(
        &format!(
            "{schema}
             INSERT INTO docs VALUES (1, 'null'), (2, NULL), (3, '{{ \"a\" :  null, \"a\": 2 }}'), (4, '\"x\"');
             INSERT INTO users VALUES (1, 'ada', 'null'), (2, 'bob', NULL), (3, 'cy', ' [ null ] ');"
        ),
        &format!(
            "{schema}
             INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'bob'), (3, 'cy'), (4, 'written while rolled back');"
        ),
    );
    let losses = [table("docs", 3), column("users", "raw", 2)];
    let stats = pg.put_back(&losses).unwrap();
    assert_eq!(stats, did(4, 0, 2));
    let docs = "SELECT id, doc IS NULL, doc::text FROM docs ORDER BY id";
    assert_eq!(pg.live.psql(docs), pg.snap.psql(docs));
    let users = "SELECT id, raw IS NULL, raw::text FROM users WHERE id < 4 ORDER BY id";
    assert_eq!(pg.live.psql(users), pg.snap.psql(users));
    assert_eq!(pg.put_back(&losses).unwrap(), did(0, 4, 0));
}

/// Other value kinds keep their exact value through the put-back.
#[test]
fn pg_values_of_every_kind_come_back_exact() {
    let schema = "CREATE TYPE mood AS ENUM ('ok', 'sad');
                  CREATE TYPE pair AS (a int, b text);
                  CREATE TABLE kinds (id int PRIMARY KEY, f float8, r real, n numeric(12, 4), ts timestamptz,
                    d date, iv interval, b bytea, c char(5), bits bit(3), arr text[], m mood, p pair, rng int4range, u uuid);";
    let pg = Pg::new(
        &format!(
            "{schema}
             INSERT INTO kinds VALUES
               (1, 0.1, 0.3, 12.3400, '2024-02-29 23:59:59.123456+05:30', '0044-03-15 BC', '1 year 2 mons -3 days 04:05:06.7',
                '\\x00ff'::bytea, 'ab', B'101', ARRAY['', NULL, 'NULL', 'a,\"b'], 'sad', ROW(1, NULL)::pair, '[1,5)', gen_random_uuid()),
               (2, 'NaN', '-Infinity', NULL, 'infinity', NULL, NULL, '', NULL, NULL, '{{}}', NULL, ROW(NULL, '')::pair, 'empty', NULL),
               (3, 1e308, -0, 0, NULL, NULL, NULL, NULL, '     ', NULL, NULL, NULL, NULL, NULL, NULL);"
        ),
        schema,
    );
    // The live database reads and writes dates, intervals and floats otherwise than the copy.
    let name = pg.live.name().to_owned();
    pg.live.psql(&format!(
        "ALTER DATABASE {name} SET DateStyle = 'SQL, DMY'; ALTER DATABASE {name} SET IntervalStyle = 'sql_standard';
         ALTER DATABASE {name} SET extra_float_digits = -3; ALTER DATABASE {name} SET TimeZone = 'Pacific/Auckland';"
    ));
    pg.put_back(&[table("kinds", 3)]).unwrap();
    let all =
        "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET TimeZone = 'UTC';
               SELECT k::text FROM kinds k ORDER BY id";
    assert_eq!(pg.live.psql(all), pg.snap.psql(all));
}

/// Two SQLite files in a temp folder: the snapshot copy and the live one.
struct Lite {
    dir: tempfile::TempDir,
}

impl Lite {
    fn new(snap_sql: &str, live_sql: &str) -> Self {
        let lite = Self { dir: tempfile::tempdir().unwrap() };
        rusqlite::Connection::open(lite.dir.path().join("snap.db")).unwrap().execute_batch(snap_sql).unwrap();
        lite.live().execute_batch(live_sql).unwrap();
        lite
    }

    fn live(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("live.db")).unwrap()
    }

    fn put_back(&self, losses: &[DataLoss]) -> Result<PutBackStats, Error> {
        let (live, snap) =
            (database("sqlite:///live.db", self.dir.path()), database("sqlite:///snap.db", self.dir.path()));
        block_on(put_back(&live, &snap, losses))
    }

    fn query(&self, sql: &str) -> Vec<String> {
        let c = self.live();
        let mut stmt = c.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Real(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }
}

const SQLITE_SCHEMA: &str = "
    CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
    CREATE TABLE payments (id INTEGER PRIMARY KEY, user_id INTEGER, amount INTEGER NOT NULL);
    CREATE TABLE counters (name TEXT PRIMARY KEY, n INTEGER);
    CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
    INSERT INTO counters VALUES ('payments', 0);";

/// The upgraded schema's triggers do not fire while rows go back (an AFTER INSERT keeping a
/// running total would count the payments twice; an AFTER UPDATE auditing users would log
/// updates nobody made); they are all there afterwards, `sqlite_schema` as it was, and fire
/// for the app's next writes.
#[test]
fn sqlite_put_back_fires_no_trigger() {
    let triggers = "
        CREATE TRIGGER pay_ins AFTER INSERT ON payments BEGIN UPDATE counters SET n = n + NEW.amount WHERE name = 'payments'; END;
        create   trigger \"Users Audit\" after update of email on Users
          begin insert into audit (what) values ('user ' || new.id || ' updated'); end;
        CREATE INDEX payments_user ON payments (user_id);
        CREATE TRIGGER pay_del BEFORE DELETE ON payments BEGIN SELECT RAISE(ABORT, 'payments are kept'); END;";
    let lite = Lite::new(
        &format!(
            "{SQLITE_SCHEMA}{triggers}
             INSERT INTO users VALUES (1, 'ada', 'ada@x'), (2, 'bob', 'bob@x');
             INSERT INTO payments VALUES (1, 1, 100), (2, 2, 50);
             UPDATE counters SET n = 150; DELETE FROM audit;"
        ),
        &format!(
            "{SQLITE_SCHEMA}{triggers}
             INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'bob'), (3, 'written while rolled back');"
        ),
    );
    lite.live().execute_batch("UPDATE counters SET n = 150").unwrap();
    let schema = "SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema ORDER BY type, name";
    let before = lite.query(schema);
    let stats = lite.put_back(&[table("payments", 2), column("users", "email", 2)]).unwrap();
    assert_eq!(stats, did(2, 0, 2));
    assert_eq!(lite.query("SELECT n FROM counters"), ["150"], "the running total counts each payment once");
    assert_eq!(lite.query("SELECT count(*) FROM audit"), ["0"], "no update to audit");
    assert_eq!(lite.query("SELECT id, email FROM users ORDER BY id"), ["1|ada@x", "2|bob@x", "3|NULL"]);
    assert_eq!(lite.query(schema), before, "the triggers are back, exactly");
    // They fire again for the app.
    lite.live()
        .execute_batch("INSERT INTO payments VALUES (3, 3, 7); UPDATE users SET email = 'z' WHERE id = 3")
        .unwrap();
    assert_eq!(lite.query("SELECT n FROM counters"), ["157"]);
    assert_eq!(lite.query("SELECT what FROM audit"), ["user 3 updated"]);
    assert!(lite.live().execute_batch("DELETE FROM payments").is_err());
}

/// A conflict rolls everything back, the dropped triggers included.
#[test]
fn sqlite_put_back_refused_keeps_the_triggers() {
    let trigger = "CREATE TRIGGER pay_ins AFTER INSERT ON payments BEGIN UPDATE counters SET n = n + 1; END;";
    let lite = Lite::new(
        &format!("{SQLITE_SCHEMA}{trigger} INSERT INTO payments VALUES (1, 1, 100);"),
        &format!("{SQLITE_SCHEMA}{trigger} INSERT INTO payments VALUES (1, 1, 999);"),
    );
    let before = lite.query("SELECT type, name, sql FROM sqlite_schema ORDER BY rowid");
    let err = lite.put_back(&[table("payments", 1)]).unwrap_err();
    assert!(err.to_string().contains("1 row(s) exist under the same primary key with other content"), "{err}");
    assert_eq!(lite.query("SELECT type, name, sql FROM sqlite_schema ORDER BY rowid"), before);
}

/// SQLite's generated columns (stored and virtual) are computed again, never written.
#[test]
fn sqlite_generated_columns_are_computed_again() {
    let schema = "CREATE TABLE invoices (id INTEGER PRIMARY KEY, net INTEGER,
                    gross INTEGER GENERATED ALWAYS AS (net * 2) STORED, half REAL GENERATED ALWAYS AS (net / 2.0) VIRTUAL);
                  CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);";
    let lite = Lite::new(
        &format!("{schema} INSERT INTO invoices (id, net) VALUES (1, 10), (2, NULL);"),
        &format!("{schema} INSERT INTO users VALUES (1, 'written while rolled back');"),
    );
    let stats = lite.put_back(&[table("invoices", 2)]).unwrap();
    assert_eq!(stats.rows_inserted, 2);
    assert_eq!(lite.query("SELECT id, net, gross, half FROM invoices ORDER BY id"), ["1|10|20|5", "2|NULL|NULL|NULL"]);
}

const PG_SCHEMA: &str = "
    CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text);
    CREATE TABLE payments (id serial PRIMARY KEY, user_id int REFERENCES users (id), amount int NOT NULL);
    CREATE TABLE counters (name text PRIMARY KEY, n int);
    CREATE TABLE audit (id serial PRIMARY KEY, what text);
    INSERT INTO counters VALUES ('payments', 0);
    CREATE FUNCTION pay_count() RETURNS trigger LANGUAGE plpgsql AS
      $$BEGIN UPDATE counters SET n = n + NEW.amount WHERE name = 'payments'; RETURN NEW; END$$;
    CREATE TRIGGER pay_ins AFTER INSERT ON payments FOR EACH ROW EXECUTE FUNCTION pay_count();
    CREATE FUNCTION users_audit() RETURNS trigger LANGUAGE plpgsql AS
      $$BEGIN INSERT INTO audit (what) VALUES ('user ' || NEW.id || ' updated'); RETURN NEW; END$$;
    CREATE TRIGGER users_upd AFTER UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_audit();
    CREATE TRIGGER users_always BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_audit();
    ALTER TABLE users ENABLE ALWAYS TRIGGER users_always;
    CREATE TRIGGER users_off AFTER UPDATE ON users FOR EACH ROW EXECUTE FUNCTION users_audit();
    ALTER TABLE users DISABLE TRIGGER users_off;
    CREATE TRIGGER pay_replica AFTER INSERT ON payments FOR EACH ROW EXECUTE FUNCTION pay_count();
    ALTER TABLE payments ENABLE REPLICA TRIGGER pay_replica;";

const PG_TRIGGERS: &str = "SELECT tgrelid::regclass, tgname, tgenabled, tgisinternal FROM pg_trigger
                           WHERE tgrelid IN ('users'::regclass, 'payments'::regclass) ORDER BY 1, 2";

/// PostgreSQL: the user triggers of the tables written (insert and update triggers, one
/// `ALWAYS`) do not fire; each is as it was afterwards (enabled, `ALWAYS`, `REPLICA`, one that
/// was disabled stays so), foreign keys are still checked.
#[test]
fn pg_put_back_fires_no_user_trigger() {
    let pg = Pg::new(
        &format!(
            "{PG_SCHEMA}
             INSERT INTO users (name, email) VALUES ('ada', 'ada@x'), ('bob', 'bob@x');
             INSERT INTO payments (user_id, amount) VALUES (1, 100), (2, 50);"
        ),
        &format!("{PG_SCHEMA} INSERT INTO users (name) VALUES ('ada'), ('bob'), ('written while rolled back');"),
    );
    pg.live.psql("DELETE FROM audit; UPDATE counters SET n = 150");
    let before = pg.live.psql(PG_TRIGGERS);
    assert!(before.contains("|t"), "the foreign key's own triggers: {before}");
    let stats = pg.put_back(&[table("payments", 2), column("users", "email", 2)]).unwrap();
    assert_eq!(stats, did(2, 0, 2));
    assert_eq!(pg.live.psql("SELECT n FROM counters"), "150", "the running total counts each payment once");
    assert_eq!(pg.live.psql("SELECT count(*) FROM audit"), "0", "no update to audit");
    assert_eq!(pg.live.psql(PG_TRIGGERS), before, "every trigger as it was");
    // The sequence behind the key moved past the payments put back.
    assert_eq!(pg.live.psql("INSERT INTO payments (user_id, amount) VALUES (3, 7) RETURNING id"), "3");
    assert_eq!(pg.live.psql("SELECT n FROM counters"), "157", "the trigger fires for the app again");

    // Foreign keys are checked still: a payment of a user deleted since is refused.
    let pg = Pg::new(
        &format!(
            "{PG_SCHEMA} INSERT INTO users (name) VALUES ('ada'), ('bob'); INSERT INTO payments (user_id, amount) VALUES (2, 5);"
        ),
        &format!("{PG_SCHEMA} INSERT INTO users (name) VALUES ('ada');"),
    );
    let before = pg.live.psql(PG_TRIGGERS);
    let err = pg.put_back(&[table("payments", 1)]).unwrap_err();
    assert!(err.to_string().contains("foreign key"), "{err}");
    assert_eq!(pg.live.psql("SELECT count(*) FROM payments"), "0");
    assert_eq!(pg.live.psql(PG_TRIGGERS), before);
}

/// Turning triggers off takes owning the table: a role that does not own it gets a clear
/// error, and nothing changes.
#[test]
fn pg_put_back_without_owning_a_table_with_triggers_is_refused_clearly() {
    let pg = Pg::new(
        &format!(
            "{PG_SCHEMA} INSERT INTO users (name) VALUES ('ada'); INSERT INTO payments (user_id, amount) VALUES (1, 5);"
        ),
        &format!("{PG_SCHEMA} INSERT INTO users (name) VALUES ('ada');"),
    );
    let role = format!("{}_writer", pg.live.name());
    let server = pg.live.server();
    server.psql("postgres", &format!("CREATE ROLE {role} LOGIN PASSWORD 'pw'"));
    pg.live.psql(&format!(
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}; GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role};
         GRANT USAGE ON SCHEMA public TO {role};"
    ));
    let dir = tempfile::tempdir().unwrap();
    let live = database(&server.url_with(&role, "pw", pg.live.name()), dir.path());
    let result = block_on(put_back(&live, &database(&pg.snap.url(), dir.path()), &[table("payments", 1)]));
    server.psql("postgres", &format!("DROP OWNED BY {role} CASCADE"));
    pg.live.psql(&format!("DROP OWNED BY {role} CASCADE"));
    server.psql("postgres", &format!("DROP ROLE {role}"));
    let err = result.unwrap_err().to_string();
    assert!(err.contains("takes owning the table") && err.contains("must be owner of table payments"), "{err}");
    assert!(err.contains("Nothing was changed"), "{err}");
    assert_eq!(pg.live.psql("SELECT count(*) FROM payments"), "0");
    assert_eq!(pg.live.psql("SELECT n FROM counters"), "0");
}

/// A dropped table keyed by `GENERATED ALWAYS AS IDENTITY`, one with a stored generated
/// column, and a dropped identity column and generated column of a table that stays: put
/// back as they were (identity values kept, generated ones computed again), and the identity
/// sequences move past the values put back.
#[test]
fn pg_identity_and_generated_columns_are_put_back() {
    let schema = "
        CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind text);
        CREATE TABLE invoices (id int PRIMARY KEY, net int, gross int GENERATED ALWAYS AS (net * 2) STORED);
        CREATE TABLE users (id int PRIMARY KEY, name text, ticket bigint GENERATED ALWAYS AS IDENTITY,
                            shout text GENERATED ALWAYS AS (upper(name)) STORED);";
    let pg = Pg::new(
        &format!(
            "{schema}
             INSERT INTO events (kind) VALUES ('a'), ('b'), ('c'); DELETE FROM events WHERE id = 2;
             INSERT INTO invoices (id, net) VALUES (1, 10), (2, NULL);
             INSERT INTO users (id, name, ticket) OVERRIDING SYSTEM VALUE VALUES (1, 'ada', 40), (2, 'bob', 41);"
        ),
        // After the upgrade: the identity column added again numbered the rows afresh.
        &format!(
            "{schema}
             INSERT INTO users (id, name) VALUES (1, 'ada'), (2, 'bob'), (3, 'written while rolled back');"
        ),
    );
    let losses = [table("events", 2), table("invoices", 2), column("users", "ticket", 2), column("users", "shout", 2)];
    let stats = pg.put_back(&losses).unwrap();
    assert_eq!(stats, did(4, 0, 2));
    assert_eq!(pg.live.psql("SELECT id, kind FROM events ORDER BY id"), "1|a\n3|c");
    assert_eq!(pg.live.psql("SELECT id, net, gross FROM invoices ORDER BY id"), "1|10|20\n2||");
    assert_eq!(
        pg.live.psql("SELECT id, ticket, shout FROM users ORDER BY id"),
        "1|40|ADA\n2|41|BOB\n3|3|WRITTEN WHILE ROLLED BACK"
    );
    // The schema is as it was (the identity column is `ALWAYS` again), and the sequences
    // hand out no value put back.
    let columns =
        "SELECT table_name, column_name, is_identity, identity_generation, is_generated FROM information_schema.columns
                   WHERE table_schema = 'public' ORDER BY 1, 2";
    assert_eq!(pg.live.psql(columns), pg.snap.psql(columns));
    assert_eq!(pg.live.psql("INSERT INTO events (kind) VALUES ('new') RETURNING id"), "4");
    assert_eq!(pg.live.psql("INSERT INTO users (id, name) VALUES (4, 'new') RETURNING ticket"), "42");
    // Again: nothing more to do.
    let again = pg.put_back(&losses).unwrap();
    assert_eq!(
        again,
        PutBackStats {
            rows_inserted: 0,
            rows_present: 2 + 2,
            values_set: 0,
            values_left: Vec::new(),
            counters_raised: Vec::new()
        }
    );
}
