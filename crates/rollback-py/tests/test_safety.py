"""Issue 18, problems 1-4: confirmation, cancellation, the lock before refusals, Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo


def assert_nothing_changed(repo: Repo, rb: fr.Rollback, before: object) -> None:
    assert repo.state() == before
    assert rb.runs() == []


# ----- 1. confirm goes by exact values, never by truthiness ----------------------------------


def test_run_without_confirm_is_refused(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    with pytest.raises(TypeError, match="needs an explicit confirm"):
        rb.run("fast", target="v1")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="confirm"):
        rb.undo("20250101-000000-abcdef")  # type: ignore[call-arg]
    assert_nothing_changed(repo, rb, before)
    # A dry run writes nothing and needs none.
    assert rb.run("fast", target="v1", dry_run=True).status == "planned"


@pytest.mark.parametrize("answer", ["no", "", "y", " y ", 1, None, "yes please", "ye s", "\uff59\uff45\uff53"])
def test_confirm_answers_other_than_true_or_yes_raise_value_error(repo: Repo, answer: Any) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    with pytest.raises(ValueError, match="only True or the string \"yes\" \\(any case\\) go ahead"):
        rb.run("fast", target="v1", confirm=lambda summary, plan: answer)
    assert_nothing_changed(repo, rb, before)


@pytest.mark.parametrize("value", ["no", "Y", 1, "y", "yes!"])
def test_confirm_argument_other_than_true_or_yes_raises_value_error(repo: Repo, value: Any) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    with pytest.raises(ValueError, match="confirm must be True, \"yes\" or a callable"):
        rb.run("fast", target="v1", confirm=value)
    assert_nothing_changed(repo, rb, before)


@pytest.mark.parametrize("typed", ["YES", "  Yes  ", "yes\n"])
def test_yes_in_any_case_goes_ahead_as_on_the_clis_terminal(repo: Repo, typed: str) -> None:
    """The CLI's `Type `yes` to proceed:` and `confirm` read answers by the same core rule
    (`prompt::confirms`): the word `yes`, trimmed, in any ASCII case."""
    rb = fr.Rollback.open(repo.path)
    r = rb.run("fast", target="v1", confirm=lambda summary, plan: typed)
    assert r.status == "succeeded"
    assert rb.undo(r.run_id, confirm=typed).status == "succeeded"  # type: ignore[arg-type]


def test_typed_yes_goes_ahead(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    r = rb.run("fast", target="v1", confirm=lambda summary, plan: "yes")
    assert r.status == "succeeded"
    assert rb.undo(r.run_id, confirm="yes").status == "succeeded"


def test_async_confirm_in_a_sync_call_is_a_type_error_and_never_awaited(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)

    async def confirm(summary: str, plan: fr.Plan) -> bool:
        return False

    def returns_coroutine(summary: str, plan: fr.Plan) -> Any:
        return confirm(summary, plan)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(TypeError, match="async function"):
            rb.run("fast", target="v1", confirm=confirm)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="cannot await it"):
            rb.run("fast", target="v1", confirm=returns_coroutine)
        coro = confirm("", fr.Plan.from_dict(rb.plan("fast", target="v1").to_dict()))
        with pytest.raises(TypeError, match="a coroutine"):
            rb.run("fast", target="v1", confirm=coro)  # type: ignore[arg-type]
        gc.collect()
    assert [w for w in caught if "never awaited" in str(w.message)] == []
    assert_nothing_changed(repo, rb, before)


def test_async_confirm_is_awaited_by_arun_and_false_declines(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    asked: list[str] = []

    async def confirm(summary: str, plan: fr.Plan) -> bool:
        await asyncio.sleep(0)
        asked.append(plan.to_commit)
        return False

    with pytest.raises(fr.CancelledError):
        asyncio.run(rb.arun("fast", target="v1", confirm=confirm))
    assert asked == [repo.commit_of("v1")]
    assert_nothing_changed(repo, rb, before)


# ----- 2. cancelling an async call stops the run at a step boundary ---------------------------


def test_cancelling_arun_stops_at_the_next_step_and_the_run_can_be_undone(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)

    async def main() -> asyncio.CancelledError:
        loop = asyncio.get_running_loop()
        task: asyncio.Task[fr.RunResult | fr.DryRunResult] | None = None

        def on_event(event: dict[str, Any]) -> None:
            # Called on a worker thread while `reset` starts: cancel the awaiting task.
            if event["event"] == "step_started" and event["step"] == "reset":
                assert task is not None
                loop.call_soon_threadsafe(task.cancel)

        task = asyncio.create_task(rb.arun("fast", target="v1", confirm=True, on_event=on_event))
        try:
            await task
        except asyncio.CancelledError as e:
            return e
        raise AssertionError("the task was not cancelled")

    cancelled = asyncio.run(main())
    run_id = getattr(cancelled, "run_id")
    result: fr.RunResult = getattr(cancelled, "result")
    assert result.status == "cancelled" and result.run_id == run_id
    steps = {s["step"]: s["status"] for s in result.steps}
    assert steps["reset"] == "done" and steps["remove_untracked"] == "pending"
    [run] = rb.runs()
    assert (run.run_id, run.status) == (run_id, "cancelled")
    assert "cancelled" in rb.report(run_id)
    # Half-done (the code is reset) but recorded: it can be finished, and undone.
    assert repo.head() == repo.commit_of("v1")
    with pytest.raises(fr.RefusedError, match="half-way") as refused:
        rb.run("fast", target="v2", confirm=True)
    # The hint speaks Python: method calls, not `forge-rollback` commands.
    assert refused.value.hint is not None
    assert f'resume("{run_id}")' in refused.value.hint and "forge-rollback" not in refused.value.hint
    resumed = rb.resume(run_id)
    assert resumed.status == "succeeded" and resumed.run_id == run_id
    assert rb.undo(run_id, confirm=True).status == "succeeded"
    assert repo.state() == before


def test_wait_for_timeout_cancels_the_run_and_waits_for_it(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = tmp_path / "release"
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "before:reset")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_RELEASE", str(release))
    rb = fr.Rollback.open(repo.path)

    async def main() -> BaseException:
        # The run cannot end before the timeout: it waits at `reset` until the release file,
        # made after the timeout; then it stops at its next step boundary.
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, release.touch)
        try:
            await asyncio.wait_for(rb.arun("fast", target="v1", confirm=True), timeout=0.05)
        except TimeoutError as e:
            return e
        raise AssertionError("no timeout")

    timeout = asyncio.run(main())
    # `wait_for` returned only once the run had stopped: it is recorded, not running.
    cancelled = timeout.__cause__ or timeout.__context__
    assert isinstance(cancelled, asyncio.CancelledError)
    [run] = rb.runs()
    assert run.status == "cancelled"
    assert getattr(cancelled, "run_id") == run.run_id
    assert rb.lock_holder() is None


def test_cancelling_arun_after_its_last_step_says_the_run_had_ended(repo: Repo) -> None:
    """`asyncio.wait_for` running out once the last step is done: the run ended `succeeded`
    before the cancel could act, and the note says so, as the sync path's does; it does not
    advise a `resume()` that would be refused."""
    rb = fr.Rollback.open(repo.path)

    async def main() -> asyncio.CancelledError:
        task: asyncio.Task[fr.RunResult | fr.DryRunResult] | None = None

        async def on_event(event: dict[str, Any]) -> None:
            if event["event"] == "step_finished" and event["step"] == "record":
                assert task is not None
                task.cancel()

        task = asyncio.create_task(rb.arun("fast", target="v1", confirm=True, on_event=on_event))
        try:
            await task
        except asyncio.CancelledError as e:
            return e
        raise AssertionError("the task was not cancelled")

    cancelled = asyncio.run(main())
    run_id = getattr(cancelled, "run_id")
    result: fr.RunResult = getattr(cancelled, "result")
    assert result.status == "succeeded" and result.run_id == run_id
    assert cancelled.__notes__ == [f"forge-rollback: run {run_id} had ended, status succeeded"]
    [run] = rb.runs()
    assert (run.run_id, run.status) == (run_id, "succeeded")


# ----- 3. a live run is reported as the lock holder, never as "interrupted" ------------------


@contextlib.contextmanager
def paused_in_reset(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[fr.Rollback]:
    """A fast rollback to v1 run on a thread, paused inside its `reset` step (journaled
    `running`, holding the lock) while the block runs; it must then finish `succeeded`."""
    release = tmp_path / "release"
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "before:reset")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_RELEASE", str(release))
    rb = fr.Rollback.open(repo.path)
    started = threading.Event()
    results: list[fr.RunResult | fr.DryRunResult] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "step_started" and event["step"] == "reset":
            started.set()

    t = threading.Thread(target=lambda: results.append(rb.run("fast", target="v1", confirm=True, on_event=on_event)))
    t.start()
    try:
        assert started.wait(60)
        yield rb
    finally:
        release.touch()
        t.join(60)
    assert results[0].status == "succeeded"


def test_second_run_during_a_live_run_raises_lock_held_naming_it(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with paused_in_reset(repo, tmp_path, monkeypatch) as rb:
        [live] = rb.runs()
        assert live.status == "running"
        for second in (
            lambda: fr.Rollback.open(repo.path).run("fast", target="v1", confirm=True),
            lambda: fr.Rollback.open(repo.path).undo(live.run_id, confirm=True),
            lambda: fr.Rollback.open(repo.path).resume(live.run_id),
        ):
            with pytest.raises(fr.LockHeldError) as info:
                second()
            assert info.value.holder is not None and info.value.holder["pid"] == os.getpid()
            assert "half-way" not in str(info.value)


def test_a_live_run_read_back_is_not_called_interrupted_nor_advised_to_be_resumed(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service polling a run that another thread (or process) still runs: its details say
    `running`, the step under way is `running`, and neither `raise_for_status()` nor the
    report advises resuming or undoing it."""
    with paused_in_reset(repo, tmp_path, monkeypatch) as rb:
        [live] = rb.runs()
        details = rb.run_details(live.run_id)
        assert (details.status, details.interrupted) == ("running", False)
        steps = {s["step"]: s["status"] for s in details.steps}
        assert steps["snapshot"] == "done" and steps["reset"] == "running", steps
        assert details.raise_for_status() is None
        md = rb.report(live.run_id)
        assert "interrupted" not in md and "Settle the failed run" not in md, md
        commands = json.loads(rb.report(live.run_id, format="json"))["commands"]
        assert commands["resume"] is None and commands["undo"] is None, commands


