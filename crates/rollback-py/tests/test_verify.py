"""verify() / averify() against real HTTP servers on 127.0.0.1, and verification after a run."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Generator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TYPE_CHECKING

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def serve(health: Callable[[str], tuple[int, dict[str, str]]]) -> Generator[int, None, None]:
    """A real HTTP server on 127.0.0.1 answering `health(path)`; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = health(self.path)
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)


@pytest.fixture
def service() -> Iterator[int]:
    """`GET /` is healthy, `GET /broken` answers 500."""

    def health(path: str) -> tuple[int, dict[str, str]]:
        if path == "/":
            return 200, {"status": "healthy"}
        return 500, {"status": "broken"}

    yield from serve(health)


def checks_toml(port: int, down: int) -> str:
    return f"""
[verify]
timeout_secs = 10

[[checks]]
name = "api"
kind = "http"
url = "http://127.0.0.1:{port}/"
expect_status = 200
body_contains = "healthy"

[[checks]]
name = "broken"
kind = "http"
url = "http://127.0.0.1:{port}/broken"
expect_status = 200

[[checks]]
name = "down"
kind = "http"
url = "http://127.0.0.1:{down}/"
"""


def open_with(repo: Repo, tmp_path: Path, toml: str) -> fr.Rollback:
    config = tmp_path / "forge-rollback.toml"
    config.write_text(toml)
    return fr.Rollback.open(repo.path, config=config)


def check_round(report: fr.VerificationReport) -> None:
    """One passing, one failing (status) and one refused check, in config order."""
    assert isinstance(report, fr.VerificationReport)
    assert report.passed is False
    by_name = {c["name"]: c for c in report.checks}
    assert [c["name"] for c in report.checks] == ["api", "broken", "down"]
    assert by_name["api"]["passed"] is True
    assert by_name["api"]["status"] == "passed"
    assert by_name["api"]["kind"] == "http"
    assert by_name["broken"]["passed"] is False
    assert by_name["broken"]["status"] == "failed"
    assert "500" in by_name["broken"]["reason"] and "200" in by_name["broken"]["reason"]
    assert by_name["down"]["passed"] is False
    assert by_name["down"]["status"] == "error"
    assert "refused" in by_name["down"]["reason"].lower()
    assert report.failed == ["broken", "down"]
    assert report.to_dict() == json.loads(report.to_json())
    assert "VerificationReport(passed=false" in repr(report)


def test_verify_reports_each_check_and_does_not_raise(
    repo: Repo, tmp_path: Path, service: int, every_getter: Any
) -> None:
    rb = open_with(repo, tmp_path, checks_toml(service, closed_port()))
    before = repo.state()
    report = rb.verify()
    check_round(report)
    # Verification reads only.
    assert repo.state() == before
    assert rb.runs() == []

    with pytest.raises(fr.VerificationError) as info:
        report.raise_for_status()
    err = info.value
    assert err.kind == "failed"
    assert err.failed == ["broken", "down"]
    assert err.report is report
    assert err.run_id is None
    assert "`broken`" in err.message and "`down`" in err.message

    assert every_getter(report)["passed"] is False
    assert every_getter(report)["passed"] is False
    only = rb.verify(checks=["api"])
    assert only.passed is True
    assert [c["name"] for c in only.checks] == ["api"]
    assert only.failed == []
    only.raise_for_status()  # all passed: no exception


def test_verify_unknown_check_and_no_checks_are_config_errors(repo: Repo, tmp_path: Path, service: int) -> None:
    rb = open_with(repo, tmp_path, checks_toml(service, closed_port()))
    with pytest.raises(fr.ConfigError) as info:
        rb.verify(checks=["api", "nope"])
    assert "`nope`" in info.value.message
    assert info.value.hint is not None and "api, broken, down" in info.value.hint

    # An empty selection is no check at all (None means every configured check).
    with pytest.raises(fr.ConfigError, match="no check was selected") as info:
        rb.verify(checks=[])
    assert info.value.hint is not None and "api, broken, down" in info.value.hint

    async def averify_none() -> fr.VerificationReport:
        return await rb.averify([])

    with pytest.raises(fr.ConfigError, match="no check was selected"):
        asyncio.run(averify_none())

    # No checks configured: a round would "pass" without looking at anything.
    with pytest.raises(fr.ConfigError, match="no `\\[\\[checks\\]\\]` are configured"):
        fr.Rollback.open(repo.path).verify()


