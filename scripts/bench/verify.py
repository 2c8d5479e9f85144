#!/usr/bin/env python3
"""Verification benchmark: 50 HTTP checks against endpoints that each answer after 200 ms,
concurrent vs one at a time (`crates/rollback-core/benches/verify.rs`).

Run through `scripts/bench.sh` (all benchmarks) or `scripts/bench.sh --verify-only`. Results go
to `target/bench-verify.json`; the text between the `bench-verify:begin`/`bench-verify:end`
markers of docs/PERFORMANCE.md is regenerated from them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "target" / "bench-verify.json"
DOC = ROOT / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- bench-verify:begin -->", "<!-- bench-verify:end -->"


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "rustc": rustc,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": os.getloadavg(),
    }


def measure(reps: int) -> dict:
    m = machine()
    print("building and running the verification benchmark (release)", file=sys.stderr, flush=True)
    out = subprocess.run(
        ["cargo", "bench", "-q", "-p", "rollback-core", "--bench", "verify", "--", "--reps", str(reps)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        check=True,
        text=True,
    ).stdout
    line = next(l for l in reversed(out.splitlines()) if l.startswith("{"))
    return {"machine": m, **json.loads(line)}


def ms(x: float) -> str:
    return f"{x:,.0f} ms"


def render(res: dict) -> None:
    m = res["machine"]
    n, d = res["checks"], res["delay_ms"]
    lines = [
        f"Measured {m['date']} on {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM, "
        f"Linux {m['kernel']}, {m['rustc']}, release build. Load average at start: "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}. "
        f"{res['reps']} repetitions, interleaved; medians.",
        "",
        f"| {n} HTTP checks, each endpoint answers after {d} ms | median | every run | ideal |",
        "| --- | ---: | --- | ---: |",
        f"| concurrent (`concurrency` = {res['concurrency']}, the default) | {ms(res['concurrent_median_ms'])} | "
        f"{', '.join(f'{x:.0f}' for x in res['concurrent_ms'])} | {ms(d)} |",
        f"| one at a time (`concurrency = 1`) | {ms(res['sequential_median_ms'])} | "
        f"{', '.join(f'{x:.0f}' for x in res['sequential_ms'])} | {ms(n * d)} |",
        "",
        f"Concurrent is **{res['speedup']:.1f}x** faster: a round takes about as long as its slowest "
        f"check ({d} ms + {res['concurrent_overhead_ms']:.0f} ms), where one at a time adds up every "
        f"check ({res['sequential_overhead_per_check_ms']:.1f} ms of overhead per check on top of its {d} ms).",
    ]
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"error: {DOC} has no {BEGIN} / {END} markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--render-only", action="store_true", help=f"rewrite the doc from {RESULTS.name}")
    # The other options of scripts/bench.sh are for the rollback benchmarks.
    a, _ = ap.parse_known_args()
    if a.render_only:
        render(json.loads(RESULTS.read_text()))
        return
    res = measure(max(a.reps, 1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2))
    render(res)
    print(f"verification: concurrent {ms(res['concurrent_median_ms'])}, one at a time "
          f"{ms(res['sequential_median_ms'])} ({res['speedup']:.1f}x); results in {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
