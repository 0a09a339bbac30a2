# ehrgate build and test entry points. `make test` is the project's test
# command: it installs what the tests need on a fresh machine, then runs
# vet, the whole test suite with the race detector, and short fuzz runs.
GO       ?= go
FUZZTIME ?= 10s

.PHONY: all build test deps vet test-go fuzz bench demo clean

all: build

build:
	$(GO) build -o bin/ehrgate ./cmd/ehrgate

deps:
	./scripts/install-test-deps.sh

vet:
	$(GO) vet ./...

test-go:
	$(GO) test -race -count=1 -timeout 15m ./...

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
