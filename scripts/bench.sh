#!/usr/bin/env bash
# Benchmarks: every figure of docs/PERFORMANCE.md in one run (`make bench`).
#
#   scripts/bench.sh [--sizes small,medium,large] [--reps N] [--large-reps N] [--baseline BIN [--baseline-label TEXT]] [--render-only]
#   scripts/bench.sh --verify-only [--reps N] [--render-only]   # only the verification benchmark
#
# Builds the release binary, installs `restic` and `hyperfine` with apt-get when they are missing
# and we are root (skipped with a note otherwise), generates the sample repositories once under
# target/bench-repos/, measures (`--baseline BIN`: an earlier forge-rollback binary, run side
# by side with this one in the rollback table, so a change's gain is measured in one run),
# rewrites the tables in docs/PERFORMANCE.md and draws docs/performance.png (matplotlib in a
# venv at target/bench-venv). The verification benchmark (`cargo bench --bench verify`: 50
# HTTP checks, concurrent vs one at a time) runs last and rewrites its own section
# (scripts/bench/verify.py). Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

verify_only=0
args=()
for a in "$@"; do
    if [[ $a == --verify-only ]]; then verify_only=1; else args+=("$a"); fi
done
if ((verify_only)); then
    exec python3 scripts/bench/verify.py "${args[@]}"
fi
set -- "${args[@]}"
target_dir=${CARGO_TARGET_DIR:-$root/target}

echo "building the release binary" >&2
cargo build --release -q -p rollback-cli
fr=$target_dir/release/forge-rollback
# A baseline built from another commit into the same target folder (a `git worktree` with this
# CARGO_TARGET_DIR) is written to the same path; cargo does not copy an up-to-date binary back
# over it, and the bench would compare the baseline with itself.
prev=
for a in "$@"; do
    if [[ $prev == --baseline ]] && cmp -s -- "$a" "$fr"; then
        echo "error: $fr is the baseline $a byte for byte (a baseline build left it there);" \
            "run \`touch crates/rollback-cli/src/main.rs\` and try again" >&2
        exit 2
    fi
    prev=$a
done

missing=()
command -v restic >/dev/null || missing+=(restic)
command -v hyperfine >/dev/null || missing+=(hyperfine)
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "installing ${missing[*]} with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2 ||
            echo "note: could not install ${missing[*]}; those figures are skipped" >&2
    else
        echo "note: ${missing[*]} not installed (needs root for apt-get); those figures are skipped" >&2
    fi
fi

mkdir -p target
python3 scripts/bench/bench.py --fr "$fr" "$@"
python3 scripts/bench/verify.py "$@"

venv=$root/target/bench-venv
if [[ ! -x $venv/bin/python ]] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q matplotlib ||
        { echo "note: no matplotlib; docs/performance.png not redrawn" >&2; exit 0; }
fi
"$venv/bin/python" scripts/bench/plot.py
