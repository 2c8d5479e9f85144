"""Issue 18, problems 6-8: results are typed values; the async API covers every method."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import DbApp, Repo


def test_results_are_values(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    a = rb.assess(target="v1")
    p = rb.plan("fast", target="v1")
    r = rb.run("fast", target="v1", confirm=True)
    [s] = rb.runs()
    for value in (a, p, r, s):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value and copy.copy(value) == value
        assert hash(copy.deepcopy(value)) == hash(value)
        assert type(value).from_dict(value.to_dict()) == value  # type: ignore[attr-defined]
        assert json.loads(json.dumps(value, default=fr.json_default)) == value.to_dict()
    # Equal by value: the same run read twice; different results differ.
    assert rb.runs()[0] == s and rb.runs()[0] is not s
    assert a != p
    assert {s: 1}[rb.runs()[0]] == 1


def test_a_result_inside_another_is_the_same_value_with_the_same_hash_and_text(repo: Repo) -> None:
    # A plan read from a dry run against one asked for, and pickled copies: equal, equal
    # hashes (one set entry), and the CLI's text (`plan --json`) in both.
    rb = fr.Rollback.open(repo.path)
    nested = rb.run("fast", target="v1", dry_run=True).plan
    direct = rb.plan("fast", target="v1")
    copied = pickle.loads(pickle.dumps(nested))
    assert nested == direct == copied
    assert hash(nested) == hash(direct) == hash(copied)
    assert len({nested, direct, copied}) == 1
    assert nested.to_json() == direct.to_json()
    # A verification round inside a run, and its pickled copy.
    real = rb.run("fast", target="v1", confirm=True)
    round_ = {"passed": True, "started_at": real.started_at, "duration_ms": 3, "checks": []}
    r = fr.RunResult.from_dict({**real.to_dict(), "verification": round_})
    report = r.verification
    assert report is not None
    again = pickle.loads(pickle.dumps(report))
    assert report == again and hash(report) == hash(again) and len({report, again}) == 1
    assert report.to_json() == fr.VerificationReport.from_dict(round_).to_json()


def test_workdir_is_a_str_and_paths_that_are_not_utf8_are_their_bytes(repo: Repo) -> None:
    # The work tree moved into a folder whose name is not UTF-8.
    root = os.fsdecode(os.fsencode(str(repo.path.parent)) + b"/caf\xe9")
    os.rename(repo.path, root)
    (Path(root) / os.fsdecode(b"r\xe9sum\xe9.txt")).write_bytes(b"x\n")
    rb = fr.Rollback.open(root)
    a = rb.assess(target="v1")
    plan = rb.plan("fast", target="v1")
    for workdir in (rb.workdir, a.workdir, plan.workdir):
        assert isinstance(workdir, str) and os.fsencode(workdir) == os.fsencode(root)
    # The dicts are the CLI's JSON: a name that is not UTF-8 is the list of its bytes, and
    # `path_str` gives the `str` `os.fsdecode` would.
    assert a.to_dict()["workdir"] == list(os.fsencode(root))
    names = [fr.path_str(p) for p in a.dirty["untracked"]]
    assert os.fsdecode(b"r\xe9sum\xe9.txt") in names and "notes with spaces.txt" in names
    assert fr.path_str("plain.txt") == "plain.txt"
    r = rb.run("fast", target="v1", confirm=True)
    assert r.status == "succeeded" and not (Path(root) / os.fsdecode(b"r\xe9sum\xe9.txt")).exists()
    rb.undo(r.run_id, confirm=True)
    assert (Path(root) / os.fsdecode(b"r\xe9sum\xe9.txt")).read_bytes() == b"x\n"
    assert [s.run_id for s in rb.runs()][0] == r.run_id
    assert (Path(root) / "app.py").read_text() == "VERSION = 3  # hotfix in progress\n"


def test_results_can_be_built_for_tests_and_are_checked(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    real = rb.run("fast", target="v1", confirm=True).to_dict()
    fake = fr.RunResult.from_dict({**real, "status": "failed", "error": "disk full"})
    assert fake.status == "failed" and fake.error == "disk full"
    with pytest.raises(fr.StepFailedError):
        fake.raise_for_status()
    with pytest.raises(ValueError, match="not a RunResult"):
        fr.RunResult.from_dict({**real, "status": "exploded"})
    with pytest.raises(ValueError, match="not a RunResult"):
        fr.RunResult.from_json("{}")


def test_from_dict_refuses_a_dry_run_as_a_run_and_a_run_as_a_dry_run(repo: Repo) -> None:
    """A `RunResult` always has a `run_id` (a `str`) and a real status; a `DryRunResult` is
    always `planned`, with no run id, and has its plan: the stub's types hold for fakes too."""
    rb = fr.Rollback.open(repo.path)
    dry = rb.run("fast", target="v1", dry_run=True).to_dict()
    real = rb.run("fast", target="v1", confirm=True).to_dict()
    with pytest.raises(ValueError, match="not a RunResult: a run that happened has a `run_id`"):
        fr.RunResult.from_dict(dry)
    with pytest.raises(ValueError, match="not a RunResult"):
        fr.RunResult.from_dict({**real, "status": "planned"})
    with pytest.raises(ValueError, match="not a RunResult"):
        fr.RunResult.from_dict({**real, "run_id": None})
    with pytest.raises(ValueError, match="not a DryRunResult: a dry run has no `run_id`"):
        fr.DryRunResult.from_dict(real)
    with pytest.raises(ValueError, match="not a DryRunResult"):
        fr.DryRunResult.from_dict({**dry, "status": "succeeded"})
    with pytest.raises(ValueError, match="not a DryRunResult"):
        fr.DryRunResult.from_dict({k: v for k, v in dry.items() if k != "plan"})
    # The real shapes still round-trip.
    assert fr.RunResult.from_dict(real).to_dict() == real
    assert fr.DryRunResult.from_dict(dry).to_dict() == dry


