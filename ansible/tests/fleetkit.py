"""The fleet the collection's tests drive: real ansible-core against hosts on this machine.

Four hosts (`web1`..`web4`, `ansible_connection=local`), each its own git work tree cloned from
one origin (its own `.git`, so its own state folder), all sharing one SQLite database file that
real Alembic migrated to the broken release (`v2`); `v1` is the release to roll back to. Also
the helpers the tests share: the playbook's command line, the module run alone, the controller
killed as when its machine dies, a load balancer on 127.0.0.1.

Used by `test_fleet.py` (the playbook), `test_module.py` (the module alone) and
`scripts/bench/fleet.py`.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = ROOT / "ansible"
PLAYBOOK = COLLECTIONS / "ansible_collections" / "forge" / "rollback" / "playbooks" / "rollback.yml"
HOSTS = ["web1", "web2", "web3", "web4"]

GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_SYSTEM": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Forge Tester",
    "GIT_AUTHOR_EMAIL": "tester@example.invalid",
    "GIT_COMMITTER_NAME": "Forge Tester",
    "GIT_COMMITTER_EMAIL": "tester@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/migrations
prepend_sys_path = .
"""

ENV_PY = '''\
import os

from alembic import context
from sqlalchemy import create_engine, pool


def run_migrations_offline() -> None:
    context.configure(url=os.environ["DATABASE_URL"], target_metadata=None, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(os.environ["DATABASE_URL"], poolclass=pool.NullPool)
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
"""create users"""
from alembic import op
import sqlalchemy as sa

revision = "a1000000users"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("name", sa.String(100)))


def downgrade():
    op.drop_table("users")
'''

REV2 = '''\
"""add payments, with rows"""
from alembic import op
import sqlalchemy as sa

revision = "b2000000payments"
down_revision = "a1000000users"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("payments", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("cents", sa.Integer()))
    op.execute("INSERT INTO payments (id, cents) VALUES (1, 1250), (2, 990), (3, 5)")


def downgrade():
    op.drop_table("payments")
'''

REVISIONS = ["a1000000users", "b2000000payments"]

# Appended to a host's env.py: Alembic lingers after it committed a downgrade to the first
# revision, on the live database only, while the flag file exists.
LINGER = """
import sqlite3
import time

if os.path.exists({flag!r}) and os.environ["DATABASE_URL"] == {url!r}:
    _c = sqlite3.connect({db!r})
    _v = _c.execute("SELECT version_num FROM alembic_version").fetchone()
    _c.close()
    if _v and _v[0] == "a1000000users":
        time.sleep(120)
"""


def cli_binary() -> Path:
    if env := os.environ.get("FORGE_ROLLBACK_BIN"):
        return Path(env)
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "forge-rollback"


def ansible_playbook() -> Path:
    return Path(sys.executable).parent / "ansible-playbook"


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, env=os.environ | GIT_ENV, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


