# layersnap build.  `make` builds build/layersnap and the libraries;
# `make test` runs the unit and end-to-end tests in a plain build and under
# AddressSanitizer + UndefinedBehaviorSanitizer; `make deps` installs what
# all of it needs from Debian's packages.

CC      ?= cc
SAN     ?=
FUZZ_CC ?= clang
ifeq ($(SAN),1)
BUILD   ?= build/asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     ?= -O1 -g
else ifeq ($(SAN),fuzz)
# the libFuzzer build (make fuzz): coverage for libFuzzer, ASan and UBSan
BUILD   ?= build/libfuzzer
CC       = $(FUZZ_CC)
SANFLAGS = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     ?= -O1 -g
else
BUILD   ?= build
SANFLAGS =
OPT     ?= -O2 -g
endif

WARN     = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter $(if $(WERROR),-Werror)
CFLAGS  ?=
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(OPT) $(WARN) $(SANFLAGS) -fPIC -MMD -MP -Isnapshot -Imodes $(CFLAGS)
LDFLAGS ?=
LIBS     = -luring -larchive -lxxhash -lcrypto -ldeflate -lz -lzstd -lpthread

LIB_SRC  = $(filter-out snapshot/main.c,$(wildcard snapshot/*.c)) $(wildcard modes/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  = $(BUILD)/obj/snapshot/main.o
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC = $(wildcard tests/tools/*.c)
TOOL_BIN = $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
BENCH_SRC = $(wildcard bench/*.c)
BENCH_BIN = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
# tests/fuzz/fuzz_NAME.c: as a replay binary (any compiler; make test runs
# the regression inputs and the seed corpus through it) and as a libFuzzer
# binary (SAN=fuzz, make fuzz)
FUZZ_TARGETS = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY  = $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay-%)
FUZZ_BIN     = $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz-%)
# the sanitizer and libFuzzer builds that go with BUILD
ASAN_BUILD  ?= $(BUILD)/asan
FUZZ_BUILD  ?= $(BUILD)/libfuzzer

.PHONY: all deps demo test test-build test-plain test-asan unit e2e bench bench-quick soak fuzz fuzz-build clean
all: $(BUILD)/layersnap $(BUILD)/liblayersnap.a $(BUILD)/liblayersnap.so

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/liblayersnap.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/liblayersnap.so: $(LIB_OBJ)
	$(CC) -shared $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/layersnap: $(CLI_OBJ) $(BUILD)/liblayersnap.a
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/liblayersnap.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/liblayersnap.a -lcmocka $(LIBS)

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/liblayersnap.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/liblayersnap.a $(LIBS)

$(BUILD)/fuzz/replay-%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(BUILD)/liblayersnap.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/fuzz $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(BUILD)/liblayersnap.a $(LIBS)

$(BUILD)/fuzz/fuzz-%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(BUILD)/liblayersnap.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -Itests/fuzz $(LDFLAGS) -o $@ $< $(BUILD)/liblayersnap.a $(LIBS)

$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS)

deps:
	./tests/install-deps.sh

# Builds everything the tests need, for one variant.
test-build: all $(UNIT_BIN) $(TOOL_BIN) $(BENCH_BIN) $(FUZZ_REPLAY)

# Every test, in BUILD and under ASan/UBSan in ASAN_BUILD.  Skips are
# counted and listed; LS_REQUIRE=kw,... turns those skips into failures and
# LS_LARGE=1 runs the 8 GiB test too (see tests/run.sh; .ci/run sets both).
test:
	@$(MAKE) --no-print-directory test-build
	@$(MAKE) --no-print-directory SAN=1 BUILD=$(ASAN_BUILD) test-build
	@tests/run.sh $(BUILD) $(ASAN_BUILD)

unit e2e: test-build
	@tests/run.sh --only $@ $(BUILD)

demo: all $(BENCH_BIN)
	@./tests/demo.sh $(BUILD)

bench: all $(BENCH_BIN)
	@./bench/run.sh full $(BUILD)

bench-quick: all $(BENCH_BIN)
	@./bench/run.sh quick $(BUILD)

# The apply round-trip property test with thousands of random sequences,
# and the tests too slow for every run (test_layer's 8 GiB entry): none of
# them may skip.
SOAK_SEQUENCES ?= 5000
soak: test-build
	@LS_PROPERTY_SEQUENCES=$(SOAK_SEQUENCES) LS_LARGE=1 LS_REQUIRE="large,$${LS_REQUIRE:-}" \
		tests/run.sh --only unit --unit test_property --unit test_layer $(BUILD)

# Each libFuzzer target for FUZZ_SECONDS, from its seed corpus
# (tests/fuzz/corpus/TARGET) and its regression inputs (tests/fuzz/regress/
# TARGET); fails on a crash, leaving it in FUZZ_BUILD/artifacts/TARGET.
# FUZZ_RUN="apply dump" runs only those.
# Without clang's libFuzzer it is a [clang] skip (a failure when LS_REQUIRE
# names clang).
FUZZ_SECONDS ?= 60
FUZZ_RUN     ?=
fuzz:
	@st=0; tests/fuzz/fuzz.sh probe "$(FUZZ_CC)" || st=$$?; \
	if [ $$st -eq 77 ]; then exit 0; fi; [ $$st -eq 0 ] || exit $$st; \
	$(MAKE) --no-print-directory SAN=fuzz BUILD=$(FUZZ_BUILD) CC="$(FUZZ_CC)" fuzz-build && \
	tests/fuzz/fuzz.sh run $(FUZZ_SECONDS) $(FUZZ_BUILD) $(FUZZ_RUN)

fuzz-build: $(FUZZ_BIN)

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
