# Hand-written stub of the native module (crates/rollback-py/src/); checked against it by
# `python -m mypy.stubtest forge_rollback` in scripts/test.sh. Keep the two in step.
# (PyO3's `PyModule::add` / `add_class` append each name to the module's `__all__`.)

import os
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar, final

__all__ = [
    "__version__",
    "Rollback",
    "KnownGood",
    "Assessment",
    "Plan",
    "RunResult",
    "RunSummary",
    "VerificationReport",
    "RollbackError",
    "ConfigError",
    "VcsError",
    "BackupError",
    "DatabaseError",
    "LockHeldError",
    "RefusedError",
    "CancelledError",
    "StepFailedError",
    "VerificationError",
]

__version__: str

_T = TypeVar("_T")

_Level = Literal["fast", "full", "manual"]
_StrPath = str | os.PathLike[str]
_Confirm = bool | Callable[[str, dict[str, Any]], object]
_OnEvent = Callable[[dict[str, Any]], object]
# `approve(step)`: True / "yes" / "run" runs the step, False / "no" / "skip" skips it, "abort"
# stops the run, "abort-undo" stops it and undoes what ran; anything else is a ValueError.
_Approve = Callable[[dict[str, Any]], bool | str]
# The async methods return real coroutines (`asyncio.run(rb.arun(...))` works).
_Coro = Coroutine[Any, Any, _T]
_Severity = Literal["critical", "high", "medium", "low"]

@final
class Rollback:
    """A git repository opened for rollbacks (`Rollback.open(path)`)."""

    @staticmethod
    def open(dir: _StrPath, config: _StrPath | None = None) -> Rollback: ...
    @property
    def workdir(self) -> str: ...
    @property
    def known_good(self) -> KnownGood: ...
    def assess(self, target: str | None = None) -> Assessment: ...
    def plan(self, level: _Level | None = None, target: str | None = None) -> Plan: ...
    def run(
        self,
        level: _Level | None = None,
        target: str | None = None,
        *,
        confirm: _Confirm = True,
        on_event: _OnEvent | None = None,
        dry_run: bool = False,
        allow_non_ancestor: bool = False,
        reason: str | None = None,
        severity: _Severity | None = None,
        approve: _Approve | None = None,
        allow_irreversible: bool = False,
    ) -> RunResult: ...
    def undo(self, run_id: str, *, confirm: _Confirm = True, on_event: _OnEvent | None = None) -> RunResult: ...
    def resume(
        self, run_id: str, *, on_event: _OnEvent | None = None, approve: _Approve | None = None
    ) -> RunResult: ...
    def verify(self, checks: list[str] | None = None) -> VerificationReport: ...
    def averify(self, checks: list[str] | None = None) -> _Coro[VerificationReport]: ...
    def upgrade_database(self, to: list[str] | None = None) -> list[str]: ...
    def runs(self) -> list[RunSummary]: ...
    def run_details(self, run_id: str) -> RunResult: ...
    def report(self, run_id: str, format: Literal["md", "json"] = "md") -> str: ...
    def backups(self) -> list[dict[str, Any]]: ...
    def verify_backups(self) -> dict[str, Any]: ...
    def lock_holder(self) -> dict[str, Any] | None: ...
    def aassess(self, target: str | None = None) -> _Coro[Assessment]: ...
    def arun(
        self,
        level: _Level | None = None,
        target: str | None = None,
        *,
        confirm: _Confirm = True,
        on_event: _OnEvent | None = None,
        dry_run: bool = False,
        allow_non_ancestor: bool = False,
        reason: str | None = None,
        severity: _Severity | None = None,
        approve: _Approve | None = None,
        allow_irreversible: bool = False,
    ) -> _Coro[RunResult]: ...
    def aundo(
        self, run_id: str, *, confirm: _Confirm = True, on_event: _OnEvent | None = None
    ) -> _Coro[RunResult]: ...

@final
class KnownGood:
    """The known-good commit registry (`forge-rollback known-good ...`); results are dicts."""

    def list(self) -> dict[str, Any]: ...
    def mark(self, rev: str, note: str | None = None) -> dict[str, Any]: ...
    def bad(self, rev: str, note: str | None = None) -> dict[str, Any]: ...
    def unmark(self, rev: str) -> dict[str, Any]: ...

