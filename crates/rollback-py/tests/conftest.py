"""Fixtures: real git repositories built with the `git` CLI in a clean, fixed environment."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Fixed identity and dates, no user or system git config: commits hash the same on every run.
GIT_ENV = {
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_SYSTEM": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Forge Tester",
    "GIT_AUTHOR_EMAIL": "tester@example.invalid",
    "GIT_AUTHOR_DATE": "2025-12-10T17:39:00Z",
    "GIT_COMMITTER_NAME": "Forge Tester",
    "GIT_COMMITTER_EMAIL": "tester@example.invalid",
    "GIT_COMMITTER_DATE": "2025-12-10T17:39:00Z",
    "GIT_TERMINAL_PROMPT": "0",
}


@dataclass
class Repo:
    """A work tree with tags v1, v2, v3 on branch main and uncommitted work on top of v3."""

    path: Path

    def git(self, *args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=self.path, check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def commit_of(self, rev: str) -> str:
        return self.git("rev-parse", f"{rev}^{{commit}}")

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def write(self, rel: str, content: str | bytes, mode: int | None = None) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode()
        p.write_bytes(content)
        if mode is not None:
            p.chmod(mode)

    def tree(self) -> dict[str, tuple[bytes, int]]:
        """Every file outside .git: relative path -> (bytes, permission bits)."""
        out: dict[str, tuple[bytes, int]] = {}
        for dirpath, dirnames, filenames in os.walk(self.path):
            if ".git" in dirnames:
                dirnames.remove(".git")
            for name in filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                data = os.readlink(p).encode() if stat.S_ISLNK(st.st_mode) else p.read_bytes()
                out[str(p.relative_to(self.path))] = (data, stat.S_IMODE(st.st_mode))
        return out

    def state(self) -> tuple[str, str, dict[str, tuple[bytes, int]]]:
        """HEAD, `git status` and the tree: what a rollback changes and an undo restores."""
        return self.head(), self.git("status", "--porcelain=v1", "-uall"), self.tree()


def make_repo(path: Path, untracked: int = 0) -> Repo:
    path.mkdir(parents=True, exist_ok=True)
    repo = Repo(path)
    repo.git("init", "-q", "-b", "main")
    repo.write("app.py", "VERSION = 1\n")
    repo.write("run.sh", "#!/bin/sh\necho v1\n", mode=0o755)
    repo.write("README.md", "# app\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "release v1")
    repo.git("tag", "v1")

    repo.write("app.py", "VERSION = 2\n")
    repo.write("lib/util.py", "def util() -> int:\n    return 2\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "release v2")
    repo.git("tag", "v2")

    repo.write("app.py", "VERSION = 3\n")
    repo.write("run.sh", "#!/bin/sh\necho v3\n", mode=0o755)
    repo.write("lib/feature.py", "FEATURE = True\n")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "release v3")
    repo.git("tag", "v3")

    # Uncommitted work: a modified tracked file, a staged new file, odd untracked names.
    repo.write("app.py", "VERSION = 3  # hotfix in progress\n")
    repo.write("staged.txt", "staged but not committed\n")
    repo.git("add", "staged.txt")
    repo.write("notes with spaces.txt", "untracked\n")
    repo.write("données/é.txt", "non-ascii untracked\n", mode=0o600)
    for i in range(untracked):
        repo.write(f"bulk/{i // 100:03}/file{i:05}.txt", f"untracked file {i}\n")
    return repo


@pytest.fixture(autouse=True)
def git_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A clean git environment for the `git` CLI and the engine alike."""
    for key in list(os.environ):
        if key.startswith("GIT_") or key.startswith("FORGE_ROLLBACK_FAILPOINT"):
            monkeypatch.delenv(key)
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    yield


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """Tags v1/v2/v3 on main, HEAD at v3, with uncommitted and untracked work."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def big_repo(tmp_path: Path) -> Repo:
    """Like `repo`, plus a few thousand untracked files, so a run takes a while."""
    return make_repo(tmp_path / "big", untracked=3000)


WORKSPACE = Path(__file__).resolve().parents[3]


def cli_binary() -> Path:
    """The `forge-rollback` binary: `FORGE_ROLLBACK_BIN`, else the cargo target dir's debug build."""
    if env := os.environ.get("FORGE_ROLLBACK_BIN"):
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", WORKSPACE / "target"))
    return target / "debug" / "forge-rollback"


@pytest.fixture(scope="session")
def cli() -> Path:
    path = cli_binary()
    if not path.is_file():
        pytest.fail(f"no forge-rollback binary at {path}: run `cargo build -p rollback-cli` or set FORGE_ROLLBACK_BIN")
    return path
