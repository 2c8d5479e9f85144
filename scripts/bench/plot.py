#!/usr/bin/env python3
"""docs/performance.png from target/bench-results.json (needs matplotlib; bench.sh puts it in a venv)."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
res = json.loads((ROOT / "target" / "bench-results.json").read_text())

fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
roll = res["rollback"]
files = [roll[n]["files"] for n in roll]
for key, label, style in (("fr", "forge-rollback run --fast", "o-"), ("seed", "seed shell procedure", "s--"),
                          ("bare", "bare reset --hard + clean -fd", "^:")):
    a.plot(files, [roll[n][key]["median"] for n in roll], style, label=label)
for x, n in zip(files, roll):
    a.annotate(n, (x, roll[n]["fr"]["median"]), textcoords="offset points", xytext=(-30, 8), fontsize=8)
a.set_xscale("log")
a.set_yscale("log")
a.set_xlabel("tracked files in the repository")
a.set_ylabel("wall time, s (median)")
a.set_title("Rollback time vs repository size")
a.legend(fontsize=8)
a.grid(True, which="both", alpha=0.3)

fr = sorted(res["fractions"].values(), key=lambda r: r["changed_files"])
changed = [r["changed_files"] for r in fr]
b.plot(changed, [r["fr"]["median"] for r in fr], "o-", label="forge-rollback run --fast")
b.plot(changed, [r["bare"]["median"] for r in fr], "^:", label="bare reset --hard + clean -fd")
b.plot(changed, [r["fr_steps"].get("snapshot", 0) for r in fr], "x-.", label="snapshot step alone")
b.set_xscale("log")
b.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
b.set_xlabel(f"changed files ({res['fractions_size']} repository)")
b.set_ylabel("wall time, s (median)")
b.set_title("Rollback time vs changed files")
b.legend(fontsize=8)
b.grid(True, which="both", alpha=0.3)
fig.tight_layout()
out = ROOT / "docs" / "performance.png"
fig.savefig(out, dpi=110)
print(f"wrote {out}", file=sys.stderr)