@final
class Assessment:
    """What a rollback would do and risk (`forge-rollback assess --json`)."""

    @property
    def workdir(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def head(self) -> dict[str, Any]: ...
    @property
    def head_summary(self) -> str: ...
    @property
    def target(self) -> dict[str, Any]: ...
    @property
    def target_is_ancestor(self) -> bool: ...
    @property
    def commits_rolled_back(self) -> list[dict[str, Any]]: ...
    @property
    def commits_rolled_back_total(self) -> int: ...
    @property
    def changes(self) -> list[dict[str, Any]]: ...
    @property
    def changes_by_category(self) -> dict[str, int]: ...
    @property
    def dirty(self) -> dict[str, Any]: ...
    @property
    def risks(self) -> list[dict[str, Any]]: ...
    @property
    def recommended_level(self) -> _Level: ...
    @property
    def recommendation(self) -> str: ...
    @property
    def registry(self) -> str: ...
    @property
    def database(self) -> dict[str, Any] | None: ...
    @property
    def env(self) -> dict[str, Any] | None: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...

@final
class Plan:
    """The ordered steps of a rollback or undo (`forge-rollback plan --json`)."""

    @property
    def kind(self) -> Literal["rollback", "undo"]: ...
    @property
    def level(self) -> _Level | None: ...
    @property
    def workdir(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def from_head(self) -> dict[str, Any]: ...
    @property
    def to_commit(self) -> str: ...
    @property
    def to_summary(self) -> str: ...
    @property
    def undo_of(self) -> str | None: ...
    @property
    def steps(self) -> list[dict[str, Any]]: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...

@final
class RunResult:
    """The result of `run`, `undo` or `resume` (`forge-rollback run --json`)."""

    @property
    def run_id(self) -> str | None: ...
    @property
    def kind(self) -> Literal["rollback", "undo"]: ...
    @property
    def status(self) -> str: ...
    @property
    def level(self) -> _Level | None: ...
    @property
    def from_commit(self) -> str: ...
    @property
    def branch(self) -> str | None: ...
    @property
    def to_commit(self) -> str: ...
    @property
    def backup_id(self) -> str | None: ...
    @property
    def undo_of(self) -> str | None: ...
    @property
    def started_at(self) -> str: ...
    @property
    def finished_at(self) -> str | None: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def steps(self) -> list[dict[str, Any]]: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def error(self) -> str | None: ...
    @property
    def plan(self) -> dict[str, Any] | None: ...
    @property
    def verification(self) -> dict[str, Any] | None: ...
    @property
    def undone_by(self) -> str | None: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def raise_for_status(self) -> None: ...

@final
class VerificationReport:
    """One verification round (`forge-rollback verify --json`)."""

    @property
    def passed(self) -> bool: ...
    @property
    def started_at(self) -> str: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def checks(self) -> list[dict[str, Any]]: ...
    @property
    def failed(self) -> list[str]: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def raise_for_status(self) -> None: ...

@final
class RunSummary:
    """One run in `runs()` (`forge-rollback runs list --json`)."""

    @property
    def run_id(self) -> str: ...
    @property
    def kind(self) -> Literal["rollback", "undo"]: ...
    @property
    def status(self) -> str: ...
    @property
    def interrupted(self) -> bool: ...
    @property
    def level(self) -> _Level | None: ...
    @property
    def from_commit(self) -> str: ...
    @property
    def to_commit(self) -> str: ...
    @property
    def backup_id(self) -> str | None: ...
    @property
    def undo_of(self) -> str | None: ...
    @property
    def undone_by(self) -> str | None: ...
    @property
    def started_at(self) -> str: ...
    @property
    def finished_at(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...

class RollbackError(Exception):
    """Base class of every forge-rollback error; carries `kind`, `hint` and `message`."""

    kind: Literal["usage", "locked", "refused", "cancelled", "failed"]
    hint: str | None
    message: str

class ConfigError(RollbackError):
    """Bad usage, configuration, registry, revision or repository (kind `usage`); nothing changed."""

    path: str | None
    key: str | None
    revision: str | None

class VcsError(RollbackError):
    """A git operation failed."""

    path: str | None

class BackupError(RollbackError):
    """The backup store failed."""

    snapshot: str | None
    path: str | None

class DatabaseError(RollbackError):
    """The database or a migration failed (unreachable, migration error, snapshot, `pg_dump`)."""

    database: str | None
    revision: str | None
    path: str | None
    program: str | None

class LockHeldError(RollbackError):
    """Another run holds the lock (kind `locked`); nothing changed."""

    holder: dict[str, Any] | None
    path: str | None

class RefusedError(RollbackError):
    """A safety check refused the operation (kind `refused`); nothing changed."""

class CancelledError(RollbackError):
    """The confirmation was declined, or a manual run was aborted (kind `cancelled`)."""

    run_id: str | None

class StepFailedError(RollbackError):
    """A step of a run failed; the run can be resumed or undone."""

    run_id: str | None
    step: str | None

class VerificationError(RollbackError):
    """Service checks failed (`raise_for_status()` of a report or of a run)."""

    run_id: str | None
    report: VerificationReport | None
    failed: list[str]
