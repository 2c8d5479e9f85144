"""examples/fastapi_app: started under uvicorn on 127.0.0.1, driven over real HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo

APP_DIR = Path(__file__).resolve().parents[3] / "examples" / "fastapi_app"
TOKEN = "s3cret-token-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def request(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@contextlib.contextmanager
def start(repo: Repo, tmp_path: Path, config: str | None = None) -> Iterator[str]:
    """The example under uvicorn on a free port; `config` (with `{port}` for the app's own
    port) becomes its FORGE_ROLLBACK_CONFIG."""
    port = free_port()
    env = {**os.environ, "FORGE_ROLLBACK_REPO": str(repo.path), "FORGE_ROLLBACK_ADMIN_TOKEN": TOKEN}
    if config is not None:
        path = tmp_path / "forge-rollback.toml"
        path.write_text(config.replace("{port}", str(port)))
        env["FORGE_ROLLBACK_CONFIG"] = str(path)
    log = (tmp_path / "uvicorn.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(APP_DIR), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"uvicorn exited: {(tmp_path / 'uvicorn.log').read_text()}")
            try:
                if request(url + "/")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("uvicorn did not answer")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.fixture
def server(repo: Repo, tmp_path: Path) -> Iterator[str]:
    with start(repo, tmp_path) as url:
        yield url


def test_health(server: str) -> None:
    assert request(server + "/") == (200, {"status": "healthy"})


def test_rollback_needs_the_token(server: str, repo: Repo) -> None:
    before = repo.state()
    status, body = request(server + "/admin/rollback", "POST", {"target": "v1"})
    assert status == 401
    status, body = request(server + "/admin/rollback", "POST", {"target": "v1"}, token="wrong")
    assert status == 401
    assert repo.state() == before


def test_rollback_with_the_token(server: str, repo: Repo) -> None:
    status, body = request(server + "/admin/rollback", "POST", {"target": "v1", "dry_run": True}, token=TOKEN)
    assert status == 200
    assert body["status"] == "planned"
    assert repo.head() == repo.commit_of("v3")

    status, body = request(server + "/admin/rollback", "POST", {"target": "no-such-tag"}, token=TOKEN)
    assert status == 400
    assert body["error"] == "usage" and body["hint"]

    status, body = request(server + "/admin/rollback", "POST", {"target": "v1", "reason": "v3 broke login"}, token=TOKEN)
    assert status == 200, body
    assert body["status"] == "succeeded"
    assert body["to"] == repo.commit_of("v1")
    assert repo.head() == repo.commit_of("v1")


def test_verify_endpoint(repo: Repo, tmp_path: Path) -> None:
    """`GET /admin/verify` runs the checks with `averify`: one of them calls the app itself,
    which keeps serving while the check waits; another probes a port nothing listens on."""
    config = (
        '[[checks]]\nname = "self"\nkind = "http"\nurl = "http://127.0.0.1:{port}/"\n'
        'body_contains = "healthy"\ntimeout_secs = 20\n\n'
        f'[[checks]]\nname = "down"\nkind = "tcp"\naddress = "127.0.0.1:{free_port()}"\ntimeout_secs = 20\n'
    )
    with start(repo, tmp_path, config) as url:
        assert request(url + "/admin/verify")[0] == 401
        status, body = request(url + "/admin/verify", token=TOKEN)
        assert status == 503
        assert body["passed"] is False
        assert [(c["name"], c["status"]) for c in body["checks"]] == [("self", "passed"), ("down", "error")]

        status, body = request(url + "/admin/verify?check=self", token=TOKEN)
        assert status == 200
        assert body["passed"] is True and [c["name"] for c in body["checks"]] == ["self"]

        status, body = request(url + "/admin/verify?check=nope", token=TOKEN)
        assert status == 400
        assert body["error"] == "usage" and "`nope`" in body["message"]


def test_verify_endpoint_without_checks_says_so(server: str) -> None:
    status, body = request(server + "/admin/verify", token=TOKEN)
    assert status == 400
    assert body["error"] == "usage"
    assert "no `[[checks]]`" in body["message"]
