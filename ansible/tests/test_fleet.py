"""The forge.rollback collection driven by real ansible-core against a fleet on this machine.

Four hosts (`web1`..`web4`, `ansible_connection=local`), each its own git work tree cloned from
one origin (its own `.git`, so its own state folder), all sharing one SQLite database file that
real Alembic migrated to the broken release. The playbook rolls back to `v1` in batches of two
(`serial: 2`): the database once on `web1`, then the code. Cases: all good; a host of batch 2
failing verification (every touched host undone, the database back at HEAD's revision), then a
second play that reports only its own runs; failures within max_fail_percentage, then a re-run
that resumes the failed run; the controller killed mid-batch, or during the database downgrade,
and the playbook run again (resumes and finishes, or undoes the database run it finds); a
second run changes nothing; a failure's msg keeps the command's causes.

Run by `scripts/test.sh python` with the test venv's Python (ansible-core from
requirements-dev.txt) and the debug `forge-rollback` the Rust stage built (`FORGE_ROLLBACK_BIN`,
else `target/debug/forge-rollback`).
"""

from __future__ import annotations

import json
import os
import http.server
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
        lines = ["[app]"]
        for i, h in enumerate(HOSTS):
            lines.append(f"{h} forge_rollback_path={self.paths[h]}" + (" forge_rollback_db_host=true" if i == 0 else ""))
        lines += ["", "[app:vars]", "ansible_connection=local", f"ansible_python_interpreter={sys.executable}",
                  f"forge_rollback_bin={cli_binary()}", ""]
        self.inventory = tmp / "inventory.ini"
        self.inventory.write_text("\n".join(lines))
        self.report = tmp / "fleet-report.md"

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
        return env | GIT_ENV | {
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


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    if not cli_binary().is_file():
        pytest.fail(f"no forge-rollback binary at {cli_binary()}: run `cargo build -p rollback-cli` or set FORGE_ROLLBACK_BIN")
    if not ansible_playbook().is_file():
        pytest.fail(f"no ansible-playbook next to {sys.executable}: install requirements-dev.txt (ansible-core)")
    yield Fleet(tmp_path)
    # The hosts, the database, Ansible's temp and home folders, the record and the report.
    shutil.rmtree(tmp_path, ignore_errors=True)


def show(p: subprocess.CompletedProcess[str]) -> str:
    return f"exit {p.returncode}\n{p.stdout[-6000:]}\n{p.stderr[-3000:]}"


class LoadBalancer:
    """An HTTP server on 127.0.0.1 answering 200 and counting the requests it gets."""

    def __init__(self) -> None:
        hits = self.hits = []

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


def test_all_hosts_good_then_a_second_run_changes_nothing(fleet: Fleet) -> None:
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    lb = LoadBalancer()
    try:
        p = fleet.play("-e", f"forge_rollback_lb_url={lb.url}")
    finally:
        lb.close()
    # The load balancer was checked once per batch.
    assert lb.hits == ["/health", "/health"], lb.hits
    assert p.returncode == 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v1}
    assert fleet.revision() == [REVISIONS[0]]
    assert fleet.payments() is None
    # The database moved once, on web1, before any code: one database-only run there.
    db_runs = [r for r in fleet.runs("web1") if r["kind"] == "rollback"]
    assert len(db_runs) == 2, db_runs
    code_started = min(r["started_at"] for h in HOSTS for r in fleet.runs(h) if r["kind"] == "rollback" and r["level"] == "fast")
    db_run = [r for r in db_runs if r["level"] == "full"]
    assert len(db_run) == 1 and db_run[0]["finished_at"] <= code_started, db_runs
    for h in HOSTS[1:]:
        assert [r["level"] for r in fleet.runs(h)] == ["fast"], h
    stats = recap(p.stdout)
    assert all(stats[h]["changed"] >= 1 and stats[h]["failed"] == 0 for h in HOSTS), stats
    # One fleet report: every host's run id, timings and checks.
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "rolled_back"
    assert report["fleet"]["database_host"] == "web1"
    assert report["database"]["run_id"] == db_run[0]["run_id"]
    by_host = {h["host"]: h for h in report["hosts"]}
    for h in HOSTS:
        run = [r for r in fleet.runs(h) if r["level"] == "fast"][0]
        assert by_host[h]["run_id"] == run["run_id"]
        assert by_host[h]["run"]["duration_ms"] >= 0
        assert [c["name"] for c in by_host[h]["run"]["verification"]["checks"]] == ["app"]
    md = fleet.report.read_text()
    assert all(by_host[h]["run_id"] in md for h in HOSTS), md
    # The controller's record is in the folder ansible-playbook ran in, nowhere else.
    assert report["fleet"]["record_dir"].startswith(str(fleet.tmp / "forge-rollback-fleet")), report["fleet"]
    assert len(list(Path(report["fleet"]["record_dir"]).glob("*.json"))) == 1 + len(HOSTS)
    assert not (PLAYBOOK.parent / "forge-rollback-fleet").exists()

    # Idempotence: nothing left to do, nothing changed.
    again = fleet.play()
    assert again.returncode == 0, show(again)
    stats = recap(again.stdout)
    assert all(stats[h]["changed"] == 0 and stats[h]["failed"] == 0 for h in HOSTS), stats
    assert stats["localhost"]["changed"] == 0, stats
    assert sum(len(fleet.runs(h)) for h in HOSTS) == 5
    second = fleet.report_json()["hosts"]
    assert [(h["host"], h["run_id"]) for h in second] == [(h["host"], h["run_id"]) for h in report["hosts"]]
    assert {h["action"] for h in second} == {"already_done"}, second


