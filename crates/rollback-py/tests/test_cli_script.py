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
    assert "pass `-C DIR`" in script.stderr, script.stderr
    assert "Rollback.open" not in script.stderr
    assert script.stderr == binary.stderr
