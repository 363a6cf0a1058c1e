#!/usr/bin/env bash
# ban-scale.sh MOAT_BIN
#
# Start-up with a large store: BANS active bans (distinct IPv4 /32s from
# 100.64.0.1, 1h left, 5 evidence lines each, written with store.AddBans in
# batches of 10,000 by `banscale prepare`), then, RUNS times, a fresh
# network namespace and a fresh copy of that database: `banscale start`
# starts `moat run` and reports the time until the first and the last ban
# are in the kernel's ban_v4 (one-key netlink lookups every millisecond;
# the restore writes each set in transactions of 50,000), the time until
# the socket answers, and the daemon's VmRSS then and SETTLE later.
# Finally `restoreprof` replays the start-up phases in-process on another
# copy, timing each (store.Open with its quick_check, reading the bans, the
# allowlist check, enforce.Restore).
#
# Environment: BANS (1000000), RUNS (3), SETTLE (5s), GO, KEEP.
set -euo pipefail
if [[ $# -ne 1 ]]; then
	echo "usage: $0 MOAT_BIN" >&2
	exit 2
fi
MOAT=$(realpath "$1")
BANS=${BANS:-1000000}
RUNS=${RUNS:-3}
SETTLE=${SETTLE:-5s}
# shellcheck source=bench/ban-lib.sh
source "$(dirname "$0")/ban-lib.sh"

build banscale restoreprof
D=$TMP/scale
setup_dir "$D"
echo "prepare: banscale prepare -db $D/pristine.db -n $BANS"
"$TMP/banscale" prepare -db "$D/pristine.db" -n "$BANS"
ls -l "$D/pristine.db"
echo "machine: $(machine)"
fresh_db() {
	rm -f "$D"/state/moat.db*
	cp "$D/pristine.db" "$D/state/moat.db"
}
for ((r = 1; r <= RUNS; r++)); do
	fresh_db
	new_ns
	verify=()
	[[ $r -eq 1 ]] && verify=(-verify)
	# shellcheck disable=SC2046
	ip netns exec "$NS" "$TMP/banscale" start -n "$BANS" -socket "$D/run/moat.sock" -settle "$SETTLE" "${verify[@]}" \
		-daemon-log "$D/daemon-$r.log" -json "$TMP/scale-$r.json" -- "$MOAT" $(moat_args "$D") run
	ip netns del "$NS"
done
echo "phases (restoreprof, in-process, same database):"
fresh_db
new_ns
ip netns exec "$NS" "$TMP/restoreprof" -db "$D/state/moat.db" -lean
ip netns del "$NS"
echo "machine after: $(machine)"