def test_a_host_failing_verification_in_batch_2_undoes_every_touched_host(fleet: Fleet) -> None:
    fleet.config("web3", check=["false"])
    p = fleet.play()
    assert p.returncode != 0, show(p)
    # Every host back at HEAD, the database at HEAD's revision with its rows.
    assert set(fleet.heads().values()) == {fleet.v2}, show(p)
    assert fleet.revision() == [REVISIONS[1]]
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    for h in HOSTS:
        rollbacks = [r for r in fleet.runs(h) if r["kind"] == "rollback"]
        assert rollbacks and all(r["status"] == "undone" for r in rollbacks), (h, rollbacks)
    # Undone newest first (batch 2, then batch 1), the database last.
    undo_started = {}
    for h in HOSTS:
        for r in fleet.runs(h):
            if r["kind"] == "undo":
                undo_started[(h, r["undo_of"])] = r["started_at"]
    db_run = [r for r in fleet.runs("web1") if r["level"] == "full"][0]
    db_undo = undo_started.pop(("web1", db_run["run_id"]))
    assert all(t <= db_undo for t in undo_started.values()), undo_started
    order = [h for (h, _), _ in sorted(undo_started.items(), key=lambda kv: kv[1])]
    # Batch 2 (the failed one, last host first), then batch 1 (its two runs were concurrent).
    assert order[:2] == ["web4", "web3"] and sorted(order[2:]) == ["web1", "web2"], order
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "undone"
    failed = [h for h in report["hosts"] if h["outcome"] == "failed"]
    assert [h["host"] for h in failed] == ["web3"], report["hosts"]
    assert failed[0]["run"]["status"] == "verification_failed"
    assert {(u["host"], u["scope"]) for u in report["undos"]} == {
        ("web1", "code"), ("web2", "code"), ("web3", "code"), ("web4", "code"), ("web1", "database")
    }, report["undos"]
    assert not any(u["failed"] for u in report["undos"]), report["undos"]
    # web3 fails its check on either release: its undo is done, and the report says the host
    # still fails.
    assert [u["host"] for u in report["undos"] if u["verification_failed"]] == ["web3"], report["undos"]
    md = fleet.report.read_text()
    assert "## Undone" in md
    # The failure names the failing check and why, from the run's JSON (not the CLI's log), and
    # its second line stays inside the Markdown list item.
    error = failed[0]["error"]
    assert error.splitlines() == [
        f"run {failed[0]['run_id']} finished its steps but the services failed verification:",
        "  check `app` failed: exit code 1, expected 0",
    ], error
    assert "\n    check `app` failed: exit code 1, expected 0\n" in md, md

    # The operator fixes web3 and plays again; this time the load balancer fails after batch 1.
    # The report is this play's: batch 2 was not touched, only batch 1 and the database undone.
    fleet.config("web3")
    again = fleet.play("-e", f"forge_rollback_lb_url=http://127.0.0.1:{closed_port()}/health")
    assert again.returncode != 0, show(again)
    assert set(fleet.heads().values()) == {fleet.v2}, show(again)
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    second = fleet.report_json()
    assert {h["host"]: h["outcome"] for h in second["hosts"]} == {
        "web1": "failed", "web2": "failed", "web3": "not_touched", "web4": "not_touched"
    }, second["hosts"]
    assert all(h["run"]["started_at"][:19] >= second["fleet"]["started_at"][:19] for h in second["hosts"] if h["run"])
    assert {(u["host"], u["scope"], u["action"]) for u in second["undos"]} == {
        ("web1", "code", "undone"), ("web2", "code", "undone"), ("web1", "database", "undone")
    }, second["undos"]
    assert "web3" not in fleet.report.read_text().split("## Failures")[1]
    # Each play keeps its record in a folder of its own.
    assert second["fleet"]["record_dir"] != report["fleet"]["record_dir"], second["fleet"]


