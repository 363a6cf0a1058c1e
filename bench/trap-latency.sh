#!/usr/bin/env bash
# trap-latency.sh MOAT_BIN
#
# From an attacker's completed TCP handshake on a honeypot port to its
# address being in the kernel set ban_v4: bench/cmd/traplat, N trap
# connections each from its own source address, one after the other.
#
# Two fresh network namespaces joined by a veth pair:
#   server   192.0.2.1/24 on srv0, routes to 203.0.113.0/24 and
#            198.18.0.0/15 on the link; `moat up --force` with the policy
#            below ([honeypot] tcp = [2323, 3389]) and, in MODE=daemon,
#            `moat run` (which accepts on the trap ports and records the
#            bans).
#   attacker 192.0.2.66/24 on att0, plus the N source addresses as /32s
#            (203.0.113.1-254, then 198.18.0.1 up); traplat runs here and
#            reads the server's set over a netlink socket opened in the
#            server's namespace.
# tcpdump on srv0 (nanosecond stamps) records when each ACK that completes a
# handshake reaches the server, which is when the kernel rule bans; see
# bench/trap-latency-analyse.py.
# MODE=kernel: no daemon; traplat accepts on the trap port itself (the
# kernel rule alone). MODE=both (default): one run of each, fresh
# namespaces each time.
#
# Nothing touches the root namespace's firewall; namespaces and processes
# are removed on exit. Environment: N (400), GAP (10ms), MODE (both), GO,
# KEEP (dir).
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
N=${N:-400}
GAP=${GAP:-10ms}
MODE=${MODE:-both}
GO=${GO:-go}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TMP=${KEEP:-$(mktemp -d /tmp/moat-traplat.XXXXXX)}
mkdir -p "$TMP"
SRV=mtl-$$-srv
ATT=mtl-$$-att
SRV4=192.0.2.1
ATT4=192.0.2.66
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

(cd "$REPO" && "$GO" build -o "$TMP/traplat" ./bench/cmd/traplat)

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

[honeypot]
tcp = [2323, 3389]
bantime = "1h"
TOML

moat() { # moat ARGS...: moat in the server namespace
	ip netns exec "$SRV" "$MOAT" --config "$TMP/moat.toml" --state-dir "$TMP/state" --run-dir "$TMP/run" "$@"
}

setup() { # setup MODE
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
	ip -n "$SRV" route add 203.0.113.0/24 dev srv0
	ip -n "$SRV" route add 198.18.0.0/15 dev srv0
	"$TMP/traplat" addrs -n "$N" | sed 's|.*|addr add &/32 dev att0|' | ip -n "$ATT" -batch -
	SSH_CONNECTION= moat up --force >/dev/null
	if [[ $1 == daemon ]]; then
		moat run >"$TMP/daemon.log" 2>&1 &
		PIDS+=($!)
		local i
		for ((i = 0; i < 100; i++)); do
			moat bans --json >/dev/null 2>&1 && ip netns exec "$SRV" ss -Hltn "sport = :2323" | grep -q LISTEN && break
			sleep 0.1
		done
		moat bans --json >/dev/null
	fi
}

echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
modes=("$MODE")
[[ $MODE == both ]] && modes=(daemon kernel)
rc=0
for m in "${modes[@]}"; do
	setup "$m"
	listen=()
	[[ $m == kernel ]] && listen=(-listen)
	echo "== MODE=$m: ip netns exec ATT traplat -netns /run/netns/SRV -server $SRV4 -port 2323 -n $N -gap $GAP ${listen[*]}"
	ip netns exec "$SRV" tcpdump -i srv0 -n -U --immediate-mode -s 96 --time-stamp-precision=nano -w "$TMP/trap-$m.pcap" "tcp port 2323" 2>"$TMP/tcpdump-$m.err" &
	TPID=$!
	PIDS+=($TPID)
	for ((i = 0; i < 100; i++)); do
		grep -q "listening on" "$TMP/tcpdump-$m.err" && break
		sleep 0.05
	done
	ip netns exec "$ATT" "$TMP/traplat" -netns "/run/netns/$SRV" -server "$SRV4" -port 2323 -n "$N" -gap "$GAP" "${listen[@]}" -json "$TMP/traplat-$m.json" || rc=1
	sleep 0.2
	kill -INT "$TPID"
	wait "$TPID" || true
	grep -E "packets (captured|dropped by kernel)" "$TMP/tcpdump-$m.err" | sed 's/^/  tcpdump: /'
	python3 "$REPO/bench/trap-latency-analyse.py" "$TMP/traplat-$m.json" "$TMP/trap-$m.pcap" "$SRV4" 2323
	ip netns exec "$SRV" nft list chain inet moat traps | grep -E 'counter packets [0-9]+' -o | head -1 | sed 's/^/  kernel trap rule (v4 ban): /'
	echo "  elements in ban_v4: $(ip netns exec "$SRV" nft -j list set inet moat ban_v4 | python3 -c 'import json,sys; print(sum(len(o["set"].get("elem",[])) for o in json.load(sys.stdin)["nftables"] if "set" in o))')"
	if [[ $m == daemon ]]; then
		echo "  bans the daemon recorded: $(moat bans --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin) or []))')"
	fi
	cleanup
done
echo "machine after: load $(cut -d' ' -f1-3 /proc/loadavg)"
[[ -n ${KEEP:-} ]] && echo "files kept in $TMP"
exit $rc
