#!/usr/bin/env bash
# fw-apply.sh MOAT_BIN [N ...]
#
# How long it takes to put an N-rule policy into the kernel with
#   - `moat up --force`            (compile + one netlink transaction)
#   - `nft -f` of `moat show`       (the same ruleset through nft's parser)
#   - `ufw reload`                  (the same N rules in UFW's user.rules)
# for N in 10 500 1000 10000 (or the N given), and prints a markdown table.
#
# Safety: every firewall command runs inside a network namespace this script
# creates (moatbench-PID-*) and deletes on exit. UFW also runs in a private
# mount namespace where /etc/ufw, /etc/default/ufw and /lib/ufw are copies
# and /run is a tmpfs, so the host's UFW configuration is never touched (the
# script checks that at the end). Must run as root.
#
# Method: wall time of the command alone, measured inside the namespace
# (bash $EPOCHREALTIME around the exec; namespace entry is not counted).
# "first" is the first load into an empty namespace (median of RUNS fresh
# namespaces for moat and nft; the first `ufw reload` after enabling for UFW);
# "reload" replaces the table already there (median of RUNS runs). The main
# table uses the reload numbers. UFW runs are skipped once one takes longer
# than UFW_LIMIT seconds (default 600).
#
# Environment: RUNS (default 3), UFW_LIMIT (default 600), GO (default go).
set -euo pipefail

