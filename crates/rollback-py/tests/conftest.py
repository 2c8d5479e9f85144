"""Fixtures: real git repositories built with the `git` CLI in a clean, fixed environment."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import forge_rollback as fr

# Fixed identity and dates, no user or system git config: commits hash the same on every run.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_SYSTEM": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Forge Tester",
    "GIT_AUTHOR_EMAIL": "tester@example.invalid",
    "GIT_AUTHOR_DATE": "2025-12-10T17:39:00Z",
    "GIT_COMMITTER_NAME": "Forge Tester",
    "GIT_COMMITTER_EMAIL": "tester@example.invalid",
    "GIT_COMMITTER_DATE": "2025-12-10T17:39:00Z",
    "GIT_TERMINAL_PROMPT": "0",
}


@dataclass
class Repo:
    """A work tree with tags v1, v2, v3 on branch main and uncommitted work on top of v3."""

    path: Path

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=self.path, check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def commit_of(self, rev: str) -> str:
        return self.git("rev-parse", f"{rev}^{{commit}}")

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def write(self, rel: str, content: str | bytes, mode: int | None = None) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        p.write_bytes(content)
        if mode is not None:
            p.chmod(mode)

    def tree(self) -> dict[str, tuple[bytes, int]]:
        """Every file outside .git: relative path -> (bytes, permission bits)."""
        out: dict[str, tuple[bytes, int]] = {}
        for dirpath, dirnames, filenames in os.walk(self.path):
            if ".git" in dirnames:
                dirnames.remove(".git")
            for name in filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                data = os.readlink(p).encode() if stat.S_ISLNK(st.st_mode) else p.read_bytes()
                out[str(p.relative_to(self.path))] = (data, stat.S_IMODE(st.st_mode))
        return out

    def state(self, exclude: tuple[str, ...] = ()) -> tuple[str, str, dict[str, tuple[bytes, int]]]:
        """HEAD, `git status` and the tree (without `exclude`): what a rollback changes and an
        undo restores."""
        tree = {k: v for k, v in self.tree().items() if k not in exclude}
        return self.head(), self.git("status", "--porcelain=v1", "-uall"), tree


def make_repo(path: Path, untracked: int = 0) -> Repo:
    path.mkdir(parents=True, exist_ok=True)
    repo = Repo(path)
    repo.git("init", "-q", "-b", "main")
    repo.write("app.py", "VERSION = 1\n")
    repo.write("run.sh", "#!/bin/sh\necho v1\n", mode=0o755)
    repo.write("README.md", "# app\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "release v1")
    repo.git("tag", "v1")

    repo.write("app.py", "VERSION = 2\n")
    repo.write("lib/util.py", "def util() -> int:\n    return 2\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "release v2")
    repo.git("tag", "v2")

    repo.write("app.py", "VERSION = 3\n")
    repo.write("run.sh", "#!/bin/sh\necho v3\n", mode=0o755)
    repo.write("lib/feature.py", "FEATURE = True\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "release v3")
    repo.git("tag", "v3")

    # Uncommitted work: a modified tracked file, a staged new file, odd untracked names.
    repo.write("app.py", "VERSION = 3  # hotfix in progress\n")
    repo.write("staged.txt", "staged but not committed\n")
    repo.git("add", "staged.txt")
    repo.write("notes with spaces.txt", "untracked\n")
    repo.write("données/é.txt", "non-ascii untracked\n", mode=0o600)
    for i in range(untracked):
        repo.write(f"bulk/{i // 100:03}/file{i:05}.txt", f"untracked file {i}\n")
    return repo


@pytest.fixture(autouse=True)
def git_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A clean git environment for the `git` CLI and the engine alike."""
    for key in list(os.environ):
        if key.startswith("GIT_") or key.startswith("FORGE_ROLLBACK_FAILPOINT"):
            monkeypatch.delenv(key)
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    yield


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """Tags v1/v2/v3 on main, HEAD at v3, with uncommitted and untracked work."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def big_repo(tmp_path: Path) -> Repo:
    """Like `repo`, plus a few thousand untracked files, so a run takes a while."""
    return make_repo(tmp_path / "big", untracked=3000)


WORKSPACE = Path(__file__).resolve().parents[3]


def cli_binary() -> Path:
    """The `forge-rollback` binary: `FORGE_ROLLBACK_BIN`, else the cargo target dir's debug build."""
    if env := os.environ.get("FORGE_ROLLBACK_BIN"):
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", WORKSPACE / "target"))
    return target / "debug" / "forge-rollback"


@pytest.fixture(scope="session")
def cli() -> Path:
    path = cli_binary()
    if not path.is_file():
        pytest.fail(f"no forge-rollback binary at {path}: run `cargo build -p rollback-cli` or set FORGE_ROLLBACK_BIN")
    return path


