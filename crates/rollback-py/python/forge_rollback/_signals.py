"""Tells a signal handler's exception from a callback's own (see ``raised_by_signal`` in
``crates/rollback-py/src/call.rs``).

Python runs a signal handler in whatever Python code the main thread runs when the signal
arrives: inside an ``on_event`` or ``approve`` callback, the handler's exception (a job's time
limit, Celery's ``SoftTimeLimitExceeded``) comes out of the callback as if the callback had
raised it. Its traceback still passes through the handler's frame, which is how it is told
apart: the host asking the run to stop, not the callback failing.
"""

from __future__ import annotations

import functools
import signal
from types import CodeType, TracebackType


def _handler_code(handler: object) -> CodeType | None:
    """The code a Python-level handler runs (a function, a bound method, a partial of either,
    an object with ``__call__``); ``None`` for ``SIG_DFL``, ``SIG_IGN`` and built-in ones."""
    while isinstance(handler, functools.partial):
        handler = handler.func
    code = getattr(handler, "__code__", None)
    if code is None and not isinstance(handler, type):
        code = getattr(getattr(type(handler), "__call__", None), "__code__", None)
    return code if isinstance(code, CodeType) else None


def raised_by_signal_handler(tb: TracebackType | None) -> bool:
    """Whether the exception of traceback ``tb`` was raised by a Python signal handler
    installed now (the traceback passes through the handler's frame)."""
    codes: set[CodeType] = set()
    for signum in signal.valid_signals():
        try:
            code = _handler_code(signal.getsignal(signum))
        except (OSError, ValueError):
            continue
        if code is not None:
            codes.add(code)
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        tb = tb.tb_next
    return False
