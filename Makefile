# layersnap build.  `make` builds build/layersnap and the libraries;
# `make test` runs the unit and end-to-end tests in a plain build and under
# AddressSanitizer + UndefinedBehaviorSanitizer; `make deps` installs what
# all of it needs from Debian's packages; `make install` (PREFIX, DESTDIR)
# installs what `make` built, and `make uninstall` removes it again.

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
LIBS     = -luring -larchive -lxxhash -lcrypto -ldeflate -lz -lzstd -ljansson -lpthread
# The CLI takes every library but the C library, libzstd and libxxhash from
# its static archive (Debian's -dev packages ship them; its libzstd.a is
# built without the multithreading --compress zstd -j N uses, its
# libxxhash.a without the AVX2/AVX-512 dispatch snapshot/xxh.h calls).
# Linked against libarchive.so, every run would load and relocate the 13
# libraries that one needs for its other formats (libxml2, ICU and the C++
# runtime among them), 2.7 ms of a 4.7 ms start; the others cost 0.9 ms of
# the 2.5 left (libcrypto's relocations mostly), a twentieth of a `diff
# --upper` of a build step.  --gc-sections drops what of the archives
# nothing calls.
# CLI_LINK=shared links the shared libraries (a distribution that rebuilds
# nothing for a library's update); liblayersnap.so always does.
CLI_LINK ?= static
ifeq ($(CLI_LINK),static)
CLI_LIBS = -Wl,--push-state,-Bstatic $(filter-out -lxxhash -lzstd -lpthread,$(LIBS)) -Wl,--pop-state \
	-lxxhash -lzstd -lpthread \
	-Wl,--gc-sections
else ifeq ($(CLI_LINK),shared)
CLI_LIBS = $(LIBS)
else
$(error CLI_LINK=$(CLI_LINK): static or shared)
endif

# The version is written in one place, snapshot/layersnap.h
# (LAYERSNAP_VERSION_MAJOR/MINOR/PATCH): the shared library is
# liblayersnap.so.MAJOR.MINOR.PATCH with the SONAME liblayersnap.so.MAJOR.
version_part = $(shell awk '$$2 == "LAYERSNAP_VERSION_$(1)" && $$3 ~ /^[0-9]+$$/ { print $$3 }' snapshot/layersnap.h)
VERSION_MAJOR := $(call version_part,MAJOR)
VERSION_MINOR := $(call version_part,MINOR)
VERSION_PATCH := $(call version_part,PATCH)
$(if $(and $(VERSION_MAJOR),$(VERSION_MINOR),$(VERSION_PATCH)),,$(error snapshot/layersnap.h: no LAYERSNAP_VERSION_MAJOR/MINOR/PATCH numbers))
VERSION  = $(VERSION_MAJOR).$(VERSION_MINOR).$(VERSION_PATCH)
SONAME   = liblayersnap.so.$(VERSION_MAJOR)
SO_FILE  = liblayersnap.so.$(VERSION)

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

# Where `make install` puts things: DESTDIR is prepended to every path (a
# staging directory for packages), the others are as the installed system
# sees them.
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DATAROOTDIR  ?= $(PREFIX)/share
MANDIR       ?= $(DATAROOTDIR)/man
BASHCOMPDIR  ?= $(DATAROOTDIR)/bash-completion/completions
DESTDIR      ?=
INSTALL      ?= install
# run after installing onto the live system (no DESTDIR) as root; empty: never
LDCONFIG     ?= ldconfig
# Man pages (section 1) and the bash completion script (written by the
# binary from its option table), installed into MANDIR/man1 and
# BASHCOMPDIR/layersnap, and removed by uninstall.
MAN1_PAGES      = doc/layersnap.1
BASH_COMPLETION = $(BUILD)/layersnap.bash

.PHONY: all deps demo test test-build test-plain test-asan unit e2e bench bench-quick soak fuzz fuzz-build clean \
	install uninstall print-sanflags
all: $(BUILD)/layersnap $(BUILD)/liblayersnap.a $(BUILD)/liblayersnap.so $(BUILD)/$(SONAME) $(BASH_COMPLETION)

