#!/usr/bin/env bash
# ban-flood.sh MOAT_BIN
#
# A flood of single sshd failures, RATE lines a second for DURATION, every
# line from a new address (100.64.0.0/10), appended to the log the daemon
# follows, with a real attacker (203.0.113.77) failing once every EVERY
# from 2 s on, maxretry (5) times in all. bench/cmd/banflood runs inside the
# daemon's namespace: it samples the daemon's VmRSS and the lines its jail
# has read every second, and reports the delay from the attacker's
# maxretry-th line to its element in ban_v4, and checks that no flood
# address was banned. One run per value of EVERY (space-separated).
#
# Environment: RATE (100000), DURATION (10s), EVERY ("200ms 1s"), GO, KEEP.
set -euo pipefail
if [[ $# -ne 1 ]]; then
	echo "usage: $0 MOAT_BIN" >&2
	exit 2
fi
MOAT=$(realpath "$1")
RATE=${RATE:-100000}
DURATION=${DURATION:-10s}
EVERY=${EVERY:-200ms 1s}
# shellcheck source=bench/ban-lib.sh
source "$(dirname "$0")/ban-lib.sh"

build banflood
echo "machine: $(machine)"
rc=0
for every in $EVERY; do
	D=$TMP/flood-$every
	setup_dir "$D"
	new_ns
	start_daemon "$D"
	echo "== attacker every $every: banflood -rate $RATE -duration $DURATION -every $every"
	ip netns exec "$NS" "$TMP/banflood" -log "$D/auth.log" -pid "$DPID" -socket "$D/run/moat.sock" \
		-rate "$RATE" -duration "$DURATION" -every "$every" -json "$TMP/flood-$every.json" || rc=1
	stop_daemon
	ip netns del "$NS"
done
echo "machine after: $(machine)"
exit $rc
