# Hand-written stub of the native module (crates/rollback-py/src/); checked against it by
# `python -m mypy.stubtest forge_rollback` in scripts/test.sh. Keep the two in step.
# (PyO3's `PyModule::add` / `add_class` append each name to the module's `__all__`.)

import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal, Self, TypeVar, final, overload

from forge_rollback.types import (
    ChangedFile,
    Check,
    Commit,
    DataLoss,
    DatabaseAssessment,
    Dirty,
    Event,
    Head,
    Level,
    LockHolder,
    MarkResult,
    PlanStep,
    ProductionAssessment,
    RegistryEntry,
    RehearsedRun,
    Risk,
    RunKind,
    RunStatus,
    Severity,
    SnapshotSummary,
    StepApproval,
    StepReport,
    Target,
)

__all__ = [
    "__version__",
    "Rollback",
    "KnownGood",
    "Assessment",
    "Plan",
    "RunResult",
    "DryRunResult",
    "RunSummary",
    "VerificationReport",
    "Rehearsal",
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
    "AbortRollback",
    "cli_main",
]

__version__: str

def cli_main(argv: list[str]) -> int:
    """Runs `forge-rollback` with `argv` (program name first); returns its exit code. While it
    runs, SIGINT and SIGTERM act as in the binary; when it returns, the process's own handlers
    are back."""

_T = TypeVar("_T")
_R = TypeVar("_R")

# `Rollback.open` reads its paths with `os.fsdecode`; a relative `config` is relative to the
# current directory.
_Path = str | bytes | os.PathLike[str] | os.PathLike[bytes]
# Goes ahead on True or the string "yes" (surrounding whitespace and ASCII case ignored, the
# rule of the CLI's typed `yes`); False declines (CancelledError); any other answer ("no",
# "y", None, 1) is a ValueError. Nothing changes unless it goes ahead.
_Answer = bool | str
_Confirm = bool | str | Callable[[str, Plan], _Answer]
_AConfirm = bool | str | Callable[[str, Plan], _Answer | Awaitable[_Answer]]
# An exception other than AbortRollback is logged and the run goes on.
_OnEvent = Callable[[Event], object]
# `approve(step)`: True / "yes" / "run" runs the step, False / "no" / "skip" skips it, "abort"
# stops the run, "abort-undo" stops it and undoes what ran (strings: the words the CLI's step
# question reads, surrounding whitespace and ASCII case ignored); anything else ("inspect",
# "y", None) is a ValueError and runs nothing.
_Approve = Callable[[StepApproval], bool | str]
_AApprove = Callable[[StepApproval], bool | str | Awaitable[bool | str]]
# The async methods return real coroutines (`asyncio.run(rb.arun(...))` works).
_Coro = Coroutine[Any, Any, _T]

class _Value:
    """Shared by every result class: a value (==, hash, pickle, deepcopy) over its JSON."""

    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self) -> str: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __copy__(self) -> Self: ...
    def __deepcopy__(self, memo: object, /) -> Self: ...

