"""The ``forge-rollback`` command line: the wheel's console script, and ``python -m forge_rollback``.

It is the same Rust code as the ``forge-rollback`` binary (``rollback-cli``), compiled into the
extension, so it needs no Rust toolchain. Arguments, output, exit codes and signals behave as the
binary's: Ctrl-C and SIGTERM end the process until a run or undo begins its first step; from then
on they stop it at its next step boundary (journaled ``cancelled``, exit 5).
"""

from __future__ import annotations

import signal
import sys

from forge_rollback._forge_rollback import cli_main


def main() -> int:
    """Runs the command line with ``sys.argv``; returns its exit code."""
    # Python turns SIGINT into KeyboardInterrupt, which only bytecode can raise: while the Rust
    # code runs, Ctrl-C would do nothing. Give the signal back its default action, as in the
    # binary (which installs its own handler once a run begins).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.stdout.flush()
    return cli_main(["forge-rollback", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
