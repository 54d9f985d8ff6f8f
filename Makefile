# ringraft build.
#
# Conventions, so that adding a file never needs an edit here:
#   <module>/*.c            -> $(BUILD)/lib/lib<module>.a   (modules: see MODULES)
#   <module>/<name>_main.c  -> $(BINDIR)/<name>             (a program; kept out of the library)
#   proto/*.proto           -> $(BUILD)/gen/proto/*.pb-c.[ch] -> $(BUILD)/lib/libproto.a
#   tests/unit/<m>/test_*.c -> $(BUILD)/tests/unit/<m>/test_*   (one Check binary per file)
#   tests/sim/*.c           -> $(BUILD)/tests/sim/sim           (the deterministic cluster simulator)
#   tests/integration/test_*.c -> $(BUILD)/tests/integration/test_*  (real kvd processes)
#   tests/*/ *_helper.c / tests/lib/*.c are linked into every test binary (shared fixtures).
# Every binary links every library (inside one --start-group), so the link order never matters.
#
# `make` builds all; `make test` builds and runs every suite; `make asan` does the same with
# ASan+UBSan in build/asan; `make sim SEEDS=N` runs a longer simulation sweep;
# `make cluster` builds and starts (or resumes) a local three-node cluster (scripts/cluster).
# `make fuzz FUZZ_SECONDS=N` runs each libFuzzer harness (tests/fuzz) for N seconds.

BUILD ?= build
ifeq ($(BUILD),build)
BINDIR ?= bin
else
BINDIR ?= $(BUILD)/bin
endif

CC ?= cc
OPT ?= -O2
CFLAGS := -std=gnu11 -Wall -Wextra -Werror $(OPT) -g -D_GNU_SOURCE -MMD -MP \
          -I. -I$(BUILD)/gen $(EXTRA_CFLAGS)
LDFLAGS := $(EXTRA_LDFLAGS)
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif

# ---------------------------------------------------------------------------- dependencies
# Runs scripts/deps.sh once per make invocation (silent when all is installed); goals that
# need no library (clean, format) skip it.
NODEPS_GOALS := clean format help
ifneq ($(filter-out $(NODEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
DEPS_STATUS := $(shell scripts/deps.sh 1>&2 && echo ok)
ifneq ($(DEPS_STATUS),ok)
$(error missing dependencies: see the deps: lines above)
endif
PKG_CFLAGS := $(shell pkg-config --cflags libuv lmdb libprotobuf-c check libxxhash libmicrohttpd openssl)
PKG_LIBS := $(shell pkg-config --libs libuv lmdb libprotobuf-c libxxhash libmicrohttpd openssl)
CHECK_LIBS := $(shell pkg-config --libs check)
endif
CFLAGS += $(PKG_CFLAGS)
LIBS := $(PKG_LIBS) -lpthread -lm

# ---------------------------------------------------------------------------- sources
MODULES := raft wal kv net node cli jepsen-lite

PROTOS := $(wildcard proto/*.proto)
PROTO_C := $(PROTOS:%.proto=$(BUILD)/gen/%.pb-c.c)
PROTO_H := $(PROTOS:%.proto=$(BUILD)/gen/%.pb-c.h)
PROTO_O := $(PROTO_C:$(BUILD)/gen/%.c=$(BUILD)/obj/%.o)

MAIN_SRCS := $(foreach m,$(MODULES),$(wildcard $(m)/*_main.c))
BINS := $(foreach s,$(MAIN_SRCS),$(BINDIR)/$(patsubst %_main.c,%,$(notdir $(s))))

lib_of = $(BUILD)/lib/lib$(1).a
srcs_of = $(filter-out %_main.c,$(wildcard $(1)/*.c))
objs_of = $(patsubst %.c,$(BUILD)/obj/%.o,$(call srcs_of,$(1)))
LIB_MODULES := $(foreach m,$(MODULES),$(if $(call srcs_of,$(m)),$(m)))
LIBS_A := $(foreach m,$(LIB_MODULES),$(call lib_of,$(m))) $(BUILD)/lib/libproto.a

TEST_SHARED_SRCS := $(wildcard tests/lib/*.c)
TEST_SHARED_O := $(TEST_SHARED_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS := $(UNIT_SRCS:%.c=$(BUILD)/%)
SIM_SRCS := $(wildcard tests/sim/*.c)
SIM_BIN := $(if $(SIM_SRCS),$(BUILD)/tests/sim/sim)
NODESIM_SRCS := $(wildcard tests/nodesim/*.c)
NODESIM_BIN := $(if $(NODESIM_SRCS),$(BUILD)/tests/nodesim/nodesim)
INTEG_SRCS := $(wildcard tests/integration/test_*.c)
INTEG_HELPER_SRCS := $(filter-out tests/integration/test_%,$(wildcard tests/integration/*.c))
INTEG_BINS := $(INTEG_SRCS:%.c=$(BUILD)/%)
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(BENCH_SRCS:%.c=$(BUILD)/%)

ALL_OBJS := $(PROTO_O) $(foreach m,$(LIB_MODULES),$(call objs_of,$(m))) \
            $(MAIN_SRCS:%.c=$(BUILD)/obj/%.o) $(TEST_SHARED_O) \
            $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o) $(SIM_SRCS:%.c=$(BUILD)/obj/%.o) \
            $(NODESIM_SRCS:%.c=$(BUILD)/obj/%.o) \
            $(INTEG_SRCS:%.c=$(BUILD)/obj/%.o) $(INTEG_HELPER_SRCS:%.c=$(BUILD)/obj/%.o) \
            $(BENCH_SRCS:%.c=$(BUILD)/obj/%.o)

LINK_LIBS = -Wl,--start-group $(LIBS_A) -Wl,--end-group $(LIBS)

# ---------------------------------------------------------------------------- build rules
.PHONY: all bins tests test unit sim-sweep integration jepsen-smoke asan sim nodesim bench-wal \
        cluster bench-kv bench-compare clean format lint help deps fuzz fuzz-build fuzz-smoke \
        fuzz-seeds powercut-build powercut-layer powercut powercut-points
.DEFAULT_GOAL := all

all: bins tests

bins: $(BINS)
tests: $(UNIT_BINS) $(SIM_BIN) $(NODESIM_BIN) $(INTEG_BINS) $(BENCH_BINS)

deps:
	@scripts/deps.sh

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: %.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen $<

# Generated headers must exist before any object is compiled (afterwards -MMD knows exactly
# which objects include them).
$(ALL_OBJS): | $(PROTO_H)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/proto/%.pb-c.o: $(BUILD)/gen/proto/%.pb-c.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/lib/libproto.a: $(PROTO_O)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

define module_lib
$(call lib_of,$(1)): $(call objs_of,$(1))
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach m,$(LIB_MODULES),$(eval $(call module_lib,$(m))))

define main_bin
$(BINDIR)/$(patsubst %_main.c,%,$(notdir $(1))): $(BUILD)/obj/$(1:%.c=%.o) $(LIBS_A)
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$< -o $$@ $$(LDFLAGS) $$(LINK_LIBS)
endef
$(foreach s,$(MAIN_SRCS),$(eval $(call main_bin,$(s))))

# A module's tests link only the libraries it depends on (DESIGN.md section 2), so work in
# progress in one module never breaks the build of another's tests. kv links wal for its
# CRC32C (kv/record.c checksums every stored value with wal/crc32c.c; wal needs nothing of kv).
DEPS_raft := raft
DEPS_wal := wal
DEPS_kv := kv wal
DEPS_net := net proto
DEPS_cli := cli net kv wal proto
DEPS_proto := proto
DEPS_node := $(LIB_MODULES) proto
DEPS_jepsen-lite := jepsen-lite cli net kv wal proto
deps_libs = $(foreach d,$(or $(DEPS_$(1)),$(LIB_MODULES) proto),$(if $(filter proto,$(d)),$(BUILD)/lib/libproto.a,$(if $(filter $(d),$(LIB_MODULES)),$(call lib_of,$(d)))))
link_libs = -Wl,--start-group $(call deps_libs,$(1)) -Wl,--end-group $(LIBS)

define unit_bin
$(BUILD)/$(1:%.c=%): $(BUILD)/obj/$(1:%.c=%.o) $(TEST_SHARED_O) $(call deps_libs,$(word 3,$(subst /, ,$(1))))
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$< $$(TEST_SHARED_O) -o $$@ $$(LDFLAGS) $$(call link_libs,$(word 3,$(subst /, ,$(1)))) $$(CHECK_LIBS)
endef
$(foreach s,$(UNIT_SRCS),$(eval $(call unit_bin,$(s))))

define bench_bin
$(BUILD)/$(1:%.c=%): $(BUILD)/obj/$(1:%.c=%.o) $(call deps_libs,$(patsubst bench_%.c,%,$(notdir $(1))))
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS) $$< -o $$@ $$(LDFLAGS) $$(call link_libs,$(patsubst bench_%.c,%,$(notdir $(1))))
endef
$(foreach s,$(BENCH_SRCS),$(eval $(call bench_bin,$(s))))

$(BUILD)/tests/sim/sim: $(SIM_SRCS:%.c=$(BUILD)/obj/%.o) $(call deps_libs,raft)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDFLAGS) $(call link_libs,raft)

# The whole-node simulator: the node engine over the real wal/ and kv/, checked by jepsen-lite.
$(BUILD)/tests/nodesim/nodesim: $(NODESIM_SRCS:%.c=$(BUILD)/obj/%.o) $(LIBS_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDFLAGS) $(LINK_LIBS)

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o \
		$(INTEG_HELPER_SRCS:%.c=$(BUILD)/obj/%.o) $(TEST_SHARED_O) $(LIBS_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(filter %.o,$^) -o $@ $(LDFLAGS) $(LINK_LIBS) $(CHECK_LIBS)

-include $(ALL_OBJS:%.o=%.d)

# ---------------------------------------------------------------------------- tests
# SIM_SEEDS: seeds in the `make test` sweep (6000: about 30 s on 2 idle cores, three times the
# 2000 the issue asks for); SEEDS: seeds for `make sim`.
SIM_SEEDS ?= 6000
# NODESIM_SEEDS: whole-node simulation seeds in `make test` (issue 16: at least 2000).
NODESIM_SEEDS ?= 2000
SEEDS ?= 20000
# SWEEP_TIMEOUT: seconds for each whole sweep in `make test` (on a quiet 2-vCPU machine the
# nodesim sweep takes about 2 minutes; on one shared with other builds it took over 10).
SWEEP_TIMEOUT ?= 1500
TEST_ENV := RINGRAFT_BIN=$(abspath $(BINDIR)) RINGRAFT_BUILD=$(abspath $(BUILD))

test: all
	@rm -rf $(BUILD)/test-results $(BUILD)/test-logs
	@$(TEST_ENV) KEEP_GOING=1 scripts/run-tests.sh unit $(UNIT_BINS)
	@$(TEST_ENV) KEEP_GOING=1 scripts/run-tests.sh lint scripts/check-engine-purity.sh
	@$(if $(SIM_BIN),$(TEST_ENV) KEEP_GOING=1 TEST_TIMEOUT=$(SWEEP_TIMEOUT) scripts/run-tests.sh sim $(SIM_BIN) sweep --seeds $(SIM_SEEDS) --jobs 2 --scenarios tests/sim/scenarios)
	@$(if $(NODESIM_BIN),$(TEST_ENV) KEEP_GOING=1 TEST_TIMEOUT=$(SWEEP_TIMEOUT) scripts/run-tests.sh nodesim $(NODESIM_BIN) sweep --seeds $(NODESIM_SEEDS) --jobs 2)
	@$(if $(INTEG_BINS),$(TEST_ENV) KEEP_GOING=1 scripts/run-tests.sh integration $(INTEG_BINS))
	@$(if $(wildcard jepsen-lite/run),$(TEST_ENV) KEEP_GOING=1 scripts/run-tests.sh jepsen jepsen-lite/run --smoke)
	@$(if $(FUZZ_BINS),$(MAKE) --no-print-directory fuzz-build; $(TEST_ENV) KEEP_GOING=1 scripts/run-tests.sh fuzz $(FUZZ_SMOKE_SECONDS) $(FUZZ_BINS))
	@$(TEST_ENV) scripts/run-tests.sh summary

unit: $(UNIT_BINS)
	@$(TEST_ENV) scripts/run-tests.sh unit $(UNIT_BINS)

integration: all
	@$(TEST_ENV) scripts/run-tests.sh integration $(INTEG_BINS)

jepsen-smoke: all
	@$(TEST_ENV) scripts/run-tests.sh jepsen jepsen-lite/run --smoke

# `make cluster`: build, then start (or resume) the local three-node cluster (docs/CLI.md).
cluster: bins
	RINGRAFT_BIN=$(abspath $(BINDIR)) scripts/cluster up

# Unit suites and a short simulation sweep under valgrind's memcheck: any error or definite
# leak fails (CK_FORK=no so that Check runs the tests in the process valgrind watches).
VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
valgrind: tests
	@rm -rf $(BUILD)/test-results $(BUILD)/test-logs
	@$(TEST_ENV) CK_FORK=no KEEP_GOING=1 RUN_WRAPPER="$(VALGRIND)" scripts/run-tests.sh valgrind $(UNIT_BINS)
	@$(if $(SIM_BIN),$(TEST_ENV) KEEP_GOING=1 RUN_WRAPPER="$(VALGRIND) --trace-children=yes" scripts/run-tests.sh sim $(SIM_BIN) sweep --seeds 100 --jobs 2 --scenarios tests/sim/scenarios)
	@$(if $(NODESIM_BIN),$(TEST_ENV) KEEP_GOING=1 RUN_WRAPPER="$(VALGRIND) --trace-children=yes" scripts/run-tests.sh nodesim $(NODESIM_BIN) sweep --seeds 20 --jobs 2)
	@$(TEST_ENV) scripts/run-tests.sh summary

sim: $(SIM_BIN) $(NODESIM_BIN)
	$(SIM_BIN) sweep --seeds $(SEEDS) --jobs 2 --scenarios tests/sim/scenarios
	$(if $(NODESIM_BIN),$(NODESIM_BIN) sweep --seeds $(SEEDS) --jobs 2)

# The whole-node simulator alone: `make nodesim SEEDS=N [FROM=S]`.
FROM ?= 1
nodesim: $(NODESIM_BIN)
	$(NODESIM_BIN) sweep --seeds $(SEEDS) --from $(FROM) --jobs 2

asan:
	$(MAKE) --no-print-directory BUILD=build/asan SAN=1 OPT=-O1 test

bench-wal: all
	$(BUILD)/tests/bench/bench_wal $(BENCH_ARGS)

bench-kv: all
	$(BUILD)/tests/bench/bench_kv $(BENCH_ARGS)

# Issue 19's side-by-side figures: a single Redis with AOF always (redis-server installed from
# Debian when missing) and a 3-node cluster, the same redis-benchmark loads against both
# (docs/PERFORMANCE.md "Against Redis"). `make bench-compare COMPARE_ARGS="--runs 1"`.
COMPARE_ARGS ?=
bench-compare: bins
	scripts/bench-compare.sh $(COMPARE_ARGS)

# ---------------------------------------------------------------------------- power cuts
# tests/powercut: powercutfs, a FUSE file system (libfuse3) that keeps unsynced writes in memory
# until a simulated power cut drops them (docs/DURABILITY.md "The power-cut layer"). Not part
# of `all`/`test`: it mounts file systems (needs /dev/fuse and root). `make powercut-layer`
# tests the layer itself, `make powercut` cuts one node of a real cluster, `make
# powercut-points` cuts at the crash points (wal/crashpoint.h).
POWERCUT_BIN := $(BUILD)/tests/powercut/powercutfs
$(POWERCUT_BIN): tests/powercut/powercutfs.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -Wall -Wextra -Werror $(OPT) -g -D_GNU_SOURCE $$(pkg-config --cflags fuse3) \
	  $< -o $@ $(LDFLAGS) $$(pkg-config --libs fuse3) -lpthread

powercut-build: $(POWERCUT_BIN)

powercut-layer: $(POWERCUT_BIN)
	POWERCUTFS=$(abspath $(POWERCUT_BIN)) /usr/bin/python3 tests/powercut/test_layer.py

powercut: bins $(POWERCUT_BIN)
	RINGRAFT_BIN=$(abspath $(BINDIR)) POWERCUTFS=$(abspath $(POWERCUT_BIN)) \
	  tests/powercut/cut_one.sh $(POWERCUT_ARGS)

# the crash-point test: node 1's power cut at each named point of a checkpoint, a WAL segment
# switch, a compaction and a snapshot install (about 25 min; POWERCUT_POINTS picks points)
powercut-points: bins $(POWERCUT_BIN)
	RINGRAFT_BIN=$(abspath $(BINDIR)) POWERCUTFS=$(abspath $(POWERCUT_BIN)) \
	  tests/powercut/cut_points.sh $(POWERCUT_POINTS)

# ---------------------------------------------------------------------------- fuzzing
# libFuzzer harnesses (tests/fuzz/fuzz_<name>.c, docs/SECURITY.md "Fuzzing"), built with clang
# and ASan+UBSan into $(FUZZ_BUILD): every module's sources are compiled again there with
# coverage instrumentation; tests/fuzz/*.c without the fuzz_ prefix are shared fixtures.
# `make fuzz` runs each harness FUZZ_SECONDS over a scratch copy of its seed corpus
# (tests/fuzz/corpus/<name>); `make test` runs each FUZZ_SMOKE_SECONDS (scripts/fuzz.sh).
FUZZ_BUILD := build/fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 4
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -O1 -g -D_GNU_SOURCE -MMD -MP -I. -I$(BUILD)/gen \
               $(PKG_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_HARNESS_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_FIXTURE_SRCS := $(filter-out tests/fuzz/fuzz_%,$(wildcard tests/fuzz/*.c))
FUZZ_BINS := $(FUZZ_HARNESS_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_LIB_SRCS := $(foreach m,$(LIB_MODULES),$(call srcs_of,$(m)))
FUZZ_LIB_O := $(FUZZ_LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o) $(PROTO_C:$(BUILD)/gen/%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_FIXTURE_O := $(FUZZ_FIXTURE_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)

$(FUZZ_BUILD)/obj/%.o: %.c | $(PROTO_H)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/obj/proto/%.pb-c.o: $(BUILD)/gen/proto/%.pb-c.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BUILD)/libringraft.a: $(FUZZ_LIB_O)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o $(FUZZ_FIXTURE_O) $(FUZZ_BUILD)/libringraft.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(filter %.o,$^) -o $@ \
	  -Wl,--start-group $(FUZZ_BUILD)/libringraft.a -Wl,--end-group $(LIBS)

-include $(FUZZ_LIB_O:%.o=%.d) $(FUZZ_FIXTURE_O:%.o=%.d) $(FUZZ_HARNESS_SRCS:%.c=$(FUZZ_BUILD)/obj/%.d)

.SECONDARY: $(FUZZ_HARNESS_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)

fuzz-build: $(FUZZ_BINS)

# The seed corpora, from real encodings (tests/fuzz/seeds/gen_seeds.c); checked in.
$(FUZZ_BUILD)/gen_seeds: tests/fuzz/seeds/gen_seeds.c $(LIBS_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) $(LINK_LIBS)

fuzz-seeds: $(FUZZ_BUILD)/gen_seeds
	$(FUZZ_BUILD)/gen_seeds tests/fuzz/corpus

fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

# What `make test` runs: each harness a few seconds, any crash, leak or sanitizer report fails.
fuzz-smoke: fuzz-build
	@$(TEST_ENV) scripts/run-tests.sh fuzz $(FUZZ_SMOKE_SECONDS) $(FUZZ_BINS)

# ---------------------------------------------------------------------------- upkeep
FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format:
	clang-format -i $(FORMAT_SRCS)

lint: $(PROTO_H)
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem -I. -I$(BUILD)/gen \
	  $(foreach m,$(MODULES),$(wildcard $(m)/*.c))

clean:
	rm -rf build bin

help:
	@sed -n '1,17p' Makefile
