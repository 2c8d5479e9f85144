"""Cancelling an async call while it awaits one of its async callbacks: the callback is
cancelled with it, so `asyncio.wait_for` / `asyncio.timeout` returns on time even when the
callback waits for something that never comes (an operator who never answers)."""

from __future__ import annotations

import asyncio
import time
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


def test_timeout_while_an_async_confirm_waits_changes_nothing_and_returns_on_time(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    cancelled: list[bool] = []

    async def main() -> float:
        asked = asyncio.Event()

        async def confirm(summary: str, plan: fr.Plan) -> bool:
            return await never_answered(asked, cancelled)

        task = asyncio.create_task(rb.arun("fast", target="v1", confirm=confirm))
        await asked.wait()
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            # The outer bound only keeps a regression from hanging the test run.
            await asyncio.wait_for(asyncio.wait_for(task, 0.5), 20)
        return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert elapsed < 10
    assert cancelled == [True]
    assert repo.state() == before
    assert rb.runs() == []
    assert rb.lock_holder() is None


def test_timeout_while_an_async_approve_waits_stops_the_run_before_that_step(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    cancelled: list[bool] = []

    async def main() -> tuple[float, BaseException | None]:
        asked = asyncio.Event()

        async def approve(step: StepApproval) -> bool:
            if step["name"] == "reset":
                return await never_answered(asked, cancelled)
            return True

        task = asyncio.create_task(rb.arun("manual", target="v1", confirm=True, approve=approve))
        await asked.wait()
        start = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            await asyncio.wait_for(asyncio.wait_for(task, 0.5), 20)
        return time.monotonic() - start, info.value.__cause__

    elapsed, cause = asyncio.run(main())
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
    cancelled: list[bool] = []

    async def main() -> tuple[float, BaseException | None]:
        asked = asyncio.Event()

        async def on_event(event: Event) -> Any:
            if event["event"] == "step_started" and event["step"] == "reset":
                await never_answered(asked, cancelled)

        task = asyncio.create_task(rb.arun("fast", target="v1", confirm=True, on_event=on_event))
        await asked.wait()
        start = time.monotonic()
        with pytest.raises(TimeoutError) as info:
            await asyncio.wait_for(asyncio.wait_for(task, 0.5), 20)
        return time.monotonic() - start, info.value.__cause__

    elapsed, cause = asyncio.run(main())
    assert elapsed < 10
    assert cancelled == [True]
    result: fr.RunResult = getattr(cause, "result")
    assert result.status == "cancelled"
    assert rb.lock_holder() is None
    assert rb.undo(result.run_id, confirm=True).status == "succeeded"
