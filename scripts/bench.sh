#!/usr/bin/env bash
# make bench: compares direct slapd, ldapmux (failover, fewest-operations) and
# HAProxy in TCP mode under the same LDAP load on this machine, and prints a
# table of throughput, latency, ratio to direct, CPU per operation and memory.
#
# Installs slapd/ldap-utils (scripts/install-deps.sh) and haproxy from
# Debian's packages when missing. Settings (environment, defaults in brackets):
#   BENCH_DURATION [5s] and BENCH_WARMUP [2s] per target and round, BENCH_ROUNDS [3]
#   BENCH_USERS [10000]  BENCH_CONNS [8]
#   BENCH_IDLE_CONNS [10000]  BENCH_IDLE_HOLD [5s]  BENCH_SCALE_THREADS [2]
#   BENCH_SCALE_CONNS [16]  BENCH_SCALE_PIN [1]
#   BENCH_SCENARIOS [search8,bound8,search64,search1,bind64,idle,scale; cores,idle from 8 CPUs]
#   BENCH_BASELINE: another ldapmux binary measured in the same rounds (before/after)
#   BENCH_LLOADD: OpenLDAP's lloadd binary, measured in the many-core scenario
#   BENCH_CORES_SLAPD, _PROXY, _LOAD (CPU lists, e.g. 0-7), BENCH_CORES_PROXIES [1,2,4],
#     BENCH_CORES_CLIENTS [1,64,128], BENCH_CORES_SLAPD_THREADS, BENCH_CORES_LLOADD_CONNS [4]:
#     the many-core layout (docs/performance.md)
#   BENCH_POOL_CONNS [ldapmux default]: pool.connections-per-server of ldapmux
#   BENCH_LDAPMUX_ENV (e.g. GOMAXPROCS=1): environment of the ldapmux processes
#   BENCH_OUT [bench-out]  BENCH_PROFILE (set: also CPU/heap-profile ldapmux)
#   BENCH_QUIET_WAIT [30s]: before each round, wait for other load to end
#   BENCH_NICE (e.g. -20: run every benchmark process at that priority, to
#     shield it from CPU-bound background load; needs root)
#   BENCH_VERBOSE (set: a progress line per second)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=${BENCH_OUT:-bench-out}

./scripts/install-deps.sh
if ! command -v haproxy >/dev/null 2>&1; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "Installing haproxy ..."
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq haproxy >/dev/null
fi

mkdir -p "$out" bin
$GO build -o bin/ldapmux ./cmd/ldapmux
$GO build -o "$out/benchrun" ./cmd/benchrun
args=(-ldapmux bin/ldapmux -haproxy "$(command -v haproxy)")
if [ -n "${BENCH_PROFILE:-}" ]; then
	$GO test -c -o "$out/benchrun.test" ./internal/benchrun
	args+=(-profile-bin "$out/benchrun.test")
fi
nice=()
[ -z "${BENCH_NICE:-}" ] || nice=(nice -n "$BENCH_NICE")
BENCH_OUT="$out" "${nice[@]}" "$out/benchrun" "${args[@]}" | tee "$out/table.md"
