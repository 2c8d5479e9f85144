"""The module inside a host process that goes on around it: the host's signal handlers after
`cli_main`, a job's time limit raised from a signal handler, Ctrl-C during a call that waits on
a check, and processes forked while a run is live (a pre-fork server's workers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import forge_rollback as fr

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo


def _child(tmp_path: Path, name: str, source: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _paused_before_reset(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment that pauses a run before its `reset` step until the file it names exists."""
    release = tmp_path / "release"
    env = {
        "FORGE_ROLLBACK_FAILPOINT": "before:reset",
        "FORGE_ROLLBACK_FAILPOINT_ACTION": "pause",
        "FORGE_ROLLBACK_FAILPOINT_RELEASE": str(release),
    }
    return env, release


def _signal_once_paused(release: Path, signum: int) -> None:
    """Sends this process `signum` once the paused run has reached its failpoint (while the main
    thread is inside Rust), then lets the run go on."""
    reached = Path(f"{release}.reached")

    def send() -> None:
        while not reached.exists():
            threading.Event().wait(0.02)
        os.kill(os.getpid(), signum)
        release.touch()

    threading.Thread(target=send).start()


# ----- cli_main gives the host its signal handlers back ----------------------------------------

CLI_MAIN_THEN_RUN = """
import signal, sys
import forge_rollback as fr

repo = sys.argv[1]
signal.signal(signal.SIGINT, signal.default_int_handler)
# An earlier command line run in this process (`verify` installs the CLI's "Ctrl-C ends the
# process" handler).
print("cli_main", fr.cli_main(["forge-rollback", "-C", repo, "-q", "verify"]), flush=True)
rb = fr.Rollback.open(repo)
try:
    rb.run("fast", target="v1", confirm=True)
    print("run returned", flush=True)
except KeyboardInterrupt as e:
    print("KeyboardInterrupt", e.result.status, flush=True)
"""


def test_ctrl_c_after_cli_main_stops_a_run_at_its_step_boundary(repo: Repo, tmp_path: Path) -> None:
    repo.write("forge-rollback.toml", '[[checks]]\nname = "ok"\nkind = "command"\nargv = ["true"]\n')
    env, release = _paused_before_reset(tmp_path)
    child = _child(tmp_path, "cli_main_then_run", CLI_MAIN_THEN_RUN, str(repo.path), env=env)
    reached = Path(f"{release}.reached")
    while not reached.exists():
        assert child.poll() is None, child.communicate()
        threading.Event().wait(0.05)
    child.send_signal(signal.SIGINT)
    release.touch()
    out, err = child.communicate(timeout=120)
    # Not killed by the signal in the middle of the step by the CLI's handler left installed.
    assert child.returncode == 0, out + err
    assert "KeyboardInterrupt cancelled" in out, out + err
    [run] = fr.Rollback.open(repo.path).runs()
    assert run.status == "cancelled"


CLI_MAIN_THEN_SIGTERM = """
import os, signal, sys, time
import forge_rollback as fr

repo = sys.argv[1]
# A run through the command line installs the CLI's "SIGTERM stops at the next step" handler.
print("cli_main", fr.cli_main(["forge-rollback", "-C", repo, "-q", "run", "--fast", "--target", "v1", "--yes"]), flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(60)
print("survived SIGTERM", flush=True)
"""


def test_sigterm_after_cli_main_ends_the_process_as_without_it(repo: Repo, tmp_path: Path) -> None:
    child = _child(tmp_path, "cli_main_then_sigterm", CLI_MAIN_THEN_SIGTERM, str(repo.path))
    out, err = child.communicate(timeout=120)
    assert "cli_main 0" in out, out + err
    assert child.returncode == -signal.SIGTERM, out + err
    assert "survived" not in out and "interrupted" not in err, out + err


CLI_MAIN_TWICE = """
import sys
import forge_rollback as fr

repo = sys.argv[1]
print("first", fr.cli_main(["forge-rollback", "-C", repo, "-q", "verify", "--check", "ok"]), flush=True)
# The second command line waits on a check program; Ctrl-C must end it as in the binary.
print("second", fr.cli_main(["forge-rollback", "-C", repo, "-q", "verify", "--check", "slow"]), flush=True)
"""