# ----- databases ------------------------------------------------------------------------------
#
# The sample app of crates/rollback-testkit/src/db.rs, built here in Python: four releases v0..v3
# whose migrations (Alembic or forge-rollback's native SQL files) create `users` (v1; its
# downgrade is irreversible), add `users.email` and drop `users.legacy` (v2), and create
# `payments` with three awkward rows (v3). The database is a SQLite file in the work tree
# (ignored by git) or a fresh database on the PostgreSQL server `scripts/test.sh` starts
# (FORGE_TEST_PG_URL), dropped after the test. The configuration names the URL's environment
# variable (`url_env`), so no password is in any file.

ALEMBIC_REVISIONS = ["3f1a0c9e2b01", "7c2d9e4f5a02", "b84e1d2c3f03"]
SQL_REVISIONS = ["0001", "0002", "0003"]
SQL_DIR = "db/migrations"

ALEMBIC_INI = """\
# Alembic configuration of the sample app. The database URL is not here: env.py reads
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
"""

ENV_PY = '''\
import os
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
'''

REV1 = '''\
"""create users

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
'''

REV2 = '''\
"""add email, drop legacy

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
'''

REV3 = '''\
"""add payments

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
            {"id": 2, "amount_cents": 990, "note": "it's \\"quoted\\"\\nand on two lines"},
            {"id": 3, "amount_cents": 5, "note": None},
        ],
    )


def downgrade() -> None:
    op.drop_table("payments")
'''

SQL1_UP = (
    "-- the initial schema: no .down.sql, it is never dropped\n"
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(100) NOT NULL, legacy VARCHAR(50));\n"
    "CREATE INDEX ix_users_name ON users (name);\n"
)
SQL2_UP = "ALTER TABLE users ADD COLUMN email VARCHAR(200);\nALTER TABLE users DROP COLUMN legacy;\n"
SQL2_DOWN = "ALTER TABLE users ADD COLUMN legacy VARCHAR(50);\nALTER TABLE users DROP COLUMN email;\n"
SQL3_UP = (
    "CREATE TABLE payments (id INTEGER PRIMARY KEY, amount_cents INTEGER NOT NULL, note TEXT);\n"
    "INSERT INTO payments (id, amount_cents, note) VALUES\n  (1, 1250, 'first'),\n"
    "  (2, 990, 'it''s \"quoted\"\nand on two lines'),\n  (3, 5, NULL);\n"
)
SQL3_DOWN = "DROP TABLE payments;\n"

#: `.env` of the v1 release and of the v3 release (secrets that must never be shown).
ENV_V1 = "SECRET_KEY=v1-secret-value-4711\nPAYMENTS_ENABLED=0\nLEGACY_MODE=on\n"
ENV_V3 = "SECRET_KEY=v3-secret-value-0815\nPAYMENTS_ENABLED=1\nSTRIPE_TOKEN=sk_live_v3_token_123\n"
ENV_SECRETS = ["v1-secret-value-4711", "v3-secret-value-0815", "sk_live_v3_token_123"]


def write_release(repo: Repo, kind: str, n: int) -> None:
    """Adds release `n`'s migration files (1..3) to the work tree."""
    versions = "migrations/versions"
    if kind == "alembic":
        if n == 1:
            repo.write("alembic.ini", ALEMBIC_INI)
            repo.write("migrations/env.py", ENV_PY)
        name, text = [
            ("3f1a0c9e2b01_create_users.py", REV1),
            ("7c2d9e4f5a02_add_email.py", REV2),
            ("b84e1d2c3f03_add_payments.py", REV3),
        ][n - 1]
        repo.write(f"{versions}/{name}", text)
    else:
        files = [
            {"0001_create_users.up.sql": SQL1_UP},
            {"0002_add_email.up.sql": SQL2_UP, "0002_add_email.down.sql": SQL2_DOWN},
            {"0003_add_payments.up.sql": SQL3_UP, "0003_add_payments.down.sql": SQL3_DOWN},
        ][n - 1]
        for name, text in files.items():
            repo.write(f"{SQL_DIR}/{name}", text)


