"""Manual rollbacks: `approve(step)` before every step; skip, abort, abort and undo; callbacks
that raise or answer nonsense; resume with approval."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import DbApp, Repo

STEPS = ["snapshot", "reset", "remove_untracked", "clear_caches", "record"]


def statuses(r: fr.RunResult) -> dict[str, str]:
    return {s["step"]: s["status"] for s in r.steps}


def test_approve_runs_some_steps_and_skips_one(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    asked: list[dict[str, Any]] = []

    def approve(step: dict[str, Any]) -> bool:
        asked.append(step)
        return bool(step["name"] != "remove_untracked")

    r = rb.run("manual", target="v1", approve=approve, confirm=True)
    assert r.status == "succeeded", r.error
    assert r.level == "manual"
    assert [s["name"] for s in asked] == STEPS
    first = asked[0]
    assert (first["index"], first["total"], first["run_id"]) == (1, len(STEPS), r.run_id)
    assert first["skippable"] is False  # the snapshot: every later step relies on it
    reset = asked[1]
    assert reset["skippable"] is True
    assert reset["title"]
    assert any("app.py" in line for line in reset["preview"])
    assert reset["step"]["step"] == "reset"

    assert statuses(r) == {
        "snapshot": "done",
        "reset": "done",
        "remove_untracked": "skipped",
        "clear_caches": "done",
        "record": "done",
    }
    # Reset ran, the untracked files stayed.
    assert repo.head() == repo.commit_of("v1")
    assert (repo.path / "notes with spaces.txt").read_text() == "untracked\n"
    assert "remove_untracked" in rb.report(r.run_id or "")

    assert r.run_id is not None
    rb.undo(r.run_id, confirm=True)
    assert repo.state() == before


def test_a_step_that_cannot_be_skipped_is_asked_again(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    asked: list[str] = []

    def approve(step: dict[str, Any]) -> bool:
        asked.append(step["name"])
        # "No" to the snapshot once: it cannot be skipped, so the question comes back.
        return asked.count("snapshot") > 1

    r = rb.run("manual", target="v1", approve=approve, confirm=True)
    assert r.status == "succeeded"
    assert asked == ["snapshot", "snapshot", *STEPS[1:]]


def test_abort_undo_puts_everything_back(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)

    def approve(step: dict[str, Any]) -> bool | str:
        return "abort-undo" if step["name"] == "remove_untracked" else True

    r = rb.run("manual", target="v1", approve=approve, confirm=True)
    # The result is the aborted run's; the undo ran at once, under the same lock.
    assert r.status == "cancelled"
    assert r.error == "the operator aborted the run"
    assert r.undone_by is not None
    assert statuses(r)["reset"] == "done"
    assert statuses(r)["remove_untracked"] == "pending"
    assert repo.state() == before
    summary = {s.run_id: (s.kind, s.status) for s in rb.runs()}
    assert summary == {r.run_id: ("rollback", "undone"), r.undone_by: ("undo", "succeeded")}

    with pytest.raises(fr.CancelledError) as info:
        r.raise_for_status()
    assert info.value.kind == "cancelled"
    assert info.value.run_id == r.run_id
    assert info.value.hint is None  # nothing left to undo


def test_abort_stops_and_leaves_the_run_undoable(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    r = rb.run("manual", target="v1", approve=lambda step: "abort" if step["name"] == "clear_caches" else "yes", confirm=True)
    assert r.status == "cancelled"
    assert r.undone_by is None
    assert repo.head() == repo.commit_of("v1")
    assert statuses(r)["clear_caches"] == "pending"
    with pytest.raises(fr.CancelledError) as info:
        r.raise_for_status()
    assert info.value.hint is not None and f'undo("{r.run_id}")' in info.value.hint
    assert r.run_id is not None
    rb.undo(r.run_id, confirm=True)
    assert repo.state() == before


def test_approve_raising_stops_the_run_and_is_reraised(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    boom = RuntimeError("the pager went off")
    asked: list[str] = []
    started: list[str] = []

    def approve(step: dict[str, Any]) -> bool:
        asked.append(step["name"])
        if step["name"] == "reset":
            raise boom
        return True

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "step_started":
            started.append(event["step"])

    with pytest.raises(RuntimeError) as info:
        rb.run("manual", target="v1", approve=approve, on_event=on_event, confirm=True)
    assert info.value is boom
    # Nothing after the step being approved ran, nor was asked about.
    assert asked == ["snapshot", "reset"]
    assert started == ["snapshot"]
    assert repo.state() == before

    [run] = rb.runs()
    assert run.status == "cancelled"
    # The run's log says why it stopped.
    log = (repo.path / ".git" / "forge-rollback" / "runs" / run.run_id / "run.log").read_text()
    assert "no answer for step `reset`" in log
    assert "the approve callback raised RuntimeError: the pager went off" in log
    details = rb.run_details(run.run_id)
    assert statuses(details) == {
        "snapshot": "done",
        "reset": "pending",
        "remove_untracked": "pending",
        "clear_caches": "pending",
        "record": "pending",
    }
    # Cancelled is settled: new runs are not blocked.
    assert rb.run("fast", target="v2", confirm=True).status == "succeeded"


# "inspect" is a terminal's answer (the step's `preview` is what it shows); one-letter forms and
# other words are not answers: none of them runs the step.
@pytest.mark.parametrize("answer", ["maybe", 1, None, "inspect", "y", "n", "a", "abort undo", "ok"])
def test_approve_answering_nonsense_is_a_value_error(repo: Repo, answer: object) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    with pytest.raises(ValueError, match='approve must return True or "yes"/"run" \\(run\\), False or "no"/"skip" \\(skip\\), "abort" or "abort-undo"'):
        rb.run("manual", target="v1", approve=lambda step: answer, confirm=True)  # type: ignore[arg-type, return-value]
    assert repo.state() == before
    [run] = rb.runs()
    assert run.status == "cancelled"
    assert all(s == "pending" for s in statuses(rb.run_details(run.run_id)).values())


@pytest.mark.parametrize(
    ("answer", "reset"),
    [("YES", "done"), ("  run ", "done"), ("No", "skipped"), (" SKIP\n", "skipped"), ("Abort", "pending")],
)
def test_approve_string_answers_are_the_clis_words_in_any_case(repo: Repo, answer: str, reset: str) -> None:
    """The words the CLI's terminal reads (core `StepAnswer::parse`): trimmed, any ASCII case."""
    rb = fr.Rollback.open(repo.path)
    r = rb.run("manual", target="v1", confirm=True, approve=lambda step: answer if step["name"] == "reset" else True)
    assert statuses(r)["reset"] == reset
    assert r.status == ("cancelled" if reset == "pending" else "succeeded")