def test_averify_runs_inside_asyncio(repo: Repo, tmp_path: Path, service: int) -> None:
    rb = open_with(repo, tmp_path, checks_toml(service, closed_port()))

    async def main() -> tuple[fr.VerificationReport, fr.VerificationReport, int]:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        coro = rb.averify()
        assert asyncio.iscoroutine(coro)
        both = await asyncio.gather(coro, rb.averify(checks=["api"]))
        done = True
        await task
        return both[0], both[1], ticks

    report, only, ticks = asyncio.run(main())
    check_round(report)
    assert only.passed is True
    assert ticks > 0

    async def unknown() -> None:
        await rb.averify(checks=["nope"])

    with pytest.raises(fr.ConfigError):
        asyncio.run(unknown())


def test_run_whose_service_is_down_is_verification_failed(repo: Repo, tmp_path: Path) -> None:
    down = closed_port()
    rb = open_with(
        repo,
        tmp_path,
        f'[[checks]]\nname = "api"\nkind = "tcp"\naddress = "127.0.0.1:{down}"\ntimeout_secs = 5\n',
    )
    before = repo.state()
    r = rb.run("fast", target="v1", confirm=True)
    # A result, not an exception: the steps ran, the services do not answer.
    assert r.status == "verification_failed"
    assert r.error is None
    assert r.undone_by is None
    assert r.verification is not None
    assert r.verification.passed is False
    [check] = r.verification.checks
    assert (check["name"], check["kind"], check["status"]) == ("api", "tcp", "error")
    assert {s["step"]: s["status"] for s in r.steps}["verify"] == "done"
    assert repo.head() == repo.commit_of("v1")

    with pytest.raises(fr.VerificationError) as info:
        r.raise_for_status()
    assert info.value.run_id == r.run_id
    assert info.value.failed == ["api"]
    assert isinstance(info.value.report, fr.VerificationReport)
    assert info.value.report.passed is False
    assert info.value.hint is not None and f'undo("{r.run_id}")' in info.value.hint

    assert r.run_id is not None
    [summary] = rb.runs()
    assert summary.status == "verification_failed"
    assert rb.run_details(r.run_id).verification == r.verification
    md = rb.report(r.run_id)
    assert "1 of 1 service check(s) FAILED after the run" in md
    assert "api (tcp)" in md

    # Verification failed is not an unfinished run: undo puts everything back (its own
    # verification fails too, the service is still down).
    u = rb.undo(r.run_id, confirm=True)
    assert u.status == "verification_failed"
    assert repo.state() == before


def test_on_failure_undo_puts_the_tree_back(repo: Repo, tmp_path: Path) -> None:
    """The service answers only while the tree holds release v3: the rollback breaks it, the
    automatic undo mends it."""
    app_py = repo.path / "app.py"

    def health(path: str) -> tuple[int, dict[str, str]]:
        ok = app_py.exists() and app_py.read_text().startswith("VERSION = 3")
        return (200, {"status": "healthy"}) if ok else (503, {"status": "starting"})

    gen = serve(health)
    port = next(gen)
    try:
        rb = open_with(
            repo,
            tmp_path,
            '[verify]\non_failure = "undo"\n\n'
            f'[[checks]]\nname = "api"\nkind = "http"\nurl = "http://127.0.0.1:{port}/"\n'
            'body_contains = "healthy"\ntimeout_secs = 10\n',
        )
        assert rb.verify().passed is True
        before = repo.state()
        r = rb.run("fast", target="v1", confirm=True)
        assert r.status == "verification_failed"
        assert r.verification is not None and r.verification.passed is False
        assert r.verification.checks[0]["status"] == "failed"
        assert "503" in r.verification.checks[0]["reason"]
        assert r.undone_by is not None
        assert not any("automatic undo" in w for w in r.warnings)
        assert repo.state() == before
        assert rb.verify().passed is True

        statuses = {s.run_id: (s.kind, s.status) for s in rb.runs()}
        assert statuses == {r.run_id: ("rollback", "undone"), r.undone_by: ("undo", "succeeded")}
        with pytest.raises(fr.VerificationError) as info:
            r.raise_for_status()
        assert info.value.hint is None
        assert f"undone by run {r.undone_by}" in info.value.message
    finally:
        gen.close()