def make_migration_repo(path: Path, kind: str) -> Repo:
    """The sample app's four releases, tagged v0..v3, HEAD at v3 (testkit's MigrationFixture)."""
    path.mkdir(parents=True, exist_ok=True)
    repo = Repo(path)
    repo.git("init", "-q", "-b", "main")
    repo.write("app/main.py", 'def status():\n    return {"status": "healthy"}\n')
    repo.write(".gitignore", "*.db\n*.db-*\n__pycache__/\n.env\n")
    repo.write("README.md", "sample app\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "release v0: no database")
    repo.git("tag", "v0")
    for n, what in [(1, "users"), (2, "email"), (3, "payments")]:
        write_release(repo, kind, n)
        repo.write("app/main.py", f'VERSION = {n}\n\n\ndef status():\n    return {{"status": "healthy"}}\n')
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", f"release v{n}: {what}")
        repo.git("tag", f"v{n}")
    return repo


def pg_env(url: str) -> dict[str, str]:
    """libpq variables for `url` (the password in PGPASSWORD, never in argv)."""
    u = urllib.parse.urlsplit(url)
    return {
        "PGHOST": u.hostname or "127.0.0.1",
        "PGPORT": str(u.port or 5432),
        "PGUSER": urllib.parse.unquote(u.username or ""),
        "PGPASSWORD": urllib.parse.unquote(u.password or ""),
        "PGDATABASE": urllib.parse.unquote(u.path.lstrip("/") or "postgres"),
        "PGCONNECT_TIMEOUT": "10",
    }


def pg_server_url() -> str:
    url = os.environ.get("FORGE_TEST_PG_URL", "")
    if not url:
        pytest.fail(
            "FORGE_TEST_PG_URL is not set: these tests need a real PostgreSQL server; run them through "
            "`scripts/test.sh python`, or `eval \"$(scripts/pg.sh start)\"` first"
        )
    return url


def with_database(url: str, dbname: str) -> str:
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))


class PgDatabase:
    """A fresh database on the test server; `drop()` removes it."""

    _counter = 0

    def __init__(self) -> None:
        import psycopg2

        PgDatabase._counter += 1
        self.server = pg_server_url()
        self.name = f"fr_py_{os.getpid()}_{PgDatabase._counter}_{time.monotonic_ns() % 1_000_000_000}"
        self.password = urllib.parse.unquote(urllib.parse.urlsplit(self.server).password or "")
        con = psycopg2.connect(self.server)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f"CREATE DATABASE {self.name}")
        con.close()
        self.url = with_database(self.server, self.name)

    def drop(self) -> None:
        import psycopg2

        con = psycopg2.connect(self.server)
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        con.close()

    def dump(self) -> list[str]:
        """Canonical content: `pg_dump --schema-only` and every table's rows (`COPY`), sorted."""
        import psycopg2

        env = {**os.environ, **pg_env(self.url)}
        out = subprocess.run(
            ["pg_dump", "--schema-only", "--no-owner", "--no-privileges"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout
        # pg_dump >= 17.6 brackets its output with a random `\restrict` key.
        schema = [line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))]
        rows: list[str] = []
        con = psycopg2.connect(self.url)
        try:
            with con.cursor() as cur:
                cur.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
                )
                for (table,) in cur.fetchall():
                    buf = io.StringIO()
                    cur.copy_expert(f'COPY "{table}" TO STDOUT', buf)
                    rows.extend(sorted(f"{table}\t{line}" for line in buf.getvalue().splitlines()))
        finally:
            con.close()
        return schema + ["-- rows"] + rows

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg2

        con = psycopg2.connect(self.url)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall()) if cur.description else []
        finally:
            con.close()