# ----- 4. Ctrl-C in a sync call: the run stops at a step boundary, the id comes with it -------


@pytest.mark.usefixtures("python_ctrl_c")
def test_ctrl_c_during_a_sync_run_raises_keyboard_interrupt_with_the_run(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = repo.state()
    release = tmp_path / "release"
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "before:reset")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_RELEASE", str(release))
    rb = fr.Rollback.open(repo.path)

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "step_started" and event["step"] == "reset":
            threading.Thread(target=interrupt).start()

    def interrupt() -> None:
        # SIGINT while the main thread is inside Rust (paused in `reset`), then let it go on.
        # Sent to the process, as a terminal's Ctrl-C is (`raise_signal` would direct it at
        # this short-lived thread alone).
        os.kill(os.getpid(), signal.SIGINT)
        release.touch()

    with pytest.raises(KeyboardInterrupt) as info:
        rb.run("fast", target="v1", confirm=True, on_event=on_event)
    run_id = getattr(info.value, "run_id")
    result: fr.RunResult = getattr(info.value, "result")
    assert result.status == "cancelled" and result.run_id == run_id
    assert {s["step"]: s["status"] for s in result.steps}["remove_untracked"] == "pending"
    assert any(run_id in note for note in getattr(info.value, "__notes__", []))
    [run] = rb.runs()
    assert run.status == "cancelled"
    assert rb.undo(run_id, confirm=True).status == "succeeded"
    assert repo.state() == before


