//! Row-keeping undo through the binary with real Alembic, putting back exactly what the
//! snapshot held: every copy of identical rows of a dropped table without a primary key (the
//! upgrade re-seeding one of them), and the NULLs of a dropped column that the upgrade re-adds
//! with a server default. On SQLite, and on PostgreSQL the same way.

use rollback_core::Rollback;
use rollback_core::config::Config;
use rollback_core::rt::block_on;
use rollback_core::vcs::{self, BackendKind};
use rollback_testkit::TestRepo;
use rollback_testkit::db::{Engine, MigrationFixture, MigratorKind, PgDatabase, python};

use crate::common::fr;

const CONFIG: &str = "forge-rollback.toml";

/// v4 over the Alembic fixture: a table without a primary key, seeded with one row.
const EVENTS: &str = r#"from alembic import op
import sqlalchemy as sa

revision = "e4e4e4e4e404"
down_revision = "b84e1d2c3f03"
branch_labels = None
depends_on = None


def upgrade():
    events = op.create_table("events", sa.Column("kind", sa.String(20)), sa.Column("n", sa.Integer()))
    op.bulk_insert(events, [{"kind": "deploy", "n": 1}])


def downgrade():
    op.drop_table("events")
"#;

/// v4 over the Alembic fixture: a column with a server default.
const PLAN: &str = r#"from alembic import op
import sqlalchemy as sa

revision = "e4e4e4e4e404"
down_revision = "b84e1d2c3f03"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("plan", sa.String(20), nullable=True, server_default="free"))


def downgrade():
    with op.batch_alter_table("users") as b:
        b.drop_column("plan")
"#;

pub(crate) struct Deployed {
    pub(crate) repo: TestRepo,
    config: String,
    _pg: Option<PgDatabase>,
}

impl Deployed {
    /// The Alembic fixture's v0..v3, then v4 with `migration`, deployed with every upgrade.
    pub(crate) fn new(engine: Engine, migration: &str) -> Self {
        let repo = TestRepo::new();
        let _fx = MigrationFixture::new(&repo, MigratorKind::Alembic);
        repo.write("migrations/versions/e4e4e4e4e404_v4.py", migration);
        repo.commit_all("release v4");
        repo.git(&["tag", "v4"]);
        let (pg, url) = engine.database();
        let config =
            format!("[database]\nkind = \"alembic\"\nurl = \"{url}\"\npython = \"{}\"\ntimeout_secs = 120\n", python());
        repo.write(CONFIG, &config);
        let d = Self { repo, config, _pg: pg };
        d.engine().upgrade_database(&[]).unwrap();
        d
    }

    fn engine(&self) -> Rollback {
        let config = Config::parse(&self.config, None).unwrap();
        Rollback::with_backend(vcs::open(BackendKind::GitCli, self.repo.path()).unwrap(), config).unwrap()
    }

    pub(crate) fn sql(&self, statement: &str) -> Option<String> {
        block_on(self.engine().db().unwrap().unwrap().database().query_scalar(statement)).unwrap()
    }

    pub(crate) fn dump(&self) -> String {
        block_on(self.engine().db().unwrap().unwrap().database().canonical_dump()).unwrap()
    }

    /// `run --full --target v3`, then `write` while rolled back, then `undo`: its stderr.
    pub(crate) fn round_trip(&self, write: &str) -> String {
        let run = fr(&self.repo, &["run", "--full", "--yes", "--target", "v3", "--json"]);
        run.ok();
        assert_eq!(run.json()["status"], "succeeded", "{}", run.stderr);
        let id = run.json()["run_id"].as_str().unwrap().to_owned();
        self.sql(write);
        let undo = fr(&self.repo, &["undo", &id, "--yes"]);
        undo.ok();
        assert!(undo.stderr.contains("put back"), "the rows were put back, not restored:\n{}", undo.stderr);
        undo.stderr
    }
}

