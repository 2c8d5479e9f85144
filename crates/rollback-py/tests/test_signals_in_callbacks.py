"""A signal landing while a Python callback runs: Ctrl-C, or a job's time limit raised from a
signal handler (Celery's `SoftTimeLimitExceeded`), is raised inside the callback, yet it is
the host stopping the run, not the callback failing. Real child processes, real signals sent
to their main thread while the callback naps (see also `test_host_process.py`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo

SIGNAL_IN_A_CALLBACK = """
import json, logging, signal, sys, threading, time
import forge_rollback as fr

logging.basicConfig(level=logging.WARNING)  # the callback's failure, logged, on stderr

repo, where, sent = sys.argv[1], sys.argv[2], sys.argv[3]
signal.signal(signal.SIGINT, signal.default_int_handler)


class SoftTimeLimitExceeded(Exception):
    "What Celery's time limit raises from its signal handler: an `Exception`."


def time_limit(signum, frame):
    raise SoftTimeLimitExceeded("the job's time limit was reached")


signal.signal(signal.SIGALRM, time_limit)
sleeping = threading.Event()


def interrupt():
    sleeping.wait()
    # To the main thread, where Python runs its signal handlers and where the callbacks of a
    # sync call run: the handler runs inside the callback.
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT if sent == "ctrl-c" else signal.SIGALRM)


threading.Thread(target=interrupt, daemon=True).start()


def nap():
    sleeping.set()
    # The signal's exception is raised in here. In short sleeps: a signal that lands just
    # before a `time.sleep` began is only acted on once that sleep is over.
    for _ in range(2400):
        time.sleep(0.05)
    return True


def on_event(event):
    if event["event"] == "step_started" and event["step"] == "snapshot":
        if sent == "own":
            # The callback's own failure, with a signal handler installed all the same.
            raise SoftTimeLimitExceeded("raised by the callback itself")
        nap()


def approve(step):
    return nap() if step["name"] == "reset" else True


class NappingFilter(logging.Filter):
    "A log filter (part of the host's logging set-up) that is running when the signal lands."

    def filter(self, record):
        event = getattr(record, "forge_rollback_event", {})
        if event.get("event") == "step_started" and event.get("step") == "snapshot":
            nap()
        return True


rb = fr.Rollback.open(repo)
try:
    if where == "on_event":
        rb.run("fast", target="v1", confirm=True, on_event=on_event)
    elif where == "logging":
        logger = logging.getLogger("forge_rollback")
        logger.setLevel(logging.DEBUG)  # step events are logged at DEBUG
        logger.addFilter(NappingFilter())
        rb.run("fast", target="v1", confirm=True)
    else:
        rb.run("manual", target="v1", confirm=True, approve=approve)
    print("returned")
except (KeyboardInterrupt, SoftTimeLimitExceeded) as e:
    print(type(e).__name__)
    result = getattr(e, "result", None)
    print(json.dumps(None if result is None else {
        "status": result.status, "error": result.error, "steps": {s["step"]: s["status"] for s in result.steps},
    }))
print(json.dumps({"runs": [r.status for r in rb.runs()], "lock": rb.lock_holder()}))
print(json.dumps([r.run_id for r in rb.runs()]))
"""


def _run_child(repo: Repo, tmp_path: Path, where: str, sent: str) -> tuple[list[str], str]:
    script = tmp_path / "signal_in_a_callback.py"
    script.write_text(textwrap.dedent(SIGNAL_IN_A_CALLBACK))
    child = subprocess.Popen(
        [sys.executable, str(script), str(repo.path), where, sent],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        out, err = child.communicate(timeout=110)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the signal did not interrupt the callback:\n{out}{err}")
    assert child.returncode == 0, out + err
    return out.splitlines(), out + err


@pytest.mark.parametrize(
    ("where", "sent", "raised"),
    [
        ("approve", "ctrl-c", "KeyboardInterrupt"),
        ("approve", "time-limit", "SoftTimeLimitExceeded"),
        ("on_event", "time-limit", "SoftTimeLimitExceeded"),
        ("logging", "time-limit", "SoftTimeLimitExceeded"),
    ],
)
def test_a_signal_while_a_callback_runs_stops_the_run_as_anywhere_else(
    repo: Repo, tmp_path: Path, where: str, sent: str, raised: str
) -> None:
    """The run stops before the next step (`reset`: the one the approve callback was asked
    about, or the one after the `snapshot` whose `step_started` the on_event callback or the
    log filter was handed), `cancelled` as `interrupted (<the exception>)` like a Ctrl-C at a
    step boundary, not "the operator aborted the run" nor a failure of the callback or of the
    logging set-up that lets the run go on; the call raises the signal handler's exception with
    `run_id` and `result`."""
    lines, output = _run_child(repo, tmp_path, where, sent)
    assert lines[0] == raised, output
    result, state = json.loads(lines[1]), json.loads(lines[2])
    assert result["status"] == "cancelled", output
    assert result["error"] == f"interrupted ({raised})", output
    assert result["steps"]["snapshot"] == "done" and result["steps"]["reset"] == "pending", output
    assert state == {"runs": ["cancelled"], "lock": None}
    # Nobody answered for `reset`: the report says the run was cancelled there, not aborted.
    import forge_rollback as fr

    [run_id] = json.loads(lines[3])
    report = fr.Rollback.open(repo.path).report(run_id)
    assert "aborted" not in report, report
    assert f"interrupted ({raised})" in report, report


def test_an_exception_of_the_on_event_callback_itself_is_still_logged_and_the_run_goes_on(
    repo: Repo, tmp_path: Path
) -> None:
    """The same exception type, raised by the callback's own code while a handler that raises
    it is installed: a failure of the callback, logged; the run goes on."""
    lines, output = _run_child(repo, tmp_path, "on_event", "own")
    assert lines[0] == "returned", output
    assert json.loads(lines[1]) == {"runs": ["succeeded"], "lock": None}
    assert "the on_event callback raised; the run goes on" in output, output
