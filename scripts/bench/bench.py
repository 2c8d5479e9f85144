#!/usr/bin/env python3
"""forge-rollback benchmarks: every figure of docs/PERFORMANCE.md, measured in one run.

Run through `scripts/bench.sh` (which builds the release binary). Results go to
`target/bench-results.json`; the tables between the `bench:begin`/`bench:end` markers of
docs/PERFORMANCE.md are regenerated from them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPOS = ROOT / "target" / "bench-repos"
WORK = ROOT / "target" / "bench-work"
TRASH = ROOT / "target" / "bench-trash"
RESULTS = ROOT / "target" / "bench-results.json"
DOC = ROOT / "docs" / "PERFORMANCE.md"
GEN = Path(__file__).with_name("genrepo.py")

# name: files, commits, mean file size, repetitions
SIZES = {
    "small": (1_000, 200, 4_000, 5),
    "medium": (20_000, 2_000, 10_000, 5),
    "large": (100_000, 200, 3_000, 3),
}
HISTORY_COMMITS = 50_000
FRACTIONS = [0.001, 0.01, 0.05, 0.2]

SEED_PROCEDURE = (
    "git stash -u -q; git reset -q --hard target; git clean -fdq; "
    "find . -name __pycache__ -type d -prune -exec rm -rf {} +; find . -name '*.pyc' -delete"
)
BARE = "git reset -q --hard target && git clean -fdq"


def log(msg: str) -> None:
    print(f"{dt.datetime.now(dt.timezone.utc):%H:%M:%S} {msg}", file=sys.stderr, flush=True)


def git_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and not k.startswith("FORGE_ROLLBACK")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null", NO_COLOR="1", LC_ALL="C")
    return env


ENV = git_env()


def run(cmd: list[str], cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=ENV, check=check, capture_output=True)


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True)
    elapsed = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} exited {p.returncode}: {p.stderr.decode(errors='replace')}")
    return elapsed, p


_prepared: dict[str, tuple[Path, str, list[str], list[str]]] = {}


def prepare(src: Path) -> Path:
    """The work copy of `src` in its dirty state, ready for a measured run (untimed).

    The first call per source copies it whole (`cp -a`). Later calls do not copy hundreds of MB
    again: they put the copy back (`reset --hard` to the original HEAD, `clean -fdx`, drop the
    stash, forge-rollback's state and pinned refs) and copy in only the dirty files. Then `sync`,
    so no run pays for flushing the previous one's writes (forge-rollback's snapshot ends with a
    `syncfs`, which would otherwise write back the whole copy).
    """
    key = str(src)
    if key not in _prepared:
        if WORK.exists():
            shutil.rmtree(WORK)
        run(["cp", "-a", str(src), str(WORK)])
        head = run(["git", "rev-parse", "HEAD"], cwd=src).stdout.decode().strip()
        listed = [p for p in (REPOS / f"{src.name}.dirty-files").read_bytes().decode().split("\0") if p]
        caches = [str(p.relative_to(src)) for p in src.rglob("__pycache__") if ".git" not in p.parts]
        _prepared.clear()
        _prepared[key] = (WORK, head, listed, caches)
    else:
        work, head, listed, caches = _prepared[key]
        run(["git", "reset", "-q", "--hard", head], cwd=work)
        run(["git", "clean", "-fdxq"], cwd=work)
        run(["git", "stash", "clear"], cwd=work)
        refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/forge-rollback"], cwd=work).stdout.decode()
        for ref in refs.split():
            run(["git", "update-ref", "-d", ref], cwd=work)
        # Moved aside, deleted at the end: deleting a run's hundreds of blob files just before
        # the next run would slow that run's file creations (ext4 scans recently freed inodes
        # when it allocates one), which is the bench's doing, not the tool's.
        state = work / ".git" / "forge-rollback"
        if state.exists():
            TRASH.mkdir(parents=True, exist_ok=True)
            state.rename(TRASH / f"state-{time.monotonic_ns()}")
        for rel in listed:
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, work / rel)
        for rel in caches:
            shutil.copytree(src / rel, work / rel)
    run(["git", "update-index", "-q", "--refresh"], cwd=WORK, check=False)
    run(["sync"])
    return WORK


def repo(name: str, fraction: float = 0.01) -> tuple[Path, Path]:
    """(clean, dirty) repositories for a size, generated once and cached."""
    files, commits, mean, _ = SIZES[name]
    clean = REPOS / name
    marker = REPOS / f"{name}.done"
    if not marker.exists():
        log(f"generating {name}: {files} files, {commits} commits")
        run([sys.executable, str(GEN), str(clean), "--files", str(files), "--commits", str(commits),
             "--mean-size", str(mean), "--seed", "42"])
        marker.write_text("ok\n")
    dirty = REPOS / f"{name}-dirty-{fraction:g}"
    dmarker = REPOS / f"{dirty.name}.done"
    if not dmarker.exists():
        log(f"dirtying {name} ({fraction:.1%} modified, 200 untracked)")
        run([sys.executable, str(GEN), "--dirty", str(clean), str(dirty), "--modified-fraction", str(fraction),
             "--untracked", "200", "--seed", "7"])
        dmarker.write_text("ok\n")
    return clean, dirty


def fr_cmd(fr: Path, work: Path, *args: str, config: Path | None = None) -> list[str]:
    cmd = [str(fr), "-C", str(work), "-q"]
    if config:
        cmd += ["--config", str(config)]
    return cmd + list(args)


def millis(at) -> float:
    if isinstance(at, (int, float)):
        return float(at)
    s = str(at).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(s).timestamp() * 1000


def step_times(work: Path, run_id: str) -> dict[str, float]:
    """Per-step seconds from the journal's step_begin/step_end timestamps."""
    journal = work / ".git" / "forge-rollback" / "runs" / run_id / "journal.jsonl"
    begin: dict[str, float] = {}
    out: dict[str, float] = {}
    for line in journal.read_text().splitlines():
        rec = json.loads(line)
        if rec["record"] == "step_begin":
            begin[rec["step"]] = millis(rec["at"])
        elif rec["record"] == "step_end":
            out[rec["step"]] = (millis(rec["at"]) - begin[rec["step"]]) / 1000
    return out


