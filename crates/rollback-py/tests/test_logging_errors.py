"""A logging set-up that raises (a filter, a custom logger class) must not keep events from
`on_event`: a watchdog that watches the events would otherwise see none, and its
`AbortRollback` could never stop the run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr
from forge_rollback.types import Event

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo


class BrokenFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        raise RuntimeError("a broken log filter")


@pytest.fixture
def broken_logging() -> Iterator[None]:
    logger = logging.getLogger("forge_rollback")
    level, broken = logger.level, BrokenFilter()
    logger.setLevel(logging.DEBUG)
    logger.addFilter(broken)
    try:
        yield
    finally:
        logger.removeFilter(broken)
        logger.setLevel(level)


@pytest.mark.usefixtures("broken_logging")
def test_on_event_gets_every_event_when_the_logger_raises(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    events: list[Event] = []
    unraisable: list[Any] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.unraisablehook", unraisable.append)
        r = rb.run("fast", target="v1", confirm=True, on_event=events.append)
    assert r.status == "succeeded"
    started = [e["step"] for e in events if e["event"] == "step_started"]
    assert started == [s["step"] for s in r.steps]
    assert any(e["event"] == "log" for e in events)
    # The logging failure is reported, not hidden.
    assert unraisable and all(isinstance(u.exc_value, RuntimeError) for u in unraisable)


@pytest.mark.usefixtures("broken_logging")
def test_abort_rollback_stops_the_run_when_the_logger_raises(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)

    def watchdog(event: Event) -> None:
        if event["event"] == "step_finished" and event["step"] == "snapshot":
            raise fr.AbortRollback("stop after the snapshot")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.unraisablehook", lambda u: None)
        with pytest.raises(fr.AbortRollback) as info:
            rb.run("fast", target="v1", confirm=True, on_event=watchdog)
        result: fr.RunResult = getattr(info.value, "result")
        assert result.status == "cancelled"
        assert {s["step"]: s["status"] for s in result.steps}["reset"] == "pending"
        assert rb.undo(result.run_id, confirm=True).status == "succeeded"
    assert repo.state() == before