# ----- interpreter exit never panics ----------------------------------------------------------

EXIT_SCRIPT = """
import asyncio, sys, threading
import forge_rollback as fr

rb = fr.Rollback.open(sys.argv[1])
mode = sys.argv[2]
started = threading.Event()

def on_event(event):
    if event["event"] == "step_started" and event["step"] == ("reset" if mode == "asyncio" else "snapshot"):
        started.set()

if mode == "asyncio":
    async def main():
        # Started and left running: asyncio.run cancels it when main returns. The run waits
        # inside `reset` (a failpoint) until after that cancellation, so it cannot end first.
        asyncio.create_task(rb.arun("fast", target="v1", confirm=True, on_event=on_event))
        while not started.is_set():
            await asyncio.sleep(0.01)
        asyncio.get_running_loop().call_later(0.2, open(sys.argv[3], "w").close)
    asyncio.run(main())
else:
    threading.Thread(target=lambda: rb.run("fast", target="v1", confirm=True, on_event=on_event), daemon=True).start()
    started.wait(60)
print("main done", flush=True)
"""


@pytest.mark.parametrize("mode", ["asyncio", "daemon-thread"])
def test_interpreter_exit_during_a_run_stops_it_cleanly(big_repo: Repo, tmp_path: Path, mode: str) -> None:
    script = tmp_path / "exit_during_run.py"
    script.write_text(textwrap.dedent(EXIT_SCRIPT))
    release = tmp_path / "release"
    env = dict(os.environ)
    if mode == "asyncio":
        env.update(
            FORGE_ROLLBACK_FAILPOINT="before:reset",
            FORGE_ROLLBACK_FAILPOINT_ACTION="pause",
            FORGE_ROLLBACK_FAILPOINT_RELEASE=str(release),
        )
    out = subprocess.run(
        [sys.executable, str(script), str(big_repo.path), mode, str(release)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "panicked" not in out.stderr and "not initialized" not in out.stderr, out.stderr
    assert "main done" in out.stdout
    [run] = fr.Rollback.open(big_repo.path).runs()
    # Stopped at a step boundary and recorded; never left `running`.
    if mode == "asyncio":
        assert run.status == "cancelled"
    else:
        assert run.status in ("cancelled", "succeeded")
    assert fr.Rollback.open(big_repo.path).lock_holder() is None
