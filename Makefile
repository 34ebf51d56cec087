# Makefile - builds libmemtrack.so, the memtrack analyzer, the tests and their targets.
#
# Everything is built out of tree into build/. User CFLAGS/LDFLAGS are kept
# apart from the project's own flags (MT_*), so `make CFLAGS=-O0` works.
# Quiet unless V=1.

PREFIX ?= /usr/local
BUILD ?= build
CC ?= cc
CFLAGS ?= -O2 -g
LDFLAGS ?=

ifeq ($(V),1)
Q :=
else
Q := @
endif

MT_WARN := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
MT_CPPFLAGS := -D_GNU_SOURCE -Iinclude -MMD -MP
MT_PRELOAD_CFLAGS := $(MT_WARN) -fexceptions -fPIC -fvisibility=hidden -ftls-model=initial-exec \
	-fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
	-fno-omit-frame-pointer
MT_PRELOAD_LIBS := -lunwind -lzstd -ldl -lpthread
MT_ANALYZER_CFLAGS := $(MT_WARN) -Ianalyzer
MT_ANALYZER_LIBS := -ldw -lelf -lcjson -lzstd -lm
# Test targets must keep every malloc/free pair the source says they do.
MT_TARGET_CFLAGS := -O0 -g -fno-builtin -fno-omit-frame-pointer -pthread -Iinclude
MT_TEST_CFLAGS := $(MT_WARN) -Ianalyzer -Itests/common -Wno-missing-prototypes
MT_TEST_LIBS := -lcriterion