def test_manual_needs_approve(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    with pytest.raises(fr.ConfigError) as info:
        rb.run("manual", target="v1", confirm=True)
    assert info.value.kind == "usage"
    assert "approve" in info.value.message
    with pytest.raises(TypeError, match="approve must be a callable"):
        rb.run("manual", target="v1", approve="yes", confirm=True)  # type: ignore[arg-type]
    assert repo.state() == before
    assert rb.runs() == []
    # A dry run asks nothing: it plans.
    planned = rb.run("manual", target="v1", dry_run=True)
    assert planned.status == "planned"
    assert [s["step"] for s in planned.plan.steps] == STEPS


def test_resume_asks_before_each_remaining_step(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    rb = fr.Rollback.open(repo.path)
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "before:remove_untracked")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")
    r = rb.run("manual", target="v1", approve=lambda step: True, confirm=True)
    monkeypatch.delenv("FORGE_ROLLBACK_FAILPOINT")
    assert r.status == "failed" and r.run_id is not None
    with pytest.raises(fr.StepFailedError) as info:
        r.raise_for_status()
    assert (info.value.run_id, info.value.step) == (r.run_id, "remove_untracked")
    assert info.value.hint is not None and f'resume("{r.run_id}")' in info.value.hint

    asked: list[str] = []

    def approve(step: dict[str, Any]) -> bool:
        asked.append(step["name"])
        return bool(step["name"] != "clear_caches")

    done = rb.resume(r.run_id, approve=approve)
    assert done.status == "succeeded"
    assert asked == ["remove_untracked", "clear_caches", "record"]
    assert statuses(done)["clear_caches"] == "skipped"
    assert not (repo.path / "notes with spaces.txt").exists()


def test_resume_of_a_manual_run_without_approve_is_a_config_error(repo: Repo) -> None:
    """As `run("manual")` without `approve`, and the CLI's `resume` without `--yes` (which asks
    on its terminal): nothing runs unasked."""
    rb = fr.Rollback.open(repo.path)
    r = rb.run("manual", target="v1", confirm=True, approve=lambda s: "abort" if s["name"] == "remove_untracked" else True)
    assert r.status == "cancelled"
    before = repo.state()
    assert (repo.path / "notes with spaces.txt").exists()

    with pytest.raises(fr.ConfigError) as info:
        rb.resume(r.run_id)
    assert info.value.kind == "usage"
    assert "manual" in info.value.message and "approve" in info.value.message
    assert info.value.hint is not None and "approve=lambda step: True" in info.value.hint

    async def aresume() -> fr.RunResult:
        return await rb.aresume(r.run_id)

    with pytest.raises(fr.ConfigError, match="approve"):
        asyncio.run(aresume())
    assert repo.state() == before
    assert rb.run_details(r.run_id).status == "cancelled"
    assert statuses(rb.run_details(r.run_id))["remove_untracked"] == "pending"

    # With approve it finishes; `lambda step: True` runs the rest unasked.
    done = rb.resume(r.run_id, approve=lambda step: True)
    assert done.status == "succeeded"
    assert not (repo.path / "notes with spaces.txt").exists()


def test_arun_calls_approve_from_a_worker_thread(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    threads: set[int] = set()

    def approve(step: dict[str, Any]) -> bool:
        threads.add(threading.get_ident())
        return True

    r = asyncio.run(rb.arun("manual", target="v1", approve=approve, confirm=True))
    assert r.status == "succeeded"
    assert threads and threading.get_ident() not in threads


def test_manual_full_rollback_shows_the_sql_and_abort_undo_restores_the_database(make_db_app: Any) -> None:
    app: DbApp = make_db_app("sql", "sqlite")
    before_code, before_db = app.code_state(), app.dump()
    rb = app.open()
    asked: dict[str, dict[str, Any]] = {}

    def approve(step: dict[str, Any]) -> bool | str:
        asked[step["name"]] = step
        # The database is downgraded and the code reset; then the operator changes their mind.
        return "abort-undo" if step["name"] == "remove_untracked" else True

    r = rb.run("manual", target="v1", approve=approve, confirm=True)
    assert list(asked) == ["snapshot", "db_snapshot", "downgrade", "reset", "remove_untracked"]
    downgrade = asked["downgrade"]
    assert downgrade["step"]["sql"] is not None and "DROP TABLE payments" in downgrade["step"]["sql"]
    assert any("0003" in line for line in downgrade["preview"])
    assert r.status == "cancelled"
    assert statuses(r)["downgrade"] == "done"
    assert r.undone_by is not None
    assert app.dump() == before_db
    assert app.code_state() == before_code