# BUILD/build-flags: what everything in BUILD is compiled and linked with
# (warning options aside); BUILD/build-vars: the variables that chose it, one
# VAR=value a line.  Everything built depends on build-flags, which is
# rewritten (at parse time, so `make -q` still answers) only when it changes:
# another CC, SAN, OPT, CFLAGS or LDFLAGS, or a Makefile that builds
# otherwise, rebuilds everything, and a build directory never mixes objects
# built differently.  `make install` never rebuilds with other flags than
# BUILD was built with: given other ones, it stops and names BUILD's
# variables (tests/e2e/install.sh hands them back to it).
BUILD_VARS  = CC SAN OPT CFLAGS LDFLAGS CLI_LINK
# the library's objects: only what layersnap.h declares (LS_API) is visible
# outside liblayersnap.so; the static library, and so the CLI, the tests and
# the tools that link it, still reach every function
LIB_CFLAGS  = -fvisibility=hidden
SO_LDFLAGS  = -shared -Wl,-soname,$(SONAME)
shell_quote = '$(subst ','\'',$(1))'
build_vars_text  = $(foreach v,$(BUILD_VARS),$(call shell_quote,$(v)=$($(v))))
build_flags_text = $(call shell_quote,cc: $(CC)) $(call shell_quote,cflags: $(filter-out $(WARN),$(ALL_CFLAGS))) \
	$(call shell_quote,lib: $(LIB_CFLAGS)) $(call shell_quote,so: $(SO_LDFLAGS)) \
	$(call shell_quote,link: $(SANFLAGS) $(LDFLAGS) $(LIBS)) $(call shell_quote,cli: $(CLI_LIBS))
# update_file FILE,WORDS: FILE holds the lines WORDS, rewritten only when they differ
update_file = mkdir -p $(dir $(1)) && printf '%s\n' $(2) >$(1).$$$$ && \
	{ cmp -s $(1).$$$$ $(1) || mv -f $(1).$$$$ $(1); }; rm -f $(1).$$$$
ifneq ($(filter install,$(MAKECMDGOALS)),)
ifneq ($(shell [ ! -f $(BUILD)/build-flags ] || printf '%s\n' $(build_flags_text) | cmp -s - $(BUILD)/build-flags || echo differ),)
$(error $(BUILD) was built with other flags than this make install would build it with: \
	give it the variables BUILD was built with, $(strip $(shell sed "s/.*/'&'/" $(BUILD)/build-vars 2>/dev/null | tr '\n' ' ')) \
	(this make has $(build_vars_text); with the same ones, the Makefile changed: make BUILD=$(BUILD) first))
endif
endif
ifneq ($(filter-out clean deps uninstall print-sanflags,$(or $(MAKECMDGOALS),all)),)
$(shell $(call update_file,$(BUILD)/build-flags,$(build_flags_text)); \
	$(call update_file,$(BUILD)/build-vars,$(build_vars_text)))
endif
$(BUILD)/build-flags:
	@$(call update_file,$@,$(build_flags_text))
	@$(call update_file,$(BUILD)/build-vars,$(build_vars_text))

$(LIB_OBJ): OBJ_CFLAGS = $(LIB_CFLAGS)

$(BUILD)/obj/%.o: %.c $(BUILD)/build-flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(OBJ_CFLAGS) -c $< -o $@

