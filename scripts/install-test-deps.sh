#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine: Go modules and
# Debian's Chromium for the browser tests. Anything that cannot be installed
# is reported; the tests that need it then skip with a clear message.
set -uo pipefail

go mod download || { echo "install-test-deps: go mod download failed" >&2; exit 1; }

# DuckDB reads the Parquet export back (export/parquet, duckdb-go: cgo with
# DuckDB's prebuilt static library, fetched by go mod download above).
if [ "$(go env CGO_ENABLED)" != "1" ] || ! command -v "$(go env CC)" >/dev/null 2>&1; then
  echo "install-test-deps: WARNING: cgo is off or no C compiler; the DuckDB read-back test will skip" >&2
fi

if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: installing chromium (browser tests)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y -qq chromium >/dev/null 2>&1 \
      || echo "install-test-deps: WARNING: could not install chromium; browser tests will skip" >&2
  else
    echo "install-test-deps: WARNING: chromium missing and not root; browser tests will skip" >&2
  fi
fi

# Third-party MLLP sender (node-hl7-client, pinned in interop/hl7's
# package-lock.json) for the HL7 interop test. Without Node.js or the
# registry the test skips and says so.
interop="$(dirname "$0")/../interop/hl7"
if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
  if [ ! -d "$interop/node_modules/node-hl7-client" ] || [ "$interop/package-lock.json" -nt "$interop/node_modules/.package-lock.json" ]; then
    (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) \
      || echo "install-test-deps: WARNING: npm ci in interop/hl7 failed (registry unreachable?); the HL7 interop test will skip" >&2
  fi
else
  echo "install-test-deps: WARNING: node/npm missing; the HL7 interop test (node-hl7-client) will skip" >&2
fi

# Every other third-party client pinned under interop/ (interop/smart: the
# official SMART JavaScript client, fhirclient, for the SMART interop
# browser test; interop/oidc: oidc-provider, the OpenID provider the dashboard
# login browser test signs in through). A directory already installed from its current lock file is
# left alone. Without npm or the registry its tests skip and say so.
for lock in "$(dirname "$0")"/../interop/*/package-lock.json; do
  [ -f "$lock" ] || continue
  dir="$(dirname "$lock")"
  name="interop/$(basename "$dir")"
  # bulk-data-client serves only the client benchmark
  # (scripts/bulk-client-bench.sh installs it); no test of make test needs
  # it, and its aws-sdk costs ~40 s and 159 MB.
  [ "$name" = interop/bulkclient ] && continue
  if [ -f "$dir/node_modules/.package-lock.json" ] && [ ! "$lock" -nt "$dir/node_modules/.package-lock.json" ]; then
    continue
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-test-deps: WARNING: npm missing; the tests that need $name will skip" >&2
    continue
  fi
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) \
    || echo "install-test-deps: WARNING: npm ci in $name failed (registry unreachable?); its tests will skip" >&2
done
exit 0