/// A dropped table without a primary key holding 4 identical rows, one of which its upgrade
/// seeds again: the 3 others come back (4 rows, as before), as do the repeated rows with a
/// NULL, compared NULL-safe.
fn identical_rows_without_a_key_all_come_back(engine: Engine) {
    let d = Deployed::new(engine, EVENTS);
    d.sql("INSERT INTO users (id, name) VALUES (1, 'ada')");
    d.sql("INSERT INTO events (kind, n) VALUES ('deploy', 1), ('deploy', 1), ('deploy', 1)");
    d.sql("INSERT INTO events (kind, n) VALUES (NULL, 2), (NULL, 2)");
    assert_eq!(d.sql("SELECT count(*) FROM events").as_deref(), Some("6"));
    let before = d.dump();

    let stderr = d.round_trip("INSERT INTO users (id, name) VALUES (10, 'linus')");

    assert!(stderr.contains("5 row(s) put back (1 there already)"), "{stderr}");
    assert_eq!(d.sql("SELECT count(*) FROM events WHERE kind = 'deploy' AND n = 1").as_deref(), Some("4"));
    assert_eq!(d.sql("SELECT count(*) FROM events WHERE kind IS NULL AND n = 2").as_deref(), Some("2"));
    assert_eq!(d.sql("SELECT count(*) FROM events").as_deref(), Some("6"));
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 10").as_deref(), Some("linus"), "written since: kept");
    d.sql("DELETE FROM users WHERE id = 10");
    assert_eq!(d.dump(), before, "apart from the row written since, the database is as before the rollback");
}

/// Only the reported case: 4 identical rows, the upgrade seeding 1 of them.
#[test]
fn sqlite_four_identical_rows_without_a_key_stay_four() {
    let d = Deployed::new(Engine::Sqlite, EVENTS);
    d.sql("INSERT INTO events (kind, n) VALUES ('deploy', 1), ('deploy', 1), ('deploy', 1)");
    let stderr = d.round_trip("INSERT INTO users (id, name) VALUES (10, 'linus')");
    assert!(stderr.contains("3 row(s) put back (1 there already)"), "{stderr}");
    assert_eq!(d.sql("SELECT count(*) FROM events").as_deref(), Some("4"));
}

#[test]
fn sqlite_identical_rows_without_a_key_all_come_back() {
    identical_rows_without_a_key_all_come_back(Engine::Sqlite);
}

#[test]
fn postgres_identical_rows_without_a_key_all_come_back() {
    identical_rows_without_a_key_all_come_back(Engine::Postgres);
}

/// A NULL in a dropped column comes back NULL, not as the default the upgrade re-adds the
/// column with; a row written while rolled back keeps that default.
fn nulls_of_a_dropped_column_come_back_null(engine: Engine) {
    let d = Deployed::new(engine, PLAN);
    d.sql("INSERT INTO users (id, name, plan) VALUES (1, 'ada', 'pro'), (2, 'cy', NULL), (3, 'bo', 'free')");
    let before = d.dump();

    d.round_trip("INSERT INTO users (id, name) VALUES (10, 'linus')");

    assert_eq!(d.sql("SELECT plan FROM users WHERE id = 1").as_deref(), Some("pro"));
    assert_eq!(d.sql("SELECT count(*) FROM users WHERE id = 2 AND plan IS NULL").as_deref(), Some("1"), "NULL");
    assert_eq!(d.sql("SELECT plan FROM users WHERE id = 3").as_deref(), Some("free"));
    assert_eq!(d.sql("SELECT plan FROM users WHERE id = 10").as_deref(), Some("free"), "the upgrade's default");
    d.sql("DELETE FROM users WHERE id = 10");
    assert_eq!(d.dump(), before, "apart from the row written since, the database is as before the rollback");
}

#[test]
fn sqlite_nulls_of_a_dropped_column_come_back_null() {
    nulls_of_a_dropped_column_come_back_null(Engine::Sqlite);
}

#[test]
fn postgres_nulls_of_a_dropped_column_come_back_null() {
    nulls_of_a_dropped_column_come_back_null(Engine::Postgres);
}