@final
class Rollback:
    """A git repository opened for rollbacks (`Rollback.open(path)`)."""

    @staticmethod
    def open(dir: _Path, config: _Path | None = None) -> Rollback: ...
    @property
    def workdir(self) -> str: ...
    @property
    def known_good(self) -> KnownGood: ...
    def aknown_good(self) -> _Coro[dict[str, Any]]: ...
    def assess(self, target: str | None = None) -> Assessment: ...
    def aassess(self, target: str | None = None) -> _Coro[Assessment]: ...
    def plan(self, level: Level | None = None, target: str | None = None, *, database_only: bool = False) -> Plan: ...
    def aplan(
        self, level: Level | None = None, target: str | None = None, *, database_only: bool = False
    ) -> _Coro[Plan]: ...
    @overload
    def run(
        self,
        level: Level | None = None,
        target: str | None = None,
        *,
        confirm: _Confirm,
        on_event: _OnEvent | None = None,
        dry_run: Literal[False] = False,
        allow_non_ancestor: bool = False,
        reason: str | None = None,
        severity: Severity | None = None,
        approve: _Approve | None = None,
        allow_irreversible: bool = False,
        actor: str | None = None,
        database_only: bool = False,
    ) -> RunResult: ...
    @overload
    def run(
        self,
        level: Level | None = None,
        target: str | None = None,
        *,
        confirm: _Confirm | None = None,
        on_event: _OnEvent | None = None,
        dry_run: Literal[True],
        allow_non_ancestor: bool = False,
        reason: str | None = None,
        severity: Severity | None = None,
        approve: _Approve | None = None,
        allow_irreversible: bool = False,
        actor: str | None = None,
        database_only: bool = False,
    ) -> DryRunResult: ...
    @overload
    def run(
        self,
        level: Level | None = None,
        target: str | None = None,
        *,
        confirm: _Confirm | None = None,
        on_event: _OnEvent | None = None,
        dry_run: bool,
        allow_non_ancestor: bool = False,
        reason: str | None = None,
        severity: Severity | None = None,
        approve: _Approve | None = None,
        allow_irreversible: bool = False,
        actor: str | None = None,
        database_only: bool = False,
    ) -> RunResult | DryRunResult: ...
    @overload
    def arun(
        self,
        level: Level | None = None,
        target: str | None = None,
        *,
        confirm: _AConfirm,
        on_event: Callable[[Event], object | Awaitable[object]] | None = None,
        dry_run: Literal[False] = False,
        allow_non_ancestor: bool = False,
        reason: str | None = None,
        severity: Severity | None = None,
        approve: _AApprove | None = None,
        allow_irreversible: bool = False,
        actor: str | None = None,
        database_only: bool = False,
    ) -> _Coro[RunResult]: ...
    @overload
    def arun(
        self,
        level: Level | None = None,
        target: str | None = None,
        *,
        confirm: _AConfirm | None = None,
        on_event: Callable[[Event], object | Awaitable[object]] | None = None,
        dry_run: Literal[True],
        allow_non_ancestor: bool = False,
        reason: str | None = None,
        severity: Severity | None = None,
        approve: _AApprove | None = None,
        allow_irreversible: bool = False,
        actor: str | None = None,
        database_only: bool = False,
    ) -> _Coro[DryRunResult]: ...
    @overload
    def arun(
        self,
        level: Level | None = None,
        target: str | None = None,
        *,
        confirm: _AConfirm | None = None,
        on_event: Callable[[Event], object | Awaitable[object]] | None = None,
        dry_run: bool,
        allow_non_ancestor: bool = False,
        reason: str | None = None,
        severity: Severity | None = None,
        approve: _AApprove | None = None,
        allow_irreversible: bool = False,
        actor: str | None = None,
        database_only: bool = False,
    ) -> _Coro[RunResult | DryRunResult]: ...
    def undo(
        self,
        run_id: str,
        *,
        confirm: _Confirm,
        on_event: _OnEvent | None = None,
        actor: str | None = None,
        restore_snapshot: bool = False,
    ) -> RunResult: ...
    def aundo(
        self,
        run_id: str,
        *,
        confirm: _AConfirm,
        on_event: Callable[[Event], object | Awaitable[object]] | None = None,
        actor: str | None = None,
        restore_snapshot: bool = False,
    ) -> _Coro[RunResult]: ...
    def resume(
        self, run_id: str, *, on_event: _OnEvent | None = None, approve: _Approve | None = None
    ) -> RunResult: ...
    def aresume(
        self,
        run_id: str,
        *,
        on_event: Callable[[Event], object | Awaitable[object]] | None = None,
        approve: _AApprove | None = None,
    ) -> _Coro[RunResult]: ...
    def rehearse(
        self,
        level: Level | None = None,
        target: str | None = None,
        *,
        on_event: _OnEvent | None = None,
        allow_non_ancestor: bool = False,
        allow_irreversible: bool = False,
    ) -> Rehearsal: ...
    def arehearse(
        self,
        level: Level | None = None,
        target: str | None = None,
        *,
        on_event: Callable[[Event], object | Awaitable[object]] | None = None,
        allow_non_ancestor: bool = False,
        allow_irreversible: bool = False,
    ) -> _Coro[Rehearsal]: ...
    def verify(self, checks: list[str] | None = None) -> VerificationReport: ...
    def averify(self, checks: list[str] | None = None) -> _Coro[VerificationReport]: ...
    def upgrade_database(self, to: str | Sequence[str] | None = None) -> list[str]: ...
    def aupgrade_database(self, to: str | Sequence[str] | None = None) -> _Coro[list[str]]: ...
    def runs(self) -> list[RunSummary]: ...
    def aruns(self) -> _Coro[list[RunSummary]]: ...
    def run_details(self, run_id: str) -> RunResult: ...
    def arun_details(self, run_id: str) -> _Coro[RunResult]: ...
    def report(self, run_id: str, format: Literal["md", "json"] = "md") -> str: ...
    def areport(self, run_id: str, format: Literal["md", "json"] = "md") -> _Coro[str]: ...
    def backups(self) -> list[SnapshotSummary]: ...
    def abackups(self) -> _Coro[list[SnapshotSummary]]: ...
    def verify_backups(self) -> dict[str, Any]: ...
    def averify_backups(self) -> _Coro[dict[str, Any]]: ...
    def lock_holder(self) -> LockHolder | None: ...
    def alock_holder(self) -> _Coro[LockHolder | None]: ...

