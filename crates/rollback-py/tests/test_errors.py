"""Errors: one class per family, with kind, hint and message; callbacks that raise."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo


FIELDS: dict[type[fr.RollbackError], list[str]] = {
    fr.ConfigError: ["path", "key", "revision"],
    fr.VcsError: ["path"],
    fr.BackupError: ["snapshot", "path"],
    fr.DatabaseError: ["database", "revision", "path", "program"],
    fr.LockHeldError: ["holder", "path"],
    fr.RefusedError: ["path"],
    fr.CancelledError: ["run_id"],
    fr.StepFailedError: ["run_id", "step"],
    fr.VerificationError: ["run_id", "report", "failed"],
}


def test_hierarchy() -> None:
    for cls, fields in FIELDS.items():
        assert issubclass(cls, fr.RollbackError)
        assert cls.__doc__
        # Every field exists on the class (None), so an instance made in Python has it too.
        for name in fields:
            assert getattr(cls, name) is None, (cls, name)
        e = cls("made in Python")
        assert e.hint is None
    assert issubclass(fr.RollbackError, Exception)


def test_an_exception_made_by_hand_has_its_kind_and_message() -> None:
    kinds = {
        fr.RollbackError: "failed",
        fr.ConfigError: "usage",
        fr.VcsError: "failed",
        fr.BackupError: "failed",
        fr.DatabaseError: "failed",
        fr.LockHeldError: "locked",
        fr.RefusedError: "refused",
        fr.CancelledError: "cancelled",
        fr.StepFailedError: "failed",
        fr.VerificationError: "failed",
    }
    for cls, kind in kinds.items():
        e = cls("made in Python")
        assert (e.kind, e.message, e.hint) == (kind, "made in Python", None), cls
        assert cls().message == ""
    # The message set on an instance (as on every error the core raises) wins.
    e = fr.CancelledError("made in Python")
    e.message = "set later"
    assert e.message == "set later"


def test_open_accepts_str_bytes_and_path_likes_and_says_so(repo: Repo) -> None:
    want = fr.Rollback.open(repo.path).workdir
    assert fr.Rollback.open(os.fsencode(repo.path)).workdir == want
    assert fr.Rollback.open(str(repo.path), config=None).workdir == want
    with pytest.raises(TypeError, match="expected str, bytes or os.PathLike object, not int"):
        fr.Rollback.open(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected str, bytes or os.PathLike object, not int"):
        fr.Rollback.open(repo.path, config=3)  # type: ignore[arg-type]


def test_a_relative_config_is_relative_to_the_current_directory(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `open()` and every Python file API read a relative path; never the repository's
    file of the same name."""
    check = '[[checks]]\nname = "{}"\nkind = "command"\nargv = ["true"]\n'
    (tmp_path / "ops.toml").write_text(check.format("from-cwd"))
    (repo.path / "ops.toml").write_text(check.format("from-repo"))
    monkeypatch.chdir(tmp_path)
    rb = fr.Rollback.open(repo.path.name, config="ops.toml")
    assert [c["name"] for c in rb.verify().checks] == ["from-cwd"]
    assert [c["name"] for c in fr.Rollback.open("repo", config=b"ops.toml").verify().checks] == ["from-cwd"]
    (tmp_path / "ops.toml").unlink()
    with pytest.raises(fr.ConfigError) as info:
        fr.Rollback.open("repo", config="ops.toml")
    assert info.value.path == str(tmp_path / "ops.toml")


