"""Coroutine wrapper of the native async methods (see ``crates/rollback-py/src/aio.rs``)."""

from collections.abc import Awaitable, Callable
from typing import Any


async def await_job(job: Callable[[], Awaitable[Any]]) -> Any:
    """Start ``job`` inside the running event loop and await its result."""
    return await job()