def fr_rollback(fr: Path, work: Path, config: Path | None = None) -> tuple[float, dict]:
    t, p = timed(fr_cmd(fr, work, "run", "--fast", "--yes", "--json", "--target", "target", config=config))
    j = json.loads(p.stdout)
    assert j["status"] == "succeeded", j
    j["step_seconds"] = step_times(work, j["run_id"])
    return t, j


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


BASELINE: Path | None = None
BASELINE_LABEL = "the binary built from the commit before the speed work"


def bench_rollback(fr: Path, name: str, reps: int, fraction: float = 0.01, methods=("fr", "seed", "bare")) -> dict:
    if BASELINE and "seed" in methods:
        methods = ("base", *methods)
    _, dirty = repo(name, fraction)
    times: dict[str, list[float]] = {m: [] for m in methods}
    steps: list[dict[str, float]] = []
    details: list[dict] = []
    for i in range(reps):
        for m in methods:
            work = prepare(dirty)
            if m == "fr":
                t, j = fr_rollback(fr, work)
                steps.append(j["step_seconds"])
                details.append(j["steps"][0]["detail"])
                pre = t - sum(j["step_seconds"].values())
                steps[-1]["(outside the steps)"] = pre
            elif m == "base":
                t, _ = fr_rollback(BASELINE, work)
            else:
                t, _ = timed(["bash", "-c", SEED_PROCEDURE if m == "seed" else BARE], cwd=work)
            times[m].append(t)
        log(f"  {name} {fraction:g} rep {i + 1}/{reps}: " + ", ".join(f"{m} {times[m][-1]:.3f}s" for m in methods))
    out = {m: {"median": med(v), "runs": v} for m, v in times.items()}
    if steps:
        keys = list(steps[0])
        out["fr_steps"] = {k: med([s.get(k, 0.0) for s in steps]) for k in keys}
        out["snapshot_detail"] = details[0]
    out["changed_files"] = (REPOS / f"{dirty.name}.dirty-files").read_bytes().count(b"\0")
    return out


