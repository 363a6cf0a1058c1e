#!/usr/bin/env bash
# scan-block.sh MOAT_BIN
#
# How many probes of an nmap SYN scan reach the default drop before the
# kernel's scan block (set scan_v4) stops the source, how long after the
# scan's first probe that happens, and which open ports nmap still finds.
#
# Each run builds two fresh network namespaces joined by a veth pair:
#   server   192.0.2.1/24 on srv0: `moat up --force` with the policy below,
#            `moat run` (scan detection on, auto_block 0), socat listeners
#            on the six allowed ports 22 80 443 3306 5432 8080, tcpdump on
#            srv0 (pcap), and bench/cmd/scanwatch polling scan_v4 for the
#            attacker's address over netlink every POLL.
#   attacker 192.0.2.66/24 on att0: nmap -n -sS -T4 --top-ports 1000
#            --max-retries 1 --host-timeout 60s 192.0.2.1
# IPv6 is off on both links (no ND or MLD in the counters). Then it reads
# the counters "moat guard in scan-block" and "moat default in" (the final
# counter drop) with `nft -j list chain inet moat in_default` in the server
# namespace, and analyses the pcap: the first probe, the probes to closed
# ports before the block, nmap's port order, the first SYN to an open port
# left without a SYN-ACK.
#
# Nothing touches the root namespace's firewall; namespaces and processes
# are removed on exit. Environment: RUNS (5), POLL (200us), GO, KEEP (dir),
# HONEYPOT (0; 1 adds [honeypot] tcp = [2323, 3389]: 3389 is among the
# ports nmap probes first, and the trap then bans the scanner on its own,
# see BENCHMARKS.md), HOLD (0; 1 adds [scan] hold = [3306, 5432, 8080]:
# a new source's first SYN to those ports is held back), HOST_TIMEOUT (60s:
# nmap's --host-timeout; when nmap hits it, it reports no ports at all).
set -euo pipefail
if [[ $# -ne 1 ]]; then
	echo "usage: $0 MOAT_BIN" >&2
	exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "$0: must run as root (it creates network namespaces)" >&2
	exit 2
fi
MOAT=$(realpath "$1")
RUNS=${RUNS:-5}
POLL=${POLL:-200us}
HONEYPOT=${HONEYPOT:-0}
HOLD=${HOLD:-0}
HOST_TIMEOUT=${HOST_TIMEOUT:-60s}
GO=${GO:-go}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TMP=${KEEP:-$(mktemp -d /tmp/moat-scanblock.XXXXXX)}
mkdir -p "$TMP"
SRV=msb-$$-srv
ATT=msb-$$-att
SRV4=192.0.2.1
ATT4=192.0.2.66
OPEN=(22 80 443 3306 5432 8080)
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	PIDS=()
	ip netns del "$SRV" 2>/dev/null || true
	ip netns del "$ATT" 2>/dev/null || true
}
trap 'cleanup; [[ -n ${KEEP:-} ]] || rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

(cd "$REPO" && "$GO" build -o "$TMP/scanwatch" ./bench/cmd/scanwatch)

cat >"$TMP/moat.toml" <<'TOML'
[defaults]
incoming = "deny"

[[rule]]
action = "allow"
port = "22,80,443,3306,5432,8080"
proto = "tcp"

[scan]
kernel_block = true
kernel_rate = "5/second"
kernel_block_time = "60s"
detect = true
auto_block = 0

TOML
if [[ $HOLD == 1 ]]; then
	echo 'hold = [3306, 5432, 8080]' >>"$TMP/moat.toml"
fi
if [[ $HONEYPOT == 1 ]]; then
	cat >>"$TMP/moat.toml" <<'TOML'

[honeypot]
tcp = [2323, 3389]
bantime = "1h"
TOML
fi

moat() { # moat ARGS...: moat in the server namespace
	ip netns exec "$SRV" "$MOAT" --config "$TMP/moat.toml" --state-dir "$TMP/state" --run-dir "$TMP/run" "$@"
}

setup() {
	rm -rf "$TMP/state" "$TMP/run"
	mkdir -p "$TMP/state" "$TMP/run"
	ip netns add "$SRV"
	ip netns add "$ATT"
	local ns
	for ns in "$SRV" "$ATT"; do
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
		ip -n "$ns" link set lo up
	done
	ip link add srv0 netns "$SRV" type veth peer name att0 netns "$ATT"
	ip -n "$SRV" addr add "$SRV4/24" dev srv0
	ip -n "$ATT" addr add "$ATT4/24" dev att0
	ip -n "$SRV" link set srv0 up
	ip -n "$ATT" link set att0 up
	local p
	for p in "${OPEN[@]}"; do
		ip netns exec "$SRV" socat -lf /dev/null "TCP4-LISTEN:$p,fork,reuseaddr" EXEC:cat &
		PIDS+=($!)
	done
	SSH_CONNECTION= moat up --force >/dev/null
	moat run >"$TMP/daemon-$r.log" 2>&1 &
	PIDS+=($!)
	local i
	for ((i = 0; i < 100; i++)); do
		moat bans --json >/dev/null 2>&1 && break
		sleep 0.1
	done
	moat bans --json >/dev/null
	for p in "${OPEN[@]}"; do # every listener up
		for ((i = 0; i < 100; i++)); do
			ip netns exec "$SRV" ss -Hltn "sport = :$p" | grep -q LISTEN && break
			sleep 0.05
		done
	done
	ip netns exec "$ATT" nc -z -n -w 1 "$SRV4" 80 # the link works (port 80 is allowed; no probe reaches the default drop)
}

echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "nmap: $(nmap --version | head -1)"
NMAP=(nmap -n -sS -T4 --top-ports 1000 --max-retries 1 --host-timeout "$HOST_TIMEOUT" "$SRV4")
echo "command (attacker namespace): ${NMAP[*]}"
echo "policy:"
sed 's/^/    /' "$TMP/moat.toml"
for ((r = 1; r <= RUNS; r++)); do
	setup
	ip netns exec "$SRV" tcpdump -i srv0 -n -U --immediate-mode -s 128 -w "$TMP/run-$r.pcap" "host $ATT4 and tcp" 2>"$TMP/tcpdump-$r.err" &
	TPID=$!
	PIDS+=($TPID)
	for ((i = 0; i < 100; i++)); do
		grep -q "listening on" "$TMP/tcpdump-$r.err" && break
		sleep 0.05
	done
	: >"$TMP/watch-$r.out"
	ip netns exec "$SRV" "$TMP/scanwatch" -addr "$ATT4" -set scan_v4 -poll "$POLL" >"$TMP/watch-$r.out" 2>&1 &
	WPID=$!
	PIDS+=($WPID)
	for ((i = 0; i < 100; i++)); do
		grep -q "^ready" "$TMP/watch-$r.out" && break
		sleep 0.02
	done
	t0=$EPOCHREALTIME
	ip netns exec "$ATT" "${NMAP[@]}" >"$TMP/nmap-$r.out" 2>&1 || true
	t1=$EPOCHREALTIME
	kill "$WPID" 2>/dev/null || true # never blocked: it is still polling
	wait "$WPID" || true
	sleep 0.5
	kill -INT "$TPID"
	wait "$TPID" || true
	ip netns exec "$SRV" nft -j list chain inet moat in_default >"$TMP/in_default-$r.json"
	ip netns exec "$SRV" nft -j list chain inet moat bans >"$TMP/bans-$r.json"
	moat scans --json >"$TMP/scans-$r.json" 2>&1 || true
	ip netns exec "$SRV" nft list set inet moat scan_v4 >"$TMP/scan_v4-$r.txt"
	echo "== run $r (nmap took $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s)"
	sed -n '/^PORT/,/^$/p;/Skipping host/p;/^Not shown/p' "$TMP/nmap-$r.out" | sed '/^$/d;s/^/nmap: /'
	python3 "$REPO/bench/scan-block-analyse.py" --run "$r" --pcap "$TMP/run-$r.pcap" --watch "$TMP/watch-$r.out" \
		--nmap "$TMP/nmap-$r.out" --in-default "$TMP/in_default-$r.json" --bans "$TMP/bans-$r.json" \
		--scans "$TMP/scans-$r.json" --attacker "$ATT4" --server "$SRV4" --open "${OPEN[*]}" --traps "2323 3389" --json "$TMP/result-$r.json"
	cleanup
done
python3 "$REPO/bench/scan-block-analyse.py" --summary "$TMP"/result-*.json
echo "machine after: load $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n ${KEEP:-} ]] && echo "files kept in $TMP"
exit 0
