"""Cancelling an async call while it awaits one of its async callbacks: the callback is
cancelled with it, so `asyncio.wait_for` / `asyncio.timeout` returns on time even when the
callback waits for something that never comes (an operator who never answers)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr
from forge_rollback.types import Event, StepApproval

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo


async def never_answered(asked: asyncio.Event, cancelled: list[bool]) -> bool:
    asked.set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(True)
        raise
    return True


def time_out_while_a_callback_waits(
    start: Callable[[Callable[[], Awaitable[bool]]], Coroutine[Any, Any, fr.RunResult]],
) -> tuple[float, list[bool], BaseException | None]:
    """Starts the call `start` makes, giving it `wait` for its callback to await (an answer that
    never comes); once the callback waits, times the call out after 0.5 s. Returns how long the
    time-out took to return, `[True]` if the waiting callback was cancelled, and the cause of the
    `TimeoutError`."""
    cancelled: list[bool] = []

    async def main() -> tuple[float, BaseException | None]:
        asked = asyncio.Event()
        task = asyncio.create_task(start(lambda: never_answered(asked, cancelled)))
        await asked.wait()
        began = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            # The outer bound only keeps a regression from hanging the test run.
            await asyncio.wait_for(asyncio.wait_for(task, 0.5), 20)
        return time.monotonic() - began, info.value.__cause__

    elapsed, cause = asyncio.run(main())
    return elapsed, cancelled, cause


def test_timeout_while_an_async_confirm_waits_changes_nothing_and_returns_on_time(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)

    def start(wait: Callable[[], Awaitable[bool]]) -> Coroutine[Any, Any, fr.RunResult]:
        async def confirm(summary: str, plan: fr.Plan) -> bool:
            return await wait()

        return rb.arun("fast", target="v1", confirm=confirm)

    elapsed, cancelled, _ = time_out_while_a_callback_waits(start)
    assert elapsed < 10
    assert cancelled == [True]
    assert repo.state() == before
    assert rb.runs() == []
    assert rb.lock_holder() is None


def test_timeout_while_an_async_approve_waits_stops_the_run_before_that_step(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)

    def start(wait: Callable[[], Awaitable[bool]]) -> Coroutine[Any, Any, fr.RunResult]:
        async def approve(step: StepApproval) -> bool:
            return await wait() if step["name"] == "reset" else True

        return rb.arun("manual", target="v1", confirm=True, approve=approve)

    elapsed, cancelled, cause = time_out_while_a_callback_waits(start)
    assert elapsed < 10
    assert cancelled == [True]
    result: fr.RunResult = getattr(cause, "result")
    assert result.status == "cancelled"
    assert {s["step"]: s["status"] for s in result.steps}["reset"] == "pending"
    assert rb.lock_holder() is None
    assert rb.undo(result.run_id, confirm=True).status == "succeeded"
    assert repo.state() == before


def test_timeout_while_an_async_on_event_waits_stops_the_run_at_the_next_step(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)

    def start(wait: Callable[[], Awaitable[bool]]) -> Coroutine[Any, Any, fr.RunResult]:
        async def on_event(event: Event) -> Any:
            if event["event"] == "step_started" and event["step"] == "reset":
                await wait()

        return rb.arun("fast", target="v1", confirm=True, on_event=on_event)

    elapsed, cancelled, cause = time_out_while_a_callback_waits(start)
    assert elapsed < 10
    assert cancelled == [True]
    result: fr.RunResult = getattr(cause, "result")
    assert result.status == "cancelled"
    assert rb.lock_holder() is None
    assert rb.undo(result.run_id, confirm=True).status == "succeeded"


def test_a_cancel_while_a_sync_confirm_runs_journals_no_run(repo: Repo) -> None:
    """A plain (sync) confirm cannot be cancelled while it runs: it answers True after the task
    was cancelled. As for a declined confirmation, nothing is journaled: a run `cancelled`
    before its first step would have nothing to undo, and its note's `resume` would carry out
    the rollback the caller had just cancelled."""
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    asked, cancel_seen = threading.Event(), threading.Event()

    def confirm(summary: str, plan: fr.Plan) -> bool:
        asked.set()
        cancel_seen.wait(60)
        return True

    async def main() -> BaseException:
        task = asyncio.create_task(rb.arun("fast", target="v1", confirm=confirm))
        while not asked.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        # Runs on the loop after the task has taken its cancel (and cancelled the call).
        asyncio.get_running_loop().call_soon(cancel_seen.set)
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        return info.value

    cancelled = asyncio.run(main())
    assert getattr(cancelled, "run_id", None) is None
    notes = getattr(cancelled, "__notes__", [])
    assert notes and not any("resume" in n for n in notes), notes
    assert "nothing was changed" in notes[0]
    assert rb.runs() == []
    assert rb.lock_holder() is None
    assert repo.state() == before