def bench_snapshot(fr: Path, name: str, reps: int) -> dict:
    """First snapshot vs a second of the same dirty state (run, undo, run), vs tar and restic."""
    _, dirty = repo(name)
    first, second, first_b, second_b = [], [], [], []
    for _ in range(reps):
        work = prepare(dirty)
        _, j1 = fr_rollback(fr, work)
        run(fr_cmd(fr, work, "undo", j1["run_id"], "--yes"))
        _, j2 = fr_rollback(fr, work)
        first.append(j1["step_seconds"]["snapshot"])
        second.append(j2["step_seconds"]["snapshot"])
        first_b.append(j1["steps"][0]["detail"]["new_bytes"])
        second_b.append(j2["steps"][0]["detail"]["new_bytes"])
    files_list = REPOS / f"{dirty.name}.dirty-files"
    tmp = Path(tempfile.mkdtemp(prefix="bench-snap-", dir=ROOT / "target"))
    tars = []
    for _ in range(reps):
        t, _ = timed(["tar", "-cf", str(tmp / "x.tar"), "--null", "-T", str(files_list)], cwd=dirty)
        tars.append(t)
    out = {
        "first_s": med(first),
        "second_s": med(second),
        "first_new_bytes": med(first_b),
        "second_new_bytes": med(second_b),
        "tar_s": med(tars),
        "tar_bytes": (tmp / "x.tar").stat().st_size,
    }
    if shutil.which("restic"):
        r1, r2 = [], []
        env = {**ENV, "RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(tmp / "cache")}
        for i in range(reps):
            rrepo = tmp / f"restic{i}"
            subprocess.run(["restic", "init", "-q", "--repo", str(rrepo)], env=env, check=True, capture_output=True)
            for acc in (r1, r2):
                t0 = time.perf_counter()
                subprocess.run(["restic", "backup", "-q", "--repo", str(rrepo), "--files-from-raw", str(files_list)],
                               cwd=dirty, env=env, check=True, capture_output=True)
                acc.append(time.perf_counter() - t0)
        out["restic_first_s"] = med(r1)
        out["restic_second_s"] = med(r2)
    shutil.rmtree(tmp)
    return out


def bench_assess(fr: Path, reps: int) -> dict:
    hist = REPOS / "history-50k"
    marker = REPOS / "history-50k.done"
    if not marker.exists():
        log(f"generating a {HISTORY_COMMITS}-commit history")
        run([sys.executable, str(GEN), "--history", str(hist), "--commits", str(HISTORY_COMMITS), "--files", "200",
             "--seed", "3"])
        marker.write_text("ok\n")
    root = run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=hist).stdout.decode().split()[0]
    out = {}
    for label, target in (("HEAD~10", "HEAD~10"), ("root (50k commits back)", root)):
        ts = [timed(fr_cmd(fr, hist, "assess", "--target", target))[0] for _ in range(reps)]
        out[label] = med(ts)
    return out


def bench_startup(fr: Path) -> dict:
    if shutil.which("hyperfine"):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            run(["hyperfine", "-N", "--warmup", "5", "--runs", "50", "--export-json", f.name, f"{fr} --version"])
            data = json.loads(Path(f.name).read_text())
        return {"tool": "hyperfine", "median_s": data["results"][0]["median"]}
    ts = [timed([str(fr), "--version"])[0] for _ in range(50)]
    return {"tool": "loop of 50", "median_s": med(ts)}


