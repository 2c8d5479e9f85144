#!/usr/bin/env bash
# Prometheus for the tests.
#
#   eval "$(scripts/prometheus.sh start)"  # prints `export FORGE_TEST_PROM_BIN=... FORGE_TEST_PROM_URL=...`
#   scripts/prometheus.sh url              # the URL of the running server
#   scripts/prometheus.sh stop             # stops the server `start` started
#
# The tests start their own Prometheus (FORGE_TEST_PROM_BIN) per test, with a config that
# scrapes that test's app; this script makes sure the binary is there and works:
# - it finds `prometheus` (FORGE_TEST_PROM_BIN, PATH, /usr/bin), installing the Debian package
#   `prometheus` with apt-get when it is missing (as root; else it says what to run);
# - it starts one server on 127.0.0.1 on a free port, scraping itself every second, with its
#   data in a temp dir, and waits until a scrape shows up in a query (the binary, the port and
#   the scrape loop all work);
# - its state (pid, temp dir, URL) is recorded in target/forge-test-prom.env so `url` and
#   `stop` find it. Only the shell whose `start` created the server stops it (`start` also
#   prints `export FORGE_TEST_PROM_OWNED=1`; `stop --force` stops the recorded one anyway).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
STATE=$ROOT/target/forge-test-prom.env

die() {
    echo "prometheus.sh: error: $*" >&2
    exit 1
}

prom_bin() {
    if [[ -n ${FORGE_TEST_PROM_BIN:-} && -x $FORGE_TEST_PROM_BIN ]]; then
        echo "$FORGE_TEST_PROM_BIN"
        return
    fi
    if command -v prometheus >/dev/null; then
        command -v prometheus
        return
    fi
    if [[ -x /usr/bin/prometheus ]]; then
        echo /usr/bin/prometheus
        return
    fi
    if [[ ${1:-} == --no-install ]]; then
        return 1
    fi
    if ((EUID != 0)); then
        die "prometheus not found; install it (apt-get install prometheus) or set FORGE_TEST_PROM_BIN"
    fi
    echo "prometheus.sh: installing Prometheus with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # Without recommends: the node exporter and its service are not needed.
    apt-get install -y -qq --no-install-recommends prometheus >&2
    prom_bin --no-install || die "prometheus was installed but the binary is still missing"
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

print_env() {
    # shellcheck disable=SC1090
    source "$STATE"
    echo "export FORGE_TEST_PROM_BIN='$PROM_BIN'"
    echo "export FORGE_TEST_PROM_URL='$PROM_URL'"
    if [[ ${1:-} == owned ]]; then
        echo "export FORGE_TEST_PROM_OWNED=1"
    fi
}

running() {
    [[ -f $STATE ]] || return 1
    # shellcheck disable=SC1090
    (source "$STATE" && kill -0 "$PROM_PID" 2>/dev/null &&
        curl -fsS -m 5 "$PROM_URL/-/ready" >/dev/null 2>&1)
}

# Polls `up{job="self"}` until Prometheus has scraped itself once (up to 60 s).
wait_scraped() {
    local url=$1 pid=$2 i
    for i in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || return 1
        if curl -fsS -m 5 "$url/api/v1/query" --data-urlencode 'query=up{job="self"}' 2>/dev/null |
            grep -q '"value":\[[^]]*,"1"\]'; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

cmd_start() {
    mkdir -p "$(dirname "$STATE")"
    if running; then
        echo "prometheus.sh: reusing the server recorded in $STATE" >&2
        print_env
        return
    fi
    command -v curl >/dev/null || die "curl is needed to check the server (apt-get install curl)"
    local bin dir port pid tries
    bin=$(prom_bin)
    dir=$(mktemp -d /tmp/forge-test-prom.XXXXXX)
    for tries in 1 2 3 4 5; do
        port=$(free_port)
        cat >"$dir/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ['127.0.0.1:$port']
YML
        "$bin" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
            --web.listen-address="127.0.0.1:$port" --log.level=warn >"$dir/server.log" 2>&1 </dev/null &
        pid=$!
        if wait_scraped "http://127.0.0.1:$port" "$pid"; then
            break
        fi
        kill "$pid" 2>/dev/null || :
        wait "$pid" 2>/dev/null || :
        ((tries < 5)) || die "Prometheus did not start: $(tail -5 "$dir/server.log")"
    done
    {
        echo "PROM_BIN='$bin'"
        echo "PROM_URL='http://127.0.0.1:$port'"
        echo "PROM_PID='$pid'"
        echo "PROM_DIR='$dir'"
    } >"$STATE"
    echo "prometheus.sh: $("$bin" --version 2>&1 | head -1) on 127.0.0.1:$port ($dir)" >&2
    print_env owned
}

cmd_stop() {
    [[ -f $STATE ]] || return 0
    if [[ ${FORGE_TEST_PROM_OWNED:-} != 1 && ${1:-} != --force ]]; then
        echo "prometheus.sh: not stopping the recorded server: this shell did not start it (stop --force does)" >&2
        return 0
    fi
    local PROM_PID="" PROM_DIR=""
    # shellcheck disable=SC1090
    source "$STATE"
    if [[ -n $PROM_PID ]] && kill -0 "$PROM_PID" 2>/dev/null; then
        kill "$PROM_PID" 2>/dev/null || :
        local i
        for i in $(seq 1 100); do
            kill -0 "$PROM_PID" 2>/dev/null || break
            sleep 0.1
        done
    fi
    if [[ -n $PROM_DIR && -d $PROM_DIR ]]; then
        rm -rf "$PROM_DIR"
        echo "prometheus.sh: stopped the server in $PROM_DIR" >&2
    fi
    rm -f "$STATE"
}

cmd_url() {
    [[ -f $STATE ]] || die "no server started (run: scripts/prometheus.sh start)"
    # shellcheck disable=SC1090
    source "$STATE"
    echo "$PROM_URL"
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop "${2:-}" ;;
    url) cmd_url ;;
    *)
        echo "usage: scripts/prometheus.sh start|stop [--force]|url" >&2
        exit 2
        ;;
esac
