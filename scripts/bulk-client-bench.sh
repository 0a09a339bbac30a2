#!/usr/bin/env bash
# Compares ehrgate's Bulk Data client in download-only mode
# (`ehrgate bulk export --out DIR`) with the SMART reference client,
# bulk-data-client (vendored in interop/bulkclient, its packages pinned in
# package-lock.json), on the same export from a local static bulk server, in
# one run, alternating the two (cmd/ehrgate/bulkbench_test.go,
# TestBulkClientThroughput). Prints resources/s for each, over the export
# (kick-off to the last byte served) and over the client process, and the
# ratio (the issue's goal: ehrgate >= 2x).
#
# usage: scripts/bulk-client-bench.sh [PATIENTS, default 2000] [ROUNDS, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null && command -v npm >/dev/null || { echo "bulk-client-bench: node and npm are required" >&2; exit 2; }
dir=interop/bulkclient
if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
  echo "installing bulk-data-client's packages (npm ci in $dir)" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
echo "machine: $(nproc) vCPU, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1); $(go version | cut -d' ' -f3-4); node $(node --version); load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
EHRGATE_BULK_BENCH=1 EHRGATE_BULK_BENCH_PATIENTS="${1:-2000}" EHRGATE_BULK_BENCH_ROUNDS="${2:-3}" \
  go test -count=1 -timeout 30m -run '^TestBulkClientThroughput$' -v ./cmd/ehrgate | grep -v '^=== RUN'
