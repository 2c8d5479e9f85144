"""`upgrade_database` / `aupgrade_database`: the arguments it takes, what it says when it does
not go where it was asked, and how it stops when its caller cancels (between two migrations,
the lock released, never in the background after the call returned)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import DbApp

FRESH = "fresh.db"


def fresh(make_db_app: Any, monkeypatch: pytest.MonkeyPatch, kind: str = "sql") -> tuple[DbApp, fr.Rollback]:
    """The sample app at v3 (migrations 1..3) with an empty SQLite database of its own."""
    app: DbApp = make_db_app(kind, "sqlite")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{FRESH}")
    return app, app.open()


def applied(app: DbApp) -> list[int]:
    """The native migrations applied to the fresh database, read from its tracking table."""
    # Closed at once: the module refuses a database this process holds open through sqlite3.
    with contextlib.closing(sqlite3.connect(app.repo.path / FRESH)) as c:
        return [r[0] for r in c.execute("SELECT version FROM forge_rollback_migrations ORDER BY version")]


def pause_between_upgrades(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[Path, Path]:
    """Pauses the upgrade after each committed migration until `release` exists; `reached` is
    written when it pauses."""
    release = tmp_path / "release"
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "between:upgrades")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_RELEASE", str(release))
    return release, Path(f"{release}.reached")


def wait_for_no_lock(rb: fr.Rollback) -> None:
    """Whatever still works in the background has ended (it holds the run lock while it works)."""
    deadline = time.monotonic() + 120
    while rb.lock_holder() is not None and time.monotonic() < deadline:
        time.sleep(0.05)


# ----- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sql", "alembic"])
@pytest.mark.parametrize("to", [["9999"], [""], "nope"])
def test_an_unknown_revision_is_a_config_error_about_upgrading(
    make_db_app: Any, monkeypatch: pytest.MonkeyPatch, kind: str, to: Any
) -> None:
    app, rb = fresh(make_db_app, monkeypatch, kind)
    rev = to if isinstance(to, str) else to[0]
    with pytest.raises(fr.ConfigError) as info:
        rb.upgrade_database(to)
    assert info.value.kind == "usage"
    assert info.value.message == (
        f"cannot upgrade `sqlite:///{app.repo.path / FRESH}` to revision `{rev}`: no migration file in the work tree defines it"
    )
    assert "downgrade" not in info.value.message
    assert info.value.hint is not None and app.revisions[2] in info.value.hint
    # Refused before anything was written, the lock never taken.
    assert not (app.repo.path / FRESH).exists()
    assert rb.lock_holder() is None


def test_a_str_is_one_revision(make_db_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """`upgrade_database("0002")`: a `str` is a sequence too, but never one revision per
    character."""
    app, rb = fresh(make_db_app, monkeypatch)
    assert rb.upgrade_database("0002") == ["0002"]
    assert applied(app) == [1, 2]
    assert asyncio.run(rb.aupgrade_database("0003")) == ["0003"]
    assert rb.upgrade_database(("0003",)) == ["0003"]
    with pytest.raises(TypeError, match="to must be a revision \\(str\\) or a list of revisions, not int"):
        rb.upgrade_database(3)  # type: ignore[arg-type]


def test_a_revision_the_database_is_past_is_left_with_a_warning(
    make_db_app: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An upgrade never goes down: asked for 0001 at 0003, it leaves the database at 0003 and
    says so on the `forge_rollback` logger."""
    app, rb = fresh(make_db_app, monkeypatch)
    assert rb.upgrade_database() == ["0003"]
    with caplog.at_level(logging.WARNING, logger="forge_rollback"):
        assert rb.upgrade_database(["0001"]) == ["0003"]
    [record] = [r for r in caplog.records if r.name == "forge_rollback"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "the database is already at 0003, past 0001: an upgrade never goes down, so it was left there"
    )
    assert applied(app) == [1, 2, 3]
    # At the revision asked for: nothing to say.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="forge_rollback"):
        assert rb.upgrade_database(["0003"]) == ["0003"]
    assert [r for r in caplog.records if r.name == "forge_rollback"] == []


# ----- cancelling ----------------------------------------------------------------------------


def test_a_cancelled_aupgrade_database_stops_between_two_migrations(
    make_db_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`asyncio.wait_for(rb.aupgrade_database(), ...)` running out: the upgrade stops before
    its next migration and releases the lock before `CancelledError` is raised; it does not
    go on in the background."""
    app, rb = fresh(make_db_app, monkeypatch)
    assert rb.upgrade_database(["0001"]) == ["0001"]
    release, reached = pause_between_upgrades(monkeypatch, tmp_path)

    async def main() -> asyncio.CancelledError:
        task = asyncio.create_task(rb.aupgrade_database())
        # Paused with 0002 committed, 0003 not begun.
        while not reached.exists():
            await asyncio.sleep(0.02)
        task.cancel()
        release.touch()
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        return info.value

    cancelled = asyncio.run(main())
    assert rb.lock_holder() is None
    wait_for_no_lock(rb)
    assert applied(app) == [1, 2]
    assert getattr(cancelled, "__notes__", []) == [
        "forge-rollback: cancelled: the upgrade stopped between two migrations (the asyncio task "
        "awaiting it was cancelled); the database is at 0002"
    ]
    monkeypatch.delenv("FORGE_ROLLBACK_FAILPOINT")
    assert rb.upgrade_database() == ["0003"]


@pytest.mark.usefixtures("python_ctrl_c")
def test_ctrl_c_stops_a_sync_upgrade_between_two_migrations(
    make_db_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app, rb = fresh(make_db_app, monkeypatch)
    assert rb.upgrade_database(["0001"]) == ["0001"]
    release, reached = pause_between_upgrades(monkeypatch, tmp_path)
    handled = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        handled.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)

    def interrupt() -> None:
        while not reached.exists():
            threading.Event().wait(0.02)
        os.kill(os.getpid(), signal.SIGINT)
        # The main thread ran the handler: the upgrade is cancelled (under the GIL this thread
        # waits for) before the paused migration loop goes on.
        handled.wait(60)
        release.touch()

    threading.Thread(target=interrupt).start()
    with pytest.raises(KeyboardInterrupt):
        rb.upgrade_database()
    assert rb.lock_holder() is None
    wait_for_no_lock(rb)
    assert applied(app) == [1, 2]