def test_a_later_cli_main_gets_the_cli_signal_handlers_again(repo: Repo, tmp_path: Path) -> None:
    started = tmp_path / "started"
    repo.write(
        "forge-rollback.toml",
        '[[checks]]\nname = "ok"\nkind = "command"\nargv = ["true"]\n'
        f'[[checks]]\nname = "slow"\nkind = "command"\ntimeout_secs = 600\nargv = ["sh", "-c", "touch {started}; sleep 600"]\n',
    )
    child = _child(tmp_path, "cli_main_twice", CLI_MAIN_TWICE, str(repo.path))
    assert child.stdout is not None
    while not (line := child.stdout.readline()).startswith("first"):
        assert line, child.communicate()
    assert line.startswith("first 0"), line
    while not started.exists():
        assert child.poll() is None, child.communicate()
        threading.Event().wait(0.05)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    # Ended by the signal, as the binary's `verify` is, not after the check's 600 s.
    assert child.returncode == -signal.SIGINT, out + err


# ----- a signal handler's exception (a job's time limit) stops a sync run --------------------


class SoftTimeLimitExceeded(Exception):
    """What Celery's time limit raises from its signal handler: an `Exception`."""


@pytest.fixture
def time_limit_handler() -> Any:
    def on_alarm(signum: int, frame: object) -> None:
        raise SoftTimeLimitExceeded("the job's time limit was reached")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        yield
    finally:
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.usefixtures("time_limit_handler")
def test_an_exception_from_a_signal_handler_stops_a_sync_run_and_is_raised(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, release = _paused_before_reset(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    rb = fr.Rollback.open(repo.path)
    before = repo.state()
    # The limit fires while the main thread is inside Rust (paused before `reset`).
    _signal_once_paused(release, signal.SIGALRM)
    with pytest.raises(SoftTimeLimitExceeded) as info:
        rb.run("fast", target="v1", confirm=True, on_event=lambda event: None)
    result: fr.RunResult = getattr(info.value, "result")
    assert result.status == "cancelled"
    assert {s["step"]: s["status"] for s in result.steps}["remove_untracked"] == "pending"
    [run] = rb.runs()
    assert run.status == "cancelled" and run.run_id == getattr(info.value, "run_id")
    assert rb.undo(run.run_id, confirm=True).status == "succeeded"
    assert repo.state() == before


@pytest.mark.usefixtures("python_ctrl_c")
def test_ctrl_c_once_the_lock_is_taken_but_before_the_first_step_journals_no_run(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`confirm=True` takes the lock before it assesses. Ctrl-C then, before the first step,
    changes nothing: no run is journaled (one `cancelled` with no step done would have nothing
    to undo, and its `resume` would carry out the rollback just interrupted)."""
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT", "after:lock")
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
    release = tmp_path / "release"
    monkeypatch.setenv("FORGE_ROLLBACK_FAILPOINT_RELEASE", str(release))
    rb = fr.Rollback.open(repo.path)
    before = repo.state()
    # While the main thread is inside Rust, holding the lock, before the run's first step.
    _signal_once_paused(release, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as info:
        rb.run("fast", target="v1", confirm=True)
    assert getattr(info.value, "run_id", None) is None
    assert rb.runs() == []
    assert rb.lock_holder() is None
    assert repo.state() == before


# ----- Ctrl-C during a sync call that waits on a check -----------------------------------------


@pytest.mark.usefixtures("python_ctrl_c")
def test_ctrl_c_during_a_sync_verify_is_raised_while_the_check_still_waits(repo: Repo, tmp_path: Path) -> None:
    started, done = tmp_path / "started", tmp_path / "done"
    repo.write(
        "forge-rollback.toml",
        '[[checks]]\nname = "slow"\nkind = "command"\ntimeout_secs = 600\n'
        f'argv = ["sh", "-c", "echo $$ > {started}; sleep 60; touch {done}"]\n',
    )
    rb = fr.Rollback.open(repo.path)

    def interrupt() -> None:
        while not (started.exists() and started.read_text().strip()):
            threading.Event().wait(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            rb.verify()
        # Raised while the check program still runs, not once it is over.
        assert not done.exists()
    finally:
        try:
            os.killpg(int(started.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError, FileNotFoundError):
            pass


# ----- Ctrl-C while a sync run is assessed against a database that never answers ---------------

SILENT_DATABASE_RUN = """
import asyncio, json, os, signal, socket, sys, threading
import forge_rollback as fr

repo, config, confirm = sys.argv[1], sys.argv[2], sys.argv[3]
# Python's own handler, even when the test runner was started with SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
# A PostgreSQL that accepts connections and never answers (a hung server, a black-holed proxy).
listener = socket.create_server(("127.0.0.1", 0))
os.environ["DATABASE_URL"] = f"postgresql://app:secret@127.0.0.1:{listener.getsockname()[1]}/app"
held = []
cancel_task = []

def accept():
    conn, _ = listener.accept()
    held.append(conn)
    # The run waits on the database now: Ctrl-C, or the asyncio task cancelled.
    if cancel_task:
        cancel_task[0]()
    else:
        os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=accept, daemon=True).start()
rb = fr.Rollback.open(repo, config=config)

async def cancelled_arun():
    task = asyncio.ensure_future(rb.arun("full", target="v1", confirm=True))
    loop = asyncio.get_running_loop()
    cancel_task.append(lambda: loop.call_soon_threadsafe(task.cancel))
    await task

try:
    if confirm == "async":
        asyncio.run(cancelled_arun())
    else:
        rb.run("full", target="v1", confirm=True if confirm == "yes" else (lambda summary, plan: True))
    print("returned")
except KeyboardInterrupt:
    print("KeyboardInterrupt")
except asyncio.CancelledError:
    print("CancelledError")
print(json.dumps({"runs": len(rb.runs()), "lock": rb.lock_holder()}))
"""


@pytest.mark.parametrize("confirm", ["yes", "callback", "async"])
def test_ctrl_c_or_a_cancel_while_a_run_assesses_an_unresponsive_database_stops_it_at_once(
    make_db_app: Any, tmp_path: Path, confirm: str
) -> None:
    """The database's timeout is 600 s; the child is given 120 s. Without the signal check
    while the assessment waits, the child would still be waiting when the test gives up.
    `confirm=True` assesses under the lock, a confirm callback before it: both stop. So does
    an `arun` whose task is cancelled then."""
    import json

    app = make_db_app("sql", "sqlite")
    config = tmp_path / "silent.toml"
    config.write_text(
        '[database]\nkind = "sql"\nmigrations_dir = "db/migrations"\nurl_env = "DATABASE_URL"\ntimeout_secs = 600\n'
    )
    before = app.code_state()
    child = _child(tmp_path, "silent_db", SILENT_DATABASE_RUN, str(app.repo.path), str(config), confirm)
    try:
        out, err = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"Ctrl-C did not stop the run's assessment within 120 s:\n{out}{err}")
    assert child.returncode == 0, out + err
    lines = out.splitlines()
    assert lines[0] == ("CancelledError" if confirm == "async" else "KeyboardInterrupt"), out + err
    # Nothing changed: no run journaled, no lock left, the tree as it was.
    assert json.loads(lines[1]) == {"runs": 0, "lock": None}
    assert app.code_state() == before


# ----- Ctrl-C while a sync run's data-loss forecast copies the database ------------------------

FORECAST_RUN = """
import json, signal, sys
import forge_rollback as fr

repo, config, confirm = sys.argv[1], sys.argv[2], sys.argv[3]
signal.signal(signal.SIGINT, signal.default_int_handler)
rb = fr.Rollback.open(repo, config=config)
try:
    rb.run("full", target="v1", confirm=True if confirm == "yes" else (lambda summary, plan: True))
    print("returned")
except KeyboardInterrupt as e:
    print("KeyboardInterrupt", getattr(e, "run_id", None))
print(json.dumps({"runs": len(rb.runs()), "lock": rb.lock_holder()}))
"""


@pytest.mark.parametrize("confirm", ["yes", "callback"])
def test_ctrl_c_while_the_forecast_dumps_the_database_stops_the_run_at_once(
    make_db_app: Any, tmp_path: Path, confirm: str
) -> None:
    """The forecast's `pg_dump` hangs (as on a server that stopped answering) and Ctrl-C comes
    then: the run stops at once, not after `database.timeout_secs` (600 s; the child is given
    120 s), with nothing changed and no run journaled. The dump is abandoned (its process
    killed) before any scratch database exists on the server. `confirm=True` forecasts under
    the lock, a confirm callback before it."""
    import json
    import shutil

    import psycopg2

    app = make_db_app("sql", "postgres")
    pid_file = tmp_path / "pg_dump.pid"
    stuck_pg_dump = tmp_path / "stuck_pg_dump"
    stuck_pg_dump.write_text(
        "#!/bin/sh\n"
        # The client check asks for the version: the real one answers.
        f'for a in "$@"; do [ "$a" = --version ] && exec {shutil.which("pg_dump")} "$@"; done\n'
        f"echo $$ > {pid_file}\n"
        "kill -INT $PPID\n"
        f"exec {shutil.which('sleep')} 600\n"
    )
    stuck_pg_dump.chmod(0o755)
    config = tmp_path / "stuck.toml"
    config.write_text(
        app.config.read_text().replace("timeout_secs = 120", "timeout_secs = 600") + f'pg_dump = "{stuck_pg_dump}"\n'
    )
    before = app.code_state()
    child = _child(tmp_path, "forecast_run", FORECAST_RUN, str(app.repo.path), str(config), confirm)
    try:
        out, err = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"Ctrl-C did not stop the run's forecast within 120 s:\n{out}{err}")
    finally:
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert child.returncode == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "KeyboardInterrupt None", out + err
    assert json.loads(lines[1]) == {"runs": 0, "lock": None}
    assert app.code_state() == before
    # The forecast got as far as its dump (the pg_dump was started), and no further.
    assert pid_file.exists()
    con = psycopg2.connect(app.pg.server)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"forge_rollback_scratch_%{app.pg.name}",))
            assert cur.fetchall() == []
    finally:
        con.close()


SECOND_DATABASE_CHECK_RUN = """
import json, os, signal, socket, sys, threading, urllib.parse
import forge_rollback as fr

repo, config, confirm = sys.argv[1], sys.argv[2], sys.argv[3]
signal.signal(signal.SIGINT, signal.default_int_handler)
real = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
listener = socket.create_server(("127.0.0.1", 0))
os.environ["DATABASE_URL"] = real._replace(netloc=f"{real.username}:{real.password}@127.0.0.1:{listener.getsockname()[1]}").geturl()
accepted, held = [], []

def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

def serve():
    # The assessment's ping is answered, its read of the revisions is refused (the assessment
    # fails: a full run reads the database again for the error), and that second check finds
    # a server that accepts and never answers.
    while True:
        conn, _ = listener.accept()
        accepted.append(conn)
        if len(accepted) == 1:
            up = socket.create_connection((real.hostname, real.port))
            threading.Thread(target=pipe, args=(conn, up), daemon=True).start()
            threading.Thread(target=pipe, args=(up, conn), daemon=True).start()
        elif len(accepted) == 2:
            conn.close()
        else:
            held.append(conn)
            if len(held) == 1:
                os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=serve, daemon=True).start()
rb = fr.Rollback.open(repo, config=config)
try:
    rb.run("full", target="v1", confirm=True if confirm == "yes" else (lambda summary, plan: True))
    print("returned")
except KeyboardInterrupt as e:
    print("KeyboardInterrupt", getattr(e, "run_id", None))
except fr.RollbackError as e:
    print(type(e).__name__, e)
print(json.dumps({"runs": len(rb.runs()), "lock": rb.lock_holder(), "held": len(held)}))
"""


@pytest.mark.parametrize("confirm", ["yes", "callback"])
def test_ctrl_c_while_a_full_run_reads_the_database_again_stops_it_at_once(
    make_db_app: Any, tmp_path: Path, confirm: str
) -> None:
    """A full run whose assessment failed reads the database again for the error to report; a
    server that stopped answering by then holds it for `database.timeout_secs` (600 s; the child
    is given 120 s). Ctrl-C ends that wait at once: nothing changed, no run journaled."""
    import json

    app = make_db_app("sql", "postgres")
    config = tmp_path / "second.toml"
    config.write_text(app.config.read_text().replace("timeout_secs = 120", "timeout_secs = 600"))
    before = app.code_state()
    child = _child(tmp_path, "second_check", SECOND_DATABASE_CHECK_RUN, str(app.repo.path), str(config), confirm)
    try:
        out, err = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"Ctrl-C did not stop the run's second database check within 120 s:\n{out}{err}")
    assert child.returncode == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "KeyboardInterrupt None", out + err
    assert json.loads(lines[1]) == {"runs": 0, "lock": None, "held": 1}
    assert app.code_state() == before


# ----- Ctrl-C while a Python callback runs ----------------------------------------------------

CTRL_C_IN_A_CALLBACK = """
import json, signal, sys, threading, time
import forge_rollback as fr

repo, where = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGINT, signal.default_int_handler)
sleeping = threading.Event()

