"""Coroutine wrapper of the native async methods (see ``crates/rollback-py/src/aio.rs``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

_T = TypeVar("_T")


class _Job(Protocol):
    def __call__(self) -> asyncio.Future[Any]: ...
    def cancel(self, why: str) -> bool: ...


def settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Called on the loop by the worker thread: sets the job's result or exception."""
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


async def as_coroutine(awaitable: Awaitable[_T]) -> _T:
    """Any awaitable as a coroutine (``asyncio.run_coroutine_threadsafe`` takes only those)."""
    return await awaitable


async def await_job(job: _Job) -> Any:
    """Start ``job`` inside the running event loop and await its result.

    Cancelled while a run works (``task.cancel()``, ``asyncio.wait_for`` / ``asyncio.timeout``
    running out, ``asyncio.run`` ending): the run is asked to stop at its next step boundary,
    and this waits until it has (journaled ``cancelled``, undoable) before re-raising
    ``CancelledError`` with ``run_id`` and ``result`` set. An upgrade stops between two
    migrations the same way; the note says where it stopped.
    """
    future = job()
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError as cancelled:
        if not job.cancel("the asyncio task awaiting it was cancelled"):
            raise
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                continue
            except BaseException:
                break
        if future.done() and not future.cancelled() and future.exception() is None:
            result = future.result()
            run_id = getattr(result, "run_id", None)
            setattr(cancelled, "run_id", run_id)
            setattr(cancelled, "result", result)
            # Worded as the sync path words it (`finish` in rollback.rs): a run whose last step
            # was done before the cancel could act had ended, and has nothing to resume.
            if run_id is not None and result.status == "cancelled":
                cancelled.add_note(
                    f"forge-rollback: run {run_id} stopped at a step boundary, status cancelled; "
                    f'undo("{run_id}") puts everything back, resume("{run_id}") finishes it'
                )
            elif run_id is not None:
                cancelled.add_note(f"forge-rollback: run {run_id} had ended, status {result.status}")
        elif future.done() and not future.cancelled() and isinstance(future.exception(), _stopped_type()):
            # Work that stopped for the cancel (an upgrade between two migrations): where.
            stopped = future.exception()
            cancelled.add_note(f"forge-rollback: {getattr(stopped, 'message', stopped)}")
        raise


def _stopped_type() -> type[BaseException]:
    from forge_rollback import CancelledError

    return CancelledError


