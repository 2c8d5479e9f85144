"""Progress events reach `on_event` typed (`forge_rollback.types.ProgressEvent`): the snapshot
counts its files up to the total; the database snapshot and the downgrade say they are busy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import forge_rollback as fr
from forge_rollback.types import Event, ProgressEvent

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import DbApp


def test_a_full_run_reports_snapshot_files_and_busy_database_steps(make_db_app: Any) -> None:
    app: DbApp = make_db_app("sql", "sqlite")
    for i in range(250):
        app.repo.write(f"uploads/file {i}.txt", f"{i}\n")
    events: list[Event] = []

    result = app.open().run("full", target="v1", confirm=True, on_event=events.append)

    assert result.status == "succeeded"
    progress: list[ProgressEvent] = [e for e in events if e["event"] == "progress"]
    snapshot = [e for e in progress if e["step"] == "snapshot"]
    assert snapshot, progress
    assert all(e["unit"] == "files" and e["run_id"] == result.run_id for e in snapshot)
    total = snapshot[-1]["total"]
    assert total is not None and total >= 250
    assert snapshot[-1]["done"] == total
    done = [e["done"] for e in snapshot]
    assert done == sorted(done) and done[0] == 0
    assert len(snapshot) <= 101, "throttled to about 100 events"
    busy = {e["step"] for e in progress if e["unit"] == "busy"}
    assert {"db_snapshot", "downgrade"} <= busy, busy
    assert all(e["total"] is None for e in progress if e["unit"] == "busy")
    # Each busy event comes right after its step started, before it finished.
    names = [(e["event"], e.get("step")) for e in events if e["event"] != "log"]
    i = names.index(("progress", "downgrade"))
    assert names[i - 1] == ("step_started", "downgrade")
    assert fr.RunResult.from_json(result.to_json()) == result