$(BUILD)/liblayersnap.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/$(SO_FILE): $(LIB_OBJ) $(BUILD)/build-flags
	$(CC) $(SO_LDFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $(LIB_OBJ) $(LIBS)

# the SONAME link (what programs load) and the link programs are linked with
$(BUILD)/$(SONAME) $(BUILD)/liblayersnap.so: $(BUILD)/$(SO_FILE)
	ln -sf $(SO_FILE) $@

$(BUILD)/layersnap: $(CLI_OBJ) $(BUILD)/liblayersnap.a $(BUILD)/build-flags
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/liblayersnap.a $(CLI_LIBS)

$(BUILD)/layersnap.bash: $(BUILD)/layersnap
	$< completion bash >$@.tmp && mv -f $@.tmp $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/liblayersnap.a $(BUILD)/build-flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(BUILD)/liblayersnap.a -lcmocka $(LIBS)

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/liblayersnap.a $(BUILD)/build-flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/liblayersnap.a $(LIBS)

$(BUILD)/fuzz/replay-%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(BUILD)/liblayersnap.a $(BUILD)/build-flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/fuzz $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(BUILD)/liblayersnap.a $(LIBS)

$(BUILD)/fuzz/fuzz-%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(BUILD)/liblayersnap.a $(BUILD)/build-flags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -Itests/fuzz $(LDFLAGS) -o $@ $< $(BUILD)/liblayersnap.a $(LIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/build-flags
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
	@LS_UPPER_SEQS=$(SOAK_SEQUENCES) LS_ONLY_SEEDS=$(SOAK_SEQUENCES) \
		tests/run.sh --only e2e --e2e upper.sh --e2e only.sh $(BUILD)

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

# Installs what `make` built (install depends on all: nothing is rebuilt
# when BUILD is up to date, and never with other flags than it was built
# with: see build-flags).  DESTDIR=/staging PREFIX=/usr for a package.
INSTALLED = $(BINDIR)/layersnap \
	$(LIBDIR)/$(SO_FILE) $(LIBDIR)/$(SONAME) $(LIBDIR)/liblayersnap.so $(LIBDIR)/liblayersnap.a \
	$(INCLUDEDIR)/layersnap.h $(PKGCONFIGDIR)/layersnap.pc \
	$(addprefix $(MANDIR)/man1/,$(notdir $(MAN1_PAGES))) \
	$(if $(BASH_COMPLETION),$(BASHCOMPDIR)/layersnap)
# layersnap.pc's libdir and includedir relative to its prefix when they are
# beneath it (so PKG_CONFIG_SYSROOT_DIR and a moved prefix work)
pc_dir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	$(INSTALL) -m 755 $(BUILD)/layersnap $(DESTDIR)$(BINDIR)/layersnap
	$(INSTALL) -m 644 $(BUILD)/$(SO_FILE) $(DESTDIR)$(LIBDIR)/$(SO_FILE)
	ln -sf $(SO_FILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SO_FILE) $(DESTDIR)$(LIBDIR)/liblayersnap.so
	$(INSTALL) -m 644 $(BUILD)/liblayersnap.a $(DESTDIR)$(LIBDIR)/liblayersnap.a
	$(INSTALL) -m 644 snapshot/layersnap.h $(DESTDIR)$(INCLUDEDIR)/layersnap.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call pc_dir,$(LIBDIR))|g' \
		-e 's|@INCLUDEDIR@|$(call pc_dir,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION)|g' \
		-e 's|@LIBS_PRIVATE@|$(LIBS)|g' layersnap.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/layersnap.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/layersnap.pc
ifneq ($(strip $(MAN1_PAGES)),)
	$(INSTALL) -d $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 644 $(MAN1_PAGES) $(DESTDIR)$(MANDIR)/man1/
endif
ifneq ($(strip $(BASH_COMPLETION)),)
	$(INSTALL) -d $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 644 $(BASH_COMPLETION) $(DESTDIR)$(BASHCOMPDIR)/layersnap
endif
	@if [ -z "$(DESTDIR)" ] && [ -n "$(LDCONFIG)" ] && [ "$$(id -u)" = 0 ]; then \
		echo "$(LDCONFIG)"; $(LDCONFIG) || :; fi

# Removes exactly what install put in place (same PREFIX, DESTDIR and
# directory variables); directories are left, as other packages share them.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

# The sanitizer flags of this configuration (SAN=...): a program linked with
# BUILD's libraries needs them too (tests/e2e/install.sh).
print-sanflags:
	@echo '$(SANFLAGS)'

clean:
	rm -rf build

# the header dependencies of this BUILD (and of build/asan inside build)
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
