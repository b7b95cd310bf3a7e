# Rotator build. `make` builds ./rotator; `make test` installs what is missing, builds and
# runs every test under prove; `make asan` runs the same suite on an ASan+UBSan build.
PKGS    := lua5.4 libcurl libpcre2-8 openssl sqlite3
# Opened at run time where needed (dlopen, util/dl.h), so only their headers are built
# against: libedit for the REPL on a terminal (cli/repl.c), libmicrohttpd for
# --metrics-listen (svc/metrics_http.c).
DLOPEN_PKGS := libedit libmicrohttpd
BUILD   ?= build
OUT     ?= rotator
PREFIX  ?= /usr/local

OPT     ?= -O2 -g
# Recursively expanded on purpose: pkg-config runs when a recipe needs it, after `deps`.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) $(DLOPEN_PKGS))
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

.PHONY: all deps test asan valgrind bench demo install deb clean fuzz fuzz-lib fuzz-merge FORCE

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
# created empty: a fresh install acts on nothing. The examples go to the doc folder; the
# systemd unit (vendor/systemd/rotator.service) gets the installed paths; the manual page
# is the binary's --help.
POLICY_DIR = $(if $(filter /usr,$(PREFIX)),/etc/rotator/policies,$(PREFIX)/etc/rotator/policies)
SYSTEMD_UNIT_DIR ?= $(PREFIX)/lib/systemd/system
install: $(OUT)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/rotator/scripts \
	  $(DESTDIR)$(PREFIX)/share/doc/rotator/examples $(DESTDIR)$(POLICY_DIR) $(DESTDIR)$(SYSTEMD_UNIT_DIR) \
	  $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(OUT) $(DESTDIR)$(PREFIX)/bin/rotator
	cp -R scripts/. $(DESTDIR)$(PREFIX)/share/rotator/scripts/
	cp -R policies/examples/. $(DESTDIR)$(PREFIX)/share/doc/rotator/examples/
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@POLICYDIR@|$(POLICY_DIR)|g' vendor/systemd/rotator.service \
	  > $(DESTDIR)$(SYSTEMD_UNIT_DIR)/rotator.service
	chmod 0644 $(DESTDIR)$(SYSTEMD_UNIT_DIR)/rotator.service
	$(abspath $(OUT)) --scripts $(CURDIR)/scripts --help > $(DESTDIR)$(PREFIX)/share/man/man1/rotator.1.tmp
	{ printf '.TH ROTATOR 1 "" "rotator $$(cat VERSION)" "User Commands"\n.SH NAME\nrotator \\- %s\n.SH DESCRIPTION\n.nf\n' \
	    'restores DynamoDB backups into fresh copies when AWS Backup finishes a job'; \
	  sed -e 's/\\/\\e/g' -e "s/^[.']/\\\\\&&/" $(DESTDIR)$(PREFIX)/share/man/man1/rotator.1.tmp; \
	  printf '.fi\n.SH FILES\n.nf\n/etc/rotator/policies  operator policies\n/etc/default/rotator   service settings\n/var/lib/rotator       journal and control socket\n.fi\n.SH SEE ALSO\n\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1)\n'; } \
	  > $(DESTDIR)$(PREFIX)/share/man/man1/rotator.1
	rm -f $(DESTDIR)$(PREFIX)/share/man/man1/rotator.1.tmp

