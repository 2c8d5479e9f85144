#!/usr/bin/env bash
# The wheel carries the command line: build it (dev profile, reusing cargo's target dir), install
# it into a fresh venv, and with no Rust toolchain on PATH run `forge-rollback demo` and
# `python -c "import forge_rollback"` from that venv. Called by scripts/test.sh (python stage).
#
# Dev profile on purpose: measured on 2 shared cores, it adds ~30 s (rollback-py and the CLI
# library rebuilt for the extension; the rest is the debug build the other stages made) and
# ~7 s when nothing changed, against ~4.5 min for a release build (`make wheel`: 8.5 MB wheel,
# 24 MB in dev).
#
#   scripts/wheel-test.sh [PYTHON [WHEEL]]   # PYTHON: the interpreter with maturin (default
#                                            # .venv's); WHEEL: test this built wheel instead
#                                            # (scripts/wheel.sh check passes the portable one)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=${1:-$ROOT/.venv/bin/python}
TARGET=$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
OUT=$TARGET/wheels/test
VENV=$TARGET/tmp/wheel-venv

rm -rf "$OUT" "$VENV"
if [[ -n ${2:-} ]]; then
    wheel=$(realpath "$2")
    echo "testing $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"
else
    "$PY" -m maturin build --locked -q -m crates/rollback-py/Cargo.toml --out "$OUT"
    wheel=$(ls "$OUT"/forge_rollback-*.whl)
    echo "built $(basename "$wheel") ($(du -h "$wheel" | cut -f1))"
fi
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-index --no-deps "$wheel"

# No cargo, rustc or rustup reachable: only the venv and the system's own folders.
clean_path="$VENV/bin:/usr/local/bin:/usr/bin:/bin"
for tool in cargo rustc rustup; do
    if PATH=$clean_path command -v "$tool" >/dev/null; then
        echo "error: $tool is on the clean PATH ($(PATH=$clean_path command -v "$tool")); the test would prove nothing" >&2
        exit 1
    fi
done

cd "$(mktemp -d)"
trap 'rm -rf "$PWD"' EXIT
env -i HOME="$HOME" PATH="$clean_path" LANG=C.UTF-8 NO_COLOR=1 \
    "$VENV/bin/python" -c 'import forge_rollback, sys; print("import forge_rollback", forge_rollback.__version__, "from", forge_rollback.__file__); assert sys.prefix != sys.base_prefix'
[[ $(PATH=$clean_path && command -v forge-rollback) == "$VENV/bin/forge-rollback" ]]
env -i HOME="$HOME" PATH="$clean_path" LANG=C.UTF-8 NO_COLOR=1 forge-rollback demo
env -i HOME="$HOME" PATH="$clean_path" forge-rollback --version
# Exit codes are the binary's: an unknown command is a usage error (2).
rc=0
env -i HOME="$HOME" PATH="$clean_path" forge-rollback no-such-command 2>/dev/null || rc=$?
if ((rc != 2)); then
    echo "error: forge-rollback no-such-command exited $rc, expected 2" >&2
    exit 1
fi
echo "wheel-test: OK"
