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
    local name=$1 t=$SECONDS rc=0
    shift
    log "$name"
    "$@" || rc=$?
    if ((rc != 0)); then
        log "FAILED: $name (exit $rc, $((SECONDS - t))s)"
        failed+=("$name")
    fi
    return "$rc"
}

stage_lint() {
    step "cargo fmt --check" cargo fmt --all --check || :
    step "cargo clippy" cargo clippy --all-targets --locked -- -D warnings || :
    # rollback-py is not a default member (it is an extension module), so lint it by name.
    step "cargo clippy -p rollback-py" \
        cargo clippy -p rollback-py --all-targets --locked -- -D warnings || :
}

stage_rust() {
    if cargo nextest --version >/dev/null 2>&1; then
        step "cargo nextest run --profile ci" cargo nextest run --profile ci --locked || :
    else
        log "cargo-nextest is not installed; using cargo test"
        step "cargo test" cargo test --locked || :
    fi
    # nextest does not run doctests.
    step "cargo test --doc" cargo test --doc --locked || :
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
    # Stop what pg.sh and prometheus.sh start when this script exits, on success, failure or
    # interrupt.
    trap 'bash "$ROOT/scripts/pg.sh" stop; bash "$ROOT/scripts/prometheus.sh" stop' EXIT
    trap 'exit 130' INT TERM
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

stage_python() {
    local py=$VENV/bin/python
    ((venv_ok)) || return 0

    # Build the extension with `maturin develop` rather than `pip install ./crates/rollback-py`:
    # - it uses the maturin pinned in requirements-dev.txt, with no isolated build env to fetch;
    # - it builds the debug profile into the same target dir as the Rust tests, so dependencies
    #   already compiled for `cargo nextest` (libgit2, blake3, ...) are reused, not rebuilt in
    #   release mode;
    # - it installs the package editable (a .pth to crates/rollback-py/python, the .so copied
    #   next to __init__.py), so stubtest and pytest see the hand-written .pyi and py.typed.
    # Both read the same pyproject.toml; `pip install ./crates/rollback-py` (what users run)
    # builds the same module in release mode.
    step "maturin develop" env VIRTUAL_ENV="$VENV" "$VENV/bin/maturin" develop --locked -q \
        --features failpoints -m crates/rollback-py/Cargo.toml || return 0

    # The CLI-vs-Python JSON tests run the CLI binary built here.
    step "cargo build -p rollback-cli" cargo build -q --locked -p rollback-cli || return 0
    FORGE_ROLLBACK_BIN=$(cargo metadata --format-version 1 --no-deps | "$py" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/forge-rollback
    export FORGE_ROLLBACK_BIN

    # stubtest also checks the submodules (forge_rollback._forge_rollback); naming them too makes
    # mypy load each stub twice ("Duplicate module").
    step "mypy.stubtest forge_rollback" "$py" -m mypy.stubtest \
        --mypy-config-file crates/rollback-py/pyproject.toml forge_rollback || :

    # The wheel users install: the portable one (release, abi3, manylinux_2_28 linked with zig),
    # its tag confirmed by auditwheel, then installed into a fresh venv where `forge-rollback demo`
    # and `import forge_rollback` run with no Rust toolchain on PATH. FORGE_TEST_DEV_WHEEL=1 tests
    # the fast dev-profile wheel instead (a quick local loop; not what is shipped).
    if [[ ${FORGE_TEST_DEV_WHEEL:-} == 1 ]]; then
        step "wheel (dev profile): forge-rollback command without a Rust toolchain" scripts/wheel-test.sh "$py" || :
    else
        step "wheel (portable, manylinux_2_28): built, auditwheel, run without a Rust toolchain" scripts/wheel.sh check || :
    fi

    local rc=0
    step "pytest crates/rollback-py/tests" "$py" -m pytest -q crates/rollback-py/tests || rc=$?
    if ((rc == 5)); then
        echo "error: pytest collected no tests in crates/rollback-py/tests" >&2
    fi

    # The Ansible collection (ansible/ansible_collections/forge/rollback) with the venv's real
    # ansible-core against a 4-host fleet of temp work trees, driving the CLI built above.
    rc=0
    step "pytest ansible/tests (fleet rollback with ansible-core)" "$py" -m pytest -q ansible/tests || rc=$?
    if ((rc == 5)); then
        echo "error: pytest collected no tests in ansible/tests" >&2
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

start=$SECONDS
if [[ " ${stages[*]} " == *" rust "* || " ${stages[*]} " == *" python "* ]]; then
    log "setup: Python tools, PostgreSQL and Prometheus for the tests"
    setup_venv
    setup_postgres
    setup_prometheus
    step "git-lfs (scripts/git-lfs.sh: apt-get install git-lfs if missing)" bash scripts/git-lfs.sh || :
fi
for s in "${stages[@]}"; do
    "stage_$s"
done

took="$((SECONDS - start))s"
if ((${#failed[@]})); then
    printf 'test.sh: FAILED (%s) in %s:\n' "${stages[*]}" "$took"
    printf '  - %s\n' "${failed[@]}"
    echo "test.sh: FAILED: ${#failed[@]} step(s) failed"
    exit 1
fi
echo "test.sh: OK: all checks passed (${stages[*]}) in $took"
