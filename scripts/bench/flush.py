#!/usr/bin/env python3
"""How to make a snapshot's new blobs durable, measured on this disk (docs/PERFORMANCE.md).

    python3 scripts/bench/flush.py [--files 400] [--size 10000] [--reps 5] [--dir target/flush-bench]

Writes `--files` new files of `--size` bytes the way the backup store writes blobs (a temp file
in a two-hex-digit fan-out folder, renamed into place, no fsync), then times three ways to make
them durable:

- `syncfs`: one syncfs(2) on the file system (what the store does);
- `fdatasync` each file, then `fsync` each fan-out folder and the top folder;
- `sync_file_range(WRITE)` on every file first (start all the writeback), then as above.

`sync` runs before each round, so no round pays for another's writes. Methods are interleaved
round by round; medians are printed. The folder is removed at the end.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import time

LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
SYNC_FILE_RANGE_WRITE = 2


def write_all(d: str, n: int, data: bytes) -> list[int]:
    fds = []
    for i in range(n):
        sub = os.path.join(d, f"{i % 256:02x}")
        os.makedirs(sub, exist_ok=True)
        p = os.path.join(sub, f"blob{i}")
        fd = os.open(p + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.rename(p + ".tmp", p)
        fds.append(fd)
    return fds


def fsync_path(p: str) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def by_syncfs(d: str, fds: list[int]) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        if LIBC.syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs")
    finally:
        os.close(fd)


def by_fdatasync(d: str, fds: list[int]) -> None:
    for fd in fds:
        os.fdatasync(fd)
    for sub in sorted(os.listdir(d)):
        fsync_path(os.path.join(d, sub))
    fsync_path(d)


def by_sync_file_range(d: str, fds: list[int]) -> None:
    for fd in fds:
        LIBC.sync_file_range(fd, ctypes.c_longlong(0), ctypes.c_longlong(0), SYNC_FILE_RANGE_WRITE)
    by_fdatasync(d, fds)


METHODS = {
    "one `syncfs`": by_syncfs,
    "`fdatasync` per file + `fsync` per folder": by_fdatasync,
    "`sync_file_range` all, then `fdatasync` per file + `fsync` per folder": by_sync_file_range,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=400)
    ap.add_argument("--size", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", default="target/flush-bench")
    a = ap.parse_args()
    data = os.urandom(a.size)
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    os.makedirs(a.dir, exist_ok=True)
    try:
        for r in range(a.reps):
            for i, (name, flush) in enumerate(METHODS.items()):
                d = os.path.join(a.dir, f"round{r}-{i}")
                os.makedirs(d)
                os.sync()
                fds = write_all(d, a.files, data)
                t0 = time.perf_counter()
                flush(d, fds)
                times[name].append(time.perf_counter() - t0)
                for fd in fds:
                    os.close(fd)
                shutil.rmtree(d)
    finally:
        shutil.rmtree(a.dir, ignore_errors=True)
    print(f"{a.files} new files of {a.size:,} bytes, {a.reps} rounds, medians:")
    for name, ts in times.items():
        print(f"  {name}: {statistics.median(ts) * 1000:.1f} ms (every round: {', '.join(f'{t * 1000:.0f}' for t in ts)})")


if __name__ == "__main__":
    main()