def interrupt():
    sleeping.wait()
    # To the main thread, as a terminal's Ctrl-C most often lands: a process-wide signal taken
    # by another thread would not wake the main thread's `time.sleep` (Python's own limit).
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

threading.Thread(target=interrupt, daemon=True).start()

def nap():
    sleeping.set()
    # KeyboardInterrupt is raised in here. In short sleeps: a signal that lands just before a
    # `time.sleep` began is only acted on once that sleep is over.
    for _ in range(2400):
        time.sleep(0.05)
    return True

def on_event(event):
    if event["event"] == "step_started" and event["step"] == "snapshot":
        nap()

rb = fr.Rollback.open(repo)
try:
    if where == "on_event":
        rb.run("fast", target="v1", confirm=True, on_event=on_event)
    else:
        rb.run("fast", target="v1", confirm=lambda summary, plan: nap())
    print("returned")
except KeyboardInterrupt as e:
    print("KeyboardInterrupt")
    result = getattr(e, "result", None)
    print(json.dumps(None if result is None else {
        "status": result.status, "error": result.error, "steps": {s["step"]: s["status"] for s in result.steps},
    }))
print(json.dumps({"runs": [r.status for r in rb.runs()], "lock": rb.lock_holder()}))
"""


@pytest.mark.parametrize("where", ["on_event", "confirm"])
def test_ctrl_c_while_a_callback_runs_is_the_callers_ctrl_c(repo: Repo, tmp_path: Path, where: str) -> None:
    """Ctrl-C landing while Python runs a callback is raised inside it. It is still the caller's
    Ctrl-C, not a failure of the callback: from `on_event` during a step, the run stops at its
    next step boundary, cancelled as `interrupted (KeyboardInterrupt)` like a Ctrl-C anywhere
    else; from the confirm callback, before the first step, nothing is journaled."""
    import json

    before = repo.state()
    child = _child(tmp_path, "ctrl_c_callback", CTRL_C_IN_A_CALLBACK, str(repo.path), where)
    try:
        out, err = child.communicate(timeout=110)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"Ctrl-C did not interrupt the callback:\n{out}{err}")
    assert child.returncode == 0, out + err
    lines = out.splitlines()
    assert lines[0] == "KeyboardInterrupt", out + err
    result, state = json.loads(lines[1]), json.loads(lines[2])
    if where == "on_event":
        assert result["status"] == "cancelled"
        assert result["error"] == "interrupted (KeyboardInterrupt)"
        assert result["steps"]["snapshot"] == "done" and result["steps"]["reset"] == "pending", result
        assert state == {"runs": ["cancelled"], "lock": None}
    else:
        assert result is None
        assert state == {"runs": [], "lock": None}
        assert repo.state() == before


# ----- fork while a run is live ----------------------------------------------------------------

FORK_DURING_RUN = """
import os, signal, sys, threading
import forge_rollback as fr

