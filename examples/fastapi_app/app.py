"""A FastAPI service that can roll itself back: the forge_rollback Python bindings in use.

    FORGE_ROLLBACK_REPO=/srv/app FORGE_ROLLBACK_ADMIN_TOKEN=... uvicorn app:app

- ``GET /`` → ``{"status": "healthy"}`` (what the runbook's health checks probe);
- ``POST /admin/rollback`` with ``Authorization: Bearer <token>`` and an optional JSON body
  ``{"target": "v1", "level": "fast", "dry_run": false, "reason": "..."}`` rolls the work tree
  at ``FORGE_ROLLBACK_REPO`` back and answers with the run's JSON (the same JSON as
  ``forge-rollback run --json``). Without the right token: 401. Without a configured token the
  endpoint is disabled (503): an admin endpoint must never be open by accident.
"""

from __future__ import annotations

import hmac
import os
from typing import Any, Literal

from fastapi import FastAPI, Header, HTTPException
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
]


@app.get("/")
def health() -> dict[str, str]:
    """Liveness: the service is up."""
    return {"status": "healthy"}


@app.post("/admin/rollback")
async def rollback(
    body: RollbackRequest | None = None, authorization: str | None = Header(default=None)
) -> JSONResponse:
    """Roll the repository back (or plan it, with ``dry_run``); answers the run's JSON."""
    require_admin(authorization)
    req = body or RollbackRequest()
    try:
        rb = fr.Rollback.open(os.environ.get("FORGE_ROLLBACK_REPO", "."))
        result = await rb.arun(
            req.level,
            target=req.target,
            confirm=True,  # the bearer token is the confirmation
            dry_run=req.dry_run,
            reason=req.reason or "POST /admin/rollback",
        )
    except fr.RollbackError as e:
        status = next((code for cls, code in STATUS_OF_ERROR if isinstance(e, cls)), 500)
        error: dict[str, Any] = {"error": e.kind, "message": e.message, "hint": e.hint}
        return JSONResponse(error, status_code=status)
    # A failed step is recorded and can be resumed or undone; say so with a 500.
    return JSONResponse(result.to_dict(), status_code=500 if result.status == "failed" else 200)
