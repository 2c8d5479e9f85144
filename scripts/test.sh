#!/usr/bin/env bash
# The one command that runs every check: `make test` calls this, and so does CI (.ci/run).
#
#   scripts/test.sh              # all stages: lint, rust, python
#   scripts/test.sh lint python  # only those stages (make lint / rust-test / python-test)
#
# Before the rust and python stages, a setup stage prepares what their tests use:
# - .venv with requirements-dev.txt (maturin, pytest, mypy, the real Alembic, SQLAlchemy
#   and psycopg2 the database tests drive, and ansible-core for the fleet tests), exported as
#   FORGE_TEST_PYTHON;
# - a PostgreSQL server (scripts/pg.sh: FORGE_TEST_PG_URL when it answers, else a throwaway
#   cluster, installing PostgreSQL with apt-get if needed), exported as FORGE_TEST_PG_URL and
#   FORGE_TEST_PG_CA, and stopped when this script exits, whatever happens;
# - Prometheus (scripts/prometheus.sh: installs the Debian package `prometheus` with apt-get if
#   needed, starts a server on 127.0.0.1 and waits for its first scrape), exported as
#   FORGE_TEST_PROM_BIN (the `prometheus` tests start their own server per test, scraping
#   their own app) and stopped on exit like PostgreSQL;
# - git-lfs (apt-get install git-lfs when missing), for the LFS tests.
# `scripts/test.sh lint` alone needs neither.
#
# CI has 2 cores, and much of the work leaves one idle (downloads, tests waiting on PostgreSQL,
# Alembic or a server), so work overlaps: the test build runs while the setup downloads and
# installs; the Python extension's build and the lint (cargo) run while the Rust tests do, which
# nextest runs from the build's list of test binaries, taking no cargo lock; the wheel's build
# and the Ansible tests run while the module's pytest suite does. Each background job's output
# is printed in one piece when it ends. Every step logs its wall time and the CPU time of
# what it ran (`done: NAME (Ns, CPU Ns)`), so a slow CI run shows where its time went.
#
# Runs from any directory, needs no stdin, and can be re-run: the venv (.venv at the repo root)
# and cargo's target dir are reused. Independent steps all run even when one fails, so a single
# CI run reports every problem; the exit status is non-zero if any step failed, and the last
# line names them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

PYTHON=${PYTHON:-python3}
VENV=$ROOT/.venv

failed=()

log() { printf '\n==> %s\n' "$*" >&2; }

# step NAME COMMAND...: run one simple command (never a shell function: bash ignores `set -e`
# inside anything run from `||`), record it if it fails, and return its status.
step() {
    local name=$1 t=$SECONDS rc=0 times=$bg_dir/times.$BASHPID
    shift
    log "$name"
    # In a subshell of its own, whose `times` then counts this command alone: a background job
    # that ends meanwhile is a child of this shell, not of that one.
    (
        rc=0
        "$@" || rc=$?
        times >"$times"
        exit "$rc"
    ) || rc=$?
    cpu_of "$times"
    if ((rc != 0)); then
        log "FAILED: $name (exit $rc, $((SECONDS - t))s, CPU ${cpu_s}s)"
        failed+=("$name")
    else
        log "done: $name ($((SECONDS - t))s, CPU ${cpu_s}s)"
    fi
    return "$rc"
}

