# Rotator build. `make` builds ./rotator; `make test` installs what is missing, builds and
# runs every test under prove; `make asan` runs the same suite on an ASan+UBSan build.
PKGS    := lua5.4 libcurl libpcre2-8 openssl libedit sqlite3 libsystemd
BUILD   ?= build
OUT     ?= rotator
PREFIX  ?= /usr/local

OPT     ?= -O2 -g
# Recursively expanded on purpose: pkg-config runs when a recipe needs it, after `deps`.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
ALL_CFLAGS = -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE $(OPT) $(SAN) \
             -Ihost -I$(BUILD) $(PKG_CFLAGS) $(CFLAGS)
ALL_LIBS   = $(PKG_LIBS) -lm $(LDLIBS)

MAIN_SRC  := host/cli/main.c
LIB_SRCS  := $(filter-out $(MAIN_SRC),$(sort $(shell find host -name '*.c')))
LIB_OBJS  := $(LIB_SRCS:host/%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
HEADERS   := $(sort $(shell find host -name '*.h')) tests/tap.h

.PHONY: all deps test asan valgrind bench demo install clean fuzz FORCE

# Each fuzz harness also builds with the normal compiler and flags into a corpus replayer
# (tests/fuzz/replay_main.c): the suite runs every committed corpus once.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz-replay/%)
# tests/faults/diskfault.c: the LD_PRELOAD disk-fault shim the journal fault tests load.
DISKFAULT := $(BUILD)/tests/libdiskfault.so
all: $(OUT) $(UNIT_BINS) $(FUZZ_REPLAY_BINS) $(DISKFAULT)

$(BUILD)/obj/%.o: host/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# version.h carries VERSION and the git revision; rewritten only when they change, so a
# new commit rebuilds just the files that print them.
$(BUILD)/version.h: FORCE
	@mkdir -p $(dir $@)
	@v=$$(cat VERSION 2>/dev/null || echo 0.0.0); r=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown); \
	 printf '#define ROTATOR_VERSION "%s"\n#define ROTATOR_GITREV "%s"\n' "$$v" "$$r" > $@.tmp; \
	 if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(BUILD)/obj/cli/main.o $(BUILD)/obj/lua/lib/host.o $(BUILD)/obj/cli/repl.o: $(BUILD)/version.h

$(BUILD)/librotator.a: $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(OUT): $(BUILD)/obj/cli/main.o $(BUILD)/librotator.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/librotator.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/librotator.a $(ALL_LIBS)

$(DISKFAULT): tests/faults/diskfault.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE $(OPT) -fPIC -shared -o $@ $< -ldl

$(BUILD)/fuzz-replay/%: tests/fuzz/%.c tests/fuzz/replay_main.c $(BUILD)/librotator.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< tests/fuzz/replay_main.c $(BUILD)/librotator.a $(ALL_LIBS)

deps:
	@./vendor/install-deps.sh

# The README's test command. Installs Debian packages and the test bed's venv if missing.
test: deps
	@$(MAKE) --no-print-directory all
	@ROTATOR=$(CURDIR)/$(OUT) ROTATOR_BUILD=$(CURDIR)/$(BUILD) ./tests/run

asan: deps
	@$(MAKE) --no-print-directory all BUILD=build/asan OUT=build/asan/rotator OPT='-O1 -g' \
	  SAN='-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all'
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  ROTATOR=$(CURDIR)/build/asan/rotator ROTATOR_BUILD=$(CURDIR)/build/asan ./tests/run

# The C unit tests under valgrind: any leak or invalid access fails the run.
valgrind: deps
	@$(MAKE) --no-print-directory all
	@ROTATOR_ROOT=$(CURDIR) prove --exec 'valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=9' $(UNIT_BINS)

bench: deps
	@$(MAKE) --no-print-directory all
	@ROTATOR=$(CURDIR)/$(OUT) ./tests/bench/run

demo: deps
	@$(MAKE) --no-print-directory all
	@ROTATOR=$(CURDIR)/$(OUT) ./tests/demo/run

# Policies are read from /etc/rotator/policies (PREFIX=/usr) or PREFIX/etc/rotator/policies,
# created empty: a fresh install acts on nothing. The examples go to the doc folder.
POLICY_DIR = $(if $(filter /usr,$(PREFIX)),/etc/rotator/policies,$(PREFIX)/etc/rotator/policies)
install: $(OUT)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/rotator/scripts \
	  $(DESTDIR)$(PREFIX)/share/doc/rotator/examples $(DESTDIR)$(POLICY_DIR)
	install -m 0755 $(OUT) $(DESTDIR)$(PREFIX)/bin/rotator
	cp -R scripts/. $(DESTDIR)$(PREFIX)/share/rotator/scripts/
	cp -R policies/examples/. $(DESTDIR)$(PREFIX)/share/doc/rotator/examples/

clean:
	rm -rf $(BUILD) $(OUT)

# libFuzzer harnesses (tests/fuzz/*.c) against a library built by clang with coverage,
# ASan and UBSan. `make fuzz FUZZ_SECONDS=N` runs each harness N seconds in turn; corpora
# grow under build/fuzz/corpus/<harness> (seeded from tests/fuzz/corpus/<harness> when it
# exists); a crash leaves its input in build/fuzz/ and fails the target.
FUZZ_SECONDS ?= 60
FUZZ_SAN = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
FUZZ_HARNESSES = $(patsubst tests/fuzz/%.c,build/fuzz/bin/%,$(wildcard tests/fuzz/fuzz_*.c))
build/fuzz/bin/%: tests/fuzz/%.c FORCE
	@$(MAKE) --no-print-directory build/fuzz/librotator.a BUILD=build/fuzz CC=clang OPT='-O1 -g' SAN='$(FUZZ_SAN)'
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
	  -Ihost -Ibuild/fuzz $(PKG_CFLAGS) -o $@ $< build/fuzz/librotator.a $(ALL_LIBS)
fuzz: deps $(FUZZ_HARNESSES)
	@set -e; for h in $(FUZZ_HARNESSES); do n=$$(basename $$h); \
	  mkdir -p build/fuzz/corpus/$$n; seeds=""; [ -d tests/fuzz/corpus/$$n ] && seeds=$(CURDIR)/tests/fuzz/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  if ! (cd build/fuzz && ./bin/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 corpus/$$n $$seeds > $$n.log 2>&1); then \
	    tail -n 40 build/fuzz/$$n.log; echo "fuzz: $$n FAILED (input and log in build/fuzz/)"; exit 1; fi; \
	  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' build/fuzz/$$n.log || tail -n 5 build/fuzz/$$n.log; done