def test_a_failing_load_balancer_check_undoes_the_first_batch_and_the_database(fleet: Fleet) -> None:
    p = fleet.play("-e", f"forge_rollback_lb_url=http://127.0.0.1:{closed_port()}/health")
    assert p.returncode != 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v2}, show(p)
    assert fleet.revision() == [REVISIONS[1]]
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    for h in ["web1", "web2"]:
        rollbacks = [r for r in fleet.runs(h) if r["kind"] == "rollback"]
        assert rollbacks and all(r["status"] == "undone" for r in rollbacks), (h, rollbacks)
    # Batch 2 never started.
    assert fleet.runs("web3") == [] and fleet.runs("web4") == []
    assert fleet.report_json()["fleet"]["outcome"] == "undone"


def test_a_failure_within_max_fail_percentage_lets_the_fleet_go_on_then_a_rerun_finishes_it(fleet: Fleet) -> None:
    # Batch 1: web2's restart fails (its run `failed`); batch 2: web3 fails its check
    # (`verification_failed`). Half of each batch is allowed.
    broken = fleet.tmp / "restart-broken"
    broken.touch()
    fleet.config("web2", restart=["sh", "-c", f"test ! -e {broken}"])
    fleet.config("web3", check=["false"])
    p = fleet.play("-e", "forge_rollback_max_fail_percentage=50")
    # web2 and web3 failed (ansible-playbook says so in its exit code) but half a batch is allowed.
    assert p.returncode != 0, show(p)
    heads = fleet.heads()
    assert heads == {h: fleet.v1 for h in HOSTS}, heads
    assert fleet.revision() == [REVISIONS[0]]
    assert [r["status"] for r in fleet.runs("web2")] == ["failed"]
    web3 = [r for r in fleet.runs("web3") if r["kind"] == "rollback"]
    assert [r["status"] for r in web3] == ["verification_failed"], web3
    assert all(r["kind"] == "rollback" for h in HOSTS for r in fleet.runs(h)), "nothing was undone"
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "rolled_back_with_failures"
    assert [h["host"] for h in report["hosts"] if h["outcome"] == "failed"] == ["web2", "web3"]
    assert report["undos"] == []

    # Both fixed, the same command again: the hosts agree (web2's failed run counts as being on
    # the way from the old release), web2's run is resumed and the fleet finishes.
    broken.unlink()
    fleet.config("web3")
    again = fleet.play("-e", "forge_rollback_max_fail_percentage=50")
    assert again.returncode == 0, show(again)
    assert [r["status"] for r in fleet.runs("web2")] == ["succeeded"], fleet.runs("web2")
    second = fleet.report_json()
    assert second["fleet"]["outcome"] == "rolled_back", second["fleet"]
    assert {h["host"]: h["action"] for h in second["hosts"]} == {
        "web1": "already_done", "web2": "resumed", "web3": "already_done", "web4": "already_done"
    }, second["hosts"]
    assert second["database"]["action"] == "already_done", second["database"]


def test_a_later_play_that_aborts_undoes_what_an_earlier_play_rolled_back(fleet: Fleet) -> None:
    # Play 1: web2's restart fails within max_fail_percentage; the fleet goes on (batch 2 and
    # the database on v1). Play 2, with no failure allowed: web2 fails again in batch 1, so the
    # fleet aborts. It must undo web3 and web4 too (play 1 rolled them back; play 2 never
    # reached them), or they run v1's code on v2's schema once the database is undone.
    broken = fleet.tmp / "restart-broken"
    broken.touch()
    fleet.config("web2", restart=["sh", "-c", f"test ! -e {broken}"])
    first = fleet.play("-e", "forge_rollback_max_fail_percentage=50")
    assert first.returncode != 0, show(first)
    assert fleet.heads() == {h: fleet.v1 for h in HOSTS}
    again = fleet.play()
    assert again.returncode != 0, show(again)
    heads = fleet.heads()
    assert heads == {h: fleet.v2 for h in HOSTS}, heads
    assert fleet.revision() == [REVISIONS[1]]
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "undone", report["fleet"]
    assert {u["host"] for u in report["undos"] if u["scope"] == "code"} == set(HOSTS), report["undos"]


