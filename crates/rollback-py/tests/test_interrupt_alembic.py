"""Ctrl-C, or a cancelled asyncio task, while a run waits on the project's Alembic `env.py`
before its first step: the check of which database `env.py` connects to, and a manual run's
preview of the downgrade's SQL (Alembic's offline mode). Both run `env.py`, the project's code,
which may hang (an import that waits on the network, a lock); the run stops at once, not after
`database.timeout_secs`. Real child processes, real signals (see `test_host_process.py`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

# Put first in the app's `env.py`: hangs in the run of it that `hang` names (the probe patches
# SQLAlchemy's `create_engine`; the preview is Alembic's offline mode), having written its pid.
HANGING_ENV_PY = """\
import os as _os, time as _time
import sqlalchemy as _sa
from alembic import context as _context

_probe = getattr(_sa.create_engine, "__name__", "") == "_stop"
if {hang!r} == ("probe" if _probe else "preview" if _context.is_offline_mode() else None):
    with open({started!r}, "w") as _f:
        _f.write(str(_os.getpid()))
    _time.sleep(600)
"""

MANUAL_RUN = """
import asyncio, json, os, signal, sys, threading, time
import forge_rollback as fr

repo, config, started, how = sys.argv[1:5]
signal.signal(signal.SIGINT, signal.default_int_handler)
rb = fr.Rollback.open(repo, config=config)
cancel_task = []


def interrupt():
    while not (os.path.exists(started) and open(started).read().strip()):
        time.sleep(0.02)
    # `env.py` hangs now: Ctrl-C, or the asyncio task cancelled.
    if cancel_task:
        cancel_task[0]()
    else:
        os.kill(os.getpid(), signal.SIGINT)


threading.Thread(target=interrupt, daemon=True).start()


async def cancelled_arun():
    task = asyncio.ensure_future(rb.arun("manual", target="v1", confirm=True, approve=lambda step: True))
    loop = asyncio.get_running_loop()
    cancel_task.append(lambda: loop.call_soon_threadsafe(task.cancel))
    await task


try:
    if how == "async":
        asyncio.run(cancelled_arun())
    else:
        rb.run("manual", target="v1", confirm=True, approve=lambda step: True)
    print("returned")
except KeyboardInterrupt as e:
    print("KeyboardInterrupt", getattr(e, "run_id", None))
except asyncio.CancelledError as e:
    print("CancelledError", getattr(e, "run_id", None))
print(json.dumps({"runs": len(rb.runs()), "lock": rb.lock_holder()}))
"""


@pytest.mark.parametrize("how", ["ctrl-c", "async"])
@pytest.mark.parametrize("hang", ["probe", "preview"])
def test_ctrl_c_or_a_cancel_while_env_py_hangs_before_the_first_step_stops_the_run_at_once(
    make_db_app: Any, tmp_path: Path, hang: str, how: str
) -> None:
    """The database's timeout is 600 s; the child is given 120 s. Nothing changed, no run
    journaled, the lock released."""
    app = make_db_app("alembic", "sqlite")
    started = tmp_path / "env_py.pid"
    env_py = app.repo.path / "migrations" / "env.py"
    env_py.write_text(HANGING_ENV_PY.format(hang=hang, started=str(started)) + env_py.read_text())
    config = tmp_path / "slow.toml"
    config.write_text(app.config.read_text().replace("timeout_secs = 120", "timeout_secs = 600"))
    before, schema = app.code_state(), app.dump()
    script = tmp_path / "manual_run.py"
    script.write_text(textwrap.dedent(MANUAL_RUN))
    child = subprocess.Popen(
        [sys.executable, str(script), str(app.repo.path), str(config), str(started), how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        out, err = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the run did not stop within 120 s while env.py hung ({hang}):\n{out}{err}")
    finally:
        if started.exists() and started.read_text().strip():
            try:
                os.kill(int(started.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert child.returncode == 0, out + err
    lines = out.splitlines()
    assert lines[0] == ("CancelledError None" if how == "async" else "KeyboardInterrupt None"), out + err
    assert json.loads(lines[1]) == {"runs": 0, "lock": None}
    assert app.code_state() == before
    assert app.dump() == schema
