#!/usr/bin/env bash
# Runs the SMART Bulk Data server test kit (bdt, vendored in interop/bdt)
# against ehrgate's Bulk Data servers and prints every test's result: the
# simulator (`ehrgate sim`, SMART Backend Services on; cmd/ehrgate) and
# ehrgate's own API (fhirapi behind authz; gateway). Installs
# the kit's pinned dependencies first when they are missing. Exit status is
# the Go test's: 0 when every test passed or is a known kit defect.
#
#   scripts/bdt.sh            # run it
#   scripts/bdt.sh -run Sim   # only the simulator (or API)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
kit="$root/interop/bdt"
if ! command -v node >/dev/null 2>&1; then
  echo "bdt.sh: node is not installed (the kit needs Node.js 14+)" >&2
  exit 1
fi
if [ ! -f "$kit/node_modules/.package-lock.json" ] || [ "$kit/package-lock.json" -nt "$kit/node_modules/.package-lock.json" ]; then
  (cd "$kit" && npm ci --no-audit --no-fund --loglevel=error)
fi
pattern='^TestBulkDataTestKit'
if [ "${1:-}" = "-run" ] && [ -n "${2:-}" ]; then
  pattern="^TestBulkDataTestKit.*$2"
fi
cd "$root"
exec go test -count=1 -v -timeout 5m -run "$pattern" ./cmd/ehrgate ./gateway
