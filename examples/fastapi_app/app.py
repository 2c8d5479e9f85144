"""A FastAPI service that can roll itself back: the forge_rollback Python bindings in use.

    FORGE_ROLLBACK_REPO=/srv/app FORGE_ROLLBACK_ADMIN_TOKEN=... uvicorn app:app

- ``GET /`` → ``{"status": "healthy"}`` (what the runbook's health checks probe);
- ``POST /admin/rollback`` with ``Authorization: Bearer <token>`` and an optional JSON body
  ``{"target": "v1", "level": "fast", "dry_run": false, "reason": "..."}`` rolls the work tree
  at ``FORGE_ROLLBACK_REPO`` back and answers with the run's JSON (the same JSON as
  ``forge-rollback run --json``). Without the right token: 401. Without a configured token the
  endpoint is disabled (503): an admin endpoint must never be open by accident.
- ``GET /admin/verify`` (same token; ``?check=NAME`` repeatable) runs the configured
  ``[[checks]]`` now with ``Rollback.averify`` (the event loop keeps serving, so a check may
  call this very service) and answers the report's JSON (``forge-rollback verify --json``):
  200 when every check passed, 503 when one did not.

``FORGE_ROLLBACK_CONFIG`` names the configuration file when it is not in the work tree.
"""

from __future__ import annotations

import hmac
import os
from typing import Any, Literal

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import forge_rollback as fr

app = FastAPI(title="forge-rollback example")


class RollbackRequest(BaseModel):
    """The body of ``POST /admin/rollback``; every field is optional."""

    target: str | None = None
    level: Literal["fast", "full", "manual"] | None = None
    dry_run: bool = False
    reason: str | None = None


def require_admin(authorization: str | None) -> None:
    """401 unless ``authorization`` is ``Bearer <FORGE_ROLLBACK_ADMIN_TOKEN>``."""
    expected = os.environ.get("FORGE_ROLLBACK_ADMIN_TOKEN", "")
    if not expected:
        raise HTTPException(status_code=503, detail="admin endpoint disabled: FORGE_ROLLBACK_ADMIN_TOKEN is not set")
    given = (authorization or "").encode()
    # Constant-time comparison: the response time says nothing about the token.
    if not hmac.compare_digest(given, f"Bearer {expected}".encode()):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


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


@app.get("/")
def health() -> dict[str, str]:
    """Liveness: the service is up."""
    return {"status": "healthy"}


@app.get("/admin/verify")
async def verify(
    check: list[str] | None = Query(default=None), authorization: str | None = Header(default=None)
) -> JSONResponse:
    """Run the configured service checks now; 200 when all passed, 503 otherwise."""
    require_admin(authorization)
    try:
        report = await open_repo().averify(checks=check)
    except fr.RollbackError as e:
        return error_response(e)
    return JSONResponse(report.to_dict(), status_code=200 if report.passed else 503)


@app.post("/admin/rollback")
async def rollback(
    body: RollbackRequest | None = None, authorization: str | None = Header(default=None)
) -> JSONResponse:
    """Roll the repository back (or plan it, with ``dry_run``); answers the run's JSON."""
    require_admin(authorization)
    req = body or RollbackRequest()
    try:
        rb = open_repo()
        result = await rb.arun(
            req.level,
            target=req.target,
            confirm=True,  # the bearer token is the confirmation
            dry_run=req.dry_run,
            reason=req.reason or "POST /admin/rollback",
        )
    except fr.RollbackError as e:
        return error_response(e)
    # A failed step is recorded and can be resumed or undone: 500. Verification that failed
    # after the steps (the services do not answer): 503.
    status = {"failed": 500, "verification_failed": 503}.get(result.status, 200)
    return JSONResponse(result.to_dict(), status_code=status)