# cpu_of FILE: sets cpu_s to the user + system seconds of the children in FILE, the output of
# bash's `times` (its second line, e.g. `1m2.345s 0m0.120s`); 0 when there is none.
cpu_s=0
cpu_of() {
    local line=0 f
    cpu_s=0
    [[ -f $1 ]] || return 0
    { read -r line && read -r line; } <"$1" || :
    rm -f "$1"
    for f in $line; do
        if [[ $f =~ ^([0-9]+)m([0-9]+)\.[0-9]+s$ ]]; then
            cpu_s=$((cpu_s + 10#${BASH_REMATCH[1]} * 60 + 10#${BASH_REMATCH[2]}))
        fi
    done
}

# Work that can overlap runs in the background (CI has 2 cores and much of this waits on the
# network, on child processes or on one rustc): `background FUNCTION` runs a function of steps
# in a subshell, its output held in a log; `collect` waits for every one, prints each log in
# the order they began, and records their failed steps like the foreground's.
bg_dir=$(mktemp -d)
bg_pids=()
bg_funcs=()
services=0
kill_tree() {
    local child
    for child in $(pgrep -P "$1" || :); do kill_tree "$child"; done
    kill "$1" 2>/dev/null || :
}
# On exit (success, failure or interrupt): stop what is still running in the background, and
# what pg.sh and prometheus.sh started.
cleanup() {
    local pid
    for pid in "${bg_pids[@]}"; do kill_tree "$pid"; done
    rm -rf "$bg_dir"
    if ((services)); then
        bash "$ROOT/scripts/pg.sh" stop
        bash "$ROOT/scripts/prometheus.sh" stop
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
background() {
    (
        failed=()
        t=$SECONDS
        "$1" >"$bg_dir/$1.log" 2>&1
        printf '%s\n' "${failed[@]}" >"$bg_dir/$1.failed"
        echo "$((SECONDS - t))" >"$bg_dir/$1.took"
    ) &
    bg_pids+=("$!")
    bg_funcs+=("$1")
}
collect() {
    local f line
    ((${#bg_pids[@]})) || return 0
    wait "${bg_pids[@]}" || :
    for f in "${bg_funcs[@]}"; do
        log "(ran alongside) $f: its output"
        cat "$bg_dir/$f.log"
        if [[ ! -f $bg_dir/$f.failed ]]; then
            log "FAILED: $f did not finish"
            failed+=("$f (did not finish)")
            continue
        fi
        log "(ran alongside) $f: $(cat "$bg_dir/$f.took")s"
        while IFS= read -r line; do
            [[ -z $line ]] || failed+=("$line")
        done <"$bg_dir/$f.failed"
    done
    bg_pids=()
    bg_funcs=()
}

stage_lint() {
    step "cargo fmt --check" cargo fmt --all --check || :
    # --workspace: rollback-py too, which is not a default member (it is an extension module).
    # One run, so rollback-core and the CLI library are checked once, with the features the
    # tests enable (failpoints); the few lines compiled only without them are built (not
    # linted) by the wheel below.
    step "cargo clippy --workspace" cargo clippy --workspace --all-targets --locked -- -D warnings || :
    # Not a lint of the code, but as cheap (cargo tree, no build): the Python module's build must
    # keep reusing the Rust test build (TEST_SCOPE below).
    step "same features for the Rust tests and the Python module (scripts/check-features.py)" \
        "$PYTHON" scripts/check-features.py "${TEST_SCOPE[@]}" || :
    # As cheap (cargo metadata): the rust-version users are told is not below what the locked
    # dependencies need.
    step "rust-version covers the locked dependencies (scripts/check-msrv.py)" "$PYTHON" scripts/check-msrv.py || :
}

# The Rust tests in two steps. `build_tests` builds every test binary (and the CLI binary the
# Python tests drive: target/debug/forge-rollback, with the tests' failpoints) and has nextest
# write the list of them to $REUSE; `run_tests` runs them from that list (nextest's "reuse
# build"), so it invokes no cargo and holds no lock on the target dir while the tests run: the
# extension's build and the lint can use cargo beside it. Without cargo-nextest: `cargo test`.
have_nextest=0
if cargo nextest --version >/dev/null 2>&1; then have_nextest=1; fi
# The test build, the doctests and the Python module's build (below) resolve features over the
# same crates: the whole workspace with rollback-py's `failpoints`, which adds the Rust tests'
# dev-dependencies to the module and whose pyo3 adds its features to the tests' build (rollback-py
# has no Rust tests, so none of it is compiled here). The module's build then compiles only pyo3
# and rollback-py, not some 70 crates again (check_features keeps it so).
TEST_SCOPE=(--workspace --features rollback-py/failpoints)
# (A Cargo.toml cargo cannot read fails the build step below, named, not this line.)
REUSE=$(cargo metadata --format-version 1 --no-deps 2>/dev/null | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null) ||
    REUSE=$ROOT/target
REUSE=$REUSE/nextest-reuse
build_tests() {
    rm -rf "$REUSE"
    mkdir -p "$REUSE"
    if ((have_nextest)); then
        step "cargo build: the test binaries (nextest list --list-type binaries-only)" \
            cargo nextest list --locked "${TEST_SCOPE[@]}" --list-type binaries-only --message-format json >"$REUSE/binaries.json" || return 0
        step "cargo metadata" cargo metadata --locked --format-version 1 >"$REUSE/cargo-metadata.json" || return 0
    else
        log "cargo-nextest is not installed; using cargo test"
        step "cargo build: the test binaries (cargo test --no-run)" cargo test --no-run --locked "${TEST_SCOPE[@]}" || return 0
    fi
    touch "$REUSE/built"
}
run_tests() {
    [[ -f $REUSE/built ]] || return 0 # the build failed: its step is recorded
    if ((have_nextest)); then
        step "cargo nextest run --profile ci" cargo nextest run --profile ci \
            --binaries-metadata "$REUSE/binaries.json" --cargo-metadata "$REUSE/cargo-metadata.json" || :
    else
        step "cargo test" cargo test --locked "${TEST_SCOPE[@]}" || :
    fi
}

# The venv and the PostgreSQL server the rust and python stages use. A failure here is
# recorded and the stages still run: their tests then fail with a hint, never skip.
venv_ok=0
setup_venv() {
    local py=$VENV/bin/python
    if [[ ! -x $py ]]; then
        step "create $VENV" "$PYTHON" -m venv "$VENV" || return 0
    fi
    step "pip install -r requirements-dev.txt" \
        "$py" -m pip install -q --disable-pip-version-check -r requirements-dev.txt || return 0
    venv_ok=1
    export FORGE_TEST_PYTHON=$py
}

setup_postgres() {
    local env_file
    env_file=$(mktemp)
    services=1
    if step "start PostgreSQL (scripts/pg.sh start)" bash scripts/pg.sh start >"$env_file"; then
        # shellcheck disable=SC1090
        source "$env_file"
    fi
    rm -f "$env_file"
}

setup_prometheus() {
    local env_file
    env_file=$(mktemp)
    if step "start Prometheus (scripts/prometheus.sh start)" bash scripts/prometheus.sh start >"$env_file"; then
        # shellcheck disable=SC1090
        source "$env_file"
    fi
    rm -f "$env_file"
}

# The extension, built with `maturin develop` rather than `pip install ./crates/rollback-py`:
# - it uses the maturin pinned in requirements-dev.txt, with no isolated build env to fetch;
# - it builds the debug profile into the same target dir as the Rust tests, reusing what they
#   compiled (all but pyo3 and rollback-py itself: see TEST_SCOPE);
# - it installs the package editable (a .pth to crates/rollback-py/python, the .so copied next to
#   __init__.py), so stubtest and pytest see the hand-written .pyi and py.typed.
# Both read the same pyproject.toml; `pip install ./crates/rollback-py` (what users run) builds
# the same module in release mode.
build_python() {
    ((venv_ok)) || return 0
    step "maturin develop" env VIRTUAL_ENV="$VENV" "$VENV/bin/maturin" develop --locked -q \
        --features failpoints -m crates/rollback-py/Cargo.toml || return 0
    touch "$bg_dir/python-built"
}

stage_python() {
    local py=$VENV/bin/python
    ((venv_ok)) || return 0
    [[ -f $bg_dir/python-built ]] || return 0 # maturin develop failed: its step is recorded

    # The CLI-vs-Python JSON tests and the Ansible tests run the CLI binary: the test build's
    # when the rust stage made it in this run, else built here.
    if [[ ! -f $REUSE/built ]]; then
        step "cargo build -p rollback-cli" cargo build -q --locked -p rollback-cli || return 0
    fi
    FORGE_ROLLBACK_BIN=$(dirname "$REUSE")/debug/forge-rollback
    export FORGE_ROLLBACK_BIN

    # stubtest also checks the submodules (forge_rollback._forge_rollback); naming them too makes
    # mypy load each stub twice ("Duplicate module").
    step "mypy.stubtest forge_rollback" "$py" -m mypy.stubtest \
        --mypy-config-file crates/rollback-py/pyproject.toml forge_rollback || :

    # Three at once, as none keeps both cores busy: the wheel's build (rustc), the
    # Ansible tests and the module's tests (mostly Python waiting on its children). `collect`
    # then prints the output of the first two.
    background wheel_check
    background ansible_tests

    local rc=0
    step "pytest crates/rollback-py/tests" "$py" -m pytest -q crates/rollback-py/tests || rc=$?
    if ((rc == 5)); then
        echo "error: pytest collected no tests in crates/rollback-py/tests" >&2
    fi
    collect
}

# The Ansible collection (ansible/ansible_collections/forge/rollback) with the venv's real
# ansible-core against a 4-host fleet of temp work trees, driving the CLI binary. Two tests at a
# time (pytest-xdist): each is one controller, about one core's worth of Python at its busiest,
# and one after the other they were the longest job of CI's last stage. No pytest cache: the
# module's tests, running meanwhile, write theirs.
ansible_tests() {
    local rc=0
    step "pytest ansible/tests (fleet rollback with ansible-core)" \
        "$VENV/bin/python" -m pytest -q -p no:cacheprovider -n 2 ansible/tests || rc=$?
    if ((rc == 5)); then
        echo "error: pytest collected no tests in ansible/tests" >&2
    fi
}

# The wheel users install: the portable one (abi3, manylinux_2_28 linked with zig), its tag
# confirmed by auditwheel, then installed into a fresh venv where `forge-rollback demo` and
# `import forge_rollback` run with no Rust toolchain on PATH. Built with the `wheel-check`
# profile: release without the optimiser (Cargo.toml), which saves CI some 450 CPU-s of its
# budget; `make wheel-check` checks the optimised release wheel the same way.
# FORGE_TEST_DEV_WHEEL=1 tests the host's dev-profile wheel instead (a quick local loop).
wheel_check() {
    if [[ ${FORGE_TEST_DEV_WHEEL:-} == 1 ]]; then
        step "wheel (dev profile): forge-rollback command without a Rust toolchain" \
            scripts/wheel-test.sh "$VENV/bin/python" || :
    else
        step "wheel (portable, manylinux_2_28; profile wheel-check): built, auditwheel, run without a Rust toolchain" \
            scripts/wheel.sh check --profile wheel-check || :
    fi
}

stages=("$@")
((${#stages[@]})) || stages=(lint rust python)
for s in "${stages[@]}"; do
    case $s in
        lint | rust | python) ;;
        *)
            echo "error: unknown stage '$s' (expected lint, rust or python)" >&2
            exit 2
            ;;
    esac
done

want() { [[ " ${stages[*]} " == *" $1 "* ]]; }
beside_tests() {
    if want python; then build_python; fi
    if want lint; then stage_lint; fi
}

start=$SECONDS
rm -f "$REUSE/built"
if want rust || want python; then
    # The test build (rustc) needs none of the setup (downloads, apt-get, servers): they overlap.
    if want rust; then background build_tests; fi
    log "setup: Python tools, PostgreSQL and Prometheus for the tests"
    setup_venv
    setup_postgres
    setup_prometheus
    step "git-lfs (scripts/git-lfs.sh: apt-get install git-lfs if missing)" bash scripts/git-lfs.sh || :
    collect
fi
if want rust && ((have_nextest)) && [[ -f $REUSE/built ]]; then
    # While the tests run (taking no cargo lock), the cargo work that is left: the extension's
    # build, then the lint (one after the other: both take the target dir's lock).
    background beside_tests
    run_tests
    collect
else
    if want lint; then stage_lint; fi
    if want python; then build_python; fi
    if want rust; then run_tests; fi
fi
if want rust; then
    # nextest does not run doctests.
    step "cargo test --doc" cargo test --doc --locked "${TEST_SCOPE[@]}" || :
fi
if want python; then stage_python; fi

took="$((SECONDS - start))s"
if ((${#failed[@]})); then
    printf 'test.sh: FAILED (%s) in %s:\n' "${stages[*]}" "$took"
    printf '  - %s\n' "${failed[@]}"
    echo "test.sh: FAILED: ${#failed[@]} step(s) failed"
    exit 1
fi
echo "test.sh: OK: all checks passed (${stages[*]}) in $took"
