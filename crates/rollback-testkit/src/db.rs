//! Database fixtures: the test PostgreSQL server and Python that `scripts/test.sh` starts and
//! installs, a fresh PostgreSQL database per test, and sample apps whose releases carry
//! Alembic or native SQL migrations.
//!
//! Tests never skip silently: without `FORGE_TEST_PG_URL` / `FORGE_TEST_PYTHON` they panic with
//! the command that sets them up.

// "PostgreSQL", "SQLAlchemy" are product names, not code.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::TestRepo;

const SETUP_HINT: &str = "run the tests through `scripts/test.sh rust` (it installs the Python tools and starts PostgreSQL), \
or by hand: `python3 -m venv .venv && .venv/bin/pip install -r requirements-dev.txt && eval \"$(scripts/pg.sh start)\" \
&& export FORGE_TEST_PYTHON=$PWD/.venv/bin/python`";

/// The URL of the test PostgreSQL server (`FORGE_TEST_PG_URL`), with a superuser.
pub fn pg_url() -> String {
    match std::env::var("FORGE_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!("FORGE_TEST_PG_URL is not set: these tests need a real PostgreSQL server; {SETUP_HINT}"),
    }
}

/// The CA certificate the test server's TLS certificate chains to (`FORGE_TEST_PG_CA`, set by
/// `scripts/pg.sh` for the server it starts).
pub fn pg_ca() -> PathBuf {
    match std::env::var("FORGE_TEST_PG_CA") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "FORGE_TEST_PG_CA is not set: the TLS tests need the server `scripts/pg.sh start` starts (TLS on, its CA exported); {SETUP_HINT}"
        ),
    }
}

/// A Python interpreter with Alembic, SQLAlchemy and psycopg2 (`FORGE_TEST_PYTHON`).
pub fn python() -> String {
    match std::env::var("FORGE_TEST_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "FORGE_TEST_PYTHON is not set: the Alembic tests need the venv with requirements-dev.txt; {SETUP_HINT}"
        ),
    }
}

/// The parts of a `postgresql://user:password@host:port/db?query` URL (test URLs only).
#[derive(Clone, Debug)]
pub struct PgParts {
    /// `postgresql`.
    pub scheme: String,
    /// User.
    pub user: String,
    /// Password (decoded).
    pub password: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub dbname: String,
    /// Query string without `?` (may be empty).
    pub query: String,
}

impl PgParts {
    /// Parses a test URL.
    pub fn parse(url: &str) -> Self {
        let (scheme, rest) = url.split_once("://").expect("a postgresql:// URL");
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (netloc, dbname) = rest.split_once('/').unwrap_or((rest, "postgres"));
        let (userinfo, hostport) = netloc.rsplit_once('@').unwrap_or(("", netloc));
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        Self {
            scheme: scheme.into(),
            user: decode(user),
            password: decode(password),
            host: host.into(),
            port: port.parse().expect("a numeric port"),
            dbname: if dbname.is_empty() { "postgres".into() } else { decode(dbname) },
            query: query.into(),
        }
    }

    /// The URL for another database, user or password on the same server.
    pub fn url_with(&self, user: &str, password: &str, dbname: &str) -> String {
        let q = if self.query.is_empty() { String::new() } else { format!("?{}", self.query) };
        format!("{}://{}:{}@{}:{}/{}{q}", self.scheme, encode(user), encode(password), self.host, self.port, dbname)
    }

    /// Runs `psql -c sql` against `dbname` (password through `PGPASSWORD`); panics on failure.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        let out = Command::new(psql_program())
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGPASSWORD", &self.password)
            .env("PGDATABASE", dbname)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8")
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `psql` on PATH, else the newest under `/usr/lib/postgresql/*/bin`.
fn psql_program() -> PathBuf {
    if Command::new("psql").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return PathBuf::from("psql");
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| panic!("psql not found; {SETUP_HINT}"))
}

/// The database engine a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// `app.db` in the work tree.
    Sqlite,
    /// A fresh database on the test server.
    Postgres,
}

impl Engine {
    /// The database's URL (SQLite: `sqlite:///app.db`, relative to the work tree), and the
    /// PostgreSQL database to keep alive for as long as the test uses it.
    pub fn database(self) -> (Option<PgDatabase>, String) {
        match self {
            Engine::Sqlite => (None, "sqlite:///app.db".to_owned()),
            Engine::Postgres => {
                let pg = PgDatabase::new();
                let url = pg.url();
                (Some(pg), url)
            }
        }
    }
}

/// A fresh, uniquely named database on the test server, dropped on drop.
pub struct PgDatabase {
    server: PgParts,
    name: String,
}

