#!/usr/bin/env bash
# Build-checks the workspace with the oldest Rust it claims to support: the `rust-version` of
# Cargo.toml, exactly (`1.89` is checked with 1.89.0). `scripts/check-msrv.py` (a `make test`
# lint) reads only the locked dependencies' own `rust-version`; whether our code uses a language
# feature or a std API newer than that, only a build with that toolchain tells. Not part of
# `make test`: it downloads a toolchain (about 70 MB with rustup's minimal profile) and checks
# every crate twice more (about 4 min here from a cold target/msrv, 7 min of CPU).
#
#   scripts/msrv.sh     # = make msrv
#
# Needs rustup (the toolchain is installed with `rustup toolchain install --profile minimal`
# when missing). Builds into target/msrv so that the normal build is not invalidated.
# Exit 0 when both checks pass, 1 when one fails, 2 when it cannot run (no rustup, no
# rust-version, the toolchain cannot be installed).
set -euo pipefail
cd "$(dirname "$0")/.."

declared=$(sed -n 's/^rust-version = "\([0-9.]*\)"$/\1/p' Cargo.toml)
if [[ -z $declared ]]; then
    echo "error: Cargo.toml's [workspace.package] declares no rust-version" >&2
    exit 2
fi
toolchain=$declared
[[ $toolchain == *.*.* ]] || toolchain=$toolchain.0
if ! command -v rustup >/dev/null 2>&1; then
    echo "error: rustup is needed to install Rust $toolchain (the workspace's rust-version); see https://rustup.rs" >&2
    exit 2
fi
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
    echo "==> installing Rust $toolchain (minimal profile)" >&2
    rustup toolchain install "$toolchain" --profile minimal --no-self-update >&2 || {
        echo "error: could not install Rust $toolchain with rustup" >&2
        exit 2
    }
fi

export CARGO_TARGET_DIR=${MSRV_TARGET_DIR:-$PWD/target/msrv}
status=0
# Every target with the tests' features (their dev-dependencies turn on `failpoints`), then
# what ships (libraries and binaries, no dev-dependencies, so no failpoints): each compiles
# lines the other does not. rollback-py is not a default member; --workspace takes it in.
for targets in "--all-targets --features=rollback-py/failpoints" "--lib --bins"; do
    # shellcheck disable=SC2206 # the two words of $targets are meant to split
    cmd=(cargo "+$toolchain" check --workspace --locked $targets)
    echo "==> ${cmd[*]}" >&2
    "${cmd[@]}" || status=1
done
if ((status)); then
    echo "error: the workspace does not build with Rust $toolchain, its declared rust-version: raise rust-version in Cargo.toml (and the README), or keep the code within it" >&2
else
    echo "==> the workspace builds with Rust $toolchain, its declared rust-version" >&2
fi
exit "$status"