@final
class KnownGood:
    """The known-good commit registry (`forge-rollback known-good ...`); results are dicts."""

    def list(self) -> dict[str, Any]: ...
    def alist(self) -> _Coro[dict[str, Any]]: ...
    def mark(self, rev: str, note: str | None = None, *, lift_bad: bool = False) -> MarkResult: ...
    def amark(self, rev: str, note: str | None = None, *, lift_bad: bool = False) -> _Coro[MarkResult]: ...
    def bad(self, rev: str, note: str | None = None) -> MarkResult: ...
    def abad(self, rev: str, note: str | None = None) -> _Coro[MarkResult]: ...
    def unmark(self, rev: str) -> RegistryEntry: ...
    def aunmark(self, rev: str) -> _Coro[RegistryEntry]: ...

@final
class Assessment(_Value):
    """What a rollback would do and risk (`forge-rollback assess --json`)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Assessment: ...
    @classmethod
    def from_json(cls, text: str) -> Assessment: ...
    @property
    def workdir(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def head(self) -> Head: ...
    @property
    def head_summary(self) -> str: ...
    @property
    def target(self) -> Target: ...
    @property
    def target_is_ancestor(self) -> bool: ...
    @property
    def commits_rolled_back(self) -> list[Commit]: ...
    @property
    def commits_rolled_back_total(self) -> int: ...
    @property
    def changes(self) -> list[ChangedFile]: ...
    @property
    def changes_by_category(self) -> dict[str, int]: ...
    @property
    def dirty(self) -> Dirty: ...
    @property
    def risks(self) -> list[Risk]: ...
    @property
    def recommended_level(self) -> Level: ...
    @property
    def recommendation(self) -> str: ...
    @property
    def registry(self) -> str: ...
    @property
    def database(self) -> DatabaseAssessment | None: ...
    @property
    def env(self) -> dict[str, Any] | None: ...
    @property
    def production(self) -> ProductionAssessment | None: ...
    @property
    def production_line(self) -> str | None: ...

@final
class Plan(_Value):
    """The ordered steps of a rollback or undo (`forge-rollback plan --json`)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan: ...
    @classmethod
    def from_json(cls, text: str) -> Plan: ...
    @property
    def kind(self) -> RunKind: ...
    @property
    def level(self) -> Level | None: ...
    @property
    def workdir(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def from_head(self) -> Head: ...
    @property
    def to_commit(self) -> str: ...
    @property
    def to_summary(self) -> str: ...
    @property
    def undo_of(self) -> str | None: ...
    @property
    def steps(self) -> list[PlanStep]: ...
    @property
    def data_loss(self) -> list[DataLoss]: ...
    @property
    def risks(self) -> list[Risk]: ...

@final
class RunResult(_Value):
    """The result of `run`, `undo` or `resume` (`forge-rollback run --json`)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult: ...
    @classmethod
    def from_json(cls, text: str) -> RunResult: ...
    @property
    def run_id(self) -> str: ...
    @property
    def kind(self) -> RunKind: ...
    @property
    def status(self) -> RunStatus: ...
    @property
    def level(self) -> Level | None: ...
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
    def steps(self) -> list[StepReport]: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def error(self) -> str | None: ...
    @property
    def plan(self) -> Plan | None: ...
    @property
    def verification(self) -> VerificationReport | None: ...
    @property
    def undone_by(self) -> str | None: ...
    @property
    def interrupted(self) -> bool: ...
    def raise_for_status(self) -> None: ...

@final
class DryRunResult(_Value):
    """What `run(..., dry_run=True)` would do; nothing was written, so there is no run id."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DryRunResult: ...
    @classmethod
    def from_json(cls, text: str) -> DryRunResult: ...
    @property
    def status(self) -> Literal["planned"]: ...
    @property
    def level(self) -> Level | None: ...
    @property
    def from_commit(self) -> str: ...
    @property
    def branch(self) -> str | None: ...
    @property
    def to_commit(self) -> str: ...
    @property
    def steps(self) -> list[StepReport]: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def plan(self) -> Plan: ...

@final
class VerificationReport(_Value):
    """One verification round (`forge-rollback verify --json`)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VerificationReport: ...
    @classmethod
    def from_json(cls, text: str) -> VerificationReport: ...
    @property
    def passed(self) -> bool: ...
    @property
    def started_at(self) -> str: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def checks(self) -> list[Check]: ...
    @property
    def failed(self) -> list[str]: ...
    def raise_for_status(self) -> None: ...

@final
class Rehearsal(_Value):
    """A rollback and its undo rehearsed on a throwaway copy (`forge-rollback rehearse --json`)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rehearsal: ...
    @classmethod
    def from_json(cls, text: str) -> Rehearsal: ...
    @property
    def passed(self) -> bool: ...
    @property
    def level(self) -> Level: ...
    @property
    def from_commit(self) -> str: ...
    @property
    def to_commit(self) -> str: ...
    @property
    def database(self) -> str | None: ...
    @property
    def database_copy(self) -> str | None: ...
    @property
    def data_loss(self) -> list[DataLoss]: ...
    @property
    def data_loss_unknown(self) -> str | None: ...
    @property
    def rollback(self) -> RehearsedRun: ...
    @property
    def undo(self) -> RehearsedRun | None: ...
    @property
    def undo_identical(self) -> bool: ...
    @property
    def differences(self) -> list[str]: ...
    @property
    def files_compared(self) -> int: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def warnings(self) -> list[str]: ...

@final
class RunSummary(_Value):
    """One run in `runs()` (`forge-rollback runs list --json`)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary: ...
    @classmethod
    def from_json(cls, text: str) -> RunSummary: ...
    @property
    def run_id(self) -> str: ...
    @property
    def kind(self) -> RunKind: ...
    @property
    def status(self) -> RunStatus: ...
    @property
    def interrupted(self) -> bool: ...
    @property
    def level(self) -> Level | None: ...
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
    @property
    def changed_something(self) -> bool: ...
    @property
    def damaged(self) -> str | None: ...
    @property
    def workdir(self) -> str: ...
    @property
    def other_worktree(self) -> bool: ...

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

    holder: LockHolder | None
    path: str | None

class RefusedError(RollbackError):
    """A safety check refused the operation (kind `refused`); nothing changed."""

    path: str | None

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
    # The failed checks' names; `None` only in one made in Python.
    failed: list[str] | None

class AbortRollback(Exception):
    """Raise it from `on_event` to stop the run before its next step (journaled `cancelled`);
    the call re-raises it with `run_id` and `result` set."""

    run_id: str | None
    result: RunResult | None