def bench_python() -> dict:
    venv = [Path(os.environ["VIRTUAL_ENV"]) / "bin" / "python"] if os.environ.get("VIRTUAL_ENV") else []
    for py in (ROOT / ".venv" / "bin" / "python", *venv, Path(sys.executable)):
        if py.exists() and run([str(py), "-c", "import forge_rollback"], check=False).returncode == 0:
            ts = [timed([str(py), "-c", "import forge_rollback"])[0] for _ in range(10)]
            base = [timed([str(py), "-c", "pass"])[0] for _ in range(10)]
            return {"python": str(py), "import_s": med(ts), "bare_python_s": med(base)}
    return {"skipped": "no interpreter here can import forge_rollback (build it with `make python-test`)"}


def bench_backends(fr: Path, name: str, reps: int) -> dict:
    _, dirty = repo(name)
    cfgdir = Path(tempfile.mkdtemp(prefix="bench-cfg-", dir=ROOT / "target"))
    out: dict[str, list[float]] = {"git2": [], "git-cli": []}
    for _ in range(reps):
        for backend in out:
            cfg = cfgdir / f"{backend}.toml"
            cfg.write_text(f'[vcs]\nbackend = "{backend}"\n')
            work = prepare(dirty)
            try:
                t, _ = fr_rollback(fr, work, config=cfg)
            except (RuntimeError, AssertionError) as e:
                log(f"  backend {backend} failed: {e}")
                t = float("nan")
            out[backend].append(t)
    shutil.rmtree(cfgdir)
    return {b: med(v) for b, v in out.items()}


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
    fs = run(["df", "-T", str(ROOT / "target")]).stdout.decode().splitlines()[-1].split()[1]
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "git": run(["git", "--version"]).stdout.decode().strip(),
        "kernel": platform.release(),
        "filesystem": fs,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "forge_rollback": run([str(FR), "--version"]).stdout.decode().strip(),
        "load_average_at_start": os.getloadavg(),
    }


def main() -> None:
    global FR
    ap = argparse.ArgumentParser()
    ap.add_argument("--fr", type=Path, required=True, help="the release forge-rollback binary")
    ap.add_argument("--sizes", default="small,medium,large")
    ap.add_argument("--reps", type=int, help="override every repetition count (e.g. 1 for a smoke run)")
    ap.add_argument("--large-reps", type=int, help="repetitions for the large size")
    ap.add_argument("--render-only", action="store_true", help="rewrite the doc from target/bench-results.json")
    ap.add_argument("--baseline", type=Path, help="an earlier forge-rollback binary, run side by side with --fr")
    ap.add_argument("--baseline-label", default="the binary built from the commit before the speed work",
                    help="what the --baseline binary is, for the tables' text")
    a = ap.parse_args()
    FR = a.fr.resolve()
    global BASELINE, BASELINE_LABEL
    BASELINE = a.baseline.resolve() if a.baseline else None
    BASELINE_LABEL = a.baseline_label
    if a.render_only:
        render(json.loads(RESULTS.read_text()))
        return
    REPOS.mkdir(parents=True, exist_ok=True)
    sizes = a.sizes.split(",")

    def reps(name: str) -> int:
        if a.reps:
            return a.reps
        if name == "large" and a.large_reps:
            return a.large_reps
        return SIZES[name][3]

    res: dict = {"machine": machine(), "rollback": {}, "snapshot": {}, "fractions": {}}
    t0 = time.perf_counter()
    for name in sizes:
        log(f"rollback: {name}")
        res["rollback"][name] = bench_rollback(FR, name, reps(name))
        res["rollback"][name]["files"] = SIZES[name][0]
        res["rollback"][name]["commits"] = SIZES[name][1]
        RESULTS.write_text(json.dumps(res, indent=2))
    for name in sizes:
        log(f"snapshot: {name}")
        res["snapshot"][name] = bench_snapshot(FR, name, min(reps(name), 3))
        RESULTS.write_text(json.dumps(res, indent=2))
    mid = "medium" if "medium" in sizes else sizes[0]
    for f in FRACTIONS:
        if f == 0.01:
            res["fractions"][str(f)] = {k: res["rollback"][mid][k] for k in ("fr", "bare", "fr_steps", "changed_files")}
            continue
        log(f"changed files: {mid} at {f:.1%}")
        res["fractions"][str(f)] = bench_rollback(FR, mid, min(reps(mid), 3), fraction=f, methods=("fr", "bare"))
        RESULTS.write_text(json.dumps(res, indent=2))
    res["fractions_size"] = mid
    log("backends")
    res["backends"] = {"size": mid, **bench_backends(FR, mid, reps(mid))}
    log("assess on a 50k-commit history")
    res["assess"] = bench_assess(FR, 5 if not a.reps else a.reps)
    log("start-up")
    res["startup"] = bench_startup(FR)
    res["python"] = bench_python()
    res["baseline_label"] = BASELINE_LABEL
    res["total_minutes"] = (time.perf_counter() - t0) / 60
    res["reps"] = {n: reps(n) for n in sizes}
    RESULTS.write_text(json.dumps(res, indent=2))
    for done in (WORK, TRASH):
        if done.exists():
            shutil.rmtree(done)
    render(res)
    log(f"done in {res['total_minutes']:.1f} min; results in {RESULTS}")


