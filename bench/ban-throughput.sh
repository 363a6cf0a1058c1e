#!/usr/bin/env bash
# ban-throughput.sh MOAT_BIN
#
# Log throughput of the ban engine's detection, on one core, against peers,
# all on the same generated sshd auth.log (bench/authlog, LINES lines, SEED):
#   - moat replay LOG --filter sshd --maxretry 5 --findtime 10m --json
#     (the daemon's own filter + jail code, on the log's timestamps)
#   - fail2ban-regex LOG /etc/fail2ban/filter.d/sshd.conf
#   - sshguard's parser: /usr/libexec/sshguard/sshg-parser < LOG
#   - awk '/Failed password/ {n++} END {print n}' LOG   (for scale)
# Every command is pinned with `taskset -c CPU` (default 0) and timed by wall
# clock ($EPOCHREALTIME), median of RUNS runs (fail2ban-regex: F2B_RUNS, it
# takes about a minute a run); the file is in the page cache (read once
# first). moat's findings are then checked against the generator's ground
# truth with bench/cmd/truthcheck: exact, or the script fails.
#
# No firewall is touched: everything here is offline parsing. fail2ban and
# sshguard are only used through their parsers; their services are not run.
#
# Environment: LINES (1000000), SEED (1), RUNS (3), F2B_RUNS (1), CPU (0),
# GO (go), KEEP (a directory to keep the log, findings and outputs in).
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 MOAT_BIN" >&2
	exit 2
fi
MOAT=$(realpath "$1")
LINES=${LINES:-1000000}
SEED=${SEED:-1}
RUNS=${RUNS:-3}
F2B_RUNS=${F2B_RUNS:-1}
CPU=${CPU:-0}
GO=${GO:-go}
REPO=$(cd "$(dirname "$0")/.." && pwd)
F2B_FILTER=/etc/fail2ban/filter.d/sshd.conf
SSHG_PARSER=""
for p in /usr/libexec/sshguard/sshg-parser /usr/lib/sshguard/sshg-parser /usr/local/libexec/sshg-parser; do
	[[ -x $p ]] && SSHG_PARSER=$p && break
done

TMP=${KEEP:-$(mktemp -d /tmp/moat-tput.XXXXXX)}
mkdir -p "$TMP"
[[ -n ${KEEP:-} ]] || trap 'rm -rf "$TMP"' EXIT

(cd "$REPO" && "$GO" build -o "$TMP/authlog" ./bench/authlog && "$GO" build -o "$TMP/truthcheck" ./bench/cmd/truthcheck)
LOG=$TMP/auth.log
"$TMP/authlog" -out "$LOG" -truth "$TMP/truth.json" -lines "$LINES" -seed "$SEED" 2>"$TMP/authlog.err"
cat "$TMP/authlog.err" >&2
# year-less stamps: the reference time is the day after the log's last line
NOW=$(python3 -c 'import json,sys,datetime as d; e=d.datetime.fromisoformat(json.load(open(sys.argv[1]))["end"].replace("Z","+00:00")); print((e+d.timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z"))' "$TMP/truth.json")
NLINES=$(wc -l <"$LOG")
cat "$LOG" >/dev/null # page cache

# timed NAME RUNS CMD...: runs CMD RUNS times (stdout to $TMP/NAME.out,
# stderr to $TMP/NAME.err), prints the median wall time in seconds.
timed() {
	local name=$1 runs=$2
	shift 2
	local ts=() i t0 t1
	for ((i = 0; i < runs; i++)); do
		t0=$EPOCHREALTIME
		"$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
		t1=$EPOCHREALTIME
		ts+=("$(echo "$t1 - $t0" | bc -l)")
	done
	printf '%s\n' "${ts[@]}" | sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f\n", m}'
}

pin=(taskset -c "$CPU")
echo "moat replay ($RUNS runs)..." >&2
T_MOAT=$(timed moat "$RUNS" "${pin[@]}" "$MOAT" replay "$LOG" --filter sshd --maxretry 5 --findtime 10m --json --now "$NOW")
MOAT_SELF=$(sed -n 's/.*(\([0-9]*\) lines\/s).*/\1/p' "$TMP/moat.err")
MOAT_MATCHES=$(sed -n 's/.*: \([0-9]*\) matches.*/\1/p' "$TMP/moat.err")
cp "$TMP/moat.out" "$TMP/findings.json"
CHECK=$("$TMP/truthcheck" -truth "$TMP/truth.json" -findings "$TMP/findings.json" 2>"$TMP/truthcheck.err") && EXACT=yes || EXACT=no

T_F2B="" F2B_MATCHED=""
if command -v fail2ban-regex >/dev/null && [[ -f $F2B_FILTER ]]; then
	echo "fail2ban-regex ($F2B_RUNS runs)..." >&2
	T_F2B=$(timed f2b "$F2B_RUNS" "${pin[@]}" fail2ban-regex "$LOG" "$F2B_FILTER")
	F2B_MATCHED=$(sed -n 's/^Lines: .* \([0-9]*\) matched.*/\1/p' "$TMP/f2b.out")
fi
T_SSHG="" SSHG_ATTACKS=""
if [[ -n $SSHG_PARSER ]]; then
	echo "sshg-parser ($RUNS runs)..." >&2
	T_SSHG=$(timed sshg "$RUNS" bash -c '"$@" <"$0"' "$LOG" "${pin[@]}" "$SSHG_PARSER")
	SSHG_ATTACKS=$(wc -l <"$TMP/sshg.out")
fi
echo "awk ($RUNS runs)..." >&2
T_AWK=$(timed awk "$RUNS" "${pin[@]}" awk '/Failed password/ {n++} END {print n}' "$LOG")
AWK_N=$(cat "$TMP/awk.out")

rate() { [[ -n $1 ]] && echo "$NLINES / $1" | bc -l | xargs printf '%.0f' || echo "n/a"; }
ratio() { [[ -n $1 ]] && echo "$1 / $T_MOAT" | bc -l | xargs printf '%.2f' || echo "n/a"; }

cat <<EOF

$NLINES lines ($(du -m "$LOG" | cut -f1) MB), seed $SEED, pinned to CPU $CPU, median wall time; $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)

| tool | wall (s) | lines/s | moat faster by | lines matched / reported |
|---|---:|---:|---:|---|
| moat replay (sshd, normal) | $T_MOAT | $(rate "$T_MOAT") | 1.00 | $MOAT_MATCHES matches; own timer: $MOAT_SELF lines/s |
| fail2ban-regex $(fail2ban-regex --version 2>/dev/null | awk '{print $2}') (sshd.conf) | ${T_F2B:-n/a} | $(rate "$T_F2B") | $(ratio "$T_F2B") | ${F2B_MATCHED:-n/a} matched |
| sshg-parser ($(dpkg-query -W -f='${Version}' sshguard 2>/dev/null || echo '?')) | ${T_SSHG:-n/a} | $(rate "$T_SSHG") | $(ratio "$T_SSHG") | ${SSHG_ATTACKS:-n/a} attacks |
| awk '/Failed password/' ($(readlink -f "$(command -v awk)" | xargs basename)) | $T_AWK | $(rate "$T_AWK") | $(ratio "$T_AWK") | $AWK_N |

moat vs ground truth: $CHECK
EOF
if [[ $EXACT != yes ]]; then
	head -20 "$TMP/truthcheck.err" >&2
	exit 1
fi
