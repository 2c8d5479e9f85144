"""Issue 18, problem 10: hints in Python's words; a full rollback without `[database]` says so;
no `git` program points at the built-in backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import forge_rollback as fr
from forge_rollback._forge_rollback import cli_main  # what `python -m forge_rollback` runs
from forge_rollback.types import Event

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
    for w in [*planned.warnings, *r.warnings]:
        _no_cli_words(w)
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
    _no_cli_words(info.value.hint)


def test_hints_name_python_calls_not_cli_flags(tmp_path: Path) -> None:
    with pytest.raises(fr.ConfigError) as info:
        fr.Rollback.open(tmp_path)
    assert info.value.hint is not None
    assert "Rollback.open" in info.value.hint and "-C DIR" not in info.value.hint


def test_an_unset_database_url_variable_names_the_variable_and_the_key(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORGE_TEST_SURELY_UNSET_DB_URL", raising=False)
    (repo.path / "migrations").mkdir(exist_ok=True)
    (repo.path / "forge-rollback.toml").write_text(
        '[database]\nkind = "sql"\nurl_env = "FORGE_TEST_SURELY_UNSET_DB_URL"\nmigrations_dir = "migrations"\n'
    )
    head = repo.git("rev-parse", "HEAD")
    with pytest.raises(fr.ConfigError) as info:
        fr.Rollback.open(repo.path).run("full", target="v1", confirm=True)
    err = info.value
    assert err.kind == "usage"
    assert err.message == "database config: the environment variable `FORGE_TEST_SURELY_UNSET_DB_URL` is not set"
    assert err.key == "database.url_env"
    assert err.hint is not None and "set `FORGE_TEST_SURELY_UNSET_DB_URL` to the database URL" in err.hint
    _no_cli_words(err.hint)
    assert repo.git("rev-parse", "HEAD") == head, "nothing rolled back"


def test_a_bare_repository_hints_at_the_clone_the_app_runs_from(repo: Repo, tmp_path: Path) -> None:
    bare = tmp_path / "app.git"
    repo.git("clone", "-q", "--bare", str(repo.path), str(bare))
    with pytest.raises(fr.ConfigError) as info:
        fr.Rollback.open(bare)
    assert "is a bare repository" in info.value.message
    assert info.value.hint is not None and 'Rollback.open("/srv/app")' in info.value.hint
    _no_cli_words(info.value.hint)


def test_git2_refuses_a_file_written_through_a_filter_program(repo: Repo, tmp_path: Path) -> None:
    """The git2 back-end runs no filter program (git LFS, git-crypt): it refuses before writing."""
    rot13 = "tr A-Za-z N-ZA-Mn-za-m"
    repo.git("config", "filter.rot13.smudge", rot13)
    repo.git("config", "filter.rot13.clean", rot13)
    repo.git("stash", "-q", "--include-untracked")
    repo.write(".gitattributes", "*.secret filter=rot13\n")
    repo.write("app.secret", "password one\n")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "secret one")
    repo.git("tag", "secret-one")
    repo.write("app.secret", "password two\n")
    repo.git("commit", "-qam", "secret two")
    config = tmp_path / "git2.toml"
    config.write_text('[vcs]\nbackend = "git2"\n')
    head = repo.head()
    with pytest.raises(fr.RefusedError) as info:
        fr.Rollback.open(repo.path, config=config).run("fast", target="secret-one", confirm=True)
    assert "`app.secret` needs git's `rot13` filter" in info.value.message
    assert info.value.path == "app.secret"
    assert info.value.hint is not None and 'backend = "git-cli"' in info.value.hint
    assert repo.head() == head and (repo.path / "app.secret").read_text() == "password two\n"
    done = fr.Rollback.open(repo.path).run("fast", target="secret-one", confirm=True)
    assert done.status == "succeeded"
    assert (repo.path / "app.secret").read_text() == "password one\n"


def _no_cli_words(text: str) -> None:
    assert "forge-rollback " not in text and "`--" not in text, text


def test_python_words_after_the_cli_ran_in_this_process(
    repo: Repo,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wheel ships the CLI inside the module: `cli_main` (or `python -m forge_rollback`)
    running first must not turn later Python errors into CLI words, nor the reverse."""
    cli = ["forge-rollback", "-C", str(repo.path)]
    assert cli_main([*cli, "run", "--fast", "--yes"]) == 2
    err = capfd.readouterr().err
    assert "hint: pass `--target REV`, or mark a verified release with `forge-rollback known-good mark REV`" in err

    rb = fr.Rollback.open(repo.path)
    with pytest.raises(fr.RollbackError) as no_target:
        rb.run("fast", confirm=True)
    hint = no_target.value.hint
    assert hint == 'pass `target="REV"`, or mark a verified release with `known_good.mark("REV")`'
    assert f"hint: {hint}" in no_target.value.__notes__

    # A failed run: its log line, its error and the next run's refusal in Python's words.
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "before:remove_untracked")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")
    events: list[Event] = []
    with caplog.at_level("ERROR", logger="forge_rollback"):
        failed = rb.run("fast", target="v1", confirm=True, on_event=events.append)
    monkeypatch.delenv("FORGE_ROLLBACK_FAILPOINT")
    assert failed.status == "failed"
    run_id = failed.run_id
    line = f'Run {run_id} FAILED; `resume("{run_id}")` finishes it, `undo("{run_id}")` puts everything back'
    assert line in caplog.messages, caplog.messages
    hints = [e.get("hint") for e in events if e["event"] == "log" and e["message"] == f"Run {run_id} FAILED"]
    assert hints == [f'`resume("{run_id}")` finishes it, `undo("{run_id}")` puts everything back']

    # The CLI in between speaks its own words about the same run...
    assert cli_main([*cli, "run", "--fast", "--yes", "--target", "v1"]) == 4
    err = capfd.readouterr().err
    assert f"`forge-rollback resume {run_id}` or put everything back with `forge-rollback undo {run_id}`" in err

    # ...and Python, after it, still speaks Python's.
    with pytest.raises(fr.RefusedError) as refused:
        rb.run("fast", target="v1", confirm=True)
    assert refused.value.hint == (
        f'finish it with `resume("{run_id}")` or put everything back with `undo("{run_id}")`'
    )
    _no_cli_words(str(refused.value) + " ".join(refused.value.__notes__))
    assert rb.undo(run_id, confirm=True).status == "succeeded"



def test_a_failed_steps_advice_reaches_python_in_pythons_words(
    repo: Repo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The advice logged after a failed step is a hint like any other: `on_event` gets it in
    its `hint` key and the logged message ends with it, both in Python's words; the run's
    `warnings` keep the CLI's, as documented."""
    config = tmp_path / "restart.toml"
    config.write_text('[[restart]]\nname = "app"\nargv = ["false"]\n')
    rb = fr.Rollback.open(repo.path, config)
    events: list[Event] = []
    with caplog.at_level("WARNING", logger="forge_rollback"):
        r = rb.run("fast", target="v1", confirm=True, on_event=events.append)
    assert r.status == "failed"
    run_id = r.run_id
    advice = f'fix the service, then `resume("{run_id}")` runs the restart again'
    assert [e.get("hint") for e in events if e["event"] == "log" and e["level"] == "warn"] == [advice]
    assert f"hint: {advice}" in caplog.messages, caplog.messages
    for e in events:
        if e["event"] == "log":
            _no_cli_words(e["message"] + (e.get("hint") or ""))
    for m in caplog.messages:
        _no_cli_words(m)
    assert f"hint: fix the service, then `forge-rollback resume {run_id}` runs the restart again" in r.warnings
