#!/usr/bin/env bash
# ban-latency.sh MOAT_BIN
#
# Ban latency of the daemon: from maxretry sshd failure lines appended to
# the followed log in one write, to the address being an element of the
# kernel's ban_v4 set; p50/p90/p99/max over N distinct addresses
# (bench/cmd/banlatency, which runs inside the daemon's namespace and looks
# the address up over netlink every POLL).
#
# The daemon runs in a fresh network namespace with a bans-only table
# (no `moat up`), one jail: sshd on a file, maxretry 5, findtime 10m,
# bantime 1h. Namespace and daemon are removed on exit.
#
# Environment: N (200), GAP (20ms between addresses), POLL (100us), GO, KEEP.
set -euo pipefail
if [[ $# -ne 1 ]]; then
	echo "usage: $0 MOAT_BIN" >&2
	exit 2
fi
MOAT=$(realpath "$1")
N=${N:-200}
GAP=${GAP:-20ms}
POLL=${POLL:-100us}
# shellcheck source=bench/ban-lib.sh
source "$(dirname "$0")/ban-lib.sh"

build banlatency
D=$TMP/latency
setup_dir "$D"
new_ns
start_daemon "$D"
echo "machine: $(machine)"
echo "command: ip netns exec NS banlatency -log $D/auth.log -n $N -maxretry 5 -gap $GAP -poll $POLL"
ip netns exec "$NS" "$TMP/banlatency" -log "$D/auth.log" -n "$N" -maxretry 5 -gap "$GAP" -poll "$POLL" -json "$TMP/latency.json"
stop_daemon
