# SPDX-License-Identifier: MIT
# The two commands a new user needs: `make run` and `make test`. See README.md.

RELEASE := build/release
TESTBUILD := build/test
FUZZBUILD := build/fuzz
CONFIG ?= run/parley.conf
FUZZ_SECONDS ?= 60

SOURCES = $(shell git ls-files -- 'src/*.[ch]' 'tests/*.[ch]' 'bench/*.[ch]' 2>/dev/null)

.PHONY: all build run test test-unit test-e2e soak format format-check fuzz bench clean deps-build deps-test deps-bench

all: build

deps-build:
	@scripts/install-deps.sh build
deps-test:
	@scripts/install-deps.sh test
deps-bench:
	@scripts/install-deps.sh bench

$(RELEASE)/build.ninja:
	meson setup $(RELEASE) --buildtype=release -Dtests=false

build: deps-build $(RELEASE)/build.ninja
	ninja -C $(RELEASE)

# First use creates run/ (config, self-signed certificate, data folder, component secrets).
run: build
	@scripts/make-default-config.sh run
	exec $(RELEASE)/src/main/parleyd --config $(CONFIG) all

$(TESTBUILD)/build.ninja:
	meson setup $(TESTBUILD) --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false

test: deps-test $(TESTBUILD)/build.ninja format-check
	ninja -C $(TESTBUILD)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	  meson test -C $(TESTBUILD) --print-errorlogs --num-processes 2 --suite unit --suite fuzz
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	  PARLEYD=$(abspath $(TESTBUILD))/src/main/parleyd \
	  /usr/bin/python3 -m pytest -q tests/e2e
	@echo "The IM and MUC suites again, on the plain-files storage backend (one process, and split):"
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	  PARLEYD=$(abspath $(TESTBUILD))/src/main/parleyd PARLEY_E2E_STORAGE=files \
	  /usr/bin/python3 -m pytest -q tests/e2e/test_im_*.py tests/e2e/test_muc_*.py tests/e2e/test_cli_client.py \
	  --im-topology all --im-topology split

# The soak test (tests/soak/test_soak.py): thousands of connections broken off anywhere, in
# both topologies, on the ASan build and the release build (its RSS check). Not part of
# `make test`'s quick run; CI runs both.
soak: deps-test $(TESTBUILD)/build.ninja $(RELEASE)/build.ninja
	ninja -C $(TESTBUILD)
	ninja -C $(RELEASE)
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	  PARLEYD=$(abspath $(TESTBUILD))/src/main/parleyd \
	  PARLEYD_RELEASE=$(abspath $(RELEASE))/src/main/parleyd \
	  /usr/bin/python3 -m pytest -q tests/soak

format:
	clang-format -i $(SOURCES)

format-check:
	@out=$$(clang-format --dry-run $(SOURCES) 2>&1); \
	if [ -n "$$out" ]; then echo "$$out" | head -40; \
	  echo "Code is not formatted: run 'make format'."; exit 1; fi

$(FUZZBUILD)/build.ninja:
	CC=clang meson setup $(FUZZBUILD) --buildtype=debugoptimized -Dfuzzing=libfuzzer \
	  -Db_sanitize=address,undefined -Db_lundef=false

# Fuzzes each target for FUZZ_SECONDS seconds, starting from its committed corpus. New
# inputs go to build/fuzz/corpus/ (merge the useful ones with -merge=1); crashes to
# tests/fuzz/crashes/.
fuzz: deps-test $(FUZZBUILD)/build.ninja
	ninja -C $(FUZZBUILD)
	@for t in $$(ls tests/fuzz/corpus); do \
	  mkdir -p tests/fuzz/crashes/$$t $(FUZZBUILD)/corpus/$$t; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS)s"; \
	  $(FUZZBUILD)/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	    -artifact_prefix=tests/fuzz/crashes/$$t/ $(FUZZBUILD)/corpus/$$t tests/fuzz/corpus/$$t \
	    || exit 1; \
	done

bench: deps-bench build
	bench/run.sh
	bench/run-clients.sh

clean:
	rm -rf build
