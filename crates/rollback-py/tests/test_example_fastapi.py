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
ALICE = "alices-own-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def request(
    url: str, method: str = "GET", body: Any = None, token: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            if resp.headers.get_content_type() == "application/json":
                return resp.status, json.loads(raw)
            return resp.status, raw.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@contextlib.contextmanager
def start(
    repo: Repo, tmp_path: Path, config: str | None = None, env_extra: dict[str, str] | None = None
) -> Iterator[str]:
    """The example under uvicorn on a free port; `config` (with `{port}` for the app's own
    port and `{pid}` for the server's pid) becomes its FORGE_ROLLBACK_CONFIG."""
    port = free_port()
    env = {
        **os.environ,
        "FORGE_ROLLBACK_REPO": str(repo.path),
        "FORGE_ROLLBACK_ADMIN_TOKEN": TOKEN,
        "FORGE_ROLLBACK_ADMIN_TOKENS": f"alice={ALICE}",
        **(env_extra or {}),
    }
    path = tmp_path / "forge-rollback.toml"
    if config is not None:
        env["FORGE_ROLLBACK_CONFIG"] = str(path)
    log = (tmp_path / "uvicorn.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(APP_DIR), "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    if config is not None:
        # Read by the app at each request, so it may name the server's own pid.
        path.write_text(config.replace("{port}", str(port)).replace("{pid}", str(proc.pid)))
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


def wait_for_status(url: str, run_id: str, want: str) -> dict[str, Any]:
    """Polls `GET /admin/runs/{run_id}` until its status is `want`."""
    for _ in range(1200):
        status, body = request(f"{url}/admin/runs/{run_id}", token=TOKEN)
        assert status == 200, body
        if body["status"] == want:
            return dict(body)
        assert body["status"] == "running", body
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never became {want}")


def test_rollback_with_the_token(server: str, repo: Repo) -> None:
    status, body = request(server + "/admin/rollback", "POST", {"target": "v1", "dry_run": True}, token=TOKEN)
    assert status == 200
    assert body["status"] == "planned"
    assert repo.head() == repo.commit_of("v3")

    status, body = request(server + "/admin/rollback", "POST", {"target": "no-such-tag"}, token=TOKEN)
    assert status == 400
    assert body["error"] == "usage" and body["hint"]

    status, body = request(
        server + "/admin/rollback", "POST", {"target": "v1", "reason": "v3 broke login"}, token=ALICE
    )
    assert status == 202, body
    run = wait_for_status(server, body["run_id"], "succeeded")
    assert run["to"] == repo.commit_of("v1")
    assert repo.head() == repo.commit_of("v1")
    # The token's subject is the actor, in the report.
    status, md = request(f"{server}/admin/runs/{body['run_id']}/report", token=TOKEN)
    assert status == 200 and "**Triggered by**: alice" in md
    status, report = request(f"{server}/admin/runs/{body['run_id']}/report?format=json", token=TOKEN)
    assert status == 200 and report["actor"] == "alice"

    # Undo, in the background too.
    status, undo = request(f"{server}/admin/runs/{body['run_id']}/undo", "POST", token=TOKEN)
    assert status == 202, undo
    assert wait_for_status(server, undo["run_id"], "succeeded")["undo_of"] == body["run_id"]
    status, report = request(f"{server}/admin/runs/{undo['run_id']}/report?format=json", token=TOKEN)
    assert report["actor"] == "admin"
    assert repo.head() == repo.commit_of("v3")
    status, listed = request(server + "/admin/runs", token=TOKEN)
    assert [r["status"] for r in listed] == ["undone", "succeeded"]


def test_rollback_outlives_a_client_that_gives_up(repo: Repo, tmp_path: Path) -> None:
    """The client sends the request and hangs up at once; the run goes on, recorded with the
    X-Actor who asked, and its status can be polled to the end."""
    release = tmp_path / "release"
    failpoint = {
        "FORGE_ROLLBACK_FAILPOINT": "before:reset",
        "FORGE_ROLLBACK_FAILPOINT_ACTION": "pause",
        "FORGE_ROLLBACK_FAILPOINT_RELEASE": str(release),
    }
    with start(repo, tmp_path, env_extra=failpoint) as url:
        port = int(url.rsplit(":", 1)[1])
        body = json.dumps({"target": "v1", "reason": "login broken"}).encode()
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(
                b"POST /admin/rollback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Authorization: Bearer {TOKEN}\r\nX-Actor: ops-oncall\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        # Hung up. The run has begun and waits inside `reset`.
        for _ in range(1200):
            status, listed = request(url + "/admin/runs", token=TOKEN)
            if listed:
                break
            time.sleep(0.05)
        [run] = listed
        assert run["status"] == "running"
        release.touch()
        done = wait_for_status(url, run["run_id"], "succeeded")
        assert done["to"] == repo.commit_of("v1")
        status, report = request(f"{url}/admin/runs/{run['run_id']}/report?format=json", token=TOKEN)
        assert report["actor"] == "ops-oncall (token admin)"


def test_a_restart_of_the_server_itself_is_refused(repo: Repo, tmp_path: Path) -> None:
    before = repo.state()
    config = '[[restart]]\nname = "self"\nargv = ["kill", "-TERM", "{pid}"]\n'
    with start(repo, tmp_path, config) as url:
        status, body = request(url + "/admin/rollback", "POST", {"target": "v1"}, token=TOKEN)
        assert status == 409, body
        assert body["error"] == "refused" and "would stop the process running this rollback" in body["message"]
        assert request(url + "/")[0] == 200
        assert repo.state() == before


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
