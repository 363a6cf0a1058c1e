#!/usr/bin/env bash
# trap-rst-repro.sh MOAT_BIN
#
# Reproduces a finding of the trap benchmark: the honeypot rule bans on any
# packet of a trap connection that conntrack calls "established", and the
# RST a host sends back when it receives a SYN-ACK it never asked for is
# one. So a forged SYN to a trap port, with a live third party's address
# as source, gets that third party banned for [honeypot] bantime. (nmap -sS
# sends such a RST too: the trap bans a SYN scanner that never completed a
# handshake.)
#
# Three namespaces: server (moat up + moat run, [honeypot] tcp = [2323]),
# an attacker and a victim, each on its own veth link to the server. The
# attacker sends one SYN to 2323 forged with the victim's address
# (hping3 -a). Prints ban_v4 afterwards. Nothing touches the root
# namespace's firewall; everything is removed on exit.
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 MOAT_BIN" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "$0: must run as root" >&2; exit 2; }
MOAT=$(realpath "$1")
TMP=$(mktemp -d /tmp/moat-traprst.XXXXXX)
SRV=mtr-$$-srv ATT=mtr-$$-att VIC=mtr-$$-vic
DPID=""
cleanup() {
	[[ -n $DPID ]] && { kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; }
	ip netns del "$SRV" 2>/dev/null; ip netns del "$ATT" 2>/dev/null; ip netns del "$VIC" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
for ns in "$SRV" "$ATT" "$VIC"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
ip link add att0 netns "$SRV" type veth peer name eth0 netns "$ATT"
ip link add vic0 netns "$SRV" type veth peer name eth0 netns "$VIC"
ip -n "$SRV" addr add 192.0.2.1/24 dev att0
ip -n "$SRV" addr add 198.51.100.1/24 dev vic0
ip -n "$ATT" addr add 192.0.2.66/24 dev eth0
ip -n "$VIC" addr add 198.51.100.7/24 dev eth0
for l in "$SRV att0" "$SRV vic0" "$ATT eth0" "$VIC eth0"; do
	set -- $l
	ip -n "$1" link set "$2" up
done
ip -n "$ATT" route add default dev eth0
ip -n "$VIC" route add default via 198.51.100.1 dev eth0
mkdir -p "$TMP/state" "$TMP/run"
cat >"$TMP/moat.toml" <<'TOML'
[defaults]
incoming = "deny"

[[rule]]
action = "allow"
port = "80"
proto = "tcp"

[honeypot]
tcp = [2323]
bantime = "1h"
TOML
M=(ip netns exec "$SRV" "$MOAT" --config "$TMP/moat.toml" --state-dir "$TMP/state" --run-dir "$TMP/run")
SSH_CONNECTION= "${M[@]}" up --force >/dev/null
"${M[@]}" run >"$TMP/daemon.log" 2>&1 &
DPID=$!
for ((i = 0; i < 100; i++)); do
	ip netns exec "$SRV" ss -Hltn "sport = :2323" | grep -q LISTEN && break
	sleep 0.1
done
echo "attacker 192.0.2.66: one SYN to 192.0.2.1:2323 forged as the victim 198.51.100.7 (hping3 -S -a)"
ip netns exec "$ATT" hping3 -q -S -a 198.51.100.7 -p 2323 -c 1 192.0.2.1 >/dev/null 2>&1 || true
sleep 0.5
echo "server: nft list set inet moat ban_v4"
ip netns exec "$SRV" nft list set inet moat ban_v4 | sed -n '/elements/p'
if ip netns exec "$SRV" nft list set inet moat ban_v4 | grep -q 198.51.100.7; then
	echo "RESULT: the victim 198.51.100.7, which sent nothing but the RST its kernel owes an unsolicited SYN-ACK, is banned"
	echo "bans the daemon knows of (moat bans --json): $("${M[@]}" bans --json | tr -d '\n' | cut -c1-200)"
else
	echo "RESULT: the victim was not banned"
fi
