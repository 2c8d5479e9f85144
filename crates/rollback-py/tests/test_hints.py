"""Issue 18, problem 10: hints in Python's words; a full rollback without `[database]` says so;
no `git` program points at the built-in backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo

NO_DATABASE = "no `[database]` is configured"


def test_full_rollback_without_a_database_says_so(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    planned = rb.run("full", target="v1", dry_run=True)
    assert any(NO_DATABASE in w for w in planned.warnings)
    r = rb.run("full", target="v1", confirm=True)
    assert r.status == "succeeded" and r.level == "full"
    assert any(NO_DATABASE in w for w in r.warnings)
    # A fast rollback never touches the database: nothing to say.
    undone = rb.undo(r.run_id, confirm=True)
    fast = rb.run("fast", target="v1", confirm=True)
    assert undone.status == "succeeded"
    assert not any(NO_DATABASE in w for w in fast.warnings)


def test_missing_git_program_hints_at_the_git2_backend(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo.path / "forge-rollback.toml").write_text('[vcs]\nbackend = "git-cli"\n')
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(fr.VcsError) as info:
        fr.Rollback.open(repo.path).assess(target="v1")
    assert info.value.hint is not None and 'backend = "git2"' in info.value.hint


def test_hints_name_python_calls_not_cli_flags(tmp_path: Path) -> None:
    with pytest.raises(fr.ConfigError) as info:
        fr.Rollback.open(tmp_path)
    assert info.value.hint is not None
    assert "Rollback.open" in info.value.hint and "-C DIR" not in info.value.hint
