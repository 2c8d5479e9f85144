#!/usr/bin/env bash
# The portable wheel: forge_rollback + the forge-rollback command, abi3 (CPython >= 3.11),
# manylinux_2_28 whatever the build host's glibc. maturin links with zig (`--zig`), which
# targets glibc 2.28's symbols; the C code (vendored libgit2, bundled SQLite, ring) is compiled
# by zig's clang for the same target. The tools (requirements-wheel.txt) go into
# target/wheel-build-venv, made on first use.
#
#   scripts/wheel.sh          # build target/wheels/forge_rollback-*-manylinux_2_28_x86_64.whl
#   scripts/wheel.sh check    # build it, then `auditwheel show` must report manylinux_2_28, and
#                             # scripts/wheel-test.sh installs and runs it with no Rust toolchain
#   scripts/wheel.sh [check] --profile NAME   # the same with another cargo profile, into
#                                             # target/wheels/NAME
#
# A release build: 6 to 10 min on 2 shared cores (all of it compiled for the explicit target, apart
# from the debug build the tests use). `make test` (CI) runs `check --profile wheel-check`: the
# same wheel, built and checked the same way, without the optimiser (Cargo.toml), 2.5 min;
# FORGE_TEST_DEV_WHEEL=1 swaps in the dev wheel of the host (no zig) for a quick local loop.
set -euo pipefail

check=0
profile=(--release)
subdir=
while (($#)); do
    case $1 in
        check) check=1 ;;
        --profile)
            [[ -n ${2:-} ]] || { echo "error: --profile needs a cargo profile name" >&2; exit 2; }
            profile=(--profile "$2")
            # Not where `make wheel` puts the wheel that ships, which `pip install
            # target/wheels/forge_rollback-*.whl` would then pick up.
            subdir=/$2
            shift
            ;;
        *)
            echo "usage: scripts/wheel.sh [check] [--profile NAME] (unknown argument '$1')" >&2
            exit 2
            ;;
    esac
    shift
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
POLICY=manylinux_2_28
TARGET=$(cargo metadata --format-version 1 --no-deps | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
VENV=$TARGET/wheel-build-venv
OUT=$TARGET/wheels$subdir

if [[ ! -x $VENV/bin/python ]] || ! cmp -s requirements-wheel.txt "$VENV/requirements-wheel.txt"; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements-wheel.txt
    cp requirements-wheel.txt "$VENV/requirements-wheel.txt"
fi

# maturin runs zig as `python -m ziglang` with the first python on PATH: the venv's.
rm -f "$OUT"/forge_rollback-*-"$POLICY"_*.whl
PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" build "${profile[@]}" --locked --zig --compatibility "$POLICY" \
    -m crates/rollback-py/Cargo.toml --out "$OUT"
wheel=$(ls "$OUT"/forge_rollback-*-"$POLICY"_x86_64.whl)
echo "built $wheel ($(du -h "$wheel" | cut -f1), cargo ${profile[*]})"

if ((check)); then
    shown=$("$VENV/bin/auditwheel" show "$wheel")
    echo "$shown"
    if ! grep -q "consistent with the following platform tag: \"${POLICY}_x86_64\"" <<<"$(tr '\n' ' ' <<<"$shown" | tr -s ' ')"; then
        echo "error: auditwheel does not place $(basename "$wheel") in $POLICY" >&2
        exit 1
    fi
    scripts/wheel-test.sh "$VENV/bin/python" "$wheel"
fi
