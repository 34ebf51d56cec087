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
MT_PRELOAD_LIBS := -lunwind -ldl -lpthread
MT_ANALYZER_CFLAGS := $(MT_WARN) -Ianalyzer
MT_ANALYZER_LIBS := -ldw -lelf -lcjson -lm
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

.PHONY: all test check demo install clean bench asan ubsan tsan targets tests
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
tests: $(TEST_BIN) targets

# ---- Record tests: the plugin target and the ring unit test (begin) ----
# libmtplugin.so is the shared library plugin_host dlopens. test_ring links
# the preload objects directly (all but hooks.o, which defines malloc), so
# it can drive the rings and the writer thread without LD_PRELOAD.
MT_PLUGIN_SRC := $(wildcard tests/targets/plugin/*.c)
MT_RING_TEST_OBJ := $(addprefix $(BUILD)/obj/preload/,ring.o writer.o os.o config.o modules.o unwind.o process.o)

$(BUILD)/targets/libmtplugin.so: $(MT_PLUGIN_SRC)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(MT_TARGET_CFLAGS) -shared -fPIC -o $@ $(MT_PLUGIN_SRC)

targets: $(BUILD)/targets/libmtplugin.so

$(BUILD)/tests/preload/test_ring: $(BUILD)/obj/tests/preload/test_ring.o $(MT_RING_TEST_OBJ) \
		$(TEST_COMMON_OBJ) $(ANALYZER_LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(MT_ANALYZER_LIBS) $(MT_TEST_LIBS) -lunwind -ldl -pthread
# ---- Record tests (end) ----

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

# The README's test command: builds everything and runs every test binary.
test: all tests
	$(Q)tools/run-tests $(BUILD)

check: test

demo: all
	$(Q)tools/demo $(BUILD)

bench: all
	$(Q)tools/bench

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
