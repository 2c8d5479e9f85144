"""forge-rollback: emergency rollback of code, database schema and config, undoable.

The implementation is the native module ``forge_rollback._forge_rollback`` (Rust, PyO3);
this package re-exports its public names::

    import forge_rollback as fr

    rb = fr.Rollback.open(".")
    print(rb.assess(target="v1").recommended_level)
    result = rb.run("fast", target="v1", confirm=True)
    result.raise_for_status()           # StepFailedError / VerificationError / CancelledError
    rb.undo(result.run_id)

See docs/python.md for the whole API.
"""

from forge_rollback._forge_rollback import (
    Assessment,
    BackupError,
    CancelledError,
    ConfigError,
    DatabaseError,
    KnownGood,
    LockHeldError,
    Plan,
    RefusedError,
    Rollback,
    RollbackError,
    RunResult,
    RunSummary,
    StepFailedError,
    VcsError,
    VerificationError,
    VerificationReport,
    __version__,
)

__all__ = [
    "__version__",
    "Assessment",
    "BackupError",
    "CancelledError",
    "ConfigError",
    "DatabaseError",
    "KnownGood",
    "LockHeldError",
    "Plan",
    "RefusedError",
    "Rollback",
    "RollbackError",
    "RunResult",
    "RunSummary",
    "StepFailedError",
    "VcsError",
    "VerificationError",
    "VerificationReport",
]