PRELOAD_SRC := $(wildcard preload/*.c)
ANALYZER_SRC := $(filter-out analyzer/main.c,$(wildcard analyzer/*.c))
TEST_COMMON_SRC := $(wildcard tests/common/*.c)
TEST_SRC := $(wildcard tests/preload/test_*.c tests/analyzer/test_*.c)
TARGET_C_SRC := $(wildcard tests/targets/*.c)
TARGET_CXX_SRC := $(wildcard tests/targets/*.cc)

PRELOAD_OBJ := $(PRELOAD_SRC:%.c=$(BUILD)/obj/%.o)
ANALYZER_OBJ := $(ANALYZER_SRC:%.c=$(BUILD)/obj/%.o)
TEST_COMMON_OBJ := $(TEST_COMMON_SRC:%.c=$(BUILD)/obj/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TARGET_BIN := $(TARGET_C_SRC:tests/targets/%.c=$(BUILD)/targets/%) \
	$(TARGET_CXX_SRC:tests/targets/%.cc=$(BUILD)/targets/%)

LIB := $(BUILD)/libmemtrack.so
CLI := $(BUILD)/memtrack
ANALYZER_LIB := $(BUILD)/libmtanalyzer.a

.PHONY: all test check demo install install-check clean bench asan ubsan tsan targets tests
# Object files of tests are intermediate to make: keep them, so a second
# `make test` relinks nothing.
.SECONDARY:
all: $(LIB) $(CLI)

$(BUILD)/obj/preload/%.o: preload/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(MT_CPPFLAGS) $(MT_PRELOAD_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/analyzer/%.o: analyzer/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(MT_CPPFLAGS) $(MT_ANALYZER_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(MT_CPPFLAGS) $(MT_TEST_CFLAGS) $(CFLAGS) -c $< -o $@

$(LIB): $(PRELOAD_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-z,now -Wl,--version-script=preload/exports.map $(LDFLAGS) \
		-o $@ $(PRELOAD_OBJ) $(MT_PRELOAD_LIBS)

$(ANALYZER_LIB): $(ANALYZER_OBJ)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $(ANALYZER_OBJ)

$(CLI): $(BUILD)/obj/analyzer/main.o $(ANALYZER_LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(MT_ANALYZER_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_COMMON_OBJ) $(ANALYZER_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(MT_ANALYZER_LIBS) $(MT_TEST_LIBS) -pthread

$(BUILD)/targets/%: tests/targets/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(MT_TARGET_CFLAGS) $(TARGET_EXTRA_$*) -o $@ $< $(TARGET_LIBS_$*)

$(BUILD)/targets/%: tests/targets/%.cc
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX     $<")
	$(Q)$(CXX) -std=c++17 $(filter-out -Iinclude,$(MT_TARGET_CFLAGS)) -Iinclude -o $@ $< $(TARGET_LIBS_$*)

-include tests/targets/targets.mk

targets: $(TARGET_BIN)
tests: $(TEST_BIN) targets $(BUILD)/verify/libmemtrack.so

# The unwinder's test build: every walk is compared with libunwind's
# (MT_UNWIND_VERIFY, preload/unwind.c); test_unwind preloads it.
VERIFY_OBJ := $(PRELOAD_SRC:%.c=$(BUILD)/obj-verify/%.o)
$(BUILD)/obj-verify/preload/%.o: preload/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (verify)")
	$(Q)$(CC) $(MT_CPPFLAGS) -DMT_UNWIND_VERIFY $(MT_PRELOAD_CFLAGS) $(CFLAGS) -c $< -o $@
$(BUILD)/verify/libmemtrack.so: $(VERIFY_OBJ)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-z,now -Wl,--version-script=preload/exports.map $(LDFLAGS) \
		-o $@ $(VERIFY_OBJ) $(MT_PRELOAD_LIBS)
-include $(VERIFY_OBJ:.o=.d)

# ---- Record tests: the plugin target and the ring unit test (begin) ----
# libmtplugin.so is the shared library plugin_host dlopens. test_ring links
# the preload objects directly (all but hooks.o, which defines malloc), so
# it can drive the rings and the writer thread without LD_PRELOAD.
MT_PLUGIN_SRC := $(wildcard tests/targets/plugin/*.c)
MT_RING_TEST_OBJ := $(addprefix $(BUILD)/obj/preload/,ring.o writer.o os.o config.o modules.o unwind.o process.o sample.o)

$(BUILD)/targets/libmtplugin.so: $(MT_PLUGIN_SRC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(MT_TARGET_CFLAGS) -shared -fPIC -o $@ $(MT_PLUGIN_SRC)

targets: $(BUILD)/targets/libmtplugin.so

# libmtctor.so allocates in its constructor; ctor_alloc links it.
$(BUILD)/targets/libmtctor.so: tests/targets/ctorlib/mtctor.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(MT_TARGET_CFLAGS) -shared -fPIC -o $@ $<

$(BUILD)/targets/ctor_alloc: $(BUILD)/targets/libmtctor.so

$(BUILD)/tests/preload/test_ring: $(BUILD)/obj/tests/preload/test_ring.o $(MT_RING_TEST_OBJ) \
		$(TEST_COMMON_OBJ) $(ANALYZER_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(MT_ANALYZER_LIBS) $(MT_TEST_LIBS) -lunwind -ldl -pthread
# ---- Record tests (end) ----

# ---- HTML report: page assets built into memtrack (begin) ----
# analyzer/html_assets.c pulls the page's files in with .incbin, which the
# compiler's -MMD cannot see: list them so that editing the page rebuilds it.
$(BUILD)/obj/analyzer/html_assets.o: $(wildcard analyzer/html/*)
# ---- HTML report (end) ----

# ---- Real programs under memtrack (begin) ----
# tools/realprogs runs python3, sqlite3, git, jq, perl, tclsh, redis-server
# and cxxwork (a C++ program of ours, built -O2 like a real one) bare, under
# memtrack and under heaptrack, and checks output, exit status, clean traces
# and allocation counts. `make test` runs it (about 20 s) when those programs
# are installed (tools/install-deps --realprogs) and says it skipped
# otherwise; under CI=true a missing program is an error.
MT_REALPROGS_CXX := $(BUILD)/realprogs/cxxwork

$(MT_REALPROGS_CXX): tools/realprogs-inputs/cxxwork.cc
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CXX     $<")
	$(Q)$(CXX) -std=c++17 -O2 -g -o $@ $<

.PHONY: realprogs realprogs-if-installed
realprogs: all $(MT_REALPROGS_CXX)
	$(Q)tools/realprogs $(BUILD)

realprogs-if-installed: all $(MT_REALPROGS_CXX)
	$(Q)tools/realprogs --skip-missing $(BUILD)

test: realprogs-if-installed
# ---- Real programs (end) ----

# The README's test command: builds everything, runs every test binary and
# checks that an installed copy works.
test: all tests
	$(Q)tools/run-tests $(BUILD)
	$(Q)$(MAKE) -s install-check

# Installs into BUILD/install-check and runs the installed memtrack there.
install-check: all targets
	$(Q)rm -rf $(BUILD)/install-check
	$(Q)$(MAKE) -s install PREFIX=$(abspath $(BUILD))/install-check >/dev/null
	$(Q)tools/check-install $(abspath $(BUILD))/install-check $(BUILD)

check: test

demo: all $(BUILD)/targets/demo
	$(Q)tools/demo $(BUILD)

bench: all
	$(Q)tools/bench -b $(BUILD)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include \
		$(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 0755 $(LIB) $(DESTDIR)$(PREFIX)/lib/libmemtrack.so
	install -m 0755 $(CLI) $(DESTDIR)$(PREFIX)/bin/memtrack
	install -m 0644 include/memtrack.h $(DESTDIR)$(PREFIX)/include/memtrack.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' tools/memtrack.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/memtrack.pc

clean:
	rm -rf $(BUILD)

-include $(PRELOAD_OBJ:.o=.d) $(ANALYZER_OBJ:.o=.d) $(BUILD)/obj/analyzer/main.d \
	$(TEST_COMMON_OBJ:.o=.d) $(TEST_SRC:tests/%.c=$(BUILD)/obj/tests/%.d)

# ---- Hardening: sanitizer builds and fuzzing (begin) ----
# `make asan`, `make ubsan` and `make tsan` build the analyzer, its unit tests
# and the ring test (which links the preload objects itself) with a sanitizer
# into build-<name>/ and run them there. The LD_PRELOAD end-to-end suites are
# not built there (ASan and TSan own malloc themselves); suites that record a
# real trace do it with the plain build's library and targets, which
# MEMTRACK_TEST_BUILD points them to. `make fuzz` builds every
# tests/fuzz/fuzz_*.c with clang and libFuzzer into build-fuzz/ and runs each
# for FUZZ_SECONDS (tools/fuzz records the seed corpus first).
MT_SAN_UNIT_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/analyzer/test_*.c)) \
	$(BUILD)/tests/preload/test_ring
MT_SAN_asan := -fsanitize=address -fno-omit-frame-pointer
MT_SAN_ubsan := -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# Criterion cannot start under TSan (its arena collides with the shadow
# memory), so the tests get a stand-in with the same macros.
MT_SAN_tsan := -fsanitize=thread -Itests/common/nocriterion
MT_SAN_ENV_asan := ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp)
MT_SAN_ENV_ubsan := UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
MT_SAN_ENV_tsan := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

.PHONY: fuzz fuzzers san-unit-tests
san-unit-tests: $(CLI) $(MT_SAN_UNIT_BIN)

asan ubsan tsan: all targets $(BUILD)/verify/libmemtrack.so
	$(Q)$(MAKE) --no-print-directory BUILD=build-$@ CFLAGS="-O1 -g $(MT_SAN_$@)" \
		LDFLAGS="$(MT_SAN_$@)" san-unit-tests
	$(Q)MEMTRACK_TEST_BUILD=$(abspath $(BUILD)) $(MT_SAN_ENV_$@) tools/run-tests build-$@

FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang-14
MT_FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
MT_FUZZERS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

fuzzers: $(MT_FUZZERS:%=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(TEST_COMMON_OBJ) $(ANALYZER_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(MT_ANALYZER_LIBS) -pthread

fuzz: all targets
	$(Q)tools/install-deps --fuzz
	$(Q)$(MAKE) --no-print-directory BUILD=build-fuzz CC=$(FUZZ_CC) \
		CFLAGS="-O1 -g -fsanitize=fuzzer-no-link $(MT_FUZZ_SAN)" LDFLAGS="$(MT_FUZZ_SAN)" fuzzers
	$(Q)tools/fuzz $(BUILD) build-fuzz $(FUZZ_SECONDS) $(MT_FUZZERS)
# ---- Hardening (end) ----
