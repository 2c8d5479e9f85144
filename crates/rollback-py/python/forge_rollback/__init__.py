"""forge-rollback: emergency rollback of code, database schema and config, undoable.

The implementation is the native module ``forge_rollback._forge_rollback`` (Rust, PyO3);
this package re-exports its public names.
"""

from forge_rollback._forge_rollback import __version__

__all__ = ["__version__"]
