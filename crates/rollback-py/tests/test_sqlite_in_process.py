"""SQLite from inside the service: the module runs the engine in this process, and its SQLite is
its own copy, which cannot see the locks Python's `sqlite3` holds here (and a close by either
copy drops the other's). While this process has the database open through `sqlite3`, a full
rollback is refused before anything changes, and `assess` shows the database as not readable;
once the connection is closed, the same run goes through.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import DbApp


@pytest.mark.parametrize("journal_mode", ["delete", "wal"])
def test_a_full_rollback_is_refused_while_this_process_has_the_database_open(
    make_db_app: Any, journal_mode: str
) -> None:
    app: DbApp = make_db_app("sql", "sqlite")
    app.query(f"PRAGMA journal_mode = {journal_mode}")
    before_code = app.code_state()
    before_db = app.dump()
    rb = app.open()

    # The service's own connection, in a write transaction (a request still working).
    con = sqlite3.connect(app.sqlite_path, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO users (name) VALUES ('request in flight')")

    a = rb.assess(target="v1")
    assert a.database is not None and a.database["reachable"] is False
    risk = next(r for r in a.risks if r["code"] == "db_unreachable")
    assert "open through another SQLite" in risk["message"]

    # A full plan is refused as for an unreachable database (its forecast would copy it).
    with pytest.raises(fr.RefusedError, match="open through another SQLite"):
        rb.plan("full", target="v1")
    assert rb.plan("fast", target="v1").level == "fast"

    with pytest.raises(fr.RefusedError) as refused:
        rb.run("full", target="v1", confirm=True)
    e = refused.value
    assert e.kind == "refused"
    assert "this process has the SQLite database" in e.message
    assert e.hint is not None and "forge-rollback" in e.hint and "engine.dispose()" in e.hint
    assert rb.runs() == []

    # The service's commit goes through, and nothing else changed.
    con.execute("COMMIT")
    con.close()
    assert app.code_state() == before_code
    after_db = app.dump()
    assert [line for line in after_db if "request in flight" not in line] == before_db
    assert len(after_db) == len(before_db) + 1
    assert app.query("PRAGMA integrity_check") == [("ok",)]

    # Closed: the same run goes through.
    r = rb.run("full", target="v1", confirm=True)
    assert r.status == "succeeded", r.error
    assert app.revision() == [app.revisions[0]]
    assert "payments" not in app.tables()
    assert ("request in flight",) in app.query("SELECT name FROM users")


def test_a_full_run_from_a_process_with_sqlite3_loaded_warns_to_run_it_in_a_child(
    make_db_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """No connection is open when the run starts, so it goes ahead; but one the service opens
    during it is not seen by the engine's SQLite. Python's `sqlite3` is loaded here (this
    module imports it): the run warns, with the advice to run the rollback in a child process."""
    app: DbApp = make_db_app("sql", "sqlite")
    rb = app.open()
    with caplog.at_level("WARNING", logger="forge_rollback"):
        rb.run("fast", target="v1", confirm=True)
    assert not [r for r in caplog.records if "sqlite3" in r.getMessage()]
    undo = rb.runs()[-1].run_id
    rb.undo(undo, confirm=True)
    with caplog.at_level("WARNING", logger="forge_rollback"):
        r = rb.run("full", target="v1", confirm=True)
    assert r.status == "succeeded"
    [warning] = [r for r in caplog.records if "sqlite3" in r.getMessage()]
    assert warning.levelname == "WARNING"
    assert "child process" in warning.getMessage() and '"-m", "forge_rollback"' in warning.getMessage()
    assert getattr(warning, "forge_rollback_event")["level"] == "warn"