def test_unknown_revision_is_a_config_error_with_a_hint(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    with pytest.raises(fr.ConfigError) as info:
        rb.assess(target="no-such-release")
    err = info.value
    assert err.kind == "usage"
    assert "no-such-release" in err.message
    assert err.revision == "no-such-release"
    assert err.path is None and err.key is None
    assert str(err) == err.message
    assert err.hint is not None and "git log" in err.hint
    assert f"hint: {err.hint}" in getattr(err, "__notes__", [])


def test_unknown_level_is_a_config_error(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    with pytest.raises(fr.ConfigError, match="unknown rollback level `quick`"):
        rb.plan("quick", target="v1")  # type: ignore[arg-type]


def test_full_level_without_database_or_env_adds_nothing(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    assert rb.assess(target="v1").database is None
    assert rb.assess(target="v1").env is None
    assert [s["step"] for s in rb.plan("full", target="v1").steps] == [s["step"] for s in rb.plan("fast", target="v1").steps]


def test_invalid_config_names_the_file_and_key(repo: Repo, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[verify]\ntimeout_secs = 0\n")
    with pytest.raises(fr.ConfigError) as info:
        fr.Rollback.open(repo.path, config=config)
    assert info.value.path == str(config)
    assert info.value.key == "verify.timeout_secs"
    assert info.value.hint is not None


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ('[database]\nkind = "sql"\n', "database.url"),
        ('[database]\nkind = "sql"\nurl = "sqlite:///app.db"\ntimeout_secs = 0\n', "database.timeout_secs"),
        ('[deploy]\nstrategy = "railway"\nenvironment_id = "env-1"\n', "deploy.service_id"),
    ],
)
def test_invalid_config_key_is_named_as_written(repo: Repo, tmp_path: Path, toml: str, key: str) -> None:
    # The key as it is in the file, so that code can dispatch on `.key`; never named twice
    # (`database.database.url`).
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    with pytest.raises(fr.ConfigError) as info:
        fr.Rollback.open(repo.path, config=config)
    assert info.value.key == key
    assert str(info.value).startswith(f"invalid config `{config}`: {key}: "), str(info.value)


def test_upgrade_database_without_a_database_is_a_config_error(repo: Repo) -> None:
    with pytest.raises(fr.ConfigError, match="no `\\[database\\]` is configured"):
        fr.Rollback.open(repo.path).upgrade_database()


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(fr.ConfigError) as info:
        fr.Rollback.open(tmp_path)
    assert info.value.kind == "usage"
    assert info.value.hint is not None


def test_missing_config_file(repo: Repo) -> None:
    with pytest.raises(fr.ConfigError) as info:
        fr.Rollback.open(repo.path, config=repo.path / "nope.toml")
    assert "nope.toml" in str(info.value)
    assert info.value.path == str(repo.path / "nope.toml")


def test_detached_head_is_refused(repo: Repo) -> None:
    repo.git("checkout", "-q", "--detach")
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    with pytest.raises(fr.RefusedError) as info:
        rb.run("fast", target="v1", confirm=True)
    assert info.value.kind == "refused"
    assert "detached" in info.value.message
    assert info.value.hint is not None and "git switch" in info.value.hint
    assert info.value.path is None
    assert repo.state() == before
    assert rb.runs() == []


@pytest.mark.parametrize("confirm", [False, lambda summary, plan: False], ids=["false", "callback"])
def test_declined_confirmation_is_cancelled_and_changes_nothing(repo: Repo, confirm: Any) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    with pytest.raises(fr.CancelledError) as info:
        rb.run("fast", target="v1", confirm=confirm)
    assert info.value.kind == "cancelled"
    assert repo.state() == before
    assert rb.runs() == []
    assert rb.backups() == []


def test_on_event_must_be_callable(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    with pytest.raises(TypeError, match="on_event must be callable"):
        rb.run("fast", target="v1", on_event=42, confirm=True)  # type: ignore[arg-type]


def test_confirm_callback_raising_propagates_and_changes_nothing(repo: Repo) -> None:
    before = repo.state()
    rb = fr.Rollback.open(repo.path)
    boom = KeyError("operator console unavailable")

    def confirm(summary: str, plan: fr.Plan) -> bool:
        raise boom

    with pytest.raises(KeyError) as info:
        rb.run("fast", target="v1", confirm=confirm)
    assert info.value is boom
    assert repo.state() == before
    assert rb.runs() == []


def test_a_git_writing_the_repository_is_a_lock_held_error_naming_the_file(repo: Repo) -> None:
    # `.git/index.lock` that stays: a git process is writing the repository (or a killed one
    # left the file); the run waits for it, then refuses as the CLI does (exit 3).
    index_lock = repo.path / ".git" / "index.lock"
    index_lock.write_bytes(b"")
    before = repo.state()
    with pytest.raises(fr.LockHeldError) as info:
        fr.Rollback.open(repo.path).run("fast", target="v1", confirm=True)
    assert info.value.kind == "locked" and info.value.holder is None
    assert info.value.path is not None and info.value.path.endswith("index.lock")
    assert "a git process is writing the repository" in str(info.value)
    assert info.value.hint is not None and "remove" in info.value.hint
    assert repo.state() == before
    assert fr.Rollback.open(repo.path).runs() == []


def test_second_run_while_one_holds_the_lock(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "release"
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "after:lock")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_RELEASE", str(release))
    rb = fr.Rollback.open(repo.path)
    results: list[fr.RunResult] = []

    def first() -> None:
        results.append(rb.run("fast", target="v1", confirm=True))

    t = threading.Thread(target=first)
    t.start()
    try:
        for _ in range(3000):
            holder = rb.lock_holder()
            if holder is not None:
                break
            time.sleep(0.01)
        assert holder is not None and holder["command"] == "run"
        with pytest.raises(fr.LockHeldError) as info:
            fr.Rollback.open(repo.path).run("fast", target="v2", confirm=True)
        assert info.value.kind == "locked"
        assert info.value.hint is not None
        assert info.value.holder == holder
        assert info.value.holder["pid"] == os.getpid()
        assert info.value.path is not None and info.value.path.endswith("lock")
    finally:
        release.touch()
        t.join(60)
    assert results[0].status == "succeeded"
