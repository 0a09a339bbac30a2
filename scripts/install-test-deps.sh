#!/usr/bin/env bash
# Installs what the test suite needs on a fresh machine: Go modules and
# Debian's Chromium for the browser tests. Anything that cannot be installed
# is reported; the tests that need it then skip with a clear message.
set -uo pipefail

go mod download || { echo "install-test-deps: go mod download failed" >&2; exit 1; }

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
exit 0