impl PgDatabase {
    /// Creates the database.
    pub fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let server = PgParts::parse(&pg_url());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let name = format!("fr_test_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        server.psql("postgres", &format!("CREATE DATABASE {name}"));
        Self { server, name }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL (with the superuser's password).
    pub fn url(&self) -> String {
        self.server.url_with(&self.server.user, &self.server.password, &self.name)
    }

    /// The server's parts (user, password, host, port).
    pub fn server(&self) -> &PgParts {
        &self.server
    }

    /// Runs SQL in it through psql; returns the unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.server.psql(&self.name, sql)
    }
}

impl Default for PgDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new(psql_program())
            .args(["-X", "-q", "-c", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .env("PGHOST", &self.server.host)
            .env("PGPORT", self.server.port.to_string())
            .env("PGUSER", &self.server.user)
            .env("PGPASSWORD", &self.server.password)
            .env("PGDATABASE", "postgres")
            .output();
    }
}

/// Which migrator a fixture is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MigratorKind {
    /// Alembic: `alembic.ini`, `migrations/env.py`, `migrations/versions/*.py`.
    Alembic,
    /// Native SQL: `db/migrations/NNNN_name.{up,down}.sql`.
    Sql,
}

/// A sample app over four releases, each tagged:
/// - `v0`: no database;
/// - `v1`: migration 1 creates `users` (id, name, legacy) and an index; its downgrade is
///   irreversible (raises `NotImplementedError` / has no `.down.sql`);
/// - `v2`: migration 2 adds `users.email` and drops `users.legacy` (a destructive upgrade);
///   reversible;
/// - `v3`: migration 3 creates `payments` with three rows (quotes, a newline, a NULL);
///   reversible.
pub struct MigrationFixture {
    /// The migrator.
    pub kind: MigratorKind,
    /// `v0`..`v3` commit ids.
    pub commits: [String; 4],
    /// Migration 1..3 revision ids.
    pub revisions: [String; 3],
}

/// Alembic revision ids of the fixture.
pub const ALEMBIC_REVISIONS: [&str; 3] = ["3f1a0c9e2b01", "7c2d9e4f5a02", "b84e1d2c3f03"];
/// Native SQL revisions of the fixture.
pub const SQL_REVISIONS: [&str; 3] = ["0001", "0002", "0003"];
/// The native migrator's folder in the fixture.
pub const SQL_DIR: &str = "db/migrations";

const ALEMBIC_INI: &str = r"# Alembic configuration of the sample app. The database URL is not here: env.py reads
# DATABASE_URL, as forge-rollback hands it.
[alembic]
script_location = %(here)s/migrations
prepend_sys_path = .

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
";

const ENV_PY: &str = r#"import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set")
    return url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=None, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
"#;

const REV1: &str = r#""""create users

Revision ID: 3f1a0c9e2b01
Revises:
Create Date: 2025-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = "3f1a0c9e2b01"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("legacy", sa.String(50)),
    )
    op.create_index("ix_users_name", "users", ["name"])


def downgrade():
    raise NotImplementedError("the initial schema is never dropped")
"#;

const REV2: &str = r#""""add email, drop legacy

Revision ID: 7c2d9e4f5a02
Revises: 3f1a0c9e2b01
Create Date: 2025-12-05 10:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = "7c2d9e4f5a02"
down_revision: Union[str, Sequence[str], None] = "3f1a0c9e2b01"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("users", sa.Column("email", sa.String(200)))
    op.drop_column("users", "legacy")


def downgrade() -> None:
    op.add_column("users", sa.Column("legacy", sa.String(50)))
    op.drop_column("users", "email")
"#;

const REV2_BROKEN_DOWNGRADE: &str = r#"

def downgrade() -> None:
    op.add_column("users", sa.Column("legacy", sa.String(50)))
    raise RuntimeError("boom: this downgrade fails half-way")
"#;

const REV3: &str = r#""""add payments

Revision ID: b84e1d2c3f03
Revises: 7c2d9e4f5a02
Create Date: 2025-12-10 10:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = "b84e1d2c3f03"
down_revision: Union[str, Sequence[str], None] = "7c2d9e4f5a02"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    payments = op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text()),
    )
    op.bulk_insert(
        payments,
        [
            {"id": 1, "amount_cents": 1250, "note": "first"},
            {"id": 2, "amount_cents": 990, "note": "it's \"quoted\"\nand on two lines"},
            {"id": 3, "amount_cents": 5, "note": None},
        ],
    )


def downgrade() -> None:
    op.drop_table("payments")
"#;

const SQL1_UP: &str = "-- the initial schema: no .down.sql, it is never dropped\n\
CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, legacy VARCHAR(50));\n\
CREATE INDEX ix_users_name ON users (name);\n";
const SQL2_UP: &str = "ALTER TABLE users ADD COLUMN email VARCHAR(200);\nALTER TABLE users DROP COLUMN legacy;\n";
const SQL2_DOWN: &str = "ALTER TABLE users ADD COLUMN legacy VARCHAR(50);\nALTER TABLE users DROP COLUMN email;\n";
const SQL2_DOWN_BROKEN: &str =
    "ALTER TABLE users ADD COLUMN legacy VARCHAR(50);\nSELECT * FROM boom_this_downgrade_fails_half_way;\n";
