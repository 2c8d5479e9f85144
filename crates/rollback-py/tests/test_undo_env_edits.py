"""An env file edited while rolled back (a secret rotated in `.env`): `undo` puts back the
version from before the run, as the CLI does, but says so — in the confirmation before it
starts, in a warning of its result and in its log events, naming the undo's own backup that
keeps the edited version and how to get it back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo

ROTATED = "SECRET_KEY=rotated-while-rolled-back\n"


def test_undo_names_an_env_file_edited_while_rolled_back(env_repo: Repo) -> None:
    repo = env_repo
    rb = fr.Rollback.open(repo.path)
    env_v3 = (repo.path / ".env").read_text()
    r = rb.run("full", target="v1", confirm=True)
    assert r.status == "succeeded"
    (repo.path / ".env").write_text(ROTATED)

    summaries: list[str] = []

    def confirm(summary: str, plan: Any) -> bool:
        summaries.append(summary)
        return True

    events: list[Any] = []
    u = rb.undo(r.run_id, confirm=confirm, on_event=events.append)
    assert u.status == "succeeded"
    # Not refused: the env of the release the undo returns to.
    assert (repo.path / ".env").read_text() == env_v3

    [summary] = summaries
    assert "Env file `.env` was changed since the run left it" in summary, summary

    [warning] = [w for w in u.warnings if "env file" in w]
    assert f"env file `.env` was changed since run {r.run_id} left it" in warning, warning
    assert f"kept in backup {u.backup_id}, this undo's snapshot" in warning, warning

    # The log event carries the way back in Python's words.
    [logged] = [e for e in events if e["event"] == "log" and "env file `.env`" in e["message"]]
    assert logged["level"] == "warn", logged
    assert f'undo("{u.run_id}")' in logged["hint"], logged

    # Undoing the undo brings the rotated secret back.
    back = rb.undo(u.run_id, confirm=True)
    assert back.status == "succeeded"
    assert (repo.path / ".env").read_text() == ROTATED


def test_undo_says_nothing_about_env_files_left_as_the_run_left_them(env_repo: Repo) -> None:
    rb = fr.Rollback.open(env_repo.path)
    r = rb.run("full", target="v1", confirm=True)
    summaries: list[str] = []

    def confirm(summary: str, plan: Any) -> bool:
        summaries.append(summary)
        return True

    u = rb.undo(r.run_id, confirm=confirm)
    assert u.status == "succeeded"
    assert not [w for w in u.warnings if "env file" in w]
    assert "Env file" not in summaries[0], summaries[0]
