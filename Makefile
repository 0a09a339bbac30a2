# ehrgate build and test entry points. `make test` is the project's test
# command: it installs what the tests need on a fresh machine, then runs
# vet, the test suite (with the race detector, except the whole-system runs
# listed below), and short fuzz runs.
GO       ?= go
FUZZTIME ?= 2s
# Interop runs of third-party clients over thousands of messages: run once
# without the race detector (which makes them ten times slower and adds
# nothing, the peer is a separate process) after the race-enabled suite.
INTEROP  ?= ^TestInteropNodeSender$$
# The SMART Bulk Data test kit (bdt, interop/bdt) against the simulator's
# and ehrgate's own $export: about 100 s of a Node process driving the
# servers, run once without the race detector (scripts/bdt.sh runs it
# verbosely).
BDT      ?= ^TestBulkDataTestKit
# Whole-system runs that take minutes under the race detector and add
# little to it: the pipeline end to end over two simulated EHRs (the
# pipeline's and the job queue's concurrency is raced by the scheduled
# pipeline test and their own packages) and the statistical identity tests
# over 10,000-20,000 people (the matcher's concurrency is raced by the
# smaller ones).
NORACE   ?= ^(TestPipelineEndToEnd|TestPipelineUnderFaults|TestPipelineNarrowPolicyRefusesBeforeSending|TestHardNegativesStayApart|TestEvalFloorsAndDeterminism|TestEMConverges)$$
# cmd/ehrgate holds flags, configuration and printing; its tests drive the
# CLI end to end (demo syncs, processes killed with SIGKILL, replicas, the
# README's commands, browsers), over service code whose own packages' tests
# run with the race detector. They run once without it (about 8 minutes of
# the suite under -race, 3 without). The runs without -race go beside the
# race run, which leaves a core idle while its tests wait.
NORACE_PKGS ?= ./cmd/ehrgate
RACE_PKGS    = $(shell $(GO) list ./... | grep -v '/cmd/ehrgate$$')

.PHONY: all build test deps vet test-go fuzz bench demo clean

all: build

build:
	$(GO) build -o bin/ehrgate ./cmd/ehrgate

deps:
	./scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

test-go:
	$(GO) test -count=1 -timeout 15m $(NORACE_PKGS) & a=$$!; \
	$(GO) test -count=1 -timeout 10m -run '$(INTEROP)|$(BDT)|$(NORACE)' ./gateway ./identity ./hl7/hl7store & b=$$!; \
	$(GO) test -race -count=1 -timeout 15m -skip '$(INTEROP)|$(BDT)|$(NORACE)' $(RACE_PKGS); r=$$?; \
	wait $$a; ra=$$?; wait $$b; rb=$$?; [ $$r -eq 0 ] && [ $$ra -eq 0 ] && [ $$rb -eq 0 ]
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
