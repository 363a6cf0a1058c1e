#!/usr/bin/env bash
# scan-detect.sh: throughput and memory of the scan detector (no firewall,
# no namespaces: in-process only).
#   1. the packages' Go benchmarks: BenchmarkObserve (portscan: one source,
#      10,000 sources) and BenchmarkDecode (nflog), -count COUNT, pinned to
#      CPU with taskset (GOMAXPROCS follows the affinity: 1).
#   2. bench/cmd/scanmem: bytes per tracked source with SOURCES distinct
#      scanning sources, and events/s on one core with that many sources
#      (Observe alone; Decode + Text + Observe).
# Environment: COUNT (3), CPU (0), SOURCES (100000), EVENTS (10000000), GO.
set -euo pipefail
COUNT=${COUNT:-3}
CPU=${CPU:-0}
SOURCES=${SOURCES:-100000}
EVENTS=${EVENTS:-10000000}
GO=${GO:-go}
REPO=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/moat-scandetect.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cd "$REPO"
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== taskset -c $CPU go test -run '^\$' -bench . -benchmem -count $COUNT ./internal/detect/portscan/ ./internal/sensor/nflog/"
taskset -c "$CPU" "$GO" test -run '^$' -bench . -benchmem -count "$COUNT" ./internal/detect/portscan/ ./internal/sensor/nflog/
echo "== taskset -c $CPU scanmem -sources $SOURCES -events $EVENTS"
"$GO" build -o "$TMP/scanmem" ./bench/cmd/scanmem
taskset -c "$CPU" "$TMP/scanmem" -sources "$SOURCES" -events "$EVENTS"
echo "machine after: load $(cut -d' ' -f1-3 /proc/loadavg)"