# `make deb`: rotator_<VERSION>_<arch>.deb from the binary $(OUT), the files `make install
# PREFIX=/usr` puts down (the unit under /lib/systemd/system, as Debian 12 ships units),
# /etc/default/rotator as a conffile and the maintainer scripts in vendor/debian/.
# Depends comes from dpkg-shlibdeps, plus the libraries the binary dlopens (DLOPEN_PKGS:
# libedit2, libmicrohttpd12), which it cannot see; the changelog is dated by the last commit.
DEB_VERSION = $(shell cat VERSION)
DEB_ARCH    = $(shell dpkg --print-architecture)
DEB_DIR     = $(BUILD)/deb
DEB_FILE    = $(BUILD)/rotator_$(DEB_VERSION)_$(DEB_ARCH).deb
deb: $(OUT)
	rm -rf $(DEB_DIR)/root $(DEB_DIR)/src
	$(MAKE) --no-print-directory -o $(OUT) install PREFIX=/usr DESTDIR=$(abspath $(DEB_DIR))/root \
	  SYSTEMD_UNIT_DIR=/lib/systemd/system OUT=$(OUT)
	strip --strip-unneeded --remove-section=.comment --remove-section=.note $(DEB_DIR)/root/usr/bin/rotator
	find $(DEB_DIR)/root -type d -exec chmod 0755 {} +
	find $(DEB_DIR)/root -type f -exec chmod go-w,a+r {} +
	install -d $(DEB_DIR)/root/DEBIAN $(DEB_DIR)/root/etc/default $(DEB_DIR)/src/debian
	install -m 0644 vendor/debian/default $(DEB_DIR)/root/etc/default/rotator
	install -m 0644 vendor/debian/copyright $(DEB_DIR)/root/usr/share/doc/rotator/copyright
	d=$$(date -R -u -d @$$(git log -1 --format=%ct 2>/dev/null || date +%s)); \
	  sed -e 's|@VERSION@|$(DEB_VERSION)|' -e "s|@DATE@|$$d|" vendor/debian/changelog \
	  | gzip -9n > $(DEB_DIR)/root/usr/share/doc/rotator/changelog.gz
	gzip -9n $(DEB_DIR)/root/usr/share/man/man1/rotator.1
	install -m 0755 vendor/debian/postinst vendor/debian/prerm vendor/debian/postrm $(DEB_DIR)/root/DEBIAN/
	install -m 0644 vendor/debian/conffiles $(DEB_DIR)/root/DEBIAN/conffiles
	printf 'Source: rotator\n\nPackage: rotator\nArchitecture: any\n' > $(DEB_DIR)/src/debian/control
	deps=$$(cd $(DEB_DIR)/src && dpkg-shlibdeps -O $(abspath $(DEB_DIR))/root/usr/bin/rotator | sed -n 's/^shlibs:Depends=//p'); \
	  test -n "$$deps" || { echo "make deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }; \
	  size=$$(du -sk --exclude=DEBIAN $(DEB_DIR)/root | cut -f1); \
	  sed -e 's|@VERSION@|$(DEB_VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' -e "s|@SIZE@|$$size|" \
	    -e "s|@DEPENDS@|$$deps|" vendor/debian/control > $(DEB_DIR)/root/DEBIAN/control
	cd $(DEB_DIR)/root && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
	  | sort -z | xargs -0 md5sum > DEBIAN/md5sums
	dpkg-deb --root-owner-group -Zxz --build $(DEB_DIR)/root $(DEB_FILE)
	@echo "make deb: $(DEB_FILE)"

clean:
	rm -rf $(BUILD) $(OUT)

# libFuzzer harnesses (tests/fuzz/*.c) against a library built by clang with coverage,
# ASan and UBSan. `make fuzz FUZZ_SECONDS=N` runs each harness N seconds in turn; corpora
# grow under build/fuzz/corpus/<harness> (seeded from tests/fuzz/corpus/<harness> when it
# exists); a crash leaves its input in build/fuzz/ and fails the target.
FUZZ_SECONDS ?= 60
FUZZ_SAN = -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
FUZZ_HARNESSES = $(patsubst tests/fuzz/%.c,build/fuzz/bin/%,$(wildcard tests/fuzz/fuzz_*.c))
# One sub-make builds the instrumented library; every harness links against it (with -j,
# one sub-make per harness would build the same objects side by side).
fuzz-lib: FORCE
	@$(MAKE) --no-print-directory build/fuzz/librotator.a BUILD=build/fuzz CC=clang OPT='-O1 -g' SAN='$(FUZZ_SAN)'
build/fuzz/bin/%: tests/fuzz/%.c fuzz-lib
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
	  -Ihost -Ibuild/fuzz $(PKG_CFLAGS) -o $@ $< build/fuzz/librotator.a $(ALL_LIBS)
# `make fuzz-merge` minimises each committed corpus together with what `make fuzz` found
# (libFuzzer's set-cover merge: the same features from fewer inputs) back into
# tests/fuzz/corpus/<harness>; inputs named crash-* (those of fixed findings) always stay.
fuzz-merge: deps $(FUZZ_HARNESSES)
	@set -e; for h in $(FUZZ_HARNESSES); do n=$$(basename $$h); \
	  rm -rf build/fuzz/merged/$$n; mkdir -p build/fuzz/merged/$$n build/fuzz/corpus/$$n tests/fuzz/corpus/$$n; \
	  if ! (cd build/fuzz && ./bin/$$n -set_cover_merge=1 -timeout=10 merged/$$n $(CURDIR)/tests/fuzz/corpus/$$n \
	        corpus/$$n > merge-$$n.log 2>&1); then tail -n 20 build/fuzz/merge-$$n.log; exit 1; fi; \
	  for c in tests/fuzz/corpus/$$n/crash-*; do if [ -e "$$c" ]; then cp "$$c" build/fuzz/merged/$$n/; fi; done; \
	  rm -rf tests/fuzz/corpus/$$n; mv build/fuzz/merged/$$n tests/fuzz/corpus/$$n; \
	  echo "fuzz-merge: $$n: $$(ls tests/fuzz/corpus/$$n | wc -l) inputs"; done
fuzz: deps $(FUZZ_HARNESSES)
	@set -e; for h in $(FUZZ_HARNESSES); do n=$$(basename $$h); \
	  mkdir -p build/fuzz/corpus/$$n; seeds=""; [ -d tests/fuzz/corpus/$$n ] && seeds=$(CURDIR)/tests/fuzz/corpus/$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS) s"; \
	  if ! (cd build/fuzz && ./bin/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 corpus/$$n $$seeds > $$n.log 2>&1); then \
	    tail -n 40 build/fuzz/$$n.log; echo "fuzz: $$n FAILED (input and log in build/fuzz/)"; exit 1; fi; \
	  grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)' build/fuzz/$$n.log || tail -n 5 build/fuzz/$$n.log; done
