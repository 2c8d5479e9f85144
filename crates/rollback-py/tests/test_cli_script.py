"""The `forge-rollback` console script of the wheel (`forge_rollback.__main__:main`, here run as
`python -m forge_rollback`) is the binary: same stdout, stderr and exit code, hints in the CLI's
words even though the Python module (whose hints name Python methods) is loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # pytest's importlib mode: conftest is not importable at run time
    from conftest import Repo


def both(cli: Path, args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    env = {"NO_COLOR": "1", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    run = lambda argv: subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)  # noqa: E731
    return run([str(cli), *args]), run([sys.executable, "-m", "forge_rollback", *args])


@pytest.mark.parametrize(
    "args",
    [
        ["assess", "--json", "--target", "v1"],
        ["plan", "--fast", "--target", "v1"],
        ["runs", "list", "--json"],
        ["run", "--no-such-flag"],
        ["completions", "bash"],
        ["--version"],
    ],
)
def test_script_prints_and_exits_as_the_binary(cli: Path, repo: Repo, args: list[str]) -> None:
    binary, script = both(cli, args, repo.path)
    assert script.returncode == binary.returncode, script.stderr
    assert script.stdout == binary.stdout
    assert script.stderr == binary.stderr
    assert binary.stdout or binary.stderr


def test_script_hints_name_cli_commands_not_python_methods(cli: Path, tmp_path: Path) -> None:
    binary, script = both(cli, ["-C", str(tmp_path), "assess"], tmp_path)
    assert binary.returncode == 2
    assert script.returncode == 2
    assert "point at one with `-C DIR`" in script.stderr, script.stderr
    assert "Rollback.open" not in script.stderr
    assert script.stderr == binary.stderr


def test_script_sigint_during_a_run_stops_it_at_the_next_step_as_cancelled(repo: Repo) -> None:
    """As the binary (crates/rollback-cli/tests/it/lock.rs): Ctrl-C once the run has begun is
    not Python's KeyboardInterrupt and does not kill the process half-way: the run stops at its
    next step boundary, journaled `cancelled`, exit 5."""
    import json
    import os
    import signal
    import time

    release = repo.path / ".git" / "release-run"
    env = {
        **os.environ,
        "NO_COLOR": "1",
        "FORGE_ROLLBACK_FAILPOINT": "before:reset",
        "FORGE_ROLLBACK_FAILPOINT_ACTION": "pause",
        "FORGE_ROLLBACK_FAILPOINT_RELEASE": str(release),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "forge_rollback", "run", "--fast", "--yes", "--json", "--target", "v1"],
        cwd=repo.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    runs = repo.path / ".git" / "forge-rollback" / "runs"
    deadline = time.monotonic() + 60
    while not any(
        '"step_begin"' in line and '"reset"' in line
        for j in runs.glob("*/journal.jsonl")
        for line in j.read_text().splitlines()
    ):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never began its reset"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    # Let the run go only once it said it saw the signal: its handler runs on another thread,
    # and a run let go at once could pass the step boundary before that thread set the flag.
    assert proc.stderr is not None
    seen = []
    while not seen or "interrupted: " not in seen[-1]:
        line = proc.stderr.readline()
        assert line, "".join(seen)
        seen.append(line)
    release.write_text("")
    stdout, rest = proc.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert proc.returncode == 5, stderr
    result = json.loads(stdout)
    assert result["status"] == "cancelled", stderr
    steps = {s["step"]: s["status"] for s in result["steps"]}
    assert steps["reset"] == "done" and steps["remove_untracked"] == "pending", steps
    assert "KeyboardInterrupt" not in stderr
    assert not (repo.path / ".git" / "forge-rollback" / "lock").exists()


def test_severity_is_read_in_any_case_by_the_cli_and_python(repo: Repo) -> None:
    """`--severity HIGH` and `severity="HIGH"`: the core's rule (any ASCII case) for both."""
    import json

    import forge_rollback as fr

    rb = fr.Rollback.open(repo.path)
    py_run = rb.run("fast", target="v2", confirm=True, severity="HIGH")
    argv = ["forge-rollback", "-C", str(repo.path), "run", "--fast", "--yes", "--target", "v1"]
    assert fr.cli_main([*argv, "--severity", "HIGH"]) == 0
    cli_run = rb.runs()[-1]
    assert cli_run.run_id != py_run.run_id
    for run_id in (cli_run.run_id, py_run.run_id):
        assert json.loads(rb.report(run_id, format="json"))["severity"] == "high"
    assert fr.cli_main([*argv, "--severity", "apocalyptic"]) == 2