def fmt_s(x: float) -> str:
    if x != x:  # NaN
        return "failed"
    return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


def fmt_b(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def render(res: dict) -> None:
    m = res["machine"]
    L: list[str] = []
    L.append(f"Measured {m['date']} on {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB RAM, "
             f"{m['filesystem']} file system, Linux {m['kernel']}, {m['git']}, {m['forge_rollback']} (release build). "
             f"Load average at start: {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}"
             f"{' (a shared machine: other jobs were running)' if m['load_average_at_start'][0] > 1 else ''}. "
             f"Repetitions: {', '.join(f'{k} {v}' for k, v in res.get('reps', {}).items())}; every figure is a median. "
             f"Whole run: {res.get('total_minutes', 0):.0f} min.")
    L.append("")
    L.append("### 1. Rollback: forge-rollback vs the runbook's procedure vs a bare reset")
    L.append("")
    L.append("Dirty state: 1% of tracked files modified, 200 untracked files, 5 `__pycache__` folders; "
             "target `HEAD~10`.")
    L.append("")
    L.append("| size | files | commits | `run --fast` | seed procedure | bare `reset --hard && clean -fd` "
             "| run / bare | seed / bare | goal (≤ 1.2x bare) |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in res["rollback"].items():
        ratio = r["fr"]["median"] / r["bare"]["median"]
        seed = r["seed"]["median"] / r["bare"]["median"]
        if name == "small":
            goal = "n/a (small)"
        elif ratio <= 1.2:
            goal = "met"
        else:
            goal = f"missed by {ratio / 1.2 - 1:.0%}"
        L.append(f"| {name} | {r['files']:,} | {r['commits']:,} | {fmt_s(r['fr']['median'])} | "
                 f"{fmt_s(r['seed']['median'])} | {fmt_s(r['bare']['median'])} | {ratio:.2f}x | {seed:.2f}x | {goal} |")
    if any("base" in r for r in res["rollback"].values()):
        L.append("")
        L.append(f"Before this change, in the same run: {res.get('baseline_label', BASELINE_LABEL)} "
                 "(`--baseline`), interleaved with the others on the same work copies.")
        L.append("")
        L.append("| size | `run --fast` before | `run --fast` now | bare | before / bare | now / bare | now / before |")
        L.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, r in res["rollback"].items():
            if "base" not in r:
                continue
            b, f, z = r["base"]["median"], r["fr"]["median"], r["bare"]["median"]
            L.append(f"| {name} | {fmt_s(b)} | {fmt_s(f)} | {fmt_s(z)} | {b / z:.2f}x | {f / z:.2f}x | {f / b:.2f}x |")
    L.append("")
    L.append("Where `run --fast` spends its time (medians, from the journal's per-step timestamps; the first "
             "column is wall time minus the steps: process start-up, assessment, planning and the lock before "
             "them, the incident report after them):")
    L.append("")
    names = list(res["rollback"])
    keys = list(res["rollback"][names[0]]["fr_steps"])
    keys = keys[-1:] + keys[:-1]
    L.append("| size | " + " | ".join(f"`{k}`" if not k.startswith("(") else k for k in keys) + " |")
    L.append("| --- |" + " ---: |" * len(keys))
    for name in names:
        s = res["rollback"][name]["fr_steps"]
        L.append(f"| {name} | " + " | ".join(fmt_s(s.get(k, 0.0)) for k in keys) + " |")
    L.append("")
    L.append("### 2. Snapshot cost")
    L.append("")
    L.append("First snapshot of the dirty state vs a second snapshot of the same state (run, undo, run: the "
             "store already holds every blob), vs `tar -cf` and `restic backup` of the same dirty files.")
    L.append("")
    L.append("| size | first snapshot | new bytes | second snapshot | new bytes | second / first | goal (< 10%) "
             "| tar | restic first | restic second |")
    L.append("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for name, s in res["snapshot"].items():
        ratio = s["second_s"] / s["first_s"] if s["first_s"] else float("nan")
        goal = "met" if ratio < 0.10 else f"missed ({ratio:.0%})"
        rf = fmt_s(s["restic_first_s"]) if "restic_first_s" in s else "not installed"
        rs = fmt_s(s["restic_second_s"]) if "restic_second_s" in s else "not installed"
        L.append(f"| {name} | {fmt_s(s['first_s'])} | {fmt_b(s['first_new_bytes'])} | {fmt_s(s['second_s'])} | "
                 f"{fmt_b(s['second_new_bytes'])} | {ratio:.0%} | {goal} | {fmt_s(s['tar_s'])} | {rf} | {rs} |")
    L.append("")
    L.append(f"### 3. How cost grows with the number of changed files ({res['fractions_size']})")
    L.append("")
    L.append("| modified | changed files (incl. 200 untracked) | `run --fast` | bare reset | run / bare | snapshot step |")
    L.append("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for f, r in sorted(res["fractions"].items(), key=lambda kv: float(kv[0])):
        L.append(f"| {float(f):.1%} | {r['changed_files']:,} | {fmt_s(r['fr']['median'])} | {fmt_s(r['bare']['median'])} | "
                 f"{r['fr']['median'] / r['bare']['median']:.2f}x | {fmt_s(r['fr_steps'].get('snapshot', 0.0))} |")
    L.append("")
    L.append("![time against repository size and changed files](performance.png)")
    L.append("")
    L.append("### 4. Back-ends on the same rollback")
    L.append("")
    b = res["backends"]
    L.append(f"| size | `git2` (libgit2) | `git-cli` | git-cli / git2 |")
    L.append("| --- | ---: | ---: | ---: |")
    L.append(f"| {b['size']} | {fmt_s(b['git2'])} | {fmt_s(b['git-cli'])} | {b['git-cli'] / b['git2']:.2f}x |")
    L.append("")
    L.append("### 5. Assess, start-up, Python import")
    L.append("")
    L.append("| measurement | median |")
    L.append("| --- | ---: |")
    for label, t in res["assess"].items():
        L.append(f"| `assess --target {label}` on a {HISTORY_COMMITS:,}-commit history | {fmt_s(t)} |")
    st = res["startup"]
    L.append(f"| `forge-rollback --version` ({st['tool']}) | {st['median_s'] * 1000:.1f} ms |")
    py = res["python"]
    if "skipped" in py:
        L.append(f"| `import forge_rollback` | skipped: {py['skipped']} |")
    else:
        L.append(f"| `import forge_rollback` (bare `python -c pass`: {fmt_s(py['bare_python_s'])}) | {fmt_s(py['import_s'])} |")
    L.append("")
    text = DOC.read_text() if DOC.exists() else "<!-- bench:begin -->\n<!-- bench:end -->\n"
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    DOC.write_text(head + begin + "\n" + "\n".join(L) + end + tail)
    log(f"wrote {DOC}")


if __name__ == "__main__":
    main()