class Fleet:
    """Four work trees sharing one database, an inventory, and the playbook."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "shared.db"
        self.url = f"sqlite:///{self.db}"
        origin = tmp / "origin"
        origin.mkdir(parents=True)
        git(origin, "init", "-q", "-b", "main")
        self.write(origin, ".gitignore", "*.db\n__pycache__/\nforge-rollback.toml\n")
        self.write(origin, "alembic.ini", ALEMBIC_INI)
        self.write(origin, "migrations/env.py", ENV_PY)
        self.write(origin, "migrations/versions/a1_users.py", REV1)
        self.write(origin, "app/main.py", "VERSION = 1\n")
        git(origin, "add", "-A")
        git(origin, "commit", "-q", "-m", "release v1: users")
        git(origin, "tag", "v1")
        self.write(origin, "migrations/versions/b2_payments.py", REV2)
        self.write(origin, "app/main.py", "VERSION = 2  # broken\n")
        git(origin, "add", "-A")
        git(origin, "commit", "-q", "-m", "release v2: payments (broken)")
        git(origin, "tag", "v2")
        self.v1, self.v2 = git(origin, "rev-parse", "v1"), git(origin, "rev-parse", "v2")
        out = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
            cwd=origin, env=os.environ | {"DATABASE_URL": self.url}, capture_output=True, text=True,
        )
        assert out.returncode == 0, out.stderr
        self.paths = {}
        for h in HOSTS:
            path = tmp / "hosts" / h
            path.parent.mkdir(exist_ok=True)
            git(tmp, "clone", "-q", str(origin), str(path))
            self.paths[h] = path
            self.config(h)
        self.inventory = tmp / "inventory.ini"
        self.write_inventory()
        self.report = tmp / "fleet-report.md"

    def write_inventory(self, db_host: str = "web1", bins: dict[str, Path] | None = None) -> None:
        """The inventory: every host's work tree, the database host, a host's own command."""
        lines = ["[app]"]
        for h in HOSTS:
            lines.append(f"{h} forge_rollback_path={self.paths[h]}" + (" forge_rollback_db_host=true" if h == db_host else "")
                         + (f" forge_rollback_bin={bins[h]}" if bins and h in bins else ""))
        lines += ["", "[app:vars]", "ansible_connection=local", f"ansible_python_interpreter={sys.executable}",
                  f"forge_rollback_bin={cli_binary()}", ""]
        self.inventory.write_text("\n".join(lines))

    @staticmethod
    def write(repo: Path, rel: str, text: str) -> None:
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def config(self, host: str, check: list[str] | None = None, restart: list[str] | None = None) -> None:
        """The host's untracked config: the shared database, one command check, an optional
        restart command."""
        text = (
            "[database]\nkind = \"alembic\"\n"
            f"url = \"{self.url}\"\npython = \"{sys.executable}\"\n\n"
            "[[checks]]\nname = \"app\"\nkind = \"command\"\n"
            f"argv = {json.dumps(check or ['true'])}\n"
        )
        if restart:
            text += f"\n[[restart]]\nname = \"app\"\nargv = {json.dumps(restart)}\ntimeout_secs = 60\n"
        self.write(self.paths[host], "forge-rollback.toml", text)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "ANSIBLE_", "FORGE_ROLLBACK_FAILPOINT"))}
        # AnsiballZ unpacks each module into the system temp dir; a module the tests kill
        # would leave its folder in /tmp.
        scratch = self.tmp / "tmp"
        scratch.mkdir(exist_ok=True)
        return env | GIT_ENV | {
            "TMPDIR": str(scratch),
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_HOME": str(self.tmp / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(self.tmp / "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(self.tmp / "ansible-tmp"),
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        }

    def argv(self, *extra: str) -> list[str]:
        return [str(ansible_playbook()), "-i", str(self.inventory), str(PLAYBOOK), "-e", "target=v1",
                "-e", "forge_rollback_serial=2", "-e", f"forge_rollback_report={self.report}", *extra]

    def play(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*extra), cwd=self.tmp, env=self.env(), capture_output=True, text=True,
                              timeout=600)

    def heads(self) -> dict[str, str]:
        return {h: git(p, "rev-parse", "HEAD") for h, p in self.paths.items()}

    def revision(self) -> list[str]:
        with sqlite3.connect(self.db) as c:
            return [r[0] for r in c.execute("SELECT version_num FROM alembic_version")]

    def payments(self) -> list[tuple[int, int]] | None:
        with sqlite3.connect(self.db) as c:
            if not c.execute("SELECT 1 FROM sqlite_master WHERE name = 'payments'").fetchall():
                return None
            return sorted(c.execute("SELECT id, cents FROM payments").fetchall())

    def runs(self, host: str) -> list[dict]:
        out = subprocess.run([str(cli_binary()), "-C", str(self.paths[host]), "--json", "runs", "list"],
                             env=os.environ | GIT_ENV, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def report_json(self) -> dict:
        return json.loads(self.report.with_suffix(".json").read_text())

    def module(self, host: str, **args: object) -> dict:
        """The module run once on `host` (a playbook of one task), its result as Ansible
        registered it (a failure included)."""
        playbook, result = self.tmp / "module.yml", self.tmp / "module-result.json"
        result.unlink(missing_ok=True)
        task = {"forge.rollback.rollback": {"path": "{{ forge_rollback_path }}", "bin": "{{ forge_rollback_bin }}", **args},
                "register": "r", "ignore_errors": True}
        save = {"ansible.builtin.copy": {"dest": str(result), "content": "{{ r | to_json }}"}}
        # JSON is YAML.
        playbook.write_text(json.dumps([{"hosts": host, "gather_facts": False, "tasks": [task, save]}]))
        p = subprocess.run([str(ansible_playbook()), "-i", str(self.inventory), str(playbook)], cwd=self.tmp,
                           env=self.env(), capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, show(p)
        return json.loads(result.read_text())

    def commit(self, host: str, message: str) -> str:
        """A new commit on the host's branch (a release deployed since): its hash."""
        self.write(self.paths[host], "app/main.py", f"VERSION = '{message}'\n")
        git(self.paths[host], "commit", "-q", "-am", message)
        return git(self.paths[host], "rev-parse", "HEAD")


def recap(out: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP: host -> {ok, changed, failed, ...}."""
    stats = {}
    for m in re.finditer(r"^(\S+)\s+:\s+(.*)$", out.split("PLAY RECAP")[-1], re.M):
        stats[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return stats


def wait_gone(pids: list[int], timeout: float = 30) -> None:
    """Until every one of `pids` has exited (gone, or a zombie: its files, and so its `flock`,
    are closed). A SIGKILLed process exits a moment after the signal, not at once."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                break
            if state in ("Z", "X"):
                break
            time.sleep(0.01)


def descendants(root: int) -> list[int]:
    """The processes below `root` (by parent pid), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_controller(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL of the controller and every process it started (the modules and the
    forge-rollback they run, which Ansible's local connection starts in sessions of their own):
    as when the controller's machine dies."""
    killed = [proc.pid, *descendants(proc.pid)]
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    wait_gone(killed)


def show(p: subprocess.CompletedProcess[str]) -> str:
    return f"exit {p.returncode}\n{p.stdout[-6000:]}\n{p.stderr[-3000:]}"


class LoadBalancer:
    """An HTTP server on 127.0.0.1 answering 200 and counting the requests it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                hits.append(self.path)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
