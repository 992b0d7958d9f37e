# layersnap build.  `make` builds build/layersnap and the libraries;
# `make test` runs the unit and end-to-end tests in a plain build and under
# AddressSanitizer + UndefinedBehaviorSanitizer; `make deps` installs what
# all of it needs from Debian's packages.

CC      ?= cc
SAN     ?=
ifeq ($(SAN),1)
BUILD   ?= build/asan
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
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
LIBS     = -luring -larchive -lxxhash -lcrypto -lz -lzstd -lpthread

LIB_SRC  = $(filter-out snapshot/main.c,$(wildcard snapshot/*.c)) $(wildcard modes/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  = $(BUILD)/obj/snapshot/main.o
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC = $(wildcard tests/tools/*.c)
TOOL_BIN = $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)
BENCH_SRC = $(wildcard bench/*.c)
BENCH_BIN = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps demo test test-plain test-asan unit e2e bench bench-quick soak clean
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

$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS)

deps:
	./tests/install-deps.sh

# Builds everything the tests need, for one variant.
test-build: all $(UNIT_BIN) $(TOOL_BIN) $(BENCH_BIN)

test:
	@$(MAKE) --no-print-directory test-build
	@$(MAKE) --no-print-directory SAN=1 test-build
	@tests/run.sh build build/asan

unit e2e: test-build
	@tests/run.sh --only $@ $(BUILD)

demo: all $(BENCH_BIN)
	@./tests/demo.sh $(BUILD)

bench: all $(BENCH_BIN)
	@./bench/run.sh full $(BUILD)

bench-quick: all $(BENCH_BIN)
	@./bench/run.sh quick $(BUILD)

# The apply round-trip property test with thousands of random sequences.
SOAK_SEQUENCES ?= 5000
soak: test-build
	LS_PROPERTY_SEQUENCES=$(SOAK_SEQUENCES) $(BUILD)/tests/test_property

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
