#!/usr/bin/env python3
"""Fleet benchmark: the forge.rollback playbook over 4 hosts (serial 2) against 1 host alone.

    make bench-fleet                      # .venv's Python (ansible-core, Alembic), debug CLI
    python scripts/bench/fleet.py [--reps N] [--bin PATH] [--render-only]

Each repetition builds a fresh fleet exactly as the fleet tests do (ansible/tests/fleetkit.py:
four git work trees cloned from one origin, one SQLite database migrated by real Alembic to the
broken release, `ansible_connection=local`), then times, interleaved:
- `forge-rollback run --full --yes` on one host, without Ansible (the floor);
- the playbook on a 1-host inventory (assess, database run, code run, verify, report);
- the playbook on the 4-host inventory in batches of 2.
Wall times of the whole command; the sum of the hosts' own run times (from the fleet report's
`duration_ms`) shows how much of the fleet time is forge-rollback and how much is Ansible.
Results go to target/bench-fleet.json; the text between `<!-- fleet:begin -->` and
`<!-- fleet:end -->` in docs/PERFORMANCE.md is rewritten from them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "target" / "bench-fleet.json"
DOC = ROOT / "docs" / "PERFORMANCE.md"
BEGIN, END = "<!-- fleet:begin -->", "<!-- fleet:end -->"

sys.path.insert(0, str(ROOT / "ansible" / "tests"))
import fleetkit as tf  # noqa: E402  (the tests' fleet builder)


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "unknown")
    ansible = subprocess.run([str(tf.ansible_playbook()), "--version"], capture_output=True, text=True).stdout
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "ansible": ansible.splitlines()[0] if ansible else "unknown",
        "cli": str(tf.cli_binary()),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_at_start": os.getloadavg(),
    }


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t
    if out.returncode != 0:
        sys.exit(f"benchmark command failed ({out.returncode}): {' '.join(argv)}\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}")
    return took * 1000


def one_rep() -> dict:
    rep: dict = {}
    with tempfile.TemporaryDirectory(prefix="forge-bench-fleet-") as d:
        # The CLI alone, on one host.
        fleet = tf.Fleet(Path(d) / "cli")
        rep["cli_one_host_ms"] = timed(
            [str(tf.cli_binary()), "-C", str(fleet.paths["web1"]), "--json", "run", "--full", "--yes", "--target", "v1"],
            fleet.tmp, fleet.env())
    with tempfile.TemporaryDirectory(prefix="forge-bench-fleet-") as d:
        fleet = tf.Fleet(Path(d) / "one")
        text = fleet.inventory.read_text().splitlines()
        fleet.inventory.write_text("\n".join(l for l in text if not l.startswith(("web2", "web3", "web4"))) + "\n")
        rep["playbook_one_host_ms"] = timed(fleet.argv(), fleet.tmp, fleet.env())
        r = fleet.report_json()
        rep["one_host_runs_ms"] = sum(h["run"]["duration_ms"] for h in r["hosts"] if h.get("run")) + r["database"]["run"]["duration_ms"]
    with tempfile.TemporaryDirectory(prefix="forge-bench-fleet-") as d:
        fleet = tf.Fleet(Path(d) / "four")
        rep["playbook_four_hosts_ms"] = timed(fleet.argv(), fleet.tmp, fleet.env())
        r = fleet.report_json()
        rep["four_hosts_runs_ms"] = sum(h["run"]["duration_ms"] for h in r["hosts"] if h.get("run")) + r["database"]["run"]["duration_ms"]
    return rep


def render(res: dict) -> str:
    m, reps = res["machine"], res["reps"]
    med = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
    every = {k: ", ".join(f"{r[k]:.0f}" for r in reps) for k in reps[0]}
    rows = [
        ("`forge-rollback run --full` on one host, no Ansible", "cli_one_host_ms", None),
        ("playbook, 1 host", "playbook_one_host_ms", "one_host_runs_ms"),
        ("playbook, 4 hosts, `serial: 2`", "playbook_four_hosts_ms", "four_hosts_runs_ms"),
    ]
    out = [
        f"Measured {m['date']} on {m['nproc']} cores ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"{m['ansible']}, CLI `{Path(m['cli']).parent.name}` build. Load average at start: "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}. {len(reps)} repetitions; medians.",
        "",
        "| what | wall time (median) | every run (ms) | of which forge-rollback runs (sum, median) |",
        "| --- | ---: | --- | ---: |",
    ]
    for label, key, runs in rows:
        out.append(f"| {label} | {med[key]:,.0f} ms | {every[key]} | {f'{med[runs]:,.0f} ms' if runs else '-'} |")
    ratio = med["playbook_four_hosts_ms"] / med["playbook_one_host_ms"]
    per_host = (med["playbook_four_hosts_ms"] - med["playbook_one_host_ms"]) / 3
    out += [
        "",
        f"Four hosts take **{ratio:.2f}x** the time of one: each further host adds about "
        f"{per_host:,.0f} ms. The database moves once whatever the fleet's size, and hosts of a batch "
        "roll back at the same time; what grows is Ansible's per-task cost (a module start per host "
        "and task, the controller's record writes) and the second batch, which waits for the first to "
        "be verified.",
    ]
    if m["load_average_at_start"][0] > m["nproc"]:
        out += [
            "",
            f"The machine was busy with other work (load {m['load_average_at_start'][0]:.1f} on {m['nproc']} cores): "
            "the spread between runs is that load, and the ratio is the figure to read.",
        ]
    return "\n".join(out) + "\n"


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    if BEGIN in doc and END in doc:
        head, rest = doc.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        doc = head + BEGIN + "\n" + text + END + tail
    else:
        doc = doc.rstrip("\n") + "\n\n" + BEGIN + "\n" + text + END + "\n"
    DOC.write_text(doc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--bin", help="the forge-rollback binary (default: FORGE_ROLLBACK_BIN, else target/debug)")
    ap.add_argument("--render-only", action="store_true", help="rewrite the doc from target/bench-fleet.json")
    args = ap.parse_args()
    if args.bin:
        os.environ["FORGE_ROLLBACK_BIN"] = args.bin
    if not args.render_only:
        res = {"machine": machine(), "reps": []}
        for i in range(args.reps):
            print(f"fleet benchmark: repetition {i + 1}/{args.reps}", file=sys.stderr, flush=True)
            res["reps"].append(one_rep())
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    write_doc(render(json.loads(RESULTS.read_text())))
    print(f"wrote {DOC} ({BEGIN} ... {END})", file=sys.stderr)


if __name__ == "__main__":
    main()
