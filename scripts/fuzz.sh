#!/usr/bin/env bash
# Runs every fuzz target in the module for a short budget each.
set -euo pipefail
budget="${1:-10s}"
found=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/'); do
    found=$((found+1))
    echo "fuzz: $pkg $target ($budget)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" "$pkg"
  done
done
echo "fuzz: $found targets passed"
