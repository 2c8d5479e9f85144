"""The GIL is released while the engine works; the async methods run beside other coroutines."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo


def test_run_releases_the_gil(big_repo: Repo) -> None:
    rb = fr.Rollback.open(big_repo.path)
    counter = 0
    stop = threading.Event()
    seen: dict[str, int] = {}

    def spin() -> None:
        nonlocal counter
        while not stop.is_set():
            counter += 1
            time.sleep(0)  # gives the GIL back, so thread A's callbacks can run

    def on_event(event: dict[str, Any]) -> None:
        # Between these two events thread A runs only Rust (the snapshot of ~3000 files).
        if event["event"] == "step_started" and event["step"] == "snapshot":
            seen["start"] = counter
        if event["event"] == "step_finished" and event["step"] == "snapshot":
            seen["end"] = counter

    # No forced GIL switches: thread B can only run while thread A has released the GIL
    # itself. Were the engine to hold it, B could not count between the two events.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    b = threading.Thread(target=spin)
    try:
        b.start()
        result: list[fr.RunResult] = []
        a = threading.Thread(target=lambda: result.append(rb.run("fast", target="v1", on_event=on_event, confirm=True)))
        a.start()
        a.join(120)
    finally:
        stop.set()
        b.join()
        sys.setswitchinterval(interval)
    assert result[0].status == "succeeded"
    assert seen["end"] > seen["start"]


def test_arun_runs_beside_other_coroutines(big_repo: Repo) -> None:
    rb = fr.Rollback.open(big_repo.path)
    before = big_repo.state()
    ticks = 0
    seen: dict[str, int] = {}
    threads: set[int] = set()

    def on_event(event: dict[str, Any]) -> None:
        threads.add(threading.get_ident())
        if event["event"] == "step_started" and event["step"] == "snapshot":
            seen["start"] = ticks
        if event["event"] == "step_finished" and event["step"] == "record":
            seen["end"] = ticks

    async def main() -> tuple[fr.RunResult, fr.RunResult, fr.Assessment]:
        nonlocal ticks
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        assessment = await rb.aassess(target="v1")
        result = await rb.arun("fast", target="v1", confirm=lambda s, p: True, on_event=on_event)
        assert result.run_id is not None
        undone = await rb.aundo(result.run_id, confirm=True)
        done = True
        await task
        return result, undone, assessment

    result, undone, assessment = asyncio.run(main())
    assert result.status == "succeeded"
    assert undone.status == "succeeded"
    assert assessment.target["commit"]["id"] == big_repo.commit_of("v1")
    # The event loop kept ticking while the run worked on a tokio worker thread.
    assert seen["end"] > seen["start"]
    assert threading.get_ident() not in threads
    assert big_repo.state() == before


def test_arun_is_a_coroutine_and_reraises_callback_errors(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    boom = RuntimeError("watchdog says no")

    def confirm(summary: str, plan: dict[str, Any]) -> bool:
        raise boom

    coro = rb.arun("fast", target="v1", confirm=confirm)
    assert asyncio.iscoroutine(coro)
    try:
        asyncio.run(coro)
    except RuntimeError as e:
        assert e is boom
    else:
        raise AssertionError("arun did not raise")
    assert rb.runs() == []
