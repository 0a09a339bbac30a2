#!/usr/bin/env bash
# Runs every fuzz target in the module for a short budget each.
#
# Each package's fuzz-instrumented test binary is built once (go test -c
# -fuzz; two builds at a time) and run per target, instead of one `go test
# -fuzz` per target: the go command's per-target link and start-up cost
# more than the budget.
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" at the -fuzztime boundary without having found anything
# (golang/go#75804, fixed in Go 1.27). A run that fails WITHOUT writing a
# reproducer under testdata/fuzz/<target>/ is therefore retried (up to three
# runs); a run that writes one fails at once, and so do three such failures
# in a row.
set -euo pipefail
budget="${1:-10s}"
found=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cache="$(go env GOCACHE)/fuzz"
# The packages with fuzz targets, and their targets.
list="$work/targets"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(f \*testing\.F\)' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+).*/\1/' || true)
  [ -n "$targets" ] || continue
  echo "$pkg $dir $(echo $targets)" >> "$list"
done
# Build every package's fuzz binary first, two at a time (linking is
# single-threaded).
cut -d' ' -f1 "$list" | xargs -P 2 -I{} sh -c 'go test -c -fuzz=. -o "$1/$(echo "$2" | tr / _).test" "$2"' _ "$work" {}
while read -r pkg dir targets; do
  bin="$work/$(echo "$pkg" | tr / _).test"
  for target in $targets; do
    found=$((found+1))
    corpus="$dir/testdata/fuzz/$target"
    for attempt in 1 2 3; do
      echo "fuzz: $pkg $target ($budget, run $attempt)"
      before=$(ls "$corpus" 2>/dev/null | sort || true)
      log=$(mktemp)
      # The binary runs in its package directory (as go test runs it), so it
      # finds and writes testdata/fuzz/<target>; the cache directory is the
      # one go test uses, keyed by package path.
      if (cd "$dir" && "$bin" -test.run='^$' -test.fuzz="^${target}\$" -test.fuzztime="$budget" \
            -test.fuzzcachedir="$cache/$pkg" </dev/null) 2>&1 | tee "$log"; then
        rm -f "$log"
        break
      fi
      after=$(ls "$corpus" 2>/dev/null | sort || true)
      if [ "$before" != "$after" ] || ! grep -q 'context deadline exceeded' "$log" || [ "$attempt" = 3 ]; then
        rm -f "$log"
        echo "fuzz: $pkg $target FAILED (see the reproducer under $corpus, if any)" >&2
        exit 1
      fi
      rm -f "$log"
      echo "fuzz: $pkg $target stopped with the Go fuzz coordinator's deadline race and no reproducer (golang/go#75804); running it again" >&2
    done
  done
done < "$list"
echo "fuzz: $found targets passed"