if [[ $# -lt 1 ]]; then
	echo "usage: $0 MOAT_BIN [N ...]" >&2
	exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "$0: must run as root (it creates network namespaces)" >&2
	exit 2
fi
MOAT=$(realpath "$1")
shift
SIZES=("$@")
[[ ${#SIZES[@]} -gt 0 ]] || SIZES=(10 500 1000 10000)
RUNS=${RUNS:-3}
UFW_LIMIT=${UFW_LIMIT:-600}
GO=${GO:-go}
REPO=$(cd "$(dirname "$0")/.." && pwd)

TMP=$(mktemp -d /tmp/moat-bench.XXXXXX)
NSP="moatbench-$$"
NAMESPACES=()

cleanup() {
	local ns
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Checksums of the host's UFW files, compared at the end.
host_ufw_sum() {
	find /etc/ufw /etc/default/ufw /lib/ufw/ -type f -print0 2>/dev/null | sort -z | xargs -0 md5sum
}
HOST_UFW_BEFORE=$(host_ufw_sum)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

NSCOUNT=0
new_ns() { # creates a fresh network namespace with lo up; its name in $NS
	NS="$NSP-$NSCOUNT"
	NSCOUNT=$((NSCOUNT + 1))
	ip netns add "$NS"
	NAMESPACES+=("$NS")
	ip -n "$NS" link set lo up
}
del_ns() {
	ip netns del "$1"
}

# timeit CMD...: run CMD with its output in $TMP/log; print its wall time
# in microseconds. Runs inside the namespace, so namespace entry is not timed.
cat >"$TMP/timeit" <<'EOF'
#!/bin/bash
s=${EPOCHREALTIME/./}
"$@" >>"$TIMEIT_LOG" 2>&1
rc=$?
e=${EPOCHREALTIME/./}
echo $((e - s))
exit $rc
EOF
chmod +x "$TMP/timeit"
export TIMEIT_LOG="$TMP/log"
: >"$TIMEIT_LOG"

fail() {
	echo "$0: $*" >&2
	echo "--- last lines of $TIMEIT_LOG:" >&2
	tail -20 "$TIMEIT_LOG" >&2 || true
	exit 1
}

median() { # median of the arguments (the lower middle one for an even count)
	printf '%s\n' "$@" | sort -n | sed -n "$(((${#@} + 1) / 2))p"
}
ms() { # microseconds -> milliseconds with one decimal
	awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'
}
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

echo "building genrules..." >&2
(cd "$REPO" && CGO_ENABLED=0 "$GO" build -o "$TMP/genrules" ./bench/cmd/genrules)

# The UFW sandbox: copies of everything ufw reads or writes.
UFW_BASE="$TMP/ufw-base"
mkdir -p "$UFW_BASE"
cp -a /etc/ufw "$UFW_BASE/etc-ufw"
cp -a /etc/default/ufw "$UFW_BASE/default-ufw"
cp -a /lib/ufw "$UFW_BASE/lib-ufw"
sed -i 's/^ENABLED=.*/ENABLED=yes/' "$UFW_BASE/etc-ufw/ufw.conf"

# Run inside `ip netns exec NS unshare --mount --propagation private`:
# mount the copies, then time `ufw reload` RUNS+1 times (the first loads the
# rules into an empty namespace). Prints one time in microseconds per line,
# or "timeout" and stops when a run exceeds the limit.
cat >"$TMP/ufw-inner" <<'EOF'
#!/bin/bash
set -eu
box=$1 runs=$2 limit=$3 timeit=$4
mount --bind "$box/etc-ufw" /etc/ufw
mount --bind "$box/default-ufw" /etc/default/ufw
mount --bind "$box/lib-ufw" /lib/ufw
mount -t tmpfs tmpfs /run
for ((i = 0; i <= runs; i++)); do
	rc=0
	t=$("$timeit" timeout "$limit" ufw reload) || rc=$?
	case $rc in
	0) echo "$t" ;;
	124) echo timeout; exit 0 ;;
	*) echo "error $rc"; exit 0 ;;
	esac
done
# Check that the rules are in the kernel: the user chain has one rule each.
echo "count $(iptables -S ufw-user-input | grep -c -- '-j ACCEPT' || true)"
EOF
chmod +x "$TMP/ufw-inner"

declare -A M_FIRST M_RELOAD N_FIRST N_RELOAD U_FIRST U_RELOAD U_NOTE

for n in "${SIZES[@]}"; do
	echo "== N=$n" >&2
	d="$TMP/n$n"
	"$TMP/genrules" "$n" "$d"
	# nsmoat NS STATE ARGS...: moat with this N's policy and state under
	# STATE, inside namespace NS. tmoat is the same, timed.
	nsmoat() { ip netns exec "$1" "$MOAT" --config "$d/moat.toml" --state-dir "$2/state" --run-dir "$2/run" "${@:3}"; }
	tmoat() { ip netns exec "$1" "$TMP/timeit" "$MOAT" --config "$d/moat.toml" --state-dir "$2/state" --run-dir "$2/run" "${@:3}"; }
	tnft() { ip netns exec "$1" "$TMP/timeit" nft -f "$d/ruleset.nft"; }

	# Check the policy, get its nft script, and warm the page cache.
	new_ns
	nsmoat "$NS" "$d/warm" check >/dev/null || fail "moat check failed for N=$n"
	nsmoat "$NS" "$d/warm" show >"$d/ruleset.nft" || fail "moat show failed for N=$n"
	del_ns "$NS"

	# moat up: first load, RUNS fresh namespaces (and fresh state dirs).
	ts=()
	for ((r = 0; r < RUNS; r++)); do
		new_ns
		t=$(tmoat "$NS" "$d/moat-first-$r" up --force) || fail "moat up failed for N=$n"
		ts+=("$t")
		del_ns "$NS"
	done
	M_FIRST[$n]=$(median "${ts[@]}")
	# moat up: reloads, each replacing the table of the previous run.
	new_ns
	nsmoat "$NS" "$d/moat-reload" up --force >/dev/null || fail "moat up failed for N=$n"
	ts=()
	for ((r = 0; r < RUNS; r++)); do
		t=$(tmoat "$NS" "$d/moat-reload" up --force) || fail "moat up (reload) failed for N=$n"
		ts+=("$t")
	done
	M_RELOAD[$n]=$(median "${ts[@]}")
	got=$(ip netns exec "$NS" nft list chain inet moat in_rules | grep -c 'ip saddr' || true)
	[[ $got -eq $n ]] || fail "moat: expected $n rules in in_rules, found $got"
	del_ns "$NS"

	# nft -f of moat show's output: the same two measurements.
	ts=()
	for ((r = 0; r < RUNS; r++)); do
		new_ns
		t=$(tnft "$NS") || fail "nft -f failed for N=$n"
		ts+=("$t")
		del_ns "$NS"
	done
	N_FIRST[$n]=$(median "${ts[@]}")
	new_ns
	ip netns exec "$NS" nft -f "$d/ruleset.nft" || fail "nft -f failed for N=$n"
	ts=()
	for ((r = 0; r < RUNS; r++)); do
		t=$(tnft "$NS") || fail "nft -f (reload) failed for N=$n"
		ts+=("$t")
	done
	N_RELOAD[$n]=$(median "${ts[@]}")
	got=$(ip netns exec "$NS" nft list chain inet moat in_rules | grep -c 'ip saddr' || true)
	[[ $got -eq $n ]] || fail "nft -f: expected $n rules in in_rules, found $got"
	del_ns "$NS"

	# ufw reload, in its sandbox with the generated user.rules/user6.rules.
	box="$d/ufw"
	cp -a "$UFW_BASE" "$box"
	cp "$d/user.rules" "$d/user6.rules" "$box/etc-ufw/"
	new_ns
	mapfile -t out < <(ip netns exec "$NS" unshare --mount --propagation private \
		"$TMP/ufw-inner" "$box" "$RUNS" "$UFW_LIMIT" "$TMP/timeit") || true
	del_ns "$NS"
	U_NOTE[$n]=""
	if [[ ${#out[@]} -eq 0 ]]; then
		fail "ufw sandbox failed for N=$n"
	fi
	if [[ ${out[-1]} == error* ]]; then
		fail "ufw reload failed for N=$n (${out[-1]})"
	fi
	if [[ ${out[-1]} == timeout ]]; then
		U_NOTE[$n]="skipped: a ufw reload took longer than ${UFW_LIMIT}s"
		U_FIRST[$n]=""
		U_RELOAD[$n]=""
	else
		cnt=${out[-1]#count }
		[[ $cnt -eq $n ]] || fail "ufw: expected $n rules in ufw-user-input, found $cnt"
		U_FIRST[$n]=${out[0]}
		U_RELOAD[$n]=$(median "${out[@]:1:RUNS}")
	fi
	echo "   moat first $(ms "${M_FIRST[$n]}") reload $(ms "${M_RELOAD[$n]}"); nft first $(ms "${N_FIRST[$n]}") reload $(ms "${N_RELOAD[$n]}"); ufw first ${U_FIRST[$n]:+$(ms "${U_FIRST[$n]}")} reload ${U_RELOAD[$n]:+$(ms "${U_RELOAD[$n]}")} ${U_NOTE[$n]}" >&2
	rm -rf "$box"
done

[[ $(host_ufw_sum) == "$HOST_UFW_BEFORE" ]] || fail "the host's UFW files changed!"

echo
echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
echo "Tools: $(nft --version), $(ufw version | head -1), $(iptables --version), moat $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?') (+ working tree)"
echo "Load average (1/5/15 min): $LOAD_BEFORE at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end."
echo "Runs: median of $RUNS; times in ms, wall clock of the command alone."
echo
echo "Replacing a loaded ruleset (moat up / nft -f / ufw reload with the table already there):"
echo
echo "| N | moat up (ms) | nft -f (ms) | ufw reload (ms) | moat/nft | ufw/moat |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in "${SIZES[@]}"; do
	if [[ -n ${U_RELOAD[$n]} ]]; then
		u=$(ms "${U_RELOAD[$n]}") um=$(ratio "${U_RELOAD[$n]}" "${M_RELOAD[$n]}")
	else
		u="skipped (>${UFW_LIMIT}s)" um="n/a"
	fi
	echo "| $n | $(ms "${M_RELOAD[$n]}") | $(ms "${N_RELOAD[$n]}") | $u | $(ratio "${M_RELOAD[$n]}" "${N_RELOAD[$n]}") | $um |"
done
echo
echo "First load into an empty namespace (moat up / nft -f: fresh namespace; ufw: first reload after enabling):"
echo
echo "| N | moat up (ms) | nft -f (ms) | ufw (ms) | moat/nft | ufw/moat |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in "${SIZES[@]}"; do
	if [[ -n ${U_FIRST[$n]} ]]; then
		u=$(ms "${U_FIRST[$n]}") um=$(ratio "${U_FIRST[$n]}" "${M_FIRST[$n]}")
	else
		u="skipped (>${UFW_LIMIT}s)" um="n/a"
	fi
	echo "| $n | $(ms "${M_FIRST[$n]}") | $(ms "${N_FIRST[$n]}") | $u | $(ratio "${M_FIRST[$n]}" "${N_FIRST[$n]}") | $um |"
done
