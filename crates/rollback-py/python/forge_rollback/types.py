"""Typed shapes of the dicts ``forge_rollback`` hands out and takes.

Results are classes (``RunResult``, ``Plan``, ...); what they carry inside, and what callbacks
receive, are plain dicts (``json.loads`` of the CLI's ``--json``) typed here as ``TypedDict``s,
so ``mypy --strict`` checks code that reads them. The statuses and levels are ``Literal``s.

Dicts whose content depends on the step or the backend (a step's ``detail``, a plan step's
fields beyond ``step``) are typed as far as every variant agrees, and ``dict[str, Any]`` below.

(The ``Literal`` aliases are written as unions of one-value ``Literal``s, which is the same type,
so that ``mypy.stubtest`` sees a union at run time too.)

No ``from __future__ import annotations`` here: on Python 3.11 a ``TypedDict`` whose annotations
are strings cannot see ``NotRequired`` and lists those keys in ``__required_keys__``, so tools
that read the shapes at run time (validators, ``typing.get_type_hints`` users) would demand keys
the results leave out.
"""

from typing import Any, Literal, NotRequired, TypeAlias, TypedDict

Level: TypeAlias = Literal["fast"] | Literal["full"] | Literal["manual"]
RunKind: TypeAlias = Literal["rollback"] | Literal["undo"]
RunStatus: TypeAlias = Literal["planned"] | Literal["running"] | Literal["succeeded"] | Literal["failed"] | Literal["cancelled"] | Literal["undone"] | Literal["verification_failed"]
StepStatus: TypeAlias = Literal["done"] | Literal["skipped"] | Literal["failed"] | Literal["interrupted"] | Literal["running"] | Literal["pending"]
Severity: TypeAlias = Literal["critical"] | Literal["high"] | Literal["medium"] | Literal["low"]
RiskSeverity: TypeAlias = Literal["info"] | Literal["medium"] | Literal["high"]
CheckStatus: TypeAlias = Literal["passed"] | Literal["failed"] | Literal["timeout"] | Literal["error"] | Literal["inconclusive"]
EventLevel: TypeAlias = Literal["info"] | Literal["success"] | Literal["warn"] | Literal["error"]
PathJson: TypeAlias = str | list[int]
"""A path in the work tree as the CLI's JSON writes it: a ``str``, or the list of its bytes when
the name is not valid UTF-8. ``forge_rollback.path_str`` turns either into a ``str``."""


class Head(TypedDict):
    """Where HEAD is."""

    commit: str
    branch: str | None


class Commit(TypedDict):
    """One commit."""

    id: str
    summary: str
    author: str
    time: int


class RegistryEntry(TypedDict, total=False):
    """A known-good registry entry (the runbook's format; older files may lack keys)."""

    hash: str
    date: str
    description: str
    verified: bool
    services_tested: list[str]
    database_migrations: list[str]
    notes: str
    marked_at: str
    known_bad: bool


class Target(TypedDict):
    """Where a rollback goes."""

    commit: Commit
    rev: str | None
    source: Literal["explicit", "registry"]
    registry_entry: RegistryEntry | None


class ChangedFile(TypedDict):
    """A tracked path that differs between HEAD and the target (``submodule``, present and true
    only for a submodule: the rollback moves the commit recorded for it, not its files)."""

    path: PathJson
    kind: str
    category: str
    submodule: NotRequired[bool]


class Dirty(TypedDict):
    """Uncommitted state of the work tree."""

    modified: list[PathJson]
    staged: list[PathJson]
    untracked: list[PathJson]
    ignored: list[PathJson]
    at_target_paths: list[PathJson]


class Risk(TypedDict):
    """Something that can go wrong."""

    code: str
    severity: RiskSeverity
    message: str


class DatabaseAssessment(TypedDict):
    """``Assessment.database``: where the schema is and where a full rollback takes it."""

    kind: str
    database: str
    reachable: bool
    current: list[str]
    code_heads: list[str]
    target_heads: list[str]
    path: list[dict[str, Any]]
    needs_downgrade: bool
    risks: list[Risk]


class Release(TypedDict):
    """One release a production platform keeps (Railway deployment, Render deploy, Heroku or
    Fly.io release)."""

    id: str
    commit: str | None
    summary: str


class ProductionAssessment(TypedDict):
    """``Assessment.production``: what the production target (``[deploy] strategy`` a platform)
    runs now and the release a rollback would promote."""

    target: str
    live: Release | None
    release: Release | None
    problem: str | None


class MarkResult(TypedDict):
    """What ``known_good.mark`` and ``known_good.bad`` return (``env`` and ``notes`` only from
    ``mark``, where they are always present)."""

    entry: RegistryEntry
    updated: bool
    env: NotRequired[dict[str, Any] | None]
    notes: NotRequired[list[str]]