@dataclass
class DbApp:
    """The sample app with its database at v3 and `.env` of v3; v1 marked known-good with its
    `.env` and database revision."""

    repo: Repo
    kind: str
    engine: str
    url: str
    config: Path
    pg: PgDatabase | None

    @property
    def revisions(self) -> list[str]:
        return ALEMBIC_REVISIONS if self.kind == "alembic" else SQL_REVISIONS

    @property
    def password(self) -> str | None:
        return self.pg.password if self.pg else None

    @property
    def sqlite_path(self) -> Path:
        return self.repo.path / "app.db"

    def open(self) -> fr.Rollback:
        return fr.Rollback.open(self.repo.path, config=self.config)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.pg is not None:
            return self.pg.query(sql)
        con = sqlite3.connect(self.sqlite_path)
        try:
            rows = list(con.execute(sql).fetchall())
            con.commit()
            return rows
        finally:
            con.close()

    def dump(self) -> list[str]:
        """The database's schema and rows, canonical (sorted), for exact comparison."""
        if self.pg is not None:
            return self.pg.dump()
        con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True)
        try:
            return sorted(con.iterdump())
        finally:
            con.close()

    def revision(self) -> list[str]:
        """The revision the database is at, read from its own tracking table."""
        if self.kind == "alembic":
            return sorted(r[0] for r in self.query("SELECT version_num FROM alembic_version"))
        rows = self.query("SELECT version FROM forge_rollback_migrations ORDER BY version DESC LIMIT 1")
        return [f"{rows[0][0]:04}"] if rows else []

    def tables(self) -> set[str]:
        if self.pg is not None:
            return {r[0] for r in self.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        return {r[0] for r in self.query("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def columns(self, table: str) -> list[str]:
        if self.pg is not None:
            return [
                r[0]
                for r in self.query(
                    f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}' ORDER BY ordinal_position"
                )
            ]
        return [r[1] for r in self.query(f"PRAGMA table_info({table})")]

    def code_state(self) -> tuple[str, str, dict[str, tuple[bytes, int]]]:
        """HEAD, status and every file but the SQLite database (compared by `dump()`)."""
        return self.repo.state(exclude=("app.db", "app.db-journal", "app.db-wal", "app.db-shm"))


def db_config_toml(kind: str, extra: str = "") -> str:
    python = f"python = {json.dumps(sys.executable)}\n" if kind == "alembic" else f'migrations_dir = "{SQL_DIR}"\n'
    return f'[database]\nkind = "{kind}"\nurl_env = "DATABASE_URL"\ntimeout_secs = 120\n{python}{extra}'


@pytest.fixture
def make_db_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`make_db_app(kind, engine, extra_toml="")` -> DbApp: built, upgraded, v1 marked good."""
    made: list[PgDatabase] = []

    def make(kind: str, engine: str, extra_toml: str = "") -> DbApp:
        repo = make_migration_repo(tmp_path / f"app-{kind}-{engine}", kind)
        pg = None
        if engine == "postgres":
            pg = PgDatabase()
            made.append(pg)
            url = pg.url
        else:
            url = "sqlite:///app.db"
        monkeypatch.setenv("DATABASE_URL", url)
        config = tmp_path / f"forge-rollback-{kind}-{engine}.toml"
        config.write_text(db_config_toml(kind, extra_toml))
        app = DbApp(repo=repo, kind=kind, engine=engine, url=url, config=config, pg=pg)

        # Deploy v1: its schema, some users, its `.env`; declare it good (records both).
        repo.git("reset", "-q", "--hard", "v1")
        rb = app.open()
        assert rb.upgrade_database() == [app.revisions[0]]
        app.query("INSERT INTO users (id, name, legacy) VALUES (1, 'ada', 'old-1'), (2, 'grace', NULL)")
        repo.write(".env", ENV_V1, mode=0o600)
        marked = rb.known_good.mark("HEAD", note="v1 ran a week")
        assert marked["entry"]["database_migrations"] == [app.revisions[0]]
        assert marked["env"] is not None

        # Deploy v3: its schema (payments with three rows), a user with an email, its `.env`.
        repo.git("reset", "-q", "--hard", "v3")
        rb = app.open()
        assert rb.upgrade_database() == [app.revisions[2]]
        app.query("INSERT INTO users (id, name, email) VALUES (3, 'linus', 'l@example.invalid')")
        repo.write(".env", ENV_V3, mode=0o600)
        # Work in progress on the server: an edited tracked file and an untracked one.
        repo.write("app/main.py", (repo.path / "app/main.py").read_text() + "# hotfix in progress\n")
        repo.write("notes with spaces.txt", "untracked\n")
        return app

    try:
        yield make
    finally:
        for pg in made:
            pg.drop()


@pytest.fixture
def env_repo(tmp_path: Path) -> Repo:
    """The sample app's releases without a database: v1 marked known-good while it ran (which
    recorded its `.env`), HEAD at v3 with v3's `.env` and work in progress."""
    repo = make_migration_repo(tmp_path / "env-app", "sql")
    repo.git("reset", "-q", "--hard", "v1")
    repo.write(".env", ENV_V1, mode=0o600)
    out = fr.Rollback.open(repo.path).known_good.mark("HEAD", note="v1 ran a week")
    assert out["env"] is not None and out["env"]["files"] == [".env"]
    assert out["notes"] == []
    repo.git("reset", "-q", "--hard", "v3")
    repo.write(".env", ENV_V3, mode=0o600)
    repo.write("app/main.py", (repo.path / "app/main.py").read_text() + "# hotfix in progress\n")
    repo.write("notes with spaces.txt", "untracked\n")
    return repo


def _every_getter(obj: object) -> dict[str, object]:
    """Reads every attribute a result class defines: a field renamed in the core raises."""
    import inspect

    names = [n for n, v in vars(type(obj)).items() if inspect.isgetsetdescriptor(v)]
    assert names, f"{type(obj).__name__} has no attributes"
    return {n: getattr(obj, n) for n in names}


@pytest.fixture
def every_getter() -> Any:
    """`every_getter(result)`: every attribute of a result object, read once."""
    return _every_getter


@pytest.fixture
def python_ctrl_c() -> Iterator[None]:
    """Python's own SIGINT handler (KeyboardInterrupt), whatever the test runner inherited: a
    shell starts background jobs with SIGINT ignored, and Python then leaves it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
