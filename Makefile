# mailprevent build. `make` builds bin/; `make test` runs everything; `make demo` shows mail flowing.
# BUILD selects the object directory; SAN=1 builds with AddressSanitizer + UBSan.

BUILD   ?= build
SAN     ?= 0
CC      ?= cc
PKGS    := libevent libevent_openssl openssl libcares yaml-0.1 lua5.4 libpcre2-8


CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 \
           -Wno-unused-parameter -fno-strict-aliasing -MMD -MP \
           -Icommon -Iproxy $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

ifeq ($(BUILD),build)
BINDIR := bin
else
BINDIR := $(BUILD)/bin
endif

COMMON_SRC := $(wildcard common/*.c)
PROXY_SRC  := $(filter-out proxy/main.c,$(wildcard proxy/*.c))
SIM_SRC    := $(wildcard mta-sim/*.c)
CERTS_SRC  := $(wildcard certs-gen/*.c)
UNIT_SRC   := $(wildcard tests/unit/*_test.c)
E2E_SRC    := $(wildcard tests/e2e/*_test.c)
E2E_LIB    := $(filter-out %_test.c,$(wildcard tests/e2e/*.c))
BENCH_SRC  := $(wildcard bench/*_bench.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

COMMON_LIB := $(BUILD)/libcommon.a
PROXY_LIB  := $(BUILD)/libproxy.a
UNIT_BINS  := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(UNIT_SRC))
E2E_BINS   := $(patsubst tests/e2e/%.c,$(BUILD)/tests/e2e/%,$(E2E_SRC))
BENCH_BINS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all deps test unit unit-asan e2e e2e-asan demo bench clean check-deps

all: check-deps $(BINDIR)/mailprevent $(BINDIR)/mta-sim $(BINDIR)/certs-gen

# A fresh clone has no stamp: make runs ci/install-deps, writes the stamp, and
# restarts, so the pkg-config lines above see the installed packages.
include $(BUILD)/.deps.mk
$(BUILD)/.deps.mk: ci/install-deps
	@ci/install-deps
	@mkdir -p $(BUILD) && echo "# ci/install-deps ran" > $@

check-deps: $(BUILD)/.deps.mk

deps:
	ci/install-deps

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(COMMON_LIB): $(call obj,$(COMMON_SRC))
	@rm -f $@; ar rcs $@ $^

$(PROXY_LIB): $(call obj,$(PROXY_SRC))
	@rm -f $@; ar rcs $@ $^

$(BINDIR)/mailprevent: $(BUILD)/proxy/main.o $(PROXY_LIB) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/mta-sim: $(call obj,$(SIM_SRC)) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/certs-gen: $(call obj,$(CERTS_SRC)) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# certs_gen_test links certs-gen's code, all but its main().
$(BUILD)/tests/unit/certs_gen_test: $(call obj,$(filter-out certs-gen/main.c,$(CERTS_SRC)))
$(BUILD)/tests/unit/dnsmsg_test: $(call obj,mta-sim/dnsmsg.c)

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(PROXY_LIB) $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CHECK_LIBS)

$(BUILD)/tests/e2e/%: $(BUILD)/tests/e2e/%.o $(call obj,$(E2E_LIB)) $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CHECK_LIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(PROXY_LIB) $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit: check-deps $(UNIT_BINS)
	@tests/run-unit.sh $(UNIT_BINS)

unit-asan: check-deps
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 unit

e2e: check-deps all $(E2E_BINS)
	@MP_BINDIR=$(BINDIR) tests/run-unit.sh $(E2E_BINS)

# The same end-to-end suites against ASan+UBSan builds of both binaries.
e2e-asan: check-deps
	@$(MAKE) --no-print-directory BUILD=build-asan SAN=1 e2e

test: check-deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory unit-asan
	@$(MAKE) --no-print-directory e2e
	@$(MAKE) --no-print-directory e2e-asan
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory scenarios
	@$(MAKE) --no-print-directory postfix-scenarios
	@echo "make test: all suites passed"

demo: check-deps all
	@scripts/demo.sh

# Benchmarks print numbers; they never pass or fail on timing.
# bench/run.sh runs the C benches, then the load runs (docs/performance.md).
bench: check-deps all $(BENCH_BINS) $(BUILD)/bench/smtp_probe
	@MP_BINDIR=$(BINDIR) MP_BUILD=$(BUILD) bench/run.sh $(BENCH_BINS)

clean:
	rm -rf build build-asan build-fuzz bin/mailprevent bin/mta-sim bin/certs-gen

# ---- fuzzing (tests/fuzz/README.md) ------------------------------------------
# libFuzzer targets tests/fuzz/<name>_fuzz.c, built with clang under ASan and
# UBSan into build-fuzz/ (the project's objects too, with coverage hooks).
# `make fuzz` runs each FUZZ_TIME seconds and keeps the grown corpus in
# build-fuzz/fuzz-work/; `make fuzz-smoke` runs each FUZZ_SMOKE seconds from
# the seeds. Either fails on any crash, leak or broken invariant.
FUZZ_TIME   ?= 60
FUZZ_SMOKE  ?= 10
FUZZ_BUILD  := build-fuzz
FUZZ_NAMES  := $(patsubst tests/fuzz/%_fuzz.c,%,$(wildcard tests/fuzz/*_fuzz.c))
# config_fuzz keeps the loader from reading other files (see its comment).
FUZZ_LDFLAGS_config := -Wl,--wrap=glob,--wrap=policy_load,--wrap=tls_server_ctx,--wrap=tls_client_ctx,--wrap=tls_read_passphrase

ifeq ($(FUZZ),1)
CFLAGS  += -fsanitize=fuzzer-no-link
endif

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-bins

fuzz-build: check-deps
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) SAN=1 FUZZ=1 CC=clang fuzz-bins

# Internal: only meaningful inside fuzz-build's sub-make (clang, FUZZ=1).
fuzz-bins: $(patsubst %,$(BUILD)/tests/fuzz/%_fuzz,$(FUZZ_NAMES))

$(BUILD)/tests/fuzz/%_fuzz: $(BUILD)/tests/fuzz/%_fuzz.o $(PROXY_LIB) $(COMMON_LIB)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $(filter %.o,$^) $(filter %.a,$^) \
	    $(LDLIBS) $(FUZZ_LDFLAGS_$*)

# dnsmsg_fuzz also reads queries the way mta-sim's DNS server does.
$(BUILD)/tests/fuzz/dnsmsg_fuzz: $(BUILD)/mta-sim/dnsmsg.o

fuzz: fuzz-build
	@tests/fuzz/run.sh -f $(FUZZ_TIME) $(FUZZ_BUILD) $(FUZZ_NAMES)

fuzz-smoke: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SMOKE) $(FUZZ_BUILD) $(FUZZ_NAMES)
# ---- end of fuzzing ----------------------------------------------------------

# mta_test drives mta-sim's roles in process, so it links their objects.
SIM_ROLE_OBJ := $(call obj,mta-sim/mta.c mta-sim/msg.c mta-sim/sink.c \
		mta-sim/sender.c mta-sim/sim.c mta-sim/rules.c)
$(BUILD)/tests/e2e/mta_test: $(BUILD)/tests/e2e/mta_test.o \
		$(call obj,$(E2E_LIB)) $(SIM_ROLE_OBJ) $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(CHECK_LIBS)

# The integration scenarios (docs/scenarios.md, docs/integration/): the
# guide's checks for the four reflecting-mode architectures and forwarding.
.PHONY: scenarios
scenarios: check-deps all
	@mkdir -p $(BUILD)
	MP_BINDIR=$(BINDIR) $(BINDIR)/mta-sim run --junit $(BUILD)/scenarios.xml scenarios/*.lua

# ---- benchmark helpers (bench/run.sh) ----------------------------------------
# smtp_probe measures latency and holds idle sessions for bench/run.sh; it
# is not a *_bench, so it does not run on its own and needs no libproxy.
$(BUILD)/bench/smtp_probe: $(BUILD)/bench/smtp_probe.o
	$(CC) $(LDFLAGS) -o $@ $^ -lm
# ---- end of benchmark helpers --------------------------------------------------

# ---- Postfix (docs/integration/postfix.md) -------------------------------------
# Real Postfix instances as the integrated MTA: scenarios/postfix/*.lua, run
# as root (each scenario skips, with the reason, where Postfix cannot run).
# docs/integration/postfix.md is generated from the fragments they run;
# doc.lua in the suite fails while it is stale.
.PHONY: postfix-scenarios postfix-doc
postfix-scenarios: check-deps all
	@mkdir -p $(BUILD)
	MP_BINDIR=$(BINDIR) $(BINDIR)/mta-sim run --junit $(BUILD)/postfix-scenarios.xml scenarios/postfix/*.lua

postfix-doc: check-deps $(BINDIR)/mta-sim
	@mkdir -p $(BUILD)
	MP_POSTFIX_DOC=1 $(BINDIR)/mta-sim run --list scenarios/postfix/doc.lua >/dev/null 2>$(BUILD)/postfix.md.raw
	tail -c +3 $(BUILD)/postfix.md.raw > docs/integration/postfix.md
# ---- end of Postfix ------------------------------------------------------------

.SECONDARY:

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