const SQL3_UP: &str = "CREATE TABLE payments (id INTEGER PRIMARY KEY, amount_cents INTEGER NOT NULL, note TEXT);\n\
INSERT INTO payments (id, amount_cents, note) VALUES\n  (1, 1250, 'first'),\n  (2, 990, 'it''s \"quoted\"\nand on two lines'),\n  (3, 5, NULL);\n";
const SQL3_DOWN: &str = "DROP TABLE payments;\n";

impl MigrationFixture {
    /// Writes and commits the four releases with `kind`'s migrations.
    pub fn new(repo: &TestRepo, kind: MigratorKind) -> Self {
        repo.write("app/main.py", "def status():\n    return {\"status\": \"healthy\"}\n")
            .write(".gitignore", "*.db\n*.db-*\n__pycache__/\n.env\n")
            .write("README.md", "sample app\n");
        let v0 = repo.commit_all("release v0: no database");
        repo.git(&["tag", "v0"]);
        let versions = "migrations/versions";
        let sql = SQL_DIR;
        match kind {
            MigratorKind::Alembic => {
                repo.write("alembic.ini", ALEMBIC_INI)
                    .write("migrations/env.py", ENV_PY)
                    .write(format!("{versions}/3f1a0c9e2b01_create_users.py"), REV1);
            }
            MigratorKind::Sql => {
                repo.write(format!("{sql}/0001_create_users.up.sql"), SQL1_UP);
            }
        }
        let v1 = repo.commit_all("release v1: users");
        repo.git(&["tag", "v1"]);
        match kind {
            MigratorKind::Alembic => {
                repo.write(format!("{versions}/7c2d9e4f5a02_add_email.py"), REV2);
            }
            MigratorKind::Sql => {
                repo.write(format!("{sql}/0002_add_email.up.sql"), SQL2_UP)
                    .write(format!("{sql}/0002_add_email.down.sql"), SQL2_DOWN);
            }
        }
        let v2 = repo.commit_all("release v2: email");
        repo.git(&["tag", "v2"]);
        match kind {
            MigratorKind::Alembic => {
                repo.write(format!("{versions}/b84e1d2c3f03_add_payments.py"), REV3);
            }
            MigratorKind::Sql => {
                repo.write(format!("{sql}/0003_add_payments.up.sql"), SQL3_UP)
                    .write(format!("{sql}/0003_add_payments.down.sql"), SQL3_DOWN);
            }
        }
        let v3 = repo.commit_all("release v3: payments");
        repo.git(&["tag", "v3"]);
        let revisions = match kind {
            MigratorKind::Alembic => ALEMBIC_REVISIONS,
            MigratorKind::Sql => SQL_REVISIONS,
        }
        .map(str::to_owned);
        Self { kind, commits: [v0, v1, v2, v3], revisions }
    }

    /// `alembic` or `sql`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            MigratorKind::Alembic => "alembic",
            MigratorKind::Sql => "sql",
        }
    }

    /// The file of migration `n` (1-based), relative to the work tree.
    pub fn migration_path(&self, n: usize) -> String {
        match self.kind {
            MigratorKind::Alembic => {
                let names =
                    ["3f1a0c9e2b01_create_users.py", "7c2d9e4f5a02_add_email.py", "b84e1d2c3f03_add_payments.py"];
                format!("migrations/versions/{}", names[n - 1])
            }
            MigratorKind::Sql => {
                let names = ["0001_create_users.up.sql", "0002_add_email.up.sql", "0003_add_payments.up.sql"];
                format!("{SQL_DIR}/{}", names[n - 1])
            }
        }
    }

    /// Rewrites migration 2's downgrade in the work tree (not committed) so that it fails after
    /// its first statement.
    pub fn break_second_downgrade(&self, repo: &TestRepo) {
        match self.kind {
            MigratorKind::Alembic => {
                let text = REV2.split("\n\ndef downgrade()").next().expect("REV2 has a downgrade").to_owned();
                repo.write(self.migration_path(2), format!("{text}{REV2_BROKEN_DOWNGRADE}"));
            }
            MigratorKind::Sql => {
                repo.write(format!("{SQL_DIR}/0002_add_email.down.sql"), SQL2_DOWN_BROKEN);
            }
        }
    }

    /// Adds a migration file that does not parse to the work tree; returns its path.
    pub fn write_unparsable(&self, repo: &TestRepo) -> String {
        let (path, text) = match self.kind {
            MigratorKind::Alembic => (
                "migrations/versions/c0ffee_broken.py".to_owned(),
                "\"\"\"broken\"\"\"\nimport uuid\nrevision = uuid.uuid4().hex\ndown_revision = \"b84e1d2c3f03\"\n",
            ),
            MigratorKind::Sql => (format!("{SQL_DIR}/4-broken.up.sql"), "SELECT 1;\n"),
        };
        repo.write(&path, text);
        path
    }
}