def test_a_failed_database_downgrade_moves_no_code_and_is_undone(fleet: Fleet) -> None:
    # web1 (the database host) has a migration whose downgrade fails half-way.
    rev2 = fleet.paths["web1"] / "migrations" / "versions" / "b2_payments.py"
    rev2.write_text(rev2.read_text().replace('op.drop_table("payments")', 'raise RuntimeError("downgrade boom")'))
    p = fleet.play()
    assert p.returncode != 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v2}
    assert fleet.revision() == [REVISIONS[1]]
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    db_runs = [r for r in fleet.runs("web1") if r["kind"] == "rollback"]
    assert [(r["level"], r["status"]) for r in db_runs] == [("full", "undone")], db_runs
    assert all(fleet.runs(h) == [] for h in HOSTS[1:])
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "undone"
    assert report["database"]["outcome"] == "failed", report["database"]
    # The run's error, its migration's traceback cut to its end.
    error = report["database"]["error"]
    assert "RuntimeError: downgrade boom" in error and "restored from backup" in error, error
    assert len(error.splitlines()) <= 10, error
    assert [(u["host"], u["scope"], u["failed"]) for u in report["undos"]] == [("web1", "database", False)], report["undos"]
    assert all(h["outcome"] == "not_touched" for h in report["hosts"]), report["hosts"]


def test_hosts_that_disagree_are_refused_before_anything_changes(fleet: Fleet) -> None:
    git(fleet.paths["web2"], "reset", "-q", "--hard", "v1")
    p = fleet.play()
    assert p.returncode != 0
    assert "the hosts disagree on what to roll back" in p.stdout, show(p)
    assert fleet.heads() == {"web1": fleet.v2, "web2": fleet.v1, "web3": fleet.v2, "web4": fleet.v2}
    assert fleet.revision() == [REVISIONS[1]]
    assert all(fleet.runs(h) == [] for h in HOSTS)


def test_check_mode_plans_and_changes_nothing(fleet: Fleet) -> None:
    p = fleet.play("--check", "-v")
    assert p.returncode == 0, show(p)
    # The database host plans the database-only run, every host its code run.
    assert p.stdout.count('"action": "planned"') == 1 + len(HOSTS), show(p)
    assert set(fleet.heads().values()) == {fleet.v2}
    assert fleet.revision() == [REVISIONS[1]]
    assert all(fleet.runs(h) == [] for h in HOSTS)
    assert not fleet.report.exists()
    assert "check mode: planned only; nothing was rolled back and no report was written" in p.stdout, show(p)
    assert "fleet report:" not in p.stdout, show(p)
    assert not (fleet.tmp / "forge-rollback-fleet").exists()


def test_the_controller_killed_mid_batch_then_a_rerun_resumes_and_finishes(fleet: Fleet) -> None:
    # web1's run restarts its service slowly: the controller (and everything it started, as
    # when its machine dies) is killed while that step runs.
    fleet.config("web1", restart=["sleep", "3"])
    proc = subprocess.Popen(fleet.argv(), cwd=fleet.tmp, env=fleet.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    runs = fleet.paths["web1"] / ".git" / "forge-rollback" / "runs"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            begun = [
                line
                for j in runs.glob("*/journal.jsonl")
                for line in j.read_text().splitlines()
                if '"record":"step_begin"' in line and '"step":"restart"' in line
            ]
            if begun:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the playbook ended before web1's restart began"
    finally:
        kill_controller(proc)
    code = [r for r in fleet.runs("web1") if r["level"] == "fast"]
    assert len(code) == 1 and code[0]["interrupted"], code
    assert fleet.revision() == [REVISIONS[0]]

    p = fleet.play()
    assert p.returncode == 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v1}
    code = [r for r in fleet.runs("web1") if r["level"] == "fast"]
    assert len(code) == 1 and code[0]["status"] == "succeeded" and not code[0]["interrupted"], code
    assert '"action": "resumed"' in p.stdout or "resumed" in json.dumps(fleet.report_json()), show(p)
    assert {h["host"]: h["action"] for h in fleet.report_json()["hosts"]}["web1"] == "resumed"
    assert fleet.revision() == [REVISIONS[0]]
    for h in HOSTS:
        assert all(r["status"] == "succeeded" for r in fleet.runs(h)), fleet.runs(h)