class DumpSummary(TypedDict):
    """The database dump a database snapshot holds (``SnapshotSummary["database"]``)."""

    database: str
    engine: str
    format: str
    size: int
    revisions: list[str]


class SnapshotSummary(TypedDict):
    """One backup snapshot in ``backups()``."""

    id: str
    created_at: str
    run_id: str | None
    head: str | None
    branch: str | None
    entries: int
    bytes: int
    label: NotRequired[str]
    database: NotRequired[DumpSummary]
    damaged: NotRequired[str]


class StepReport(TypedDict):
    """What happened to one step of a run."""

    step: str
    status: StepStatus
    detail: dict[str, Any] | None


class PlanStep(TypedDict):
    """One step of a plan: ``step`` names it; the other keys depend on the step."""

    step: str


class Metric(TypedDict):
    """What a ``prometheus`` check measured."""

    query: str
    value: float | None
    baseline: NotRequired[float]
    baseline_window: NotRequired[str]
    deployed_at: NotRequired[str]


class Check(TypedDict):
    """The outcome of one service check."""

    name: str
    kind: str
    passed: bool
    status: CheckStatus
    latency_ms: int
    reason: str
    attempts: int
    metric: NotRequired[Metric]


class StepApproval(TypedDict):
    """What ``approve`` gets before each step of a manual run."""

    run_id: str
    index: int
    total: int
    name: str
    title: str
    preview: list[str]
    skippable: bool
    step: PlanStep


class LockHolder(TypedDict):
    """Who holds the run lock."""

    pid: int
    host: str
    started_at: str
    command: str


class DataLoss(TypedDict):
    """What a downgrade destroys: a whole table (``column`` is ``None``) or one column, with
    the rows (or non-null values) that go with it (``kind`` ``"dropped"``); or rows it deletes
    from a table that stays (``kind`` ``"removed"``, ``column`` ``None``, ``rows`` how many
    fewer); or values it changes in a column that stays (``kind`` ``"changed"``, ``rows`` how
    many)."""

    table: str
    column: str | None
    rows: int
    kind: Literal["dropped"] | Literal["removed"] | Literal["changed"]


class RehearsedStep(TypedDict):
    """One step of a rehearsal; ``status`` ``not_rehearsed`` marks a step that would reach real
    services (restart, deploy, promote, verify)."""

    step: str
    status: StepStatus | Literal["not_rehearsed"]
    millis: int | None
    note: NotRequired[str]


class RehearsedRun(TypedDict):
    """The rollback or its undo, as run on the throwaway copy."""

    status: RunStatus
    steps: list[RehearsedStep]
    error: str | None
    duration_ms: int


class LogEvent(TypedDict):
    """A log line (also sent to the ``forge_rollback`` logger; ``success`` is logged at INFO)."""

    event: Literal["log"]
    at: str
    level: EventLevel
    message: str
    hint: NotRequired[str]
    """What to do about it, in Python's words (the logged message ends with it too)."""


class StepStartedEvent(TypedDict):
    """A step began."""

    event: Literal["step_started"]
    run_id: str
    index: int
    total: int
    step: str


class StepFinishedEvent(TypedDict):
    """A step ended."""

    event: Literal["step_finished"]
    run_id: str
    index: int
    step: str
    millis: int
    ok: bool


class ProgressEvent(TypedDict):
    """How far long work inside a step has got: ``unit`` ``files`` counts the paths the
    snapshot captured; ``busy`` (``total`` ``None``) means the step (a database dump or
    restore, a migration run, a restart and its readiness wait) works until its
    ``step_finished``."""

    event: Literal["progress"]
    run_id: str
    step: str
    unit: Literal["files"] | Literal["busy"]
    done: int
    total: int | None


Event: TypeAlias = LogEvent | StepStartedEvent | StepFinishedEvent | ProgressEvent

__all__ = [
    "ChangedFile",
    "Check",
    "CheckStatus",
    "Commit",
    "DataLoss",
    "DatabaseAssessment",
    "Dirty",
    "DumpSummary",
    "Event",
    "EventLevel",
    "Head",
    "Level",
    "LockHolder",
    "LogEvent",
    "MarkResult",
    "Metric",
    "PlanStep",
    "ProductionAssessment",
    "ProgressEvent",
    "RegistryEntry",
    "RehearsedRun",
    "RehearsedStep",
    "Release",
    "Risk",
    "RiskSeverity",
    "RunKind",
    "RunStatus",
    "Severity",
    "SnapshotSummary",
    "StepApproval",
    "StepFinishedEvent",
    "StepReport",
    "StepStartedEvent",
    "StepStatus",
    "Target",
]
