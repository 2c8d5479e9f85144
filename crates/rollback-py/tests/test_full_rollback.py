"""Full rollbacks: code, database schema and `.env` together, then undo, on real databases.

The sample app (conftest's `make_db_app`, mirroring crates/rollback-testkit/src/db.rs) runs
release v3 with its database migrated to v3 and its `.env`; v1 was marked known-good while it
ran, which recorded its `.env` and database revision. Every combination of {native SQL,
Alembic} x {SQLite, PostgreSQL} rolls back and is undone; the database is compared through a
canonical dump (SQLite: the sorted `iterdump()`; PostgreSQL: `pg_dump --schema-only` and every
table's `COPY`, sorted), the work tree file by file.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import DbApp, Repo

# Kept in step with conftest.py (not importable at run time).
ENV_V1 = "SECRET_KEY=v1-secret-value-4711\nPAYMENTS_ENABLED=0\nLEGACY_MODE=on\n"
ENV_V3 = "SECRET_KEY=v3-secret-value-0815\nPAYMENTS_ENABLED=1\nSTRIPE_TOKEN=sk_live_v3_token_123\n"
ENV_SECRETS = ["v1-secret-value-4711", "v3-secret-value-0815", "sk_live_v3_token_123"]

FULL_STEPS = ["snapshot", "db_snapshot", "downgrade", "reset", "remove_untracked", "restore_env", "clear_caches", "record"]


def texts_of(rb: fr.Rollback, *results: fr.RunResult) -> list[str]:
    """Everything a caller can read back about the runs, as text."""
    out = [r.to_json() for r in results]
    out += [s.to_json() for s in rb.runs()]
    for r in results:
        assert r.run_id is not None
        out += [rb.report(r.run_id), rb.report(r.run_id, format="json"), rb.run_details(r.run_id).to_json()]
    out += [json.dumps(rb.known_good.list()), json.dumps(rb.backups())]
    return out


def state_files(repo: Repo) -> list[tuple[Path, str]]:
    """The text files of the state folder: journals, logs, reports, manifests (not blobs:
    those hold the `.env` and the database dumps, by design)."""
    root = repo.path / ".git" / "forge-rollback"
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        if "blobs" in dirnames:
            dirnames.remove("blobs")
        for name in filenames:
            p = Path(dirpath) / name
            out.append((p, p.read_text(errors="replace")))
    return out


@pytest.mark.parametrize(
    ("kind", "engine", "target"),
    [
        ("sql", "sqlite", "v1"),
        ("alembic", "sqlite", "v2"),
        ("sql", "postgres", "v2"),
        ("alembic", "postgres", "v1"),
    ],
)
def test_full_rollback_and_undo_restore_code_schema_rows_and_env(
    make_db_app: Any, kind: str, engine: str, target: str
) -> None:
    app: DbApp = make_db_app(kind, engine)
    repo = app.repo
    before_code = app.code_state()
    before_db = app.dump()
    assert app.revision() == [app.revisions[2]]
    target_rev = app.revisions[0] if target == "v1" else app.revisions[1]
    rb = app.open()

    a = rb.assess(target=target)
    assert a.recommended_level == "full"
    assert a.database is not None
    assert a.database["current"] == [app.revisions[2]]
    assert a.database["target_heads"] == [target_rev]
    assert a.database["needs_downgrade"] is True
    assert a.database["reachable"] is True
    assert a.env is not None and a.env["files"] == [".env"]

    p = rb.plan("full", target=target)
    assert [s["step"] for s in p.steps] == FULL_STEPS
    downgrade = next(s for s in p.steps if s["step"] == "downgrade")
    assert downgrade["to"] == [target_rev]
    # The plan shows the SQL the downgrade runs (Alembic's offline mode, the .down.sql files).
    assert "payments" in (downgrade["sql"] or "").lower()

    events: list[dict[str, Any]] = []
    r = rb.run("full", target=target, confirm=True, on_event=events.append, reason="v3 corrupts payments")
    assert r.status == "succeeded", r.error
    assert r.level == "full"
    assert [s["step"] for s in r.steps] == FULL_STEPS
    assert all(s["status"] == "done" for s in r.steps)
    r.raise_for_status()  # succeeded: no exception
    assert [e["step"] for e in events if e["event"] == "step_started"] == FULL_STEPS

    # The database went down to the target's schema before the code moved.
    assert app.dump() != before_db
    assert app.revision() == [target_rev]
    assert "payments" not in app.tables()
    if target == "v1":
        assert app.columns("users") == ["id", "name", "legacy"]
    else:
        assert app.columns("users") == ["id", "name", "email"]
    # Rows that survive the downgrade are still there.
    assert sorted(row[0] for row in app.query("SELECT name FROM users")) == ["ada", "grace", "linus"]
    # The code is the target's; uncommitted and untracked work is gone (in the snapshot); the
    # registry (untracked here) is the tool's own file and stays.
    assert repo.head() == repo.commit_of(target)
    assert repo.git("status", "--porcelain=v1", "-uall") == "?? rollback/config/known-good-commits.json"
    assert not (repo.path / "notes with spaces.txt").exists()
    # `.env`: v1's as recorded when v1 was marked good; nothing was recorded for v2, so it stays.
    env = repo.path / ".env"
    assert env.read_text() == (ENV_V1 if target == "v1" else ENV_V3)
    assert env.stat().st_mode & 0o777 == 0o600

    assert r.run_id is not None
    u = rb.undo(r.run_id, confirm=True)
    assert u.status == "succeeded", u.error
    assert u.undo_of == r.run_id
    assert [s["step"] for s in u.steps][:3] == ["snapshot", "db_snapshot", "restore_database"]
    assert app.dump() == before_db
    assert app.code_state() == before_code
    assert (repo.path / ".env").read_text() == ENV_V3
    assert {s.run_id: s.status for s in rb.runs()} == {r.run_id: "undone", u.run_id: "succeeded"}

    # No secret anywhere a caller or an operator reads: results, reports, registry, backups
    # list, journals, logs, manifests.
    secrets = [*ENV_SECRETS] + ([app.password] if app.password else [])
    for text in texts_of(rb, r, u) + [a.to_json(), p.to_json()]:
        for secret in secrets:
            assert secret not in text
    for path, text in state_files(repo):
        for secret in secrets:
            assert secret not in text, f"{secret!r} in {path}"


def test_env_history_is_recorded_by_mark_and_restored_by_a_full_rollback(env_repo: Repo) -> None:
    repo = env_repo
    rb = fr.Rollback.open(repo.path)
    # v1 was marked while it ran (the fixture): its `.env` is recorded. Marking a commit that
    # is not HEAD records nothing and says why.
    out = rb.known_good.mark("v2", note="never deployed")
    assert out["env"] is None
    assert any("env files not recorded" in n for n in out["notes"])
    before = repo.state()

    a = rb.assess(target="v1")
    assert a.recommended_level == "full"
    assert a.env is not None
    assert a.env["target_record"]["commit"] == repo.commit_of("v1")
    [diff] = a.env["diffs"]
    assert diff["file"] == ".env"
    assert diff["added"] == ["LEGACY_MODE"]
    assert diff["removed"] == ["STRIPE_TOKEN"]
    assert diff["changed"] == ["PAYMENTS_ENABLED", "SECRET_KEY"]
    assert "env_differs" in [r["code"] for r in a.risks]
    # Key names only: no value, old or new, in anything assess or plan shows.
    p = rb.plan("full", target="v1")
    assert "restore_env" in [s["step"] for s in p.steps]
    for text in [a.to_json(), p.to_json(), json.dumps(rb.known_good.list())]:
        for secret in ENV_SECRETS + ["PAYMENTS_ENABLED=1", "LEGACY_MODE=on"]:
            assert secret not in text

    # v2 has no record: a full rollback there leaves `.env` alone, and assess says so.
    a2 = rb.assess(target="v2")
    assert a2.env is not None and a2.env["target_record"] is None
    assert "env_not_recorded" in [r["code"] for r in a2.risks]

    # A fast rollback never touches `.env`.
    fast = rb.run("fast", target="v1", confirm=True)
    assert fast.status == "succeeded" and fast.run_id is not None
    assert (repo.path / ".env").read_text() == ENV_V3
    rb.undo(fast.run_id, confirm=True)
    assert repo.state() == before

    r = rb.run("full", target="v1", confirm=True)
    assert r.status == "succeeded", r.error
    assert (repo.path / ".env").read_text() == ENV_V1
    assert (repo.path / ".env").stat().st_mode & 0o777 == 0o600
    restore = next(s for s in r.steps if s["step"] == "restore_env")
    assert restore["detail"]["files"] == [".env"]
    assert r.run_id is not None
    for text in texts_of(rb, r):
        for secret in ENV_SECRETS:
            assert secret not in text

    rb.undo(r.run_id, confirm=True)
    assert repo.state() == before
    assert (repo.path / ".env").read_text() == ENV_V3


def test_postgres_password_is_in_no_error(make_db_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app: DbApp = make_db_app("sql", "postgres")
    password = app.password
    assert password
    # The same server, on a port nothing listens on.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = app.url.replace(f"@{app.url.split('@', 1)[1].split('/', 1)[0]}", f"@127.0.0.1:{port}")
    assert password in down
    monkeypatch.setenv("DATABASE_URL", down)
    before = app.code_state()
    rb = app.open()

    # assess reads on: the database is unreachable, and says so.
    a = rb.assess(target="v1")
    assert a.database is not None and a.database["reachable"] is False
    assert password not in a.to_json()

    # A full run is refused before anything changes.
    with pytest.raises(fr.RefusedError) as refused:
        rb.run("full", target="v1", confirm=True)
    assert "cannot be reached" in refused.value.message
    assert app.code_state() == before

    # An operation on the database itself: DatabaseError naming the database without password.
    with pytest.raises(fr.DatabaseError) as info:
        rb.upgrade_database()
    err = info.value
    assert err.kind == "failed"
    assert err.database is not None and f"127.0.0.1:{port}" in err.database
    assert err.hint is not None and "database is up" in err.hint

    # The URL's variable unset: commands that never touch the database still work; the
    # first one that needs it is a config error naming the variable.
    monkeypatch.delenv("DATABASE_URL")
    unset = app.open()
    assert isinstance(unset.runs(), list)
    assert any(r["code"] == "db_not_assessed" for r in unset.assess(target="v1").risks)
    with pytest.raises(fr.ConfigError) as config:
        unset.plan("full", target="v1")
    assert "DATABASE_URL" in config.value.message

    for e in (refused.value, err, config.value):
        for text in (str(e), repr(e), e.message, e.hint or "", *getattr(e, "__notes__", [])):
            assert password not in text


def test_irreversible_downgrade_is_refused_unless_allowed_and_a_failed_downgrade_restores(make_db_app: Any) -> None:
    """v0 predates the database: going there undoes migration 1, whose downgrade cannot run."""
    app: DbApp = make_db_app("sql", "sqlite")
    before_code, before_db = app.code_state(), app.dump()
    rb = app.open()

    with pytest.raises(fr.RefusedError) as refused:
        rb.run("full", target="v0", confirm=True)
    assert "cannot restore data" in refused.value.message
    assert refused.value.hint is not None and "`allow_irreversible=True`" in refused.value.hint
    assert "--allow-irreversible" not in refused.value.hint
    assert rb.runs() == []

    # Allowed, the downgrade runs and fails: the native migrator refuses a path with a missing
    # `.down.sql` before running any of it, so the database is as it was (no restore needed),
    # the code is not touched, and the run is a failed result.
    r = rb.run("full", target="v0", confirm=True, allow_irreversible=True)
    assert r.status == "failed"
    assert {s["step"]: s["status"] for s in r.steps}["downgrade"] == "failed"
    assert r.error is not None and "the database is as it was" in r.error
    assert app.dump() == before_db
    assert app.code_state() == before_code
    with pytest.raises(fr.StepFailedError) as info:
        r.raise_for_status()
    assert (info.value.run_id, info.value.step, info.value.kind) == (r.run_id, "downgrade", "failed")

    assert r.run_id is not None
    assert rb.undo(r.run_id, confirm=True).status == "succeeded"
    assert app.dump() == before_db
    assert app.code_state() == before_code


def test_plan_says_what_the_downgrade_leaves_broken_before_the_run(make_db_app: Any) -> None:
    """The data-loss forecast runs the downgrade on a copy: the references it leaves broken there
    are the plan's risk `downgrade_warning` (`Plan.risks`), with the forecast (`Plan.data_loss`),
    before anything runs. Before, they were said only once the real downgrade had run."""
    app: DbApp = make_db_app("sql", "sqlite")
    # A table of the app's own (no migration made it) referencing payments, which the
    # downgrade to v1 drops; SQLite leaves foreign keys off, so nothing stops the drop.
    app.query("CREATE TABLE receipts (id INTEGER PRIMARY KEY, payment_id INTEGER REFERENCES payments (id))")
    app.query("INSERT INTO receipts VALUES (1, 1), (2, 2)")
    before = app.dump()
    rb = app.open()

    plan = rb.plan("full", target="v1")
    warned = [r for r in plan.risks if r["code"] == "downgrade_warning"]
    assert len(warned) == 1, plan.risks
    assert warned[0]["severity"] == "medium"
    assert "left 2 row(s) of `receipts` referencing rows of `payments` that are not there" in warned[0]["message"]
    assert ("payments", None, 3, "dropped") in [(d["table"], d["column"], d["rows"], d["kind"]) for d in plan.data_loss]
    assert plan.risks == plan.to_dict()["risks"]
    # No risk: the key the core leaves out reads as an empty list.
    assert rb.plan("fast", target="v1").risks == []
    assert app.dump() == before


@pytest.mark.parametrize("restore_snapshot", [False, True])
def test_undo_keeps_rows_written_while_rolled_back_unless_restore_snapshot(
    make_db_app: Any, restore_snapshot: bool
) -> None:
    app: DbApp = make_db_app("sql", "sqlite")
    rb = app.open()
    payments = app.query("SELECT count(*) FROM payments")[0][0]
    assert payments > 0
    # The forecast: what the downgrade to v1 destroys, counted on a copy of the live database.
    forecast = rb.plan("full", target="v1").to_dict()["data_loss"]
    loss = {(d["table"], d["column"]): d["rows"] for d in forecast}
    assert loss[("payments", None)] == payments
    assert {d["kind"] for d in forecast} == {"dropped"}
    r = rb.run("full", target="v1", confirm=True)
    assert r.status == "succeeded", r.error
    # A user registers while the app runs rolled back.
    con = sqlite3.connect(app.sqlite_path)
    con.execute("INSERT INTO users (name) VALUES ('zoe')")
    con.commit()
    con.close()

    u = rb.undo(r.run_id, confirm=True, restore_snapshot=restore_snapshot)
    assert u.status == "succeeded", u.error
    names = sorted(row[0] for row in app.query("SELECT name FROM users"))
    assert app.query("SELECT count(*) FROM payments")[0][0] == payments
    assert app.revision() == [app.revisions[2]]
    if restore_snapshot:
        # The snapshot exactly; the database as it was kept in a dump the undo names.
        assert "zoe" not in names
        dumps = list((app.repo.path / ".git" / "forge-rollback" / "dumps").glob("*-before-restore.db"))
        assert len(dumps) == 1
        kept = sqlite3.connect(dumps[0])
        assert ("zoe",) in kept.execute("SELECT name FROM users").fetchall()
        kept.close()
    else:
        assert "zoe" in names
        assert [s["step"] for s in u.steps if s["step"] in ("upgrade_database", "put_back_rows")] == [
            "upgrade_database",
            "put_back_rows",
        ]


def test_database_only_downgrades_the_schema_leaves_the_code_and_undo_brings_it_back(make_db_app: Any) -> None:
    """`run(database_only=True)` is `forge-rollback run --database-only`: the database part of a
    full rollback (what a fleet runs once, before any code moves), undoable like any run."""
    app: DbApp = make_db_app("alembic", "sqlite")
    before_code = app.code_state()
    before_db = app.dump()
    rb = app.open()

    plan = rb.plan(target="v1", database_only=True)
    assert plan.level == "full"
    assert [s["step"] for s in plan.steps] == ["snapshot", "db_snapshot", "downgrade", "record"]
    with pytest.raises(fr.ConfigError):
        rb.plan("fast", target="v1", database_only=True)

    result = rb.run(target="v1", confirm=True, database_only=True)
    assert result.status == "succeeded"
    assert [s["step"] for s in result.steps] == ["snapshot", "db_snapshot", "downgrade", "record"]
    assert app.revision() == [app.revisions[0]]
    assert app.code_state() == before_code, "a database-only run moves no code, no .env"

    undone = rb.undo(result.run_id, confirm=True)
    assert undone.status == "succeeded"
    assert app.revision() == [app.revisions[2]]
    assert app.dump() == before_db
    assert app.code_state() == before_code


def test_upgrade_database_is_refused_while_a_run_holds_the_lock(
    make_db_app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service preparing its database while a full rollback runs: the upgrade would put back
    the schema the run takes down, and the run would end `succeeded` with the old code on the
    new schema. Like every call that changes things, it is refused while the run holds the
    lock, naming the holder."""
    import threading
    import time

    app: DbApp = make_db_app("sql", "sqlite")
    release = tmp_path / "release"
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "end:downgrade")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_RELEASE", str(release))
    rb = app.open()
    results: list[fr.RunResult] = []
    t = threading.Thread(target=lambda: results.append(rb.run("full", target="v1", confirm=True)))
    t.start()
    try:
        # Read through the journal, not the database: this process's own SQLite connection
        # would meddle with the run's.
        def downgraded() -> bool:
            runs = rb.runs()
            steps = rb.run_details(runs[0].run_id).steps if runs else []
            return any(s["step"] == "downgrade" and s["status"] == "done" for s in steps)

        for _ in range(6000):
            if downgraded():
                break
            time.sleep(0.01)
        assert downgraded()
        holder = rb.lock_holder()
        assert holder is not None and holder["command"] == "run"
        with pytest.raises(fr.LockHeldError) as info:
            app.open().upgrade_database()
        assert info.value.kind == "locked" and info.value.holder == holder
    finally:
        release.touch()
        t.join(120)
    monkeypatch.delenv("FORGE_ROLLBACK_FAILPOINT")
    # The run went on undisturbed: v1's code on v1's schema.
    assert results[0].status == "succeeded" and results[0].warnings == []
    assert app.revision() == [app.revisions[0]]
    # Once the run is over, the upgrade runs (with v1's migration files: nothing to do) and
    # leaves no lock behind.
    assert app.open().upgrade_database() == [app.revisions[0]]
    assert rb.lock_holder() is None


