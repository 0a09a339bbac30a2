# ehrgate build and test entry points. `make test` is the project's test
# command: it installs what the tests need on a fresh machine, then runs
# vet, the whole test suite with the race detector, and short fuzz runs.
GO       ?= go
FUZZTIME ?= 3s
# Interop runs of third-party clients over thousands of messages: run once
# without the race detector (which makes them ten times slower and adds
# nothing, the peer is a separate process) after the race-enabled suite.
INTEROP  ?= ^TestInteropNodeSender$$
# The SMART Bulk Data test kit (bdt, interop/bdt) against the simulator's
# and ehrgate's own $export: about 100 s of a Node process driving the
# servers, run once without the race detector (scripts/bdt.sh runs it
# verbosely).
BDT      ?= ^TestBulkDataTestKit
# The README's commands, run as a new user would (three 120-patient demo
# syncs, about 20 s): without the race detector, which makes them minutes.
README   ?= ^TestREADMECommands$$
# Whole-system runs that take minutes under the race detector and add
# little to it: the process tests of cmd/ehrgate (replicas and pipeline
# killed with SIGKILL, the demo's and pipeline's JSON runs: each process
# under test is the race-built test binary, whose in-process paths the race
# run covers anyway) and the statistical identity tests over 10,000-20,000
# people (the matcher's concurrency is raced by the smaller ones). They run
# once, without -race, after the race-enabled suite.
NORACE   ?= ^(TestReplicasShareTheWorkAndSurviveSIGKILL|TestPipelineSurvivesSIGKILL|TestDemoOnceJSONIsCompleteAndIdempotent|TestPipelineDemoJSON|TestHardNegativesStayApart|TestEvalFloorsAndDeterminism|TestEMConverges)$$

.PHONY: all build test deps vet test-go fuzz bench demo clean

all: build

build:
	$(GO) build -o bin/ehrgate ./cmd/ehrgate

deps:
	./scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

test-go:
	$(GO) test -race -count=1 -timeout 15m -skip '$(INTEROP)|$(BDT)|$(README)|$(NORACE)' ./...
	$(GO) test -count=1 -timeout 10m -run '$(INTEROP)' ./hl7/hl7store
	$(GO) test -count=1 -timeout 10m -run '$(BDT)|$(README)|$(NORACE)' ./cmd/ehrgate ./gateway ./identity
	$(GO) test -count=1 -timeout 10m -tags duckdb -run '^TestDuckDBReadsExport$$' ./export/parquet

# Short coverage-guided fuzz runs of every parser; each must neither panic nor hang.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

test: deps vet test-go fuzz

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

demo:
	$(GO) run ./cmd/ehrgate demo

clean:
	rm -rf bin
