"""`Assessment.production`: with a platform `[deploy] strategy`, an assessment says what the
platform runs and the release a rollback would promote, typed
(`forge_rollback.types.ProductionAssessment`). The platform is a tiny local fake of the one
Railway GraphQL query the assessment sends (its deployments, newest first)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo

    from forge_rollback.types import ProductionAssessment, Release

TOKEN = "rw-py-planted-1f2e3d4c5b"


class FakeRailway:
    """Answers `deployments(input, first, after)` with one deployment per tag, v3 live; keeps
    the headers and bodies it was sent."""

    def __init__(self, commits: list[str]) -> None:
        self.commits = commits
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if self.headers.get("Project-Access-Token") != TOKEN:
                    self.reply({"data": None, "errors": [{"message": "Not Authorized"}]})
                elif "deployments(" in body["query"]:
                    self.reply(fake.deployments())
                else:
                    self.reply({"data": None, "errors": [{"message": "unknown query"}]})

            def reply(self, obj: dict[str, Any]) -> None:
                data = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/graphql/v2"

    def deployments(self) -> dict[str, Any]:
        n = len(self.commits)
        edges = [
            {
                "node": {
                    "id": f"dep-{i + 1}",
                    "projectId": "prj-1",
                    "status": "SUCCESS" if i + 1 == n else "REMOVED",
                    "createdAt": f"2026-12-0{i + 1}T10:00:00Z",
                    "canRollback": True,
                    "meta": {"commitHash": c, "branch": "main"},
                }
            }
            for i, c in reversed(list(enumerate(self.commits)))
        ]
        return {"data": {"deployments": {"edges": edges, "pageInfo": {"hasNextPage": False, "endCursor": None}}}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def railway(repo: Repo) -> Iterator[FakeRailway]:
    fake = FakeRailway([repo.commit_of(t) for t in ("v1", "v2", "v3")])
    yield fake
    fake.close()


def railway_config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "forge-rollback.toml"
    config.write_text(
        "[deploy]\n"
        'strategy = "railway"\n'
        'service_id = "srv-1"\n'
        'environment_id = "env-1"\n'
        'token_env = "FR_PY_RAILWAY_TOKEN"\n'
        f"api_url = {json.dumps(url)}\n"
    )
    return config


def test_an_assessment_names_the_live_release_and_the_targets(
    repo: Repo, railway: FakeRailway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FR_PY_RAILWAY_TOKEN", TOKEN)
    rb = fr.Rollback.open(repo.path, config=railway_config(tmp_path, railway.url))
    a = rb.assess("v1")

    production: ProductionAssessment | None = a.production
    assert production is not None
    assert production["target"].startswith("railway service srv-1 (environment env-1)")
    live: Release | None = production["live"]
    release: Release | None = production["release"]
    assert live is not None and release is not None
    assert (live["id"], live["commit"]) == ("dep-3", repo.commit_of("v3"))
    assert (release["id"], release["commit"]) == ("dep-1", repo.commit_of("v1"))
    assert release["summary"].startswith("deployment dep-1")
    assert production["problem"] is None

    line = a.production_line
    assert line is not None and line.startswith("production: railway service srv-1"), line
    assert "dep-3" in line and "-> deployment dep-1" in line and repo.commit_of("v1")[:7] in line, line
    assert a.to_dict()["production"] == production
    assert fr.Assessment.from_json(a.to_json()).production == production

    # The adapter sent Railway's query with the project token in its own header.
    headers, body = railway.requests[0]
    assert headers["project-access-token"] == TOKEN
    assert "authorization" not in headers
    assert body["variables"]["input"] == {"serviceId": "srv-1", "environmentId": "env-1"}
    assert TOKEN not in a.to_json()

    steps: list[dict[str, Any]] = json.loads(rb.plan("fast", "v1").to_json())["steps"]
    promote = [s for s in steps if s["step"] == "promote"]
    assert [(s["from"]["id"], s["to"]["id"]) for s in promote] == [("dep-3", "dep-1")]


def test_a_target_the_platform_never_built_is_the_problem_and_no_platform_is_none(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRailway([repo.commit_of(t) for t in ("v2", "v3")])
    try:
        monkeypatch.setenv("FR_PY_RAILWAY_TOKEN", TOKEN)
        a = fr.Rollback.open(repo.path, config=railway_config(tmp_path, fake.url)).assess("v1")
        assert a.production is not None
        assert a.production["release"] is None
        assert a.production["problem"] is not None and "no release built from the target" in a.production["problem"]
        assert a.production_line is not None and "`push` or `revert-commit`" in a.production_line
    finally:
        fake.close()

    plain = fr.Rollback.open(repo.path).assess("v1")
    assert plain.production is None
    assert plain.production_line is None
    assert "production" not in plain.to_dict()
