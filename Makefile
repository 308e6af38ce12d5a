# tern - build, run and test.  `make run` and `make test` install whatever
# Debian packages are missing first (scripts/setup.sh).

BUILD    ?= build
CC       ?= cc
PKGS      = libevent libevent_openssl libevent_pthreads libcares inih openssl libcrypt libpsl jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu17 -Wall -Wextra -Wno-unused-parameter -Isrc -D_GNU_SOURCE $(PKG_CFLAGS)
ifeq ($(CI),true)
CFLAGS   += -Werror
endif
ifeq ($(SAN),1)
BUILD     = build-san
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
LDLIBS   += $(PKG_LIBS) -lpthread

SRC      := $(filter-out src/cli/main.c,$(sort $(wildcard src/*/*.c)))
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
UNIT     := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ:tests/fuzz/%.c=build-fuzz/%)
# Fuzzed code is pure: the parsers plus the allocation helpers, and the
# DKIM verifier and SPF state machine (no I/O: DNS is their caller's).
FUZZ_SRC := $(sort $(wildcard src/proto/*.c)) src/core/util.c src/msgauth/dkim.c src/msgauth/spf.c

.PHONY: all run test unit integration fuzz fuzz-short san setup clean bench

all: $(BUILD)/tern

setup:
	@sh scripts/setup.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libtern.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tern: $(BUILD)/src/cli/main.o $(BUILD)/libtern.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtern.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libtern.a $(LDLIBS) -lcmocka

# The fuzzed sources are compiled once (with coverage but without
# libFuzzer's main) into one archive that every harness links: compiling
# them again for each of forty harnesses took most of `make test`.
FUZZ_FLAGS := -std=gnu17 -g -O1 -Isrc -D_GNU_SOURCE $(PKG_CFLAGS)
FUZZ_OBJ   := $(FUZZ_SRC:%.c=build-fuzz/obj/%.o)

build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c -o $@ $<

build-fuzz/libfuzzed.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/libfuzzed.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< build-fuzz/libfuzzed.a $(PKG_LIBS)

run: setup all
	$(BUILD)/tern serve

unit: $(UNIT_BIN)
# `make fuzz` runs every harness for FUZZ_RUNS executions (default 10^7) over
# its committed corpus, one after the other, keeping what it finds in
# build-fuzz/work-NAME (the committed corpus stays small; refresh it with
# -merge=1), and prints each harness's executed units.  Logs and any crash
# input go to build-fuzz/logs/ (tests/run.py runs whatever matches
# build-fuzz/fuzz_*).  One harness: make fuzz FUZZ=tests/fuzz/fuzz_NAME.c
FUZZ_RUNS ?= 10000000
fuzz: $(FUZZ_BIN)
	@mkdir -p build-fuzz/logs
	@for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p tests/fuzz/corpus/$$n build-fuzz/work-$$n; \
	  $$f -runs=$(FUZZ_RUNS) -print_final_stats=1 -artifact_prefix=build-fuzz/logs/$$n- \
	    build-fuzz/work-$$n tests/fuzz/corpus/$$n >build-fuzz/logs/$$n.log 2>&1 \
	    || { tail -60 build-fuzz/logs/$$n.log; echo "fuzz $$n: FAILED"; exit 1; }; \
	  echo "fuzz $$n: $$(grep -o 'number_of_executed_units: *[0-9]*' build-fuzz/logs/$$n.log | tr -s ' :' ' ') \
	    $$(grep -o 'average_exec_per_sec: *[0-9]*' build-fuzz/logs/$$n.log | tr -s ' :' ' ')"; done

# The builds run with one job per CPU (JOBS=1 for a serial build).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: setup
	@$(MAKE) --no-print-directory -j$(JOBS) all unit
	@$(MAKE) --no-print-directory -j$(JOBS) SAN=1 all unit
	@$(MAKE) --no-print-directory -j$(JOBS) $(FUZZ_BIN)
	@/usr/bin/python3 tests/run.py

bench: setup all
	sh bench/run.sh

clean:
	rm -rf build build-san build-fuzz

-include $(OBJ:.o=.d) $(BUILD)/src/cli/main.d $(FUZZ_OBJ:.o=.d)
