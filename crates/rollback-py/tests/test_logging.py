"""Issue 18, problem 5: events on the `forge_rollback` logger; a raising `on_event` never
leaves a rollback half-done; `AbortRollback` is the one way to stop it."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo

STANDARD_LEVELS = {logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR}


def test_events_go_to_the_forge_rollback_logger_with_standard_levels(
    repo: Repo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="forge_rollback")
    rb = fr.Rollback.open(repo.path)
    r = rb.run("fast", target="v1", confirm=True)
    records = [rec for rec in caplog.records if rec.name == "forge_rollback"]
    assert {rec.levelno for rec in records} <= STANDARD_LEVELS
    messages = [rec.getMessage() for rec in records]
    assert f"Emergency rollback {r.run_id} initiated" in messages
    # The seed's SUCCESS lines are INFO records; the event keeps its own level field.
    [done] = [rec for rec in records if rec.getMessage().startswith("Rollback complete")]
    assert done.levelno == logging.INFO
    assert getattr(done, "forge_rollback_event")["level"] == "success"
    steps = [rec for rec in records if getattr(rec, "forge_rollback_event")["event"] == "step_started"]
    assert [getattr(rec, "forge_rollback_event")["step"] for rec in steps][:2] == ["snapshot", "reset"]
    assert all(rec.levelno == logging.DEBUG for rec in steps)


def test_the_logger_has_a_null_handler_so_a_library_prints_nothing_unasked() -> None:
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("forge_rollback").handlers)


def test_a_raising_on_event_is_logged_and_the_run_completes(repo: Repo, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="forge_rollback")
    rb = fr.Rollback.open(repo.path)
    seen: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "step_started":
            seen.append(event["step"])
            if event["step"] == "remove_untracked":
                raise RuntimeError("dashboard unreachable")

    r = rb.run("fast", target="v1", confirm=True, on_event=on_event)
    assert r.status == "succeeded"
    assert seen == ["snapshot", "reset", "remove_untracked", "clear_caches", "record"]
    [logged] = [rec for rec in caplog.records if "on_event callback raised" in rec.getMessage()]
    assert logged.levelno == logging.ERROR
    assert logged.exc_info is not None and isinstance(logged.exc_info[1], RuntimeError)
    # Like every record of this logger, it carries the event (the one the callback was handed).
    event = getattr(logged, "forge_rollback_event")
    assert (event["event"], event["step"]) == ("step_started", "remove_untracked")


def test_abort_rollback_stops_before_the_next_step_and_is_reraised(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "step_finished" and event["step"] == "reset":
            raise fr.AbortRollback("error rate went up after the reset")

    with pytest.raises(fr.AbortRollback) as info:
        rb.run("fast", target="v1", confirm=True, on_event=on_event)
    result = info.value.result
    assert result is not None and result.status == "cancelled"
    assert info.value.run_id == result.run_id
    assert "AbortRollback" in (result.error or "")
    assert {s["step"]: s["status"] for s in result.steps}["remove_untracked"] == "pending"
    assert rb.undo(result.run_id, confirm=True).status == "succeeded"
    assert repo.state() == before


def test_async_on_event_and_approve_are_awaited_in_async_calls(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    events: list[str] = []
    approved: list[str] = []
    loop_threads: set[int] = set()

    async def on_event(event: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        loop_threads.add(threading.get_ident())
        if event["event"] == "step_started":
            events.append(event["step"])

    async def approve(step: dict[str, Any]) -> bool:
        await asyncio.sleep(0)
        approved.append(step["name"])
        return True

    async def main() -> fr.RunResult | fr.DryRunResult:
        return await rb.arun("manual", target="v1", confirm=True, on_event=on_event, approve=approve)

    r = asyncio.run(main())
    assert r.status == "succeeded"
    assert events[:2] == ["snapshot", "reset"] and events[-1] == "record"
    assert approved == events
    # Awaited on the caller's loop (its thread), not on a worker.
    assert loop_threads == {threading.get_ident()}


def test_async_on_event_in_a_sync_call_is_logged_not_left_unawaited(
    repo: Repo, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="forge_rollback")
    rb = fr.Rollback.open(repo.path)

    async def on_event(event: dict[str, Any]) -> None:
        return None

    r = rb.run("fast", target="v1", confirm=True, on_event=on_event)
    assert r.status == "succeeded"
    assert any("cannot await it" in str(rec.exc_info[1]) for rec in caplog.records if rec.exc_info)


def test_a_secret_too_short_to_be_scrubbed_is_warned_about_on_open_as_the_cli_does(
    repo: Repo, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="forge_rollback")
    config = tmp_path / "short.toml"
    config.write_text('[database]\nkind = "sql"\nurl = "postgresql://app:Q7z@127.0.0.1:1/app"\n')
    fr.Rollback.open(repo.path, config)
    warned = [rec for rec in caplog.records if rec.name == "forge_rollback" and rec.levelno == logging.WARNING]
    messages = [rec.getMessage() for rec in warned]
    assert any("the secret in `database.url`" in m and "too short to be scrubbed" in m for m in messages), messages
    assert not any("Q7z" in m for m in messages), messages
    # An ordinary warning event, as every record on this logger: a handler written to the
    # docs (`record.forge_rollback_event["level"]`) reads it.
    [event] = [getattr(rec, "forge_rollback_event") for rec in warned if "too short to be scrubbed" in rec.getMessage()]
    assert event["event"] == "log" and event["level"] == "warn"
    assert "the secret in `database.url`" in event["message"] and "Q7z" not in event["message"]
    assert "hint" not in event
