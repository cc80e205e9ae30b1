# Strata's front door. `make run` and `make test` install what is missing first.
SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)

.PHONY: all deps build run test unit integration asan lint fuzz fuzz-smoke bench soak clean

all: build

deps:
	@scripts/install-deps

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@set -o pipefail; cmake --build $(BUILD) -j$(JOBS) 2>&1 | { grep -vE '^\[|^g?make' || true; }

run: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@set -o pipefail; cmake --build $(BUILD) -j$(JOBS) --target strata 2>&1 | { grep -vE '^\[|^g?make' || true; }
	$(BUILD)/strata serve --demo

test: deps
	@scripts/test-all

fuzz: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-600} scripts/fuzz

soak: deps build
	@SOAK_SECONDS=$${SOAK_SECONDS:-600} STRATA_BIN=$(CURDIR)/$(BUILD)/strata scripts/soak

bench: deps build
	@bench/run

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
