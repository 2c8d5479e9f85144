"""A dry run to a target marked bad is refused like the run; `known_good.mark` of a commit marked
bad is refused unless the mark is lifted. Python and the CLI compiled into the module (what
`python -m forge_rollback` runs) say the same, each in its own words."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr
from forge_rollback._forge_rollback import cli_main

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import DbApp, Repo


def _registry(repo: Repo) -> bytes:
    return (repo.path / "rollback/config/known-good-commits.json").read_bytes()


def test_a_dry_run_to_a_target_marked_bad_is_refused_like_the_run(
    repo: Repo, capfd: pytest.CaptureFixture[str]
) -> None:
    rb = fr.Rollback.open(repo.path)
    rb.known_good.bad("v1", note="broke login")
    before = repo.state()
    with pytest.raises(fr.RefusedError) as real:
        rb.run("fast", target="v1", confirm=True)
    for level in ("fast", "full"):
        with pytest.raises(fr.RefusedError) as dry:
            rb.run(level, target="v1", dry_run=True)
        assert dry.value.kind == "refused"
        assert dry.value.message == real.value.message
        assert "is marked bad in the known-good registry" in dry.value.message
        assert dry.value.hint == real.value.hint
        assert dry.value.hint is not None and 'known_good.unmark("' in dry.value.hint
    assert repo.state() == before

    # The CLI in this module: the same refusal, exit 4, for the run and its dry run.
    cli = ["forge-rollback", "-C", str(repo.path)]
    assert cli_main([*cli, "run", "--fast", "--dry-run", "--target", "v1"]) == 4
    err = capfd.readouterr().err
    assert f"error: {real.value.message}" in err
    assert "hint: pick another target, or `forge-rollback known-good unmark " in err
    assert cli_main([*cli, "run", "--fast", "--yes", "--target", "v1"]) == 4
    assert f"error: {real.value.message}" in capfd.readouterr().err

    # Other refusals are still warnings of the plan; once the mark is lifted, the dry run plans.
    side = repo.git("commit-tree", "v1^{tree}", "-m", "side")
    other = rb.run("fast", target=side, dry_run=True)
    assert any(w.startswith("a run would refuse: the target ") and "not an ancestor" in w for w in other.warnings)
    rb.known_good.unmark("v1")
    assert rb.run("fast", target="v1", dry_run=True).status == "planned"


def test_marking_a_commit_marked_bad_known_good_needs_lift_bad(
    repo: Repo, capfd: pytest.CaptureFixture[str]
) -> None:
    rb = fr.Rollback.open(repo.path)
    kg = rb.known_good
    kg.bad("v1", note="broke login")
    short = repo.commit_of("v1")[:7]
    before = _registry(repo)
    with pytest.raises(fr.RefusedError) as info:
        kg.mark("v1", note="looks fine")
    err = info.value
    assert err.kind == "refused"
    assert err.message.startswith(f"commit {short} is marked known bad in the registry (marked ")
    assert err.message.endswith(": broke login): marking it known-good would lift that mark")
    assert err.hint is not None and "pass `lift_bad=True`" in err.hint and "--lift-bad" not in err.hint
    assert _registry(repo) == before, "nothing written"

    # The CLI refuses with the same message, exit 4, and names its flag.
    cli = ["forge-rollback", "-C", str(repo.path)]
    assert cli_main([*cli, "known-good", "mark", "v1"]) == 4
    out = capfd.readouterr()
    assert f"error: {err.message}" in out.err
    assert "pass `--lift-bad`" in out.err
    assert _registry(repo) == before

    lifted = kg.mark("v1", note="fixed upstream", lift_bad=True)
    assert lifted["entry"]["verified"] is True
    assert not lifted["entry"].get("known_bad", False)
    assert any(
        n.startswith(f"lifted the known-bad mark of {short} (marked ") and n.endswith(": broke login)")
        for n in lifted["notes"]
    ), lifted["notes"]

    # The CLI's flag does the same (bad again first), with the note in its JSON.
    kg.bad("v1", note="broke login again")
    assert cli_main([*cli, "--json", "known-good", "mark", "v1", "--lift-bad"]) == 0
    marked = json.loads(capfd.readouterr().out)
    assert marked["entry"]["verified"] is True
    assert any("broke login again" in n for n in marked["notes"]), marked


def test_undo_behind_an_unfinished_undo_names_it_like_the_cli(make_db_app: Any, cli: Path) -> None:
    """Undo R while an undo U of R stopped half-way (its database restored, its code not): the
    module (`confirm=True`, the CLI's `--yes`, or a confirm callback, the CLI's prompt) refuses
    as the CLI does, naming U, not with U's half-done work taken for writes made since R."""
    app: DbApp = make_db_app("sql", "sqlite")
    rb = app.open()
    r = rb.run("full", target="v1", confirm=True)

    def stop_at_reset(event: dict[str, Any]) -> None:
        if event["event"] == "step_started" and event["step"] == "reset":
            raise fr.AbortRollback("operator stopped the undo")

    with pytest.raises(fr.AbortRollback) as stopped:
        rb.undo(r.run_id, confirm=True, on_event=stop_at_reset)
    u = getattr(stopped.value, "run_id")
    assert rb.run_details(u).status == "cancelled"

    out = subprocess.run(
        [cli, "-C", app.repo.path, "--config", app.config, "undo", r.run_id, "--yes"], capture_output=True, text=True
    )
    assert out.returncode == 4, out.stderr
    assert f"run {u} is unfinished" in out.stderr
    for confirm in (True, lambda summary, plan: True):
        with pytest.raises(fr.RefusedError) as refused:
            rb.undo(r.run_id, confirm=confirm)
        assert refused.value.message == f"run {u} is unfinished"
        assert refused.value.hint is not None and u in refused.value.hint