repo, mode = sys.argv[1], sys.argv[2]
rb = fr.Rollback.open(repo)
paused = threading.Event()

def on_event(event):
    if event["event"] == "step_started" and event["step"] == "reset":
        paused.set()

t = threading.Thread(target=lambda: rb.run("fast", target="v1", confirm=True, on_event=on_event))
t.start()
paused.wait(60)
pid = os.fork()
if pid == 0:
    if mode == "exit":
        signal.alarm(60)  # a hang ends the child with SIGALRM instead of hanging the test
        sys.exit(0)  # a normal exit: atexit hooks run
    # A worker that outlives its parent; it says so once it runs (its fork hooks ran).
    print("worker", os.getpid(), flush=True)
    signal.pause()
if mode == "exit":
    open(sys.argv[3], "w").close()
    _, status = os.waitpid(pid, 0)
    t.join()
    print("child exit", os.waitstatus_to_exitcode(status), flush=True)
else:
    t.join()
"""


def test_a_child_forked_during_a_run_exits_at_once(repo: Repo, tmp_path: Path) -> None:
    env, release = _paused_before_reset(tmp_path)
    child = _child(tmp_path, "fork_exit", FORK_DURING_RUN, str(repo.path), "exit", str(release), env=env)
    out, err = child.communicate(timeout=180)
    assert child.returncode == 0, out + err
    assert "child exit 0" in out, out + err
    [run] = fr.Rollback.open(repo.path).runs()
    assert run.status == "succeeded"


def test_a_worker_forked_during_a_run_does_not_keep_its_lock_after_the_parent_died(
    repo: Repo, tmp_path: Path, cli: Path
) -> None:
    env, _release = _paused_before_reset(tmp_path)
    service = _child(tmp_path, "fork_lock", FORK_DURING_RUN, str(repo.path), "lock", env=env)
    assert service.stdout is not None
    worker = int(service.stdout.readline().split()[1])
    try:
        service.kill()  # kill -9, as the OOM killer would
        service.wait(timeout=60)  # not `communicate`: the worker still has the pipes
        rb = fr.Rollback.open(repo.path)
        assert rb.lock_holder() is None
        [run] = rb.runs()
        # The run is seen as interrupted, and the CLI can settle it while the worker lives.
        assert run.status == "running" and run.interrupted
        out = subprocess.run([cli, "-C", repo.path, "undo", run.run_id, "--yes"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert fr.Rollback.open(repo.path).runs()[0].status == "undone"
    finally:
        os.kill(worker, signal.SIGKILL)
        service.stdout.close()
        assert service.stderr is not None
        service.stderr.close()


# ----- interpreter exit with a check left running in the background -----------------------------

CANCELLED_AVERIFY_THEN_EXIT = """
import asyncio, os, sys
import forge_rollback as fr

