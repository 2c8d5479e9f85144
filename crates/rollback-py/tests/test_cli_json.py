"""The Python results and the CLI's `--json` come from the same serde values.

Needs the `forge-rollback` binary: `FORGE_ROLLBACK_BIN`, else
`$CARGO_TARGET_DIR/debug/forge-rollback`, else `<workspace>/target/debug/forge-rollback`
(`cargo build -p rollback-cli`).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import DbApp, Repo


def run_cli(cli: Path, repo: Repo, *args: str, config: Path | None = None) -> str:
    """`forge-rollback -C REPO [--config FILE] ARGS`, in this process's environment (which
    holds `DATABASE_URL` for the database tests)."""
    extra = ["--config", str(config)] if config else []
    out = subprocess.run(
        [str(cli), "-C", str(repo.path), *extra, *args], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_assess_json_matches_cli(cli: Path, repo: Repo) -> None:
    stdout = run_cli(cli, repo, "assess", "--json", "--target", "v1")
    a = fr.Rollback.open(repo.path).assess(target="v1")
    assert json.loads(stdout) == a.to_dict()
    assert stdout == a.to_json() + "\n"


def test_plan_json_matches_cli(cli: Path, repo: Repo) -> None:
    stdout = run_cli(cli, repo, "plan", "--fast", "--json", "--target", "v1")
    p = fr.Rollback.open(repo.path).plan("fast", target="v1")
    assert json.loads(stdout) == p.to_dict()
    assert stdout == p.to_json() + "\n"


def test_registry_runs_and_backups_json_match_cli(cli: Path, repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    rb.known_good.mark("v1", note="verified")
    registry = json.loads(run_cli(cli, repo, "known-good", "list", "--json"))
    assert registry == rb.known_good.list()
    assert registry["commits"][0]["hash"] == repo.commit_of("v1")

    r = rb.run("fast", target="v1", confirm=True)
    assert r.status == "succeeded"

    runs: list[dict[str, Any]] = json.loads(run_cli(cli, repo, "runs", "list", "--json"))
    assert runs == [s.to_dict() for s in rb.runs()]
    assert runs[0]["run_id"] == r.run_id
    # Where each run ran: a state folder shared by clones lists theirs too.
    assert rb.runs()[0].workdir == str(rb.workdir) and rb.runs()[0].other_worktree is False

    backups = json.loads(run_cli(cli, repo, "backups", "list", "--json"))
    assert backups == rb.backups()


@pytest.mark.parametrize(("kind", "engine"), [("sql", "sqlite"), ("alembic", "sqlite"), ("alembic", "postgres")])
def test_assess_and_plan_with_a_database_match_cli(cli: Path, make_db_app: Any, kind: str, engine: str) -> None:
    """With `[database]` and an env record: the database assessment, the env diff (key names)
    and the downgrade step with its SQL come out the same from both front-ends."""
    app: DbApp = make_db_app(kind, engine)
    rb = app.open()

    # No target: the registry's newest verified known-good commit (v1).
    stdout = run_cli(cli, app.repo, "assess", "--json", config=app.config)
    a = rb.assess()
    assert json.loads(stdout) == a.to_dict()
    assert stdout == a.to_json() + "\n"
    assert a.database is not None and a.database["needs_downgrade"] is True
    assert a.env is not None and a.env["diffs"]

    for level, target in [("full", "v2"), ("manual", "v1"), ("fast", "v1")]:
        stdout = run_cli(cli, app.repo, "plan", f"--{level}", "--json", "--target", target, config=app.config)
        p = rb.plan(level, target=target)  # type: ignore[arg-type]
        assert json.loads(stdout) == p.to_dict()
        assert stdout == p.to_json() + "\n"
        steps = [s["step"] for s in p.steps]
        assert ("downgrade" in steps) == (level != "fast")

    if app.password:
        assert app.password not in a.to_json()
