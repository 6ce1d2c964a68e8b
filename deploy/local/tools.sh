#!/usr/bin/env bash
# Command-line tools the tests and the SRE files need, from Debian's packages:
#   promtool (package `prometheus`): checks the Prometheus configuration and unit-tests the alerts;
#   prometheus (same package): the end-to-end test scrapes the four services with a real server;
#   kcat (package `kcat`): a non-Python Kafka client, used to read and write the public topics;
#   wrk (package `wrk`): the HTTP load generator of `make bench`;
#   chromium (package `chromium`, /usr/bin/chromium): the browser the page tests drive with
#   Playwright (its own browser download does not work on these machines);
#   fonts-wqy-microhei: a Chinese font, so the pages' screenshots show Chinese, not boxes;
#   with CITYHELP_DB_BACKEND=postgresql, PostgreSQL 15 (package `postgresql`: initdb, pg_ctl in
#   /usr/lib/postgresql/15/bin) for FerretDB's PostgreSQL backend (deploy/local/stack.sh).
# Installs only what is missing; needs root (or sudo) and apt-get.
set -euo pipefail

declare -A wanted=([promtool]=prometheus [prometheus]=prometheus [kcat]=kcat [wrk]=wrk)
missing=()
for cmd in promtool prometheus kcat wrk; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        package="${wanted[$cmd]}"
        [[ " ${missing[*]-} " == *" $package "* ]] || missing+=("$package")
    fi
done

chromium_bin=/usr/bin/chromium
[ -x "$chromium_bin" ] || missing+=(chromium)
cjk_font=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
[ -e "$cjk_font" ] || missing+=(fonts-wqy-microhei)

pg_bin=/usr/lib/postgresql/15/bin
want_pg=0
if [ "${CITYHELP_DB_BACKEND:-sqlite}" = postgresql ]; then
    want_pg=1
    [ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/pg_ctl" ] || missing+=(postgresql)
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "[tools] missing commands; installing Debian packages: ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "[tools] ERROR: apt-get is not available on this machine." >&2
    echo "[tools] Install these by hand and re-run: ${missing[*]}" >&2
    echo "[tools]   (promtool and prometheus from Prometheus 2.45+, kcat 1.7+, PostgreSQL 15, Chromium)" >&2
    exit 1
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo_cmd=(sudo)
    else
        echo "[tools] ERROR: installing packages needs root; run: apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

echo "[tools] apt-get update"
"${sudo_cmd[@]}" apt-get update -q >/dev/null
echo "[tools] apt-get install -y --no-install-recommends ${missing[*]}"
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null

# Debian's `prometheus` package starts a server as a system service; the project only needs the
# binaries, and the tests start their own server on a free port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    echo "[tools] stopping the system prometheus service the package started (not needed)"
    "${sudo_cmd[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

# Debian's `postgresql` package creates and starts a system cluster (15/main, port 5432); the
# project runs a cluster of its own (deploy/local/stack.sh), so that one is stopped.
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet postgresql 2>/dev/null; then
        echo "[tools] stopping the system postgresql service the package started (not needed)"
        "${sudo_cmd[@]}" systemctl disable --now postgresql >/dev/null 2>&1 || true
    elif command -v pg_ctlcluster >/dev/null 2>&1 && pg_lsclusters -h 2>/dev/null | grep -q '^15 *main .*online'; then
        echo "[tools] stopping the system PostgreSQL cluster 15/main the package started (not needed)"
        "${sudo_cmd[@]}" pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
    fi
fi

for cmd in promtool prometheus kcat wrk; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "[tools] ERROR: $cmd still missing after the install" >&2
        exit 1
    fi
done
if [ ! -x "$chromium_bin" ]; then
    echo "[tools] ERROR: $chromium_bin still missing after installing chromium" >&2
    exit 1
fi
if [ "$want_pg" = 1 ] && [ ! -x "$pg_bin/initdb" ]; then
    echo "[tools] ERROR: $pg_bin/initdb still missing after installing postgresql" >&2
    exit 1
fi
echo "[tools] ready: $(promtool --version 2>&1 | head -1); kcat $(kcat -V 2>&1 | sed -n 's/^Version \([^ ]*\).*/\1/p')"