def test_the_controller_killed_during_the_database_downgrade_then_reruns_undo_or_finish_it(fleet: Fleet) -> None:
    # web1's Alembic lingers after it committed the downgrade (only on the live database, only
    # while the flag exists): the controller, and everything it started, is killed then.
    linger = fleet.tmp / "linger"
    env_py = fleet.paths["web1"] / "migrations" / "env.py"
    env_py.write_text(env_py.read_text() + LINGER.format(flag=str(linger), url=fleet.url, db=str(fleet.db)))

    def crash_during_the_downgrade() -> str:
        linger.touch()
        proc = subprocess.Popen(fleet.argv(), cwd=fleet.tmp, env=fleet.env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None and fleet.revision() != [REVISIONS[0]]:
                time.sleep(0.05)
            assert proc.poll() is None, "the playbook ended before web1's downgrade committed"
        finally:
            kill_controller(proc)
            linger.unlink()
        db_runs = [r for r in fleet.runs("web1") if r["kind"] == "rollback" and r["status"] != "undone"]
        assert len(db_runs) == 1 and db_runs[0]["interrupted"] and db_runs[0]["level"] == "full", db_runs
        assert fleet.revision() == [REVISIONS[0]] and fleet.payments() is None
        return db_runs[0]["run_id"]

    # Re-run with `level=fast`: the database host's code run is refused (an unfinished run
    # there), and the abort finds the database run on the database host although the
    # controller has no record of it: everything is back on the old release, schema and rows.
    db_run = crash_during_the_downgrade()
    p = fleet.play("-e", "level=fast")
    assert p.returncode != 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v2}, show(p)
    assert fleet.revision() == [REVISIONS[1]], show(p)
    assert fleet.payments() == [(1, 1250), (2, 990), (3, 5)]
    report = fleet.report_json()
    assert report["fleet"]["outcome"] == "undone"
    assert report["database"]["run_id"] == db_run, report["database"]
    assert ("web1", "database", db_run, "undone") in {(u["host"], u["scope"], u["run_id"], u["action"]) for u in report["undos"]}
    assert "Not moved" not in fleet.report.read_text()

    # The same crash, then the same command again: the half-done database run makes the level
    # full (the database's revision alone now says fast), it is resumed and the fleet finishes.
    db_run = crash_during_the_downgrade()
    p = fleet.play()
    assert p.returncode == 0, show(p)
    assert set(fleet.heads().values()) == {fleet.v1}, show(p)
    assert fleet.revision() == [REVISIONS[0]] and fleet.payments() is None
    assert {r["run_id"]: r["status"] for r in fleet.runs("web1") if r["level"] == "full"}[db_run] == "succeeded"
    report = fleet.report_json()
    assert (report["fleet"]["outcome"], report["fleet"]["level"]) == ("rolled_back", "full"), report["fleet"]
    assert (report["database"]["run_id"], report["database"]["action"]) == (db_run, "resumed"), report["database"]


def test_a_failure_keeps_the_causes_the_command_printed(fleet: Fleet) -> None:
    # A config path that is a folder: the CLI prints `error:` and, indented, `caused by:`.
    playbook, result = fleet.tmp / "assess.yml", fleet.tmp / "result.json"
    playbook.write_text(
        "- hosts: web1\n  gather_facts: false\n  tasks:\n"
        "    - forge.rollback.rollback:\n"
        "        path: '{{ forge_rollback_path }}'\n        bin: '{{ forge_rollback_bin }}'\n"
        "        config: '{{ forge_rollback_path }}/migrations'\n        state: assessed\n"
        "      register: r\n      ignore_errors: true\n"
        f"    - ansible.builtin.copy: {{dest: '{result}', content: '{{{{ r | to_json }}}}'}}\n"
    )
    p = subprocess.run([str(ansible_playbook()), "-i", str(fleet.inventory), str(playbook)], cwd=fleet.tmp,
                       env=fleet.env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, show(p)
    r = json.loads(result.read_text())
    assert r["failed"] and r["rc"] == 2, r
    assert r["msg"] == f"error: cannot read config `{fleet.paths['web1']}/migrations`\n  caused by: Is a directory (os error 21)", r
