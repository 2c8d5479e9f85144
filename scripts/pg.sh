#!/usr/bin/env bash
# A PostgreSQL server for the tests.
#
#   eval "$(scripts/pg.sh start)"   # prints `export FORGE_TEST_PG_URL=... FORGE_TEST_PG_CA=...`
#   scripts/pg.sh url               # the URL of the running server
#   scripts/pg.sh stop              # stops the server `start` started (nothing if it reused one)
#
# Only the shell whose `start` created the server stops it: `start` then also prints
# `export FORGE_TEST_PG_OWNED=1`, and `stop` does nothing without it (`stop --force` stops the
# recorded server anyway). A second `start` that reuses a running server (another worktree with
# a copied target/, a second test.sh) never takes it down under the first.
#
# `start` reuses the server named by FORGE_TEST_PG_URL when it is set and answers. Otherwise it
# creates a throwaway cluster in a temp dir (installing PostgreSQL with apt-get when initdb and
# pg_ctl are missing) and starts it:
# - as the `postgres` user when run as root (initdb refuses root);
# - password authentication (scram-sha-256) everywhere, so wrong-password tests are real;
# - a superuser `forge` with a random password;
# - listening on 127.0.0.1 only, on a free port, with TLS on (a throwaway CA in the temp dir,
#   exported as FORGE_TEST_PG_CA, so `sslmode=verify-full` can be tested);
# - fsync off: the cluster is thrown away.
# Its state (temp dir, URL) is recorded in target/forge-test-pg.env so `url` and `stop` find it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
STATE=$ROOT/target/forge-test-pg.env

die() {
    echo "pg.sh: error: $*" >&2
    exit 1
}

# The folder holding initdb and pg_ctl, installing PostgreSQL if needed.
pg_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $d/initdb && -x $d/pg_ctl ]]; then
            echo "$d"
            return
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"
        return
    fi
    if [[ ${1:-} == --no-install ]]; then
        return 1
    fi
    if ((EUID != 0)); then
        die "initdb/pg_ctl not found; install PostgreSQL (apt-get install postgresql) or set FORGE_TEST_PG_URL"
    fi
    echo "pg.sh: installing PostgreSQL with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    pg_bindir --no-install || die "PostgreSQL was installed but initdb/pg_ctl are still missing"
}

# host and port of a postgresql:// URL (no password needed for pg_isready).
url_host_port() {
    local rest=${1#*://}
    rest=${rest%%/*}
    rest=${rest%%\?*}
    rest=${rest##*@}
    local host=${rest%:*} port=5432
    [[ $rest == *:* ]] && port=${rest##*:}
    [[ -n $host ]] || host=127.0.0.1
    echo "$host $port"
}

free_port() {
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    die "no free port found"
}

# Runs a command as the cluster's owner.
as_owner() {
    if ((EUID == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

make_certs() {
    local dir=$1
    openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=forge-rollback test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$dir/data/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 3 -extfile "$dir/server.ext" -out "$dir/data/server.crt" 2>/dev/null
    chmod 600 "$dir/data/server.key"
    chmod 644 "$dir/ca.crt"
}

print_env() {
    # shellcheck disable=SC1090
    source "$STATE"
    echo "export FORGE_TEST_PG_URL='$FORGE_TEST_PG_URL'"
    if [[ -n ${FORGE_TEST_PG_CA:-} ]]; then
        echo "export FORGE_TEST_PG_CA='$FORGE_TEST_PG_CA'"
    fi
    if [[ ${1:-} == owned ]]; then
        echo "export FORGE_TEST_PG_OWNED=1"
    fi
}

running() {
    [[ -f $STATE ]] || return 1
    # shellcheck disable=SC1090
    (source "$STATE" && read -r host port < <(url_host_port "$FORGE_TEST_PG_URL") &&
        "${PG_BIN:-/usr/bin}/pg_isready" -q -h "$host" -p "$port" -t 5)
}

cmd_start() {
    mkdir -p "$(dirname "$STATE")"
    if [[ -n ${FORGE_TEST_PG_URL:-} ]]; then
        local host port
        read -r host port < <(url_host_port "$FORGE_TEST_PG_URL")
        local isready
        isready=$(command -v pg_isready || echo "$(pg_bindir)/pg_isready")
        if "$isready" -q -h "$host" -p "$port" -t 5; then
            echo "pg.sh: using FORGE_TEST_PG_URL ($host:$port)" >&2
            {
                echo "FORGE_TEST_PG_URL='$FORGE_TEST_PG_URL'"
                echo "FORGE_TEST_PG_CA='${FORGE_TEST_PG_CA:-}'"
                echo "PG_EXTERNAL=1"
            } >"$STATE"
            print_env
            return
        fi
        echo "pg.sh: FORGE_TEST_PG_URL ($host:$port) does not answer; starting a throwaway server" >&2
    fi
    if running; then
        echo "pg.sh: reusing the server recorded in $STATE" >&2
        print_env
        return
    fi

    local bin dir port password
    bin=$(pg_bindir)
    dir=$(mktemp -d /tmp/forge-test-pg.XXXXXX)
    chmod 755 "$dir"
    password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s\n' "$password" >"$dir/pwfile"
    if ((EUID == 0)); then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
        chown -R postgres: "$dir"
    fi
    as_owner "$bin/initdb" -D "$dir/data" -U forge --pwfile="$dir/pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
        die "initdb failed: $(tail -5 "$dir/initdb.log")"
    rm -f "$dir/pwfile"
    make_certs "$dir"
    if ((EUID == 0)); then
        chown -R postgres: "$dir/data"
    fi
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
ssl = on
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
    # A port can be taken between the check and the start: try a few.
    local tries
    for tries in 1 2 3 4 5; do
        port=$(free_port)
        if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "-p $port" start >/dev/null; then
            break
        fi
        ((tries < 5)) || die "pg_ctl start failed: $(tail -5 "$dir/server.log")"
    done
    {
        echo "FORGE_TEST_PG_URL='postgresql://forge:$password@127.0.0.1:$port/postgres'"
        echo "FORGE_TEST_PG_CA='$dir/ca.crt'"
        echo "PG_DIR='$dir'"
        echo "PG_BIN='$bin'"
    } >"$STATE"
    chmod 600 "$STATE"
    echo "pg.sh: PostgreSQL $("$bin/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port ($dir)" >&2
    print_env owned
}

cmd_stop() {
    [[ -f $STATE ]] || return 0
    if [[ ${FORGE_TEST_PG_OWNED:-} != 1 && ${1:-} != --force ]]; then
        echo "pg.sh: not stopping the recorded server: this shell did not start it (stop --force does)" >&2
        return 0
    fi
    local PG_DIR="" PG_BIN="" PG_EXTERNAL=""
    # shellcheck disable=SC1090
    source "$STATE"
    if [[ -z $PG_EXTERNAL && -n $PG_DIR && -d $PG_DIR ]]; then
        as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1 || :
        rm -rf "$PG_DIR"
        echo "pg.sh: stopped the server in $PG_DIR" >&2
    fi
    rm -f "$STATE"
}

cmd_url() {
    [[ -f $STATE ]] || die "no server started (run: scripts/pg.sh start)"
    # shellcheck disable=SC1090
    source "$STATE"
    echo "$FORGE_TEST_PG_URL"
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop "${2:-}" ;;
    url) cmd_url ;;
    *)
        echo "usage: scripts/pg.sh start|stop [--force]|url" >&2
        exit 2
        ;;
esac
