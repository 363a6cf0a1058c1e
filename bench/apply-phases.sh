#!/usr/bin/env bash
# apply-phases.sh [N ...]
#
# Where the time of `moat up` goes: runs bench/cmd/applyprof (the phases of
# an apply, in-process: load, compile, open, prev, replace, save) for the
# generated N-rule policy, inside a network namespace it creates and deletes.
# The first iteration creates the table, the others replace it. CPU profiles
# of the replacing iterations are kept in $OUT (default /tmp/moat-phases)
# for `go tool pprof -top -cum $OUT/applyprof $OUT/cpu-N.out`.
#
# Environment: ITER (default 4), OUT, GO (default go). Must run as root.
set -euo pipefail
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(10 500 1000 10000)
ITER=${ITER:-4}
OUT=${OUT:-/tmp/moat-phases}
GO=${GO:-go}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/moat-phases.XXXXXX)
NS="moatphases-$$"
cleanup() {
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT"
(cd "$REPO" && CGO_ENABLED=0 "$GO" build -o "$TMP/genrules" ./bench/cmd/genrules &&
	CGO_ENABLED=0 "$GO" build -o "$OUT/applyprof" ./bench/cmd/applyprof)
for n in "${SIZES[@]}"; do
	"$TMP/genrules" "$n" "$TMP/n$n"
	ip netns add "$NS"
	echo "## N=$n (first: creates the table; median: replaces it, of $((ITER - 1)))"
	ip netns exec "$NS" "$OUT/applyprof" -config "$TMP/n$n/moat.toml" -state "$TMP/s$n" -n "$ITER" -cpuprofile "$OUT/cpu-$n.out"
	ip netns del "$NS"
done
