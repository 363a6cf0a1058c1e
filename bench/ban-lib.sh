# ban-lib.sh: shared by the ban engine benchmarks (ban-latency.sh,
# ban-scale.sh, ban-flood.sh). Source it after setting MOAT (the binary).
#
# Safety: every firewall and daemon command runs inside a network namespace
# created here (moatban-PID-N) and deleted on exit, with the daemon it ran.
# Nothing touches the root namespace's ruleset.

if [[ $(id -u) -ne 0 ]]; then
	echo "$0: must run as root (it creates network namespaces)" >&2
	exit 2
fi
GO=${GO:-go}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TMP=${KEEP:-$(mktemp -d /tmp/moat-ban.XXXXXX)}
mkdir -p "$TMP"
NSP="moatban-$$"
NAMESPACES=()
DAEMONS=()

ban_cleanup() {
	local p ns
	for p in "${DAEMONS[@]}"; do
		kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
	done
	for ns in "${NAMESPACES[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	[[ -n ${KEEP:-} ]] || rm -rf "$TMP"
}
trap ban_cleanup EXIT
trap 'exit 130' INT TERM

# build NAME...: go build ./bench/cmd/NAME into $TMP/NAME
build() {
	local n
	for n in "$@"; do
		(cd "$REPO" && "$GO" build -o "$TMP/$n" "./bench/cmd/$n")
	done
}

NSCOUNT=0
new_ns() { # a fresh network namespace with lo up; its name in $NS
	NS="$NSP-$NSCOUNT"
	NSCOUNT=$((NSCOUNT + 1))
	ip netns add "$NS"
	NAMESPACES+=("$NS")
	ip -n "$NS" link set lo up
}

# setup_dir DIR: a policy with one sshd jail on DIR/auth.log (created
# empty), bantime 1h, findtime 10m, maxretry 5, and state and run dirs.
setup_dir() {
	local d=$1
	rm -rf "$d/state" "$d/run"
	mkdir -p "$d/state" "$d/run"
	: >"$d/auth.log"
	cat >"$d/moat.toml" <<TOML
[bans]
bantime = "1h"
findtime = "10m"
maxretry = 5

[jail.sshd]
logpath = ["$d/auth.log"]
TOML
}

moat_args() { # moat_args DIR: the global flags for DIR
	echo --config "$1/moat.toml" --state-dir "$1/state" --run-dir "$1/run"
}

# start_daemon DIR: `moat run` in $NS, output in DIR/daemon.log; waits until
# it answers on its socket. Its pid in $DPID.
start_daemon() {
	local d=$1 i
	# shellcheck disable=SC2046
	ip netns exec "$NS" "$MOAT" $(moat_args "$d") run >"$d/daemon.log" 2>&1 &
	DPID=$!
	DAEMONS+=("$DPID")
	for ((i = 0; i < 600; i++)); do
		# the socket is there and the daemon says it runs (the API's own
		# calls read every ban: too slow as a probe with a large store)
		if [[ -S $d/run/moat.sock ]] && grep -q "moat daemon running" "$d/daemon.log"; then
			return 0
		fi
		if ! kill -0 "$DPID" 2>/dev/null; then
			echo "the daemon exited:" >&2
			cat "$d/daemon.log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "the daemon never answered" >&2
	return 1
}

stop_daemon() {
	kill "$DPID" 2>/dev/null || true
	wait "$DPID" 2>/dev/null || true
}

machine() {
	echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
}
