"""A process forked after `forge_rollback` was imported and used (a pre-forking server such as
gunicorn with `--preload`, `multiprocessing` with the fork start method) can still use it, sync
and async: its work used to wait forever on runtime threads that did not survive the fork (the
child now builds a runtime of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo

SCRIPT = """
import asyncio, os, signal, sys
import forge_rollback as fr

rb = fr.Rollback.open(sys.argv[1])
# The parent uses the async methods before forking, as a preloading app might.
assert asyncio.run(rb.aassess(target="v1")).recommended_level == "fast"
assert asyncio.run(rb.aruns()) == []
pid = os.fork()
if pid == 0:
    signal.alarm(30)  # a hang ends the child with SIGALRM instead of hanging the test
    try:
        r = asyncio.run(rb.arun("fast", target="v1", confirm=True))
        print("child", r.status, flush=True)
        os._exit(0 if r.status == "succeeded" else 1)
    except BaseException as e:
        print("child raised", repr(e), flush=True)
        os._exit(2)
_, status = os.waitpid(pid, 0)
print("child status", status, flush=True)
# The parent's runtime still works after the fork.
print("parent", [r.status for r in asyncio.run(rb.aruns())], flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_async_methods_work_in_a_child_forked_after_they_were_used(repo: Repo, tmp_path: Path) -> None:
    script = tmp_path / "fork_after_async.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = subprocess.run(
        [sys.executable, str(script), str(repo.path)], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "child succeeded" in out.stdout
    assert "parent ['succeeded']" in out.stdout
    assert repo.head() == repo.commit_of("v1")
    [run] = fr.Rollback.open(repo.path).runs()
    assert run.status == "succeeded"


VERIFY_SCRIPT = """
import json, os, signal, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import forge_rollback as fr

class Healthy(BaseHTTPRequestHandler):
    def do_GET(self):
        data = json.dumps({"status": "healthy"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
threading.Thread(target=server.serve_forever, daemon=True).start()
repo = sys.argv[1]
with open(os.path.join(repo, "forge-rollback.toml"), "w") as f:
    f.write(f'[[checks]]\\nname = "api"\\nkind = "http"\\nurl = "http://127.0.0.1:{server.server_address[1]}/"\\nexpect_status = 200\\n')
rb = fr.Rollback.open(repo)
# The parent checks once (the runtime runs), then forks.
assert rb.verify().passed
pid = os.fork()
if pid == 0:
    signal.alarm(30)  # a hang ends the child with SIGALRM instead of hanging the test
    report = rb.verify()
    print("child", report.passed, flush=True)
    os._exit(0 if report.passed else 1)
_, status = os.waitpid(pid, 0)
print("parent", rb.verify().passed, flush=True)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_sync_checks_work_in_a_child_forked_after_they_were_used(repo: Repo, tmp_path: Path) -> None:
    script = tmp_path / "fork_after_verify.py"
    script.write_text(textwrap.dedent(VERIFY_SCRIPT))
    out = subprocess.run(
        [sys.executable, str(script), str(repo.path)], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "child True" in out.stdout
    assert "parent True" in out.stdout
