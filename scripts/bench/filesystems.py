#!/usr/bin/env python3
"""The rollback benchmark on other file systems than the one `target/` is on (docs/PERFORMANCE.md).

    sudo python3 scripts/bench/filesystems.py --fr target/release/forge-rollback [--sizes medium,large] [--reps 7]

`make bench` measures on the file system of `target/`. How far `run --fast` is from a bare
`git reset --hard && git clean -fd` depends on that file system: what an inode creation, an
unlink and an fsync cost there. This script runs the same measurement (`bench.py`'s work copies,
dirty state, `run --fast` and the bare reset interleaved run by run, medians) on:

- the file system of `target/` (what `make bench` reports);
- ext4 with its default options (a journal, no `discard`), in a sparse image file mounted through
  a loop device under `target/bench-fs/` (what most Linux servers run);
- tmpfs: no disk at all, a floor for both methods.

It needs root (mount). Each file system's rows are measured in a block of their own, so compare
ratios, not milliseconds across file systems. It rewrites the text between the `fs:begin` and
`fs:end` markers of docs/PERFORMANCE.md, keeps the raw numbers in `target/bench-fs.json`, and
unmounts and deletes what it made, also when interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench  # noqa: E402

BASE = bench.ROOT / "target" / "bench-fs"
RESULTS = bench.ROOT / "target" / "bench-fs.json"
BEGIN, END = "<!-- fs:begin -->", "<!-- fs:end -->"


def mount_options(path: Path) -> tuple[str, str, str]:
    """(source, type, options) of the mount `path` is on."""
    out = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(path)],
                         capture_output=True, check=True).stdout.decode().split()
    return out[0], out[1], out[2]


def has_journal(source: str) -> str:
    """'yes'/'no' for an ext4 device (the kernel lists every mounted jbd2 journal)."""
    dev = os.path.basename(os.path.realpath(source))
    return "yes" if any(p.name.startswith(f"{dev}-") for p in Path("/proc/fs/jbd2").glob("*")) else "no"


def measure(name: str, reps: int) -> dict:
    _, dirty = bench.repo(name)
    fr, bare, outside, snap = [], [], [], []
    for i in range(reps):
        work = bench.prepare(dirty)
        t, j = bench.fr_rollback(bench.FR, work)
        fr.append(t)
        outside.append(t - sum(j["step_seconds"].values()))
        snap.append(j["step_seconds"]["snapshot"])
        work = bench.prepare(dirty)
        tb, _ = bench.timed(["bash", "-c", bench.BARE], cwd=work)
        bare.append(tb)
        bench.log(f"  {name} rep {i + 1}/{reps}: run {t * 1000:.0f} ms, bare {tb * 1000:.0f} ms")
    return {
        "fr": statistics.median(fr), "bare": statistics.median(bare),
        "outside": statistics.median(outside), "snapshot": statistics.median(snap),
        "fr_runs": fr, "bare_runs": bare,
    }


def on(where: Path, sizes: list[str], reps: int) -> dict:
    """Every size measured with the work copies under `where`."""
    bench.WORK, bench.TRASH = where / "bench-work", where / "bench-trash"
    bench._prepared.clear()
    source, fstype, opts = mount_options(where)
    out = {"fstype": fstype, "options": opts, "journal": has_journal(source) if fstype == "ext4" else "",
           "sizes": {}}
    try:
        for name in sizes:
            bench.log(f"{fstype} ({where}): {name}")
            out["sizes"][name] = measure(name, reps)
    finally:
        for d in (bench.WORK, bench.TRASH):
            if d.exists():
                shutil.rmtree(d)
        bench._prepared.clear()
    return out


def render(res: dict) -> None:
    m = res["machine"]
    L = [f"Measured {m['date']} on {m['nproc']} cores, Linux {m['kernel']}, {m['git']}, {m['forge_rollback']}. "
         f"Load average at start: {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}. "
         f"{res['reps']} repetitions per size and file system; medians.", "",
         "| file system | journal | mount options | size | `run --fast` | bare reset | run / bare "
         "| snapshot step | outside the steps |",
         "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for fs in res["filesystems"]:
        opts = ",".join(o for o in fs["options"].split(",") if o in ("discard", "nodiscard", "data=ordered",
                                                                   "data=writeback", "relatime", "noatime"))
        for name, r in fs["sizes"].items():
            L.append(f"| {fs['label']} | {fs['journal'] or 'n/a'} | {opts or 'defaults'} | {name} | "
                     f"{r['fr'] * 1000:.0f} ms | {r['bare'] * 1000:.0f} ms | {r['fr'] / r['bare']:.2f}x | "
                     f"{r['snapshot'] * 1000:.0f} ms | {r['outside'] * 1000:.0f} ms |")
    text = bench.DOC.read_text()
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    bench.DOC.write_text(text[:a] + "\n" + "\n".join(L) + "\n" + text[b:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fr", type=Path, required=True, help="the release forge-rollback binary")
    ap.add_argument("--sizes", default="medium,large")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--image-gib", type=int, default=8, help="size of the sparse ext4 image")
    ap.add_argument("--render-only", action="store_true", help="rewrite the doc from target/bench-fs.json")
    a = ap.parse_args()
    if a.render_only:
        render(json.loads(RESULTS.read_text()))
        return
    if os.geteuid() != 0:
        sys.exit("error: needs root to mount the ext4 image and the tmpfs (run it with sudo)")
    bench.FR = a.fr.resolve()
    sizes = a.sizes.split(",")
    for name in sizes:
        bench.repo(name)  # generated before anything is mounted
    res = {"machine": bench.machine(), "reps": a.reps, "filesystems": []}
    BASE.mkdir(parents=True, exist_ok=True)
    image, ext4, tmpfs = BASE / "ext4.img", BASE / "ext4", BASE / "tmpfs"
    mounted: list[Path] = []
    try:
        res["filesystems"].append({"label": "`target/` (as `make bench`)", **on(bench.ROOT / "target", sizes, a.reps)})
        subprocess.run(["truncate", "-s", f"{a.image_gib}G", str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
        ext4.mkdir(exist_ok=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(ext4)], check=True)
        mounted.append(ext4)
        res["filesystems"].append({"label": "ext4 image, defaults", **on(ext4, sizes, a.reps)})
        tmpfs.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6g", "tmpfs", str(tmpfs)], check=True)
        mounted.append(tmpfs)
        res["filesystems"].append({"label": "tmpfs", **on(tmpfs, sizes, a.reps)})
    finally:
        for m in reversed(mounted):
            subprocess.run(["umount", str(m)], check=False)
        shutil.rmtree(BASE, ignore_errors=True)
    RESULTS.write_text(json.dumps(res, indent=2))
    render(res)
    bench.log(f"done; results in {RESULTS}")


if __name__ == "__main__":
    main()
