"""The `TypedDict`s of `forge_rollback.types` as Python sees them at run time: a key the stub
marks `NotRequired` must not be in `__required_keys__`, and every dict a real call hands out
has every key its type says it has."""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any

import forge_rollback as fr
from forge_rollback import types

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo

EVENT_TYPES: dict[str, Any] = {
    "log": types.LogEvent,
    "step_started": types.StepStartedEvent,
    "step_finished": types.StepFinishedEvent,
    "progress": types.ProgressEvent,
}


def test_not_required_keys_are_optional_at_run_time() -> None:
    wrong = []
    for name in types.__all__:
        td = getattr(types, name)
        if not typing.is_typeddict(td):
            continue
        for key, hint in typing.get_type_hints(td, include_extras=True).items():
            if typing.get_origin(hint) is typing.NotRequired and key in td.__required_keys__:
                wrong.append(f"{name}.{key}")
    assert wrong == []


def missing(value: dict[str, Any], td: Any) -> list[str]:
    return sorted(td.__required_keys__ - value.keys())


def test_real_results_have_every_required_key(repo: Repo) -> None:
    rb = fr.Rollback.open(repo.path)
    events: list[types.Event] = []
    r = rb.run("fast", target="v1", confirm=True, on_event=events.append)
    # Plain log lines have no `hint`; a fast run's snapshot has no `label` or `database`.
    assert any(e["event"] == "log" and "hint" not in e for e in events)
    for e in events:
        assert missing(dict(e), EVENT_TYPES[e["event"]]) == [], e
    [snapshot] = rb.backups()
    assert missing(dict(snapshot), types.SnapshotSummary) == []
    # `bad()` has neither `env` nor `notes`.
    assert missing(dict(rb.known_good.bad("v2")), types.MarkResult) == []
    rb.undo(r.run_id, confirm=True)
    for change in rb.assess(target="v1").changes:  # no submodule here
        assert missing(dict(change), types.ChangedFile) == []
    rehearsal = rb.rehearse("fast", target="v1")
    assert rehearsal.undo is not None
    for step in [*rehearsal.rollback["steps"], *rehearsal.undo["steps"]]:
        assert missing(dict(step), types.RehearsedStep) == []
