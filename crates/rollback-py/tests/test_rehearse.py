"""`Rollback.rehearse()` / `arehearse()`: a full rollback and its undo on a throwaway copy.

The sample app (conftest's `make_db_app`) runs v3 on a real SQLite file with a dirty work tree;
the rehearsal must report every step with its time and that the undo came back identical, while
the real tree, `.git`, the state folder and the database stay exactly as they were.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr
from forge_rollback.types import Event

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import DbApp


def git_dir_state(root: Path) -> dict[str, str]:
    """Every file under `.git` (the state folder included) with the hash of its bytes."""
    out = {}
    for dirpath, _dirs, files in os.walk(root / ".git"):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def test_rehearse_reports_steps_and_timings_and_touches_nothing_real(make_db_app: Any) -> None:
    app: DbApp = make_db_app("sql", "sqlite")
    before_code, before_db, before_git = app.code_state(), app.dump(), git_dir_state(app.repo.path)
    rb = app.open()
    runs_before = rb.runs()
    events: list[Event] = []

    r = rb.rehearse("full", target="v1", on_event=events.append)

    assert isinstance(r, fr.Rehearsal)
    assert r.passed, r.to_json()
    assert r.undo_identical
    assert r.differences == []
    assert r.files_compared > 0
    assert r.level == "full"
    assert r.to_commit == app.repo.commit_of("v1")
    assert r.from_commit == app.repo.commit_of("HEAD")
    assert r.database_copy == "sqlite-backup"
    assert r.database is not None and r.database.endswith("app.db")
    assert isinstance(r.data_loss, list)
    assert r.data_loss_unknown is None  # the forecast was made
    steps = {s["step"]: s for s in r.rollback["steps"]}
    for name in ("snapshot", "db_snapshot", "downgrade", "reset", "record"):
        assert steps[name]["status"] == "done", steps
        assert isinstance(steps[name]["millis"], int), steps[name]
    assert r.undo is not None and r.undo["status"] == "succeeded"
    assert r.rollback["status"] == "succeeded"
    assert any(e["event"] == "step_finished" for e in events)

    # Nothing real moved: tree, HEAD, index, `.git` (state folder included), database, runs.
    assert app.code_state() == before_code
    assert app.dump() == before_db
    assert git_dir_state(app.repo.path) == before_git
    assert rb.runs() == runs_before

    # A value like the other results.
    assert pickle.loads(pickle.dumps(r)) == r
    assert copy.deepcopy(r) == r
    assert fr.Rehearsal.from_dict(r.to_dict()) == r
    assert r.to_dict()["undo_identical"] is True


def test_arehearse_is_the_same_rehearsal_as_a_coroutine(make_db_app: Any) -> None:
    app: DbApp = make_db_app("sql", "sqlite")
    before_code, before_db = app.code_state(), app.dump()
    rb = app.open()

    r = asyncio.run(rb.arehearse("fast", target="v2"))

    assert r.passed and r.undo_identical, r.to_json()
    assert r.level == "fast"
    assert r.database is None
    assert [s["step"] for s in r.rollback["steps"]][0] == "snapshot"
    assert app.code_state() == before_code
    assert app.dump() == before_db


def test_rehearse_with_an_unknown_level_is_a_usage_error(make_db_app: Any) -> None:
    app: DbApp = make_db_app("sql", "sqlite")
    rb = app.open()
    with pytest.raises(fr.RollbackError, match="unknown rollback level `fastest`"):
        rb.rehearse("fastest")  # type: ignore[arg-type]


def test_abort_rollback_from_on_event_stops_the_rehearsal(make_db_app: Any) -> None:
    app: DbApp = make_db_app("sql", "sqlite")
    before_code, before_db = app.code_state(), app.dump()
    rb = app.open()
    started: list[str] = []

    def stop_after_first_step(event: Event) -> None:
        if event["event"] == "step_started":
            started.append(event["step"])
        if event["event"] == "step_finished":
            raise fr.AbortRollback("enough")

    with pytest.raises(fr.AbortRollback, match="enough"):
        rb.rehearse("full", target="v1", on_event=stop_after_first_step)
    # The run on the copy stopped at the next step boundary: no step began after the first
    # ended (the undo of the stopped run is cancelled the same way).
    assert started == ["snapshot"], started
    assert app.code_state() == before_code
    assert app.dump() == before_db
