"""The `fleet` fixture of the collection's tests (`fleetkit.Fleet`)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetkit import Fleet, ansible_playbook, cli_binary


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    if not cli_binary().is_file():
        pytest.fail(f"no forge-rollback binary at {cli_binary()}: run `cargo build -p rollback-cli` or set FORGE_ROLLBACK_BIN")
    if not ansible_playbook().is_file():
        pytest.fail(f"no ansible-playbook next to {sys.executable}: install requirements-dev.txt (ansible-core)")
    yield Fleet(tmp_path)
    # The hosts, the database, Ansible's temp and home folders, the record and the report.
    shutil.rmtree(tmp_path, ignore_errors=True)