def test_a_run_has_a_str_run_id_and_a_dry_run_is_its_own_type(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    planned = rb.run("fast", target="v1", dry_run=True)
    assert isinstance(planned, fr.DryRunResult) and not hasattr(planned, "run_id")
    assert isinstance(planned.plan, fr.Plan)
    r = rb.run("fast", target="v1", confirm=True)
    assert isinstance(r, fr.RunResult) and isinstance(r.run_id, str)


def test_run_verification_is_a_verification_report(repo: Repo) -> None:
    # The same class as VerificationError.report (test_verify runs a failing round for real).
    rb = fr.Rollback.open(repo.path)
    real = rb.run("fast", target="v1", confirm=True)
    assert real.verification is None  # no checks configured
    round_ = {"passed": False, "started_at": real.started_at, "duration_ms": 3, "checks": []}
    r = fr.RunResult.from_dict({**real.to_dict(), "status": "verification_failed", "verification": round_})
    assert isinstance(r.verification, fr.VerificationReport) and r.verification.passed is False
    with pytest.raises(fr.VerificationError) as info:
        r.raise_for_status()
    assert info.value.report == r.verification


def same_registry(a: dict, b: dict) -> bool:
    """Two reads of the registry: equal but for `last_updated`, which a registry that was never
    written gets from the clock at each read."""
    strip = lambda d: {k: v for k, v in d.items() if k != "last_updated"}  # noqa: E731
    return strip(a) == strip(b)


def test_every_io_method_has_an_async_twin(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)

    async def main() -> None:
        assert (await rb.aplan("fast", target="v1")) == rb.plan("fast", target="v1")
        r = await rb.arun("fast", target="v1", confirm=True)
        assert isinstance(r, fr.RunResult)
        assert (await rb.aruns()) == rb.runs()
        assert (await rb.arun_details(r.run_id)) == rb.run_details(r.run_id)
        # (The report is generated when asked: its time may differ.)
        areport = json.loads(await rb.areport(r.run_id, format="json"))
        assert areport.keys() == json.loads(rb.report(r.run_id, format="json")).keys()
        assert r.run_id in await rb.areport(r.run_id)
        assert same_registry(await rb.aknown_good(), rb.known_good.list())
        assert (await rb.abackups()) == rb.backups()
        assert (await rb.averify_backups()) == rb.verify_backups()
        assert (await rb.alock_holder()) is None
        marked = await rb.known_good.amark("HEAD", note="async")
        assert marked["entry"]["hash"] == repo.commit_of("v1")
        assert (await rb.known_good.aunmark("HEAD"))["hash"] == repo.commit_of("v1")
        assert (await rb.known_good.abad("v3"))["entry"]["hash"] == repo.commit_of("v3")
        assert same_registry(await rb.known_good.alist(), rb.known_good.list())
        undone = await rb.aundo(r.run_id, confirm=True)
        assert undone.status == "succeeded"

    asyncio.run(main())


def test_failed_run_resumes_asynchronously(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    rb = fr.Rollback.open(repo.path)
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "before:remove_untracked")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")
    r = rb.run("fast", target="v1", confirm=True)
    assert r.status == "failed"
    monkeypatch.delenv("FORGE_ROLLBACK_FAILPOINT")
    resumed = asyncio.run(rb.aresume(r.run_id))
    assert resumed.status == "succeeded"


def test_aplan_full_keeps_the_loop_free(make_db_app: Any) -> None:
    app: DbApp = make_db_app("alembic", "sqlite")
    rb = app.open()
    ticks = 0

    async def main() -> fr.Plan:
        nonlocal ticks
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        plan = await rb.aplan("full")
        done = True
        await task
        return plan

    plan = asyncio.run(main())
    assert "downgrade" in [s["step"] for s in plan.steps]
    # Alembic ran in a child process while the loop kept turning.
    assert ticks > 1
