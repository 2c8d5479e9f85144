"""A FastAPI service that can roll itself back: the forge_rollback Python bindings in use.

    FORGE_ROLLBACK_REPO=/srv/app FORGE_ROLLBACK_ADMIN_TOKEN=... uvicorn app:app

- ``GET /`` → ``{"status": "healthy"}`` (what the runbook's health checks probe);
- ``POST /admin/rollback`` (body ``{"target", "level", "dry_run", "reason", "severity"}``, every
  field optional) starts the rollback as a background job that outlives the request and answers
  ``202`` with its ``run_id`` as soon as the run has begun (a dry run answers ``200`` with the
  plan). A refusal that changed nothing answers at once (400 bad input, 409 lock held or
  refused). Who asked is recorded in the journal and the report: the ``X-Actor`` header, else
  the token's subject.
- ``GET /admin/runs`` and ``GET /admin/runs/{run_id}``: the runs, and one run's status
  (``running`` until it ends: poll it);
- ``POST /admin/runs/{run_id}/undo``: undoes a run, as a background job too (``202``);
- ``GET /admin/runs/{run_id}/report?format=md|json``: the incident report;
- ``GET /admin/verify`` (``?check=NAME`` repeatable) runs the configured ``[[checks]]`` with
  ``Rollback.averify``: 200 when every check passed, 503 when one did not.

Every ``/admin`` endpoint wants ``Authorization: Bearer <token>``: ``FORGE_ROLLBACK_ADMIN_TOKEN``
(subject ``admin``), or one of ``FORGE_ROLLBACK_ADMIN_TOKENS="alice=TOKEN,bob=TOKEN"`` (subject:
the name). Without any configured token the endpoints are disabled (503).

A ``[[restart]]`` that restarts this very process (its pid, its systemd unit, its supervisord
program) is refused by forge-rollback before anything changes: the run would die half-way, or
wait forever on the server's graceful shutdown. Restart the service from another process.

``FORGE_ROLLBACK_CONFIG`` names the configuration file when it is not in the work tree.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

import forge_rollback as fr
from forge_rollback.types import Event

app = FastAPI(title="forge-rollback example")

# The background jobs: held here so the event loop does not drop them (it keeps only weak
# references to tasks), and removed when they end.
JOBS: set[asyncio.Task[Any]] = set()


class RollbackRequest(BaseModel):
    """The body of ``POST /admin/rollback``; every field is optional."""

    target: str | None = None
    level: Literal["fast", "full", "manual"] | None = None
    dry_run: bool = False
    reason: str | None = None
    severity: Literal["critical", "high", "medium", "low"] | None = None


def tokens() -> dict[str, str]:
    """Configured tokens by subject."""
    out: dict[str, str] = {}
    if token := os.environ.get("FORGE_ROLLBACK_ADMIN_TOKEN", ""):
        out["admin"] = token
    for pair in os.environ.get("FORGE_ROLLBACK_ADMIN_TOKENS", "").split(","):
        subject, _, token = pair.strip().partition("=")
        if subject and token:
            out[subject] = token
    return out


def require_admin(authorization: str | None) -> str:
    """The token's subject; 401 unless ``authorization`` is ``Bearer <a configured token>``."""
    known = tokens()
    if not known:
        raise HTTPException(status_code=503, detail="admin endpoints disabled: no FORGE_ROLLBACK_ADMIN_TOKEN")
    given = (authorization or "").encode()
    subject = None
    for name, token in known.items():
        # Constant-time comparison: the response time says nothing about the tokens.
        if hmac.compare_digest(given, f"Bearer {token}".encode()):
            subject = name
    if subject is None:
        raise HTTPException(status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
    return subject


def actor_of(subject: str, x_actor: str | None) -> str:
    """Who asked: the ``X-Actor`` header (a person behind a shared token), else the subject."""
    return f"{x_actor} (token {subject})" if x_actor else subject


# The HTTP status of each error family: the caller's mistake, or a refusal that changed nothing.
STATUS_OF_ERROR: list[tuple[type[fr.RollbackError], int]] = [
    (fr.ConfigError, 400),
    (fr.LockHeldError, 409),
    (fr.RefusedError, 409),
    (fr.CancelledError, 409),
    (fr.DatabaseError, 503),
]


def open_repo() -> fr.Rollback:
    """The repository this service was deployed from, with its configuration."""
    return fr.Rollback.open(
        os.environ.get("FORGE_ROLLBACK_REPO", "."), config=os.environ.get("FORGE_ROLLBACK_CONFIG") or None
    )


def error_response(e: fr.RollbackError) -> JSONResponse:
    """The error's family as an HTTP status, its kind, message and hint as JSON."""
    status = next((code for cls, code in STATUS_OF_ERROR if isinstance(e, cls)), 500)
    error: dict[str, Any] = {"error": e.kind, "message": e.message, "hint": e.hint}
    return JSONResponse(error, status_code=status)


OnEvent = Callable[[Event], Awaitable[None]]
Job = Callable[[OnEvent], Coroutine[Any, Any, fr.RunResult]]


def job_done(task: asyncio.Task[fr.RunResult]) -> None:
    """Forgets a finished job. Its outcome is in the journal (``GET /admin/runs/{run_id}``);
    an exception after the 202 (the run was refused under the lock) is logged."""
    JOBS.discard(task)
    if not task.cancelled() and (e := task.exception()) is not None:
        logging.getLogger("forge_rollback").error("background rollback job failed", exc_info=e)


async def start_job(run: Job) -> JSONResponse:
    """Starts ``run(on_event)`` as a background task; answers ``202`` with the run's id once the
    run has begun (its first step), or the error if it was refused before changing anything."""
    begun: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def on_event(event: Event) -> None:
        if event["event"] == "step_started" and not begun.done():
            begun.set_result(event["run_id"])

    task: asyncio.Task[fr.RunResult] = asyncio.create_task(run(on_event))
    JOBS.add(task)
    task.add_done_callback(job_done)
    waiting: list[asyncio.Future[Any]] = [begun, task]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if not begun.done():
        begun.cancel()
        try:
            result = task.result()
        except fr.RollbackError as e:
            return error_response(e)
        return JSONResponse(result.to_dict(), status_code=200)
    run_id = begun.result()
    return JSONResponse(
        {"run_id": run_id, "status": "running", "status_url": f"/admin/runs/{run_id}"}, status_code=202
    )


@app.get("/")
def health() -> dict[str, str]:
    """Liveness: the service is up."""
    return {"status": "healthy"}


@app.post("/admin/rollback")
async def rollback(
    body: RollbackRequest | None = None,
    authorization: str | None = Header(default=None),
    x_actor: str | None = Header(default=None),
) -> JSONResponse:
    """Start a rollback in the background (202 with its run id), or plan it (``dry_run``)."""
    actor = actor_of(require_admin(authorization), x_actor)
    req = body or RollbackRequest()
    try:
        rb = open_repo()
        if req.dry_run:
            planned = await rb.arun(req.level, target=req.target, dry_run=True)
            return JSONResponse(planned.to_dict(), status_code=200)
    except fr.RollbackError as e:
        return error_response(e)

    def run(on_event: OnEvent) -> Coroutine[Any, Any, fr.RunResult]:
        return rb.arun(
            req.level,
            target=req.target,
            confirm=True,  # the bearer token is the confirmation
            on_event=on_event,
            reason=req.reason or "POST /admin/rollback",
            severity=req.severity,
            actor=actor,
        )

    return await start_job(run)


@app.get("/admin/runs")
async def runs(authorization: str | None = Header(default=None)) -> JSONResponse:
    """Every run, oldest first."""
    require_admin(authorization)
    try:
        listed = await open_repo().aruns()
    except fr.RollbackError as e:
        return error_response(e)
    return JSONResponse([r.to_dict() for r in listed])


@app.get("/admin/runs/{run_id}")
async def run_status(run_id: str, authorization: str | None = Header(default=None)) -> JSONResponse:
    """One run: ``status`` is ``running`` until it ends, then its outcome."""
    require_admin(authorization)
    try:
        result = await open_repo().arun_details(run_id)
    except fr.RollbackError as e:
        return error_response(e)
    return JSONResponse(result.to_dict())


@app.post("/admin/runs/{run_id}/undo")
async def undo(
    run_id: str, authorization: str | None = Header(default=None), x_actor: str | None = Header(default=None)
) -> JSONResponse:
    """Undo a run in the background (202 with the undo's own run id)."""
    actor = actor_of(require_admin(authorization), x_actor)
    try:
        rb = open_repo()
    except fr.RollbackError as e:
        return error_response(e)
    return await start_job(lambda on_event: rb.aundo(run_id, confirm=True, on_event=on_event, actor=actor))


@app.get("/admin/runs/{run_id}/report", response_model=None)
async def report(
    run_id: str, format: Literal["md", "json"] = "md", authorization: str | None = Header(default=None)
) -> PlainTextResponse | JSONResponse:
    """The incident report: Markdown, or its JSON."""
    require_admin(authorization)
    try:
        text = await open_repo().areport(run_id, format=format)
    except fr.RollbackError as e:
        return error_response(e)
    if format == "json":
        return JSONResponse(content=json.loads(text))
    return PlainTextResponse(text, media_type="text/markdown")


@app.get("/admin/verify")
async def verify(
    check: list[str] | None = Query(default=None), authorization: str | None = Header(default=None)
) -> JSONResponse:
    """Run the configured service checks now; 200 when all passed, 503 otherwise."""
    require_admin(authorization)
    try:
        verification = await open_repo().averify(checks=check)
    except fr.RollbackError as e:
        return error_response(e)
    return JSONResponse(verification.to_dict(), status_code=200 if verification.passed else 503)
