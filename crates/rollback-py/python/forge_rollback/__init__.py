"""forge-rollback: emergency rollback of code, database schema and config, undoable.

The implementation is the native module ``forge_rollback._forge_rollback`` (Rust, PyO3);
this package re-exports its public names::

    import forge_rollback as fr

    rb = fr.Rollback.open(".")
    print(rb.assess(target="v1").recommended_level)
    result = rb.run("fast", target="v1", confirm=True)    # confirm is required: True or "yes"
    result.raise_for_status()           # StepFailedError / VerificationError / CancelledError
    rb.undo(result.run_id, confirm=True)

Events go to the ``forge_rollback`` logger (``logging``), which has a ``NullHandler``: configure
logging to see them.

See docs/python.md for the whole API.
"""

import logging as _logging
import os as _os
from typing import Any as _Any

from forge_rollback._forge_rollback import (
    AbortRollback,
    Assessment,
    BackupError,
    CancelledError,
    ConfigError,
    DatabaseError,
    KnownGood,
    LockHeldError,
    DryRunResult,
    Plan,
    RefusedError,
    Rehearsal,
    Rollback,
    RollbackError,
    RunResult,
    RunSummary,
    StepFailedError,
    VcsError,
    VerificationError,
    VerificationReport,
    __version__,
    cli_main,
)

__all__ = [
    "__version__",
    "AbortRollback",
    "Assessment",
    "BackupError",
    "CancelledError",
    "ConfigError",
    "DatabaseError",
    "DryRunResult",
    "KnownGood",
    "LockHeldError",
    "Plan",
    "RefusedError",
    "Rehearsal",
    "Rollback",
    "RollbackError",
    "RunResult",
    "RunSummary",
    "StepFailedError",
    "VcsError",
    "VerificationError",
    "VerificationReport",
    "cli_main",
    "json_default",
    "path_str",
]

# A library's logger: silent until the application configures logging.
_logging.getLogger("forge_rollback").addHandler(_logging.NullHandler())

_RESULTS = (Assessment, Plan, RunResult, DryRunResult, RunSummary, VerificationReport, Rehearsal)


def json_default(value: object) -> _Any:
    """``json.dumps(result, default=forge_rollback.json_default)``: a result as its dict."""
    if isinstance(value, _RESULTS):
        return value.to_dict()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def path_str(path: str | list[int]) -> str:
    """A work-tree path of a result's dict as a ``str``.

    The CLI's JSON, and so ``to_dict()`` and the dicts of the results, write a file name that
    is not valid UTF-8 as the list of its bytes (``types.PathJson``); this gives it as
    ``os.fsdecode`` does (``os.fsencode`` gives the bytes back). A ``str`` is returned as it is.
    """
    if isinstance(path, str):
        return path
    return _os.fsdecode(bytes(path))