repo, started = sys.argv[1], sys.argv[2]
rb = fr.Rollback.open(repo)

async def main():
    task = asyncio.create_task(rb.averify())
    while not (os.path.exists(started) and open(started).read().strip()):
        await asyncio.sleep(0.02)
    task.cancel()  # `asyncio.wait_for` running out: the result is dropped, the check goes on
    try:
        await task
    except asyncio.CancelledError:
        print("averify cancelled; the service exits", flush=True)

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Killed but not reaped yet by init: a zombie is not running.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_check_program_does_not_outlive_the_service_that_exits(repo: Repo, tmp_path: Path) -> None:
    started = tmp_path / "started"
    repo.write(
        "forge-rollback.toml",
        '[[checks]]\nname = "smoke"\nkind = "command"\ntimeout_secs = 600\n'
        f'argv = ["sh", "-c", "echo $$ > {started}; exec sleep 600"]\n',
    )
    child = _child(tmp_path, "averify_exit", CANCELLED_AVERIFY_THEN_EXIT, str(repo.path), str(started))
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, out + err
    assert "averify cancelled" in out
    program = int(started.read_text())
    try:
        # The service killed its group as it exited; the kernel may take a moment to end it.
        for _ in range(200):
            if not _alive(program):
                break
            threading.Event().wait(0.05)
        assert not _alive(program), "the check program outlived the service"
    finally:
        try:
            os.killpg(program, signal.SIGKILL)
        except ProcessLookupError:
            pass
