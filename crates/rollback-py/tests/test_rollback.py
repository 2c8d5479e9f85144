"""assess / plan / run / undo against real git repositories, and the results' shape."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo

FAST_STEPS = ["snapshot", "reset", "remove_untracked", "clear_caches", "record"]


def test_assess_and_plan(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    a = rb.assess(target="v1")
    assert isinstance(a, fr.Assessment)
    assert a.head["commit"] == repo.commit_of("v3")
    assert a.head["branch"] == "main"
    assert a.target["commit"]["id"] == repo.commit_of("v1")
    assert a.target_is_ancestor is True
    assert a.commits_rolled_back_total == 2
    assert {c["path"] for c in a.changes} >= {"app.py", "lib/util.py", "lib/feature.py"}
    assert a.to_dict() == json.loads(a.to_json())
    assert a.recommended_level == a.to_dict()["recommended_level"]
    assert "Assessment(" in repr(a)

    p = rb.plan("fast", target="v1")
    assert isinstance(p, fr.Plan)
    assert [s["step"] for s in p.steps] == FAST_STEPS
    assert p.level == "fast"
    assert p.to_commit == repo.commit_of("v1")
    assert p.from_head == {"commit": repo.commit_of("v3"), "branch": "main"}
    assert p.to_dict() == json.loads(p.to_json())


def test_open_accepts_path_like_and_str(repo: Repo) -> None:
    by_path = fr.Rollback.open(repo.path)
    by_str = fr.Rollback.open(str(repo.path / "lib"))
    assert Path(by_path.workdir) == Path(by_str.workdir) == repo.path


def test_run_then_undo_round_trip(repo: Repo) -> None:
    before = repo.state()
    v1_tree_app = b"VERSION = 1\n"
    rb = fr.Rollback.open(repo.path)
    events: list[dict[str, Any]] = []

    r = rb.run("fast", target="v1", confirm=True, on_event=events.append, reason="release v3 broke login")
    assert isinstance(r, fr.RunResult)
    assert r.status == "succeeded"
    assert r.kind == "rollback"
    assert r.level == "fast"
    assert r.from_commit == repo.commit_of("v3")
    assert r.to_commit == repo.commit_of("v1")
    assert r.backup_id
    assert r.error is None
    assert [s["step"] for s in r.steps] == FAST_STEPS
    assert all(s["status"] == "done" for s in r.steps)
    assert r.to_dict() == json.loads(r.to_json())
    assert r.run_id is not None

    # The tree is v1's: HEAD, contents, no untracked files left.
    assert repo.head() == repo.commit_of("v1")
    assert repo.git("status", "--porcelain=v1", "-uall") == ""
    assert (repo.path / "app.py").read_bytes() == v1_tree_app
    assert not (repo.path / "notes with spaces.txt").exists()

    # Every event was a dict: log lines, each step started / finished, the snapshot's progress.
    kinds = {e["event"] for e in events}
    assert kinds == {"log", "step_started", "step_finished", "progress"}
    started = [e["step"] for e in events if e["event"] == "step_started"]
    assert started == FAST_STEPS
    assert any(e["event"] == "log" and "Rollback complete" in e["message"] for e in events)

    [summary] = rb.runs()
    assert isinstance(summary, fr.RunSummary)
    assert summary.run_id == r.run_id
    assert summary.status == "succeeded"
    assert summary.reason == "release v3 broke login"
    assert summary.backup_id == r.backup_id

    u = rb.undo(r.run_id, confirm=True)
    assert u.status == "succeeded"
    assert u.kind == "undo"
    assert u.undo_of == r.run_id
    assert repo.state() == before

    statuses = {s.run_id: s.status for s in rb.runs()}
    assert statuses == {r.run_id: "undone", u.run_id: "succeeded"}
    assert rb.run_details(r.run_id).status == "undone"

    backups = rb.backups()
    assert {b["id"] for b in backups} >= {r.backup_id}
    assert rb.verify_backups()["problems"] == []


def test_dry_run_changes_nothing(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    r = rb.run("fast", target="v1", dry_run=True)
    assert isinstance(r, fr.DryRunResult)
    assert r.status == "planned"
    assert [s["step"] for s in r.plan.steps] == FAST_STEPS
    assert repo.state() == before
    assert rb.runs() == []


def test_confirm_callback_gets_summary_and_plan(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    seen: list[tuple[str, fr.Plan]] = []

    def confirm(summary: str, plan: fr.Plan) -> bool:
        seen.append((summary, plan))
        return True

    r = rb.run("fast", target="v1", confirm=confirm)
    assert r.status == "succeeded"
    [(summary, plan)] = seen
    assert "Rollback level: fast" in summary
    assert plan.to_commit == repo.commit_of("v1")
    assert [s["step"] for s in plan.steps] == FAST_STEPS


def test_failed_step_returns_failed_result_and_undo_restores(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "before:remove_untracked")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")
    r = rb.run("fast", target="v1", confirm=True)
    monkeypatch.delenv("FORGE_ROLLBACK_FAILPOINT")
    # Mirrors the CLI (JSON printed, exit 1): a failed step is a result, not an exception.
    assert r.status == "failed"
    assert r.error is not None and "injected failure" in r.error
    assert {s["step"]: s["status"] for s in r.steps}["remove_untracked"] == "failed"
    assert repo.head() == repo.commit_of("v1")

    # An unfinished run blocks new runs until it is resumed or undone.
    with pytest.raises(fr.RefusedError) as info:
        rb.run("fast", target="v2", confirm=True)
    assert info.value.hint is not None and r.run_id is not None and r.run_id in info.value.hint
    # In Python's words, not the CLI's.
    assert f'resume("{r.run_id}")' in info.value.hint and f'undo("{r.run_id}")' in info.value.hint
    assert "forge-rollback" not in info.value.hint

    assert r.run_id is not None
    rb.undo(r.run_id, confirm=True)
    assert repo.state() == before


def test_resume_finishes_a_failed_run(repo: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    rb = fr.Rollback.open(repo.path)
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "before:clear_caches")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")
    r = rb.run("fast", target="v1", confirm=True)
    assert r.status == "failed" and r.run_id is not None
    monkeypatch.delenv("FORGE_ROLLBACK_FAILPOINT")
    done = rb.resume(r.run_id)
    assert done.status == "succeeded"
    assert done.run_id == r.run_id
    assert repo.git("status", "--porcelain=v1", "-uall") == ""


def test_known_good_registry(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    kg = rb.known_good
    assert isinstance(kg, fr.KnownGood)
    assert kg.list()["commits"] == []
    out = kg.mark("v2", note="ran a week")
    assert out["updated"] is False
    assert out["entry"]["hash"] == repo.commit_of("v2")
    assert out["entry"]["verified"] is True
    # With no explicit target, the newest verified known-good commit is the target.
    assert rb.assess().target["commit"]["id"] == repo.commit_of("v2")

    bad = kg.bad("v1", note="broke billing")
    assert bad["entry"]["hash"] == repo.commit_of("v1")
    with pytest.raises(fr.RefusedError) as info:
        rb.run("fast", target="v1", confirm=True)
    assert "marked bad" in str(info.value)

    removed = kg.unmark("v1")
    assert removed["hash"] == repo.commit_of("v1")
    assert [c["hash"] for c in kg.list()["commits"]] == [repo.commit_of("v2")]


def test_report_matches_the_cli_and_follows_the_template(repo: Repo, cli: Path) -> None:
    import os
    import subprocess

    rb = fr.Rollback.open(repo.path)
    r = rb.run("fast", target="v1", confirm=True, reason="v3 answers 500", severity="high")
    md = rb.report(r.run_id)
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Issue Description", "## Symptoms", "## Root Cause"]
    assert "**Severity**: High" in md
    assert "v3 answers 500" in md
    data = json.loads(rb.report(r.run_id, format="json"))
    assert data["run_id"] == r.run_id
    assert data["severity"] == "high"
    on_disk = (repo.path / ".git" / "forge-rollback" / "runs" / r.run_id / "report.md").read_text()
    assert on_disk == md
    with pytest.raises(fr.ConfigError):
        rb.report(r.run_id, format="pdf")
    out = subprocess.run(
        [str(cli), "-C", str(repo.path), "report", r.run_id],
        capture_output=True, text=True, check=True, env={**os.environ, "NO_COLOR": "1"},
    )
    assert out.stdout == md


def test_every_result_attribute_reads_a_field_the_core_writes(repo: Repo, every_getter: Any) -> None:
    rb = fr.Rollback.open(repo.path)
    a = every_getter(rb.assess(target="v1"))
    assert a["target_is_ancestor"] is True and a["commits_rolled_back_total"] == 2
    p = every_getter(rb.plan("fast", target="v1"))
    assert p["level"] == "fast" and p["undo_of"] is None
    r = rb.run("fast", target="v1", confirm=True)
    got = every_getter(r)
    assert got["status"] == "succeeded" and got["run_id"] == r.run_id and got["plan"] is None
    summary = every_getter(rb.runs()[0])
    assert summary["run_id"] == r.run_id and summary["interrupted"] is False
    dry = rb.run("fast", target="v1", dry_run=True)
    assert every_getter(dry)["plan"] is not None



def test_a_rollback_that_moves_a_submodule_warns_and_assess_marks_it(tmp_path: Path) -> None:
    """The core's submodule notice reaches Python as the CLI prints it: a risk and a marked
    change in the assessment, a warning on the result with the command to run."""

    def git(cwd: Path, *args: str) -> None:
        cmd = ["git", "-c", "protocol.file.allow=always", *args]
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)

    lib, app = tmp_path / "lib", tmp_path / "app"
    for d in (lib, app):
        d.mkdir()
        git(d, "init", "-q", "-b", "main")
    (lib / "lib.py").write_text("V = 1\n")
    git(lib, "add", "-A")
    git(lib, "commit", "-q", "-m", "lib v1")
    (app / "app.py").write_text("import lib\n")
    git(app, "submodule", "add", "-q", str(lib), "vendor/lib")
    git(app, "add", "-A")
    git(app, "commit", "-q", "-m", "app with lib v1")
    (lib / "lib.py").write_text("V = 2\n")
    git(lib, "commit", "-q", "-am", "lib v2")
    git(app / "vendor/lib", "pull", "-q", "origin", "main")
    git(app, "commit", "-q", "-am", "lib v2")

    rb = fr.Rollback.open(app)
    a = rb.assess(target="HEAD~1")
    assert [c for c in a.changes if c.get("submodule")] == [
        {"path": "vendor/lib", "kind": "modified", "category": "code", "submodule": True}
    ]
    assert "submodule_changed" in {r["code"] for r in a.risks}

    r = rb.run("fast", target="HEAD~1", confirm=True)
    assert r.status == "succeeded"
    assert any("git submodule update --recursive -- vendor/lib" in w for w in r.warnings), r.warnings


def test_an_actor_with_line_breaks_and_escapes_stays_on_its_report_line(repo: Repo) -> None:
    """`actor` comes from wherever an app learns who asked (a chat name, a JSON body): a line
    break in it must not start a header field of its own (a false `**Status**`), and an escape
    sequence must not reach the terminal of whoever reads the report."""
    repo.write("forge-rollback.toml", '[[restart]]\nname = "svc"\nargv = ["false"]\n')
    rb = fr.Rollback.open(repo.path)
    r = rb.run("fast", target="v1", confirm=True, actor="mallory\n**Status**: Succeeded\n\x1b[2J")
    assert r.status == "failed"
    md = rb.report(r.run_id, format="md")
    assert "\x1b" not in md
    [triggered] = [line for line in md.splitlines() if line.startswith("**Triggered by**")]
    assert "mallory" in triggered and "\\u{1b}[2J" in triggered
    assert [line for line in md.splitlines() if line.startswith("**Status**")] == ["**Status**: Failed"]
    # The journal keeps what was passed.
    assert json.loads(rb.report(r.run_id, format="json"))["actor"] == "mallory\n**Status**: Succeeded\n\x1b[2J"
