#!/usr/bin/env python3
"""Deterministic sample app repositories for the benchmarks, written with `git fast-import`.

    genrepo.py DEST --files N --commits C --mean-size BYTES --seed S
    genrepo.py --dirty SRC DEST --modified-fraction F --untracked U --seed S
    genrepo.py --history DEST --commits C --files N --seed S

The first form makes a clean repository at HEAD (tag `target` = HEAD~10). The second copies a
clean repository and dirties it: a fraction of tracked files modified, U untracked files (half in
`untracked/`, half next to tracked files), and a few `__pycache__` folders; it writes the list of
dirty paths (NUL-separated) to DEST/../<name>.dirty-files. The third makes a long, narrow
history (many commits, few files) for `assess`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

EPOCH = 1_765_000_000


def git(cwd: Path, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_AUTHOR_NAME="Bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
    )
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=check, **kw)


class Content:
    """File contents cut from a random pool: fast, distinct, not trivially compressible."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pool = rng.randbytes(1 << 21).hex().encode()  # 4 MiB of hex text

    def make(self, header: str, size: int) -> bytes:
        size = max(size, 16)
        start = self.rng.randrange(0, len(self.pool) - size - 1)
        body = self.pool[start : start + size]
        # Break it into 64-character lines so diffs look like code.
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return header.encode() + b"\n" + b"\n".join(lines) + b"\n"


def file_path(i: int) -> str:
    return f"app/pkg{i // 200:03d}/mod{i % 200:03d}.py"


def gen(dest: Path, files: int, commits: int, mean: int, seed: int) -> None:
    rng = random.Random(seed)
    content = Content(rng)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "core.autocrlf", "false")
    p = subprocess.Popen(
        ["git", "fast-import", "--quiet", "--done"], cwd=dest, stdin=subprocess.PIPE, env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"}
    )
    out = p.stdin
    assert out is not None
    paths = [file_path(i) for i in range(files)]
    versions = [0] * files

    def size() -> int:
        return int(mean * rng.uniform(0.2, 1.8))

    def commit(n: int, msg: str, changes: list[tuple[str, bytes | None]]) -> None:
        t = EPOCH + n * 600
        out.write(b"commit refs/heads/main\n")
        out.write(f"mark :{n + 1}\n".encode())
        out.write(f"committer Bench <bench@example.com> {t} +0000\n".encode())
        m = msg.encode()
        out.write(f"data {len(m)}\n".encode() + m + b"\n")
        if n > 0:
            out.write(f"from :{n}\n".encode())
        for path, data in changes:
            if data is None:
                out.write(f"D {path}\n".encode())
            else:
                out.write(f"M 100644 inline {path}\ndata {len(data)}\n".encode())
                out.write(data)
                out.write(b"\n")

    first = [(path, content.make(f"# {path} v0", size())) for path in paths]
    first.append((".gitignore", b"__pycache__/\n*.pyc\n.venv/\n.env\n*.log\n"))
    first.append(("requirements.txt", b"fastapi==0.110\n"))
    commit(0, "initial import", first)
    for n in range(1, commits):
        changes = []
        for _ in range(5):
            i = rng.randrange(files)
            versions[i] += 1
            changes.append((paths[i], content.make(f"# {paths[i]} v{versions[i]}", size())))
        if n % 50 == 0:
            changes.append((f"migrations/{n:05d}_change.py", f"revision = {n}\n".encode()))
        commit(n, f"change {n}", changes)
    out.write(b"done\n")
    out.close()
    if p.wait() != 0:
        sys.exit("git fast-import failed")
    git(dest, "reset", "-q", "--hard", "main")
    git(dest, "tag", "target", "main~10")


def gen_history(dest: Path, commits: int, files: int, seed: int) -> None:
    rng = random.Random(seed)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    git(dest, "init", "-q", "-b", "main")
    p = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=dest, stdin=subprocess.PIPE)
    out = p.stdin
    assert out is not None
    for n in range(commits):
        t = EPOCH + n * 60
        out.write(f"commit refs/heads/main\nmark :{n + 1}\ncommitter Bench <bench@example.com> {t} +0000\n".encode())
        msg = f"commit {n}".encode()
        out.write(f"data {len(msg)}\n".encode() + msg + b"\n")
        if n > 0:
            out.write(f"from :{n}\n".encode())
        if n == 0:
            targets = range(files)
        else:
            targets = [rng.randrange(files)]
        for i in targets:
            data = f"# file {i} at commit {n}\nVALUE = {rng.random()}\n".encode()
            out.write(f"M 100644 inline src/f{i:04d}.py\ndata {len(data)}\n".encode() + data + b"\n")
    out.write(b"done\n")
    out.close()
    if p.wait() != 0:
        sys.exit("git fast-import failed")
    git(dest, "reset", "-q", "--hard", "main")


def dirty(src: Path, dest: Path, fraction: float, untracked: int, seed: int) -> None:
    rng = random.Random(seed)
    if dest.exists():
        shutil.rmtree(dest)
    subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
    tracked = git(dest, "ls-files", "-z", capture_output=True).stdout.decode().split("\0")
    tracked = sorted(p for p in tracked if p.endswith(".py"))
    n_mod = max(1, round(len(tracked) * fraction))
    listed: list[str] = []
    for path in rng.sample(tracked, n_mod):
        with open(dest / path, "ab") as f:
            f.write(f"# local edit {rng.random()}\n".encode())
        listed.append(path)
    dirs = sorted({os.path.dirname(p) for p in tracked})
    for i in range(untracked):
        if i % 2 == 0:
            rel = f"untracked/scratch {i:04d}.py"
        else:
            rel = f"{rng.choice(dirs)}/scratch_{i:04d}.py"
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(f"# scratch {i}\n".encode() + rng.randbytes(2048).hex().encode() + b"\n")
        listed.append(rel)
    for d in rng.sample(dirs, min(5, len(dirs))):
        cache = dest / d / "__pycache__"
        cache.mkdir(exist_ok=True)
        for j in range(10):
            (cache / f"mod{j:03d}.cpython-311.pyc").write_bytes(rng.randbytes(1024))
    git(dest, "update-index", "-q", "--refresh", check=False)
    (dest.parent / f"{dest.name}.dirty-files").write_bytes(b"".join(p.encode() + b"\0" for p in listed))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--dirty", action="store_true")
    ap.add_argument("--history", action="store_true")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--commits", type=int, default=100)
    ap.add_argument("--mean-size", type=int, default=4096)
    ap.add_argument("--modified-fraction", type=float, default=0.01)
    ap.add_argument("--untracked", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.dirty:
        dirty(a.paths[0], a.paths[1], a.modified_fraction, a.untracked, a.seed)
    elif a.history:
        gen_history(a.paths[0], a.commits, a.files, a.seed)
    else:
        gen(a.paths[0], a.files, a.commits, a.mean_size, a.seed)


if __name__ == "__main__":
    main()