def test_upgrade_database_is_refused_while_a_run_is_unfinished(make_db_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full run that failed after its downgrade, before its reset: `resume` and `undo` go on
    from the schema the journal recorded. An upgrade meanwhile would leave the old code on the
    new schema after `resume`; it is refused, naming the run and both ways on, and the schema
    is left where the run left it."""
    app: DbApp = make_db_app("sql", "sqlite")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "before:reset")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")
    rb = app.open()
    failed = rb.run("full", target="v1", confirm=True)
    monkeypatch.delenv("FORGE_ROLLBACK_FAILPOINT")
    monkeypatch.delenv("FORGE_ROLLBACK_FAILPOINT_ACTION")
    assert failed.status == "failed" and failed.run_id is not None
    assert app.revision() == [app.revisions[0]]
    with pytest.raises(fr.RefusedError) as info:
        app.open().upgrade_database()
    assert f"run {failed.run_id} failed half-way" in info.value.message
    assert info.value.hint is not None and "resume" in info.value.hint and "undo" in info.value.hint
    assert app.revision() == [app.revisions[0]]
    # Settled by its undo, the upgrade runs again.
    assert rb.undo(failed.run_id, confirm=True).status == "succeeded"
    assert app.open().upgrade_database() == [app.revisions[2]]


def test_an_unattended_run_without_a_forecast_warns_and_reports_unknown_loss(
    make_db_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`confirm=True` is the CLI's `--yes`: no one reads a confirmation, so when the data-loss
    forecast cannot be made (a failpoint here) the run warns, and its report says the loss is
    unknown, never "No", although the downgrade dropped `payments`."""
    app: DbApp = make_db_app("sql", "sqlite")
    rb = app.open()
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "inside:forecast")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")
    r = rb.run("full", target="v1", confirm=True)
    monkeypatch.delenv("FORGE_ROLLBACK_FAILPOINT")
    assert r.status == "succeeded", r.error
    assert "payments" not in app.tables()
    assert any("the data-loss forecast could not be made (" in w for w in r.warnings), r.warnings
    assert r.run_id is not None
    report = json.loads(rb.report(r.run_id, format="json"))
    loss = report["data_loss"]
    assert loss["lost"] is None, loss
    assert loss["explanation"].startswith("Unknown — the downgrade ran"), loss
    # The report is the same document the CLI writes: its words.
    assert loss["restore_command"] == f"`forge-rollback undo {r.run_id}`", loss
    assert isinstance(loss["kept_in"], str), loss
