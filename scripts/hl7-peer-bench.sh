#!/usr/bin/env bash
# Compares ehrgate's HL7 v2 parser with two npm parsers on the same messages
# with the same access, in one run: every fixture message of
# $EHRGATE_FIXTURES/hl7v2/messages (default ../shared/fixtures) is parsed and
# every component (then every sub-component) of every repetition of every
# field of every segment is read.
#
#   ehrgate          go test -bench CorpusReadAll ./hl7 (hl7/corpus_bench_test.go)
#   @medplum/core    Hl7Message.parse, then Hl7Field.getComponent   (interop/hl7peers/bench.js)
#   node-hl7-client  new Message({text}), then get(...).toString()  (interop/hl7peers/bench.js)
#
# Prints messages/s (wall clock) and messages per CPU-second for each, and
# the ratios ehrgate/peer. The npm packages are pinned in
# interop/hl7peers/package-lock.json and installed here on demand (npm ci).
#
# usage: scripts/hl7-peer-bench.sh [SECONDS per measurement, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-3}"
fixtures="${EHRGATE_FIXTURES:-../shared/fixtures}"
fixtures="$(cd "$fixtures" 2>/dev/null && pwd)" || { echo "hl7-peer-bench: fixtures not found (set EHRGATE_FIXTURES)" >&2; exit 2; }
msgdir="$fixtures/hl7v2/messages"
[ -d "$msgdir" ] || { echo "hl7-peer-bench: $msgdir missing" >&2; exit 2; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "hl7-peer-bench: node and npm are required" >&2; exit 2; }

peers=interop/hl7peers
if [ ! -f "$peers/node_modules/.package-lock.json" ] || [ "$peers/package-lock.json" -nt "$peers/node_modules/.package-lock.json" ]; then
  echo "installing npm peers (npm ci in $peers)" >&2
  (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

echo "machine: $(nproc) vCPU, $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1); $(go version | cut -d' ' -f3-4); node $(node --version); load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
echo "corpus: $(ls "$msgdir"/*.hl7 | wc -l) messages in $msgdir"
echo

go test -c -o /tmp/hl7-peer-bench.$$.test ./hl7 >/dev/null
trap 'rm -f /tmp/hl7-peer-bench.$$.test' EXIT

# gobench MODE -> "msgs/s msgs/cpu-s"
gobench() {
  (cd hl7 && EHRGATE_FIXTURES="$fixtures" /tmp/hl7-peer-bench.$$.test -test.run '^$' \
    -test.bench "^BenchmarkCorpusReadAll/$1\$" -test.benchtime "${secs}s") |
    awk '/^BenchmarkCorpusReadAll/ { for (i = 2; i < NF; i++) { if ($(i+1) == "msgs/s") w = $i; if ($(i+1) == "msgs/cpu-s") c = $i } } END { printf "%d %d\n", w, c }'
}
# nodebench PEER MODE -> "msgs/s msgs/cpu-s messages"
nodebench() {
  node "$peers/bench.js" "$1" "$2" "$msgdir" "$secs" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.msgsPerSec,j.msgsPerCpuSec,j.messages,(j.skipped||[]).join(",")||"-")})'
}

printf '%-14s %-16s %12s %12s %10s %12s %12s\n' mode parser 'msgs/s' 'msgs/cpu-s' messages 'ehrgate/x' '(per cpu-s)'
for mode in components subcomponents; do
  read -r gw gc < <(gobench "$mode")
  read -r mw mc mn ms < <(nodebench medplum "$mode")
  read -r nw nc nn ns < <(nodebench node-hl7-client "$mode")
  total=$(ls "$msgdir"/*.hl7 | wc -l)
  printf '%-14s %-16s %12d %12d %10s\n' "$mode" ehrgate "$gw" "$gc" "$total"
  printf '%-14s %-16s %12d %12d %10s %11.1fx %11.1fx\n' "$mode" @medplum/core "$mw" "$mc" "$mn" "$(echo "$gw/$mw" | bc -l)" "$(echo "$gc/$mc" | bc -l)"
  printf '%-14s %-16s %12d %12d %10s %11.1fx %11.1fx\n' "$mode" node-hl7-client "$nw" "$nc" "$nn" "$(echo "$gw/$nw" | bc -l)" "$(echo "$gc/$nc" | bc -l)"
  [ "$ms" = - ] || echo "  (@medplum/core refused: $ms)"
  [ "$ns" = - ] || echo "  (node-hl7-client refused: $ns)"
done
# The zero-copy read (Component.Raw) is what @medplum/core's getComponent
# returns (the component's encoded text); Value additionally unescapes and
# copies into a Go string.
read -r rw rc < <(gobench raw)
printf '%-14s %-16s %12d %12d %10s\n' raw ehrgate "$rw" "$rc" "$(ls "$msgdir"/*.hl7 | wc -l)"
