# dbha build. `make` builds the release tree, `make check` builds it again
# with ASan+UBSan and runs every test against that build.
#
# Outputs: bin/dbagent, bin/dbctl (release), build/lib/libdbha.a and
# build/lib/libdbha.so (release), build/asan/... (sanitized, used by tests).
# O=DIR moves the object tree (two builds in one checkout do not collide).
# CPPFLAGS, CFLAGS and LDFLAGS from the environment or the command line are
# appended to each variant's own flags.
#
# Per variant: libinternal.a is lib/ (the code dbagent, dbctl, the tests and
# the drivers share; never installed); libdbha-intree.a is libdbha/'s objects
# as compiled (in-tree links that reach libdbha's internals: unit tests, the
# binaries' version). libdbha.o is libdbha/ plus the lib/ objects the linker
# pulls for it, with every symbol but the public dbha_* made local; the
# installed libdbha.a holds that one object and libdbha.so is linked from it.

O        ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
# Install directories (`make install`, `make deb` sets them for Debian: /usr,
# a multiarch LIBDIR, /lib/systemd/system). SYSCONFDIR is /etc for every
# PREFIX: the unit reads /etc/dbha/INSTANCE.yml.
BINDIR   ?= $(PREFIX)/bin
LIBDIR   ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR   ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR  ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
CC       ?= cc
OBJCOPY  ?= objcopy
PYTHON   ?= /usr/bin/python3
VERSION  := 0.1.0
SOVER    := 0

PKGS         := libpq yaml-0.1 libcurl jansson libmicrohttpd libsystemd gnutls
# Recursively expanded on purpose: pkg-config runs only after `deps` has
# installed what it needs.
PKG_CFLAGS    = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS      = $(shell pkg-config --libs $(PKGS))
# What libdbha itself links: the etcd client (libcurl, jansson), the pool
# (libpq) and its thread. Not libyaml, libsystemd or libmicrohttpd.
CLIENT_PKGS  := libpq libcurl jansson
CLIENT_LIBS   = $(strip $(shell pkg-config --libs $(CLIENT_PKGS)) -pthread)
CMOCKA_LIBS   = $(shell pkg-config --libs cmocka)

WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes -Wstrict-prototypes \
            -Wjump-misses-init \
            -Wno-unused-parameter
BASE     := -std=c11 -D_GNU_SOURCE -DDBHA_VERSION='"$(VERSION)"' $(WARN) -Iinclude -Ilib -Iagent -MMD -MP \
            -fPIC -fvisibility=hidden
CFLAGS_release := $(BASE) -O2 -g
CFLAGS_asan    := $(BASE) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
                  -fno-sanitize-recover=all
LDFLAGS_release :=
LDFLAGS_asan    := -fsanitize=address,undefined

LIB_SRCS   := $(sort $(wildcard lib/*.c))
LIBDBHA_SRCS := $(sort $(wildcard libdbha/*.c))
AGENT_SRCS := $(sort $(wildcard agent/*.c))
CTL_SRCS   := $(sort $(wildcard ctl/*.c))
UNIT_SRCS  := $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRCS  := $(sort $(wildcard tests/tools/*.c))
UNIT_FAKES := $(sort $(wildcard tests/unit/fake_*.c))
BENCH_SRCS := $(sort $(wildcard bench/src/*.c))
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
C_SRCS     := $(LIB_SRCS) $(LIBDBHA_SRCS) $(AGENT_SRCS) $(CTL_SRCS) $(UNIT_SRCS) $(TOOL_SRCS) \
              $(UNIT_FAKES) $(BENCH_SRCS) $(EXAMPLE_SRCS)
HEADERS    := $(wildcard lib/*.h libdbha/*.h agent/*.h ctl/*.h include/dbha/*.h tests/unit/*.h)

.PHONY: all deps deps-test deps-lint deps-bench deps-deb bench bench-footprint check unit integration chaos asan release \
        install uninstall examples dist man unit-file man-check deb deb-check \
        format format-check lint demo demo-stop clean

all: release
	@mkdir -p bin
	cp -f $(O)/release/bin/dbagent $(O)/release/bin/dbctl bin/
	$(MAKE) --no-print-directory dist

# What `make install` and the Debian package install, and nothing else of
# the release variant (no unit tests, drivers or examples): the binaries,
# $(O)/lib/ (libdbha and its .pc file), $(O)/man/ and the unit.
dist: $(O)/release/bin/dbagent $(O)/release/bin/dbctl $(O)/release/libdbha.a \
      $(O)/release/libdbha.so.$(VERSION) man unit-file
	@mkdir -p $(O)/lib
	cp -f $(O)/release/libdbha.a $(O)/lib/libdbha.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(CLIENT_LIBS)|' \
		-e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${exec_prefix}/%,$(LIBDIR))|' \
		-e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
		libdbha/libdbha.pc.in >$(O)/lib/libdbha.pc
	cp -f $(O)/release/libdbha.so.$(VERSION) $(O)/lib/
	ln -sf libdbha.so.$(VERSION) $(O)/lib/libdbha.so.$(SOVER)
	ln -sf libdbha.so.$(SOVER) $(O)/lib/libdbha.so

# Man pages: dbagent.yml(5) from docs/configuration.md and dbctl(1) from
# dbctl's --help texts (scripts/gen-man.py), so neither can drift from its
# source; dbagent(8) and libdbha(3) are man/*.in. `make man-check` (in
# `make check`) fails when a dbctl or dbagent option, a libdbha function or a
# configuration key is missing from its page, or a page has roff warnings.
MAN_PAGES := $(O)/man/dbagent.8 $(O)/man/dbctl.1 $(O)/man/dbagent.yml.5 $(O)/man/libdbha.3
man: $(MAN_PAGES)
$(O)/man/dbagent.yml.5: docs/configuration.md scripts/gen-man.py
	@mkdir -p $(@D)
	$(PYTHON) scripts/gen-man.py config $< $(VERSION) >$@.tmp && mv $@.tmp $@
$(O)/man/dbctl.1: $(O)/release/bin/dbctl scripts/gen-man.py
	@mkdir -p $(@D)
	$(PYTHON) scripts/gen-man.py dbctl $< $(VERSION) >$@.tmp && mv $@.tmp $@
$(O)/man/%: man/%
	@mkdir -p $(@D)
	sed -e 's|@VERSION@|$(VERSION)|' $< >$@
man-check: man
	$(PYTHON) scripts/gen-man.py check $(O)/man
	@for p in $(MAN_PAGES); do \
		w=$$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l $$p 2>&1 >/dev/null); \
		[ -z "$$w" ] || { echo "man-check: $$p: $$w" >&2; exit 1; }; \
	done; echo "man-check: $(words $(MAN_PAGES)) pages, every option, function and key named"

# The systemd unit with this build's BINDIR (regenerated every time: BINDIR
# may differ between two makes).
.PHONY: $(O)/systemd/dbagent@.service
unit-file: $(O)/systemd/dbagent@.service
$(O)/systemd/dbagent@.service: packaging/systemd/dbagent@.service.in
	@mkdir -p $(@D)
	sed -e 's|@BINDIR@|$(BINDIR)|g' $< >$@

deps:
	@scripts/deps.sh build
deps-test:
	@scripts/deps.sh test
deps-lint:
	@scripts/deps.sh lint
deps-bench:
	@scripts/deps.sh bench
deps-deb:
	@scripts/deps.sh deb

# $(1) = variant (release|asan)
define VARIANT_RULES
$(O)/$(1)/%.o: %.c | deps
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS_$(1)) $$(DIR_CPPFLAGS) $$(CPPFLAGS) $$(CFLAGS) $$(PKG_CFLAGS) -c $$< -o $$@

# The unit tests also drive libdbha's internals (libdbha/dbha-internal.h).
$(O)/$(1)/tests/unit/%.o: DIR_CPPFLAGS := -Ilibdbha

$(O)/$(1)/libinternal.a: $$(LIB_SRCS:%.c=$(O)/$(1)/%.o)
	@rm -f $$@
	ar rcs $$@ $$^

$(O)/$(1)/libdbha-intree.a: $$(LIBDBHA_SRCS:%.c=$(O)/$(1)/%.o)
	@rm -f $$@
	ar rcs $$@ $$^

# One relocatable object: libdbha's objects and the members of
# libinternal.a they reach (the linker decides which), then every hidden
# symbol made local, which leaves the DBHA_API ones (dbha_*) global.
$(O)/$(1)/libdbha.o: $$(LIBDBHA_SRCS:%.c=$(O)/$(1)/%.o) $(O)/$(1)/libinternal.a
	$$(CC) -r -nostdlib -o $$@.tmp $$^
	$$(OBJCOPY) --localize-hidden $$@.tmp $$@
	@rm -f $$@.tmp

$(O)/$(1)/libdbha.a: $(O)/$(1)/libdbha.o
	@rm -f $$@
	ar rcs $$@ $$^

$(O)/$(1)/libdbha.so.$(VERSION): $(O)/$(1)/libdbha.o libdbha/libdbha.map
	$$(CC) -shared -Wl,-soname,libdbha.so.$(SOVER) -Wl,--version-script=libdbha/libdbha.map \
		-Wl,--no-undefined $$(LDFLAGS_$(1)) $$(LDFLAGS) -o $$@ $$< $$(CLIENT_LIBS)

# The agent's modules (all but main.c) as an archive, so unit tests and
# drivers can link the module they test.
$(O)/$(1)/libagent.a: $$(filter-out $(O)/$(1)/agent/main.o,$$(AGENT_SRCS:%.c=$(O)/$(1)/%.o))
	@rm -f $$@
	ar rcs $$@ $$^

$(O)/$(1)/bin/dbagent: $(O)/$(1)/agent/main.o $(O)/$(1)/libagent.a $(O)/$(1)/libdbha-intree.a \
                       $(O)/$(1)/libinternal.a
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS_$(1)) $$(LDFLAGS) -o $$@ $$^ $$(PKG_LIBS)

$(O)/$(1)/bin/dbctl: $$(CTL_SRCS:%.c=$(O)/$(1)/%.o) $(O)/$(1)/libdbha-intree.a $(O)/$(1)/libinternal.a
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS_$(1)) $$(LDFLAGS) -o $$@ $$^ $$(PKG_LIBS)

# Unit tests: one binary per tests/unit/test_<module>.c, linked with the
# fakes and the archives (the linker pulls only the objects used).
$(O)/$(1)/tests/unit/%: $(O)/$(1)/tests/unit/%.o $$(UNIT_FAKES:%.c=$(O)/$(1)/%.o) $(O)/$(1)/libagent.a \
                       $(O)/$(1)/libdbha-intree.a $(O)/$(1)/libinternal.a
	$$(CC) $$(LDFLAGS_$(1)) $$(LDFLAGS) -o $$@ $$^ $$(PKG_LIBS) $$(CMOCKA_LIBS)

# Test drivers the integration tests run against real peers.
$(O)/$(1)/tests/tools/%: $(O)/$(1)/tests/tools/%.o $(O)/$(1)/libagent.a $(O)/$(1)/libinternal.a
	$$(CC) $$(LDFLAGS_$(1)) $$(LDFLAGS) -o $$@ $$^ $$(PKG_LIBS)

# Example programs: applications linked against libdbha.a and what it
# needs, as an application outside the tree would.
$(O)/$(1)/examples/%: $(O)/$(1)/examples/%.o $(O)/$(1)/libdbha.a
	$$(CC) $$(LDFLAGS_$(1)) $$(LDFLAGS) -o $$@ $$^ $$(CLIENT_LIBS)

$(1): $(O)/$(1)/bin/dbagent $(O)/$(1)/bin/dbctl $(O)/$(1)/libdbha.a $(O)/$(1)/libdbha.so.$(VERSION) \
      $$(UNIT_SRCS:%.c=$(O)/$(1)/%) $$(TOOL_SRCS:%.c=$(O)/$(1)/%) $$(EXAMPLE_SRCS:%.c=$(O)/$(1)/%)
endef

$(eval $(call VARIANT_RULES,release))
$(eval $(call VARIANT_RULES,asan))

examples: $(EXAMPLE_SRCS:%.c=$(O)/release/%)

.SECONDARY:

# Sanitizer settings for every test process: any report aborts the process
# with a non-zero status, and integration tests also scan the log_path files.
SAN_ENV := ASAN_OPTIONS=abort_on_error=0:halt_on_error=1:detect_leaks=1:exitcode=99 \
           UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=99

# test_ha enumerates every operator request only in the release build (under
# ASan, none): both run, each binary from its own (sanitized or release)
# build. Each binary is a target of its own, so `make -jN -O unit` runs N at
# a time with each one's output together (`make check` does).
UNIT_RUNS := $(O)/release/tests/unit/test_ha.run $(UNIT_SRCS:%.c=$(O)/asan/%.run)
.PHONY: $(UNIT_RUNS)
unit: $(UNIT_RUNS)
$(filter $(O)/asan/%,$(UNIT_RUNS)): $(O)/asan/%.run: $(O)/asan/%
	@echo "== $<"; $(SAN_ENV) $<
$(O)/release/tests/unit/test_ha.run: $(O)/release/tests/unit/test_ha
	@echo "== $<"; TEST_HA_GROUPS=$(TEST_HA_GROUPS) $<
# TEST_HA_GROUPS: empty (both), table, or exhaustive (tests/unit/test_ha.c)
TEST_HA_GROUPS ?=

# Two passes: the modules marked `concurrent` (they measure no time; see
# tests/integration/conftest.py) ITEST_JOBS at a time, a module per worker,
# then the rest one at a time. Both passes run; either failing fails the
# target. Exit status 5 is pytest's "no test selected" (PYTEST_ARGS=-k ...).
# 3 on 2 cores: the concurrent modules mostly wait on their processes
# (the pass of 0043b82: 7 min 35 s with 3, 10 min 4 s with 2, all passed)
ITEST_JOBS ?= 3
ITEST_RUN = cd tests/integration && DBHA_BUILD=$(abspath $(O)/asan) $(SAN_ENV) \
	$(PYTHON) -m pytest -v -p no:cacheprovider --durations=60
# ITEST_BESIDE: a command (`make check`: test_ha's exhaustive group, then
# deb-check, which builds, installs and purges the packages; no test runs
# what they install) run at nice 19 beside the concurrent pass, whose
# modules measure no time, and waited for before the pass that does; its
# output and status count.
ITEST_BESIDE ?=
integration: asan deps-test
	@rc=0; bp=; \
	if [ -n "$(ITEST_BESIDE)" ]; then \
		(nice -n 19 $(ITEST_BESIDE) > $(O)/itest-beside.log 2>&1; \
		 echo $$? > $(O)/itest-beside.rc) & bp=$$!; \
	fi; \
	($(ITEST_RUN) -n $(ITEST_JOBS) --dist loadfile -m concurrent $(PYTEST_ARGS) .) || \
		{ r=$$?; [ $$r -eq 5 ] || rc=$$r; }; \
	if [ -n "$$bp" ]; then \
		wait $$bp; echo "== (beside the concurrent pass) $(ITEST_BESIDE)"; \
		cat $(O)/itest-beside.log; \
		[ "$$(cat $(O)/itest-beside.rc)" = 0 ] || rc=1; \
	fi; \
	($(ITEST_RUN) -m "not concurrent" $(PYTEST_ARGS) .) || \
		{ r=$$?; [ $$r -eq 5 ] || rc=$$r; }; \
	exit $$rc

# Randomized faults (tests/integration/chaos_rounds.py; `make check` runs a
# short version, test_chaos.py): ROUNDS rounds of one or two faults each on
# one cluster; SEED (default: the time) makes them replayable, FIRST the first
# round's number; FAULTS (e.g. starve@leader,stop-agent@leader) applies those
# faults in every round instead of drawn ones, HOLD (s) holds them that long.
ROUNDS ?= 10
SEED   ?=
FIRST  ?= 0
FAULTS ?=
HOLD   ?=
chaos: asan deps-test
	cd tests/integration && DBHA_BUILD=$(abspath $(O)/asan) $(SAN_ENV) \
		CHAOS_ROUNDS=$(ROUNDS) CHAOS_SEED=$(SEED) CHAOS_FIRST=$(FIRST) CHAOS_FAULTS=$(FAULTS) \
		CHAOS_HOLD=$(HOLD) \
		$(PYTHON) -m pytest -v -s -p no:cacheprovider chaos_rounds.py

# The release build first (warnings are errors), formatting and cppcheck, an
# install into a temporary DESTDIR, then everything sanitized.
# The builds first, as many compiles at a time as there are CPUs: they are
# independent, and one at a time they took a few minutes of CI's 30. The unit
# binaries as many at a time too; the HA table's exhaustive check (1 min 42 s
# on both cores) at nice 19 beside the integration modules that measure no
# time, instead of before them.
CHECK_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
check: deps-test deps-lint deps-deb
	$(MAKE) -j$(CHECK_JOBS) all asan $(O)/release/tests/unit/test_ha \
		$(FUZZ_NAMES:%=$(O)/asan/fuzz/replay_%)
	$(MAKE) format-check lint
	$(PYTHON) tests/check_parts.py $(O)/release
	tests/install_check.sh
	$(MAKE) man-check
	$(MAKE) -j$(CHECK_JOBS) -O unit TEST_HA_GROUPS=table
	$(MAKE) fuzz-replay
	$(MAKE) integration ITEST_BESIDE="sh -c 'TEST_HA_GROUPS=exhaustive \
		$(abspath $(O)/release/tests/unit/test_ha) && $(MAKE) deb-check'"


# PREFIX=/usr/local by default; DESTDIR stages. The unit (UNITDIR) runs
# $(BINDIR)/dbagent. /etc/dbha is created empty: the configurations are the
# operator's. A Python binding (issue 18, point 5) would go to
# $(PREFIX)/lib/python3/dist-packages/dbha/ here.
install: dist
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/dbha \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(SYSCONFDIR)/dbha
	install -m 0755 $(O)/release/bin/dbagent $(O)/release/bin/dbctl $(DESTDIR)$(BINDIR)/
	install -m 0644 $(O)/lib/libdbha.a $(DESTDIR)$(LIBDIR)/
	install -m 0644 $(O)/lib/libdbha.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libdbha.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdbha.so.$(SOVER)
	ln -sf libdbha.so.$(SOVER) $(DESTDIR)$(LIBDIR)/libdbha.so
	install -m 0644 include/dbha/*.h $(DESTDIR)$(INCLUDEDIR)/dbha/
	install -m 0644 $(O)/lib/libdbha.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 0644 $(O)/man/dbctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(O)/man/libdbha.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 0644 $(O)/man/dbagent.yml.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(O)/man/dbagent.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(O)/systemd/dbagent@.service $(DESTDIR)$(UNITDIR)/
	install -m 0644 packaging/bash-completion/dbctl $(DESTDIR)$(BASHCOMPDIR)/
	install -d $(DESTDIR)$(PREFIX)/share/dbha/prometheus $(DESTDIR)$(PREFIX)/share/dbha/grafana
	install -m 0644 packaging/prometheus/dbha-alerts.yml $(DESTDIR)$(PREFIX)/share/dbha/prometheus/
	install -m 0644 packaging/grafana/dbha-dashboard.json $(DESTDIR)$(PREFIX)/share/dbha/grafana/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dbagent $(DESTDIR)$(BINDIR)/dbctl
	rm -f $(DESTDIR)$(LIBDIR)/libdbha.* $(DESTDIR)$(LIBDIR)/pkgconfig/libdbha.pc
	rm -rf $(DESTDIR)$(INCLUDEDIR)/dbha
	rm -f $(DESTDIR)$(MANDIR)/man1/dbctl.1 $(DESTDIR)$(MANDIR)/man3/libdbha.3 \
		$(DESTDIR)$(MANDIR)/man5/dbagent.yml.5 $(DESTDIR)$(MANDIR)/man8/dbagent.8
	rm -f $(DESTDIR)$(UNITDIR)/dbagent@.service $(DESTDIR)$(BASHCOMPDIR)/dbctl
	rm -f $(DESTDIR)$(PREFIX)/share/dbha/prometheus/dbha-alerts.yml \
		$(DESTDIR)$(PREFIX)/share/dbha/grafana/dbha-dashboard.json
	-rmdir $(DESTDIR)$(PREFIX)/share/dbha/prometheus $(DESTDIR)$(PREFIX)/share/dbha/grafana \
		$(DESTDIR)$(PREFIX)/share/dbha 2>/dev/null
	-rmdir $(DESTDIR)$(SYSCONFDIR)/dbha 2>/dev/null

# Debian packages (debian/): dbha, libdbha0, libdbha-dev and their debug
# symbols, built with dpkg-buildflags' hardening and without the test suite
# (`make check` runs it); they land in $(DEB_OUT) (default: $(O)/deb).
# `make deb-check` builds them, runs lintian, installs them on this machine,
# checks what they install and purges them (tests/package/deb_check.sh).
DEB_OUT ?= $(O)/deb
deb: deps-deb
	scripts/build-deb.sh $(abspath $(DEB_OUT))
deb-check: deps-deb
	tests/package/deb_check.sh $(abspath $(DEB_OUT))

FORMAT_FILES = $(C_SRCS) $(HEADERS)
format: deps-lint
	clang-format-16 -i $(FORMAT_FILES)
format-check: deps-lint
	clang-format-16 --dry-run --Werror $(FORMAT_FILES)

# cppcheck does not understand __attribute__((cleanup)), so every _cleanup_
# variable looks leaked to it; leaks are LeakSanitizer's job in `make check`.
lint: deps-lint deps
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
		--inline-suppr --suppress=missingIncludeSystem --suppress=memleak \
		-Iinclude -Ilib -Iagent -D_GNU_SOURCE \
		$(LIB_SRCS) $(LIBDBHA_SRCS) $(AGENT_SRCS) $(CTL_SRCS)

# Benchmarks against Patroni 3.0.2 on loopback; results in bench/results/.
# `make bench` runs them one after another; `make bench BENCH=switchover` (or
# `make bench-switchover`) runs a subset. BENCH_ARGS goes to every script run.
BENCH ?= footprint failover switchover rest sync topology
.PHONY: bench-failover bench-switchover bench-rest bench-sync bench-topology
bench: deps-bench all
	@fail=0; for b in $(BENCH); do \
	    $(MAKE) --no-print-directory bench-$$b || fail=1; \
	done; exit $$fail
bench-failover: deps-bench all
	$(PYTHON) bench/failover $(BENCH_ARGS)
bench-switchover: deps-bench all
	$(PYTHON) bench/switchover $(BENCH_ARGS)
bench-rest: deps-bench all
	$(PYTHON) bench/rest $(BENCH_ARGS)
bench-sync: deps-bench all
	$(PYTHON) bench/sync $(BENCH_ARGS)
# Routers after a failover (HAProxy, pgbouncer, libdbha) and libdbha lookups/s.
bench-topology: deps-bench all examples $(O)/bench/topo-lookup
	DBHA_BENCH_BUILD=$(abspath $(O)) $(PYTHON) bench/topology $(BENCH_ARGS)

# The resident-memory floor of the agent's libraries (no cluster needed).
bench-footprint: deps all $(O)/bench/libfloor $(O)/bench/bare $(O)/bench/probefloor
	$(PYTHON) bench/footprint --floor $(O)/bench/libfloor --bare $(O)/bench/bare \
		--probe-floor $(O)/bench/probefloor --agent bin/dbagent $(BENCH_ARGS)

$(O)/bench/libfloor: bench/src/libfloor.c | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_release) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) $< -o $@ $(PKG_LIBS)
# Topology lookups/s through libdbha: cache vs a fresh etcd read.
$(O)/bench/topo-lookup: bench/src/topo-lookup.c $(O)/release/libdbha.a | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_release) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) $< $(O)/release/libdbha.a -o $@ \
		$(CLIENT_LIBS)
# The CPU floor of probing PostgreSQL every loop (the agent's query, nothing else).
$(O)/bench/probefloor: bench/src/probefloor.c agent/pgprobe_sql.h | deps
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_release) $(CPPFLAGS) $(CFLAGS) $(shell pkg-config --cflags libpq) -Iagent $(LDFLAGS) \
		$< -o $@ $(shell pkg-config --libs libpq)
$(O)/bench/bare: bench/src/libfloor.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_release) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -DFLOOR_BARE $< -o $@

demo: deps-test all
	scripts/demo.sh start
demo-stop:
	scripts/demo.sh stop

clean:
	rm -rf $(O) bin

# ---- fuzzing (fuzz/README.md) ------------------------------------------------
# `make fuzz`: every fuzz/fuzz_<name>.c as a libFuzzer binary (clang, with
# ASan+UBSan over its own copy of lib/ and agent/ in $(O)/fuzz/), each run
# FUZZ_SECONDS on fuzz/corpus/<name>/ (new inputs go to $(O)/fuzz/scratch/,
# a crash input is copied to fuzz/crashes/<name>/ and fails the run).
# `make fuzz-replay`: the same targets with fuzz/replay.c instead of
# libFuzzer, built in the asan variant, over every committed input.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_MAX_LEN ?= 16384
FUZZ_SRCS    := $(sort $(wildcard fuzz/*.c))
FUZZ_NAMES   := $(patsubst fuzz/fuzz_%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
# gcc-only warnings clang would reject under -Werror.
FUZZ_WARN_GCC_ONLY := -Wjump-misses-init
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
CFLAGS_fuzz  := $(filter-out $(FUZZ_WARN_GCC_ONLY),$(BASE)) -O1 -g -fno-omit-frame-pointer \
                $(FUZZ_SAN) -fsanitize=fuzzer-no-link
LDFLAGS_fuzz := $(FUZZ_SAN) -fsanitize=fuzzer
FUZZ_OBJ     := $(O)/fuzz/obj

.PHONY: fuzz fuzz-build fuzz-replay deps-fuzz lint-fuzz

deps-fuzz:
	@scripts/deps.sh fuzz

$(FUZZ_OBJ)/%.o: %.c | deps-fuzz
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CFLAGS_fuzz) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(FUZZ_OBJ)/libinternal.a: $(LIB_SRCS:%.c=$(FUZZ_OBJ)/%.o)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_OBJ)/libagent.a: $(filter-out $(FUZZ_OBJ)/agent/main.o,$(AGENT_SRCS:%.c=$(FUZZ_OBJ)/%.o))
	@rm -f $@
	ar rcs $@ $^

$(O)/fuzz/bin/fuzz_%: $(FUZZ_OBJ)/fuzz/fuzz_%.o $(FUZZ_OBJ)/libagent.a $(FUZZ_OBJ)/libinternal.a
	@mkdir -p $(@D)
	$(FUZZ_CC) $(LDFLAGS_fuzz) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

fuzz-build: $(FUZZ_NAMES:%=$(O)/fuzz/bin/fuzz_%)

fuzz: deps-fuzz fuzz-build
	fuzz/run.sh $(O)/fuzz $(FUZZ_SECONDS) $(FUZZ_MAX_LEN) $(FUZZ_NAMES)

$(O)/asan/fuzz/replay_%: $(O)/asan/fuzz/fuzz_%.o $(O)/asan/fuzz/replay.o $(O)/asan/libagent.a \
                         $(O)/asan/libinternal.a
	$(CC) $(LDFLAGS_asan) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

fuzz-replay: $(FUZZ_NAMES:%=$(O)/asan/fuzz/replay_%)
	@set -e; for n in $(FUZZ_NAMES); do \
		$(SAN_ENV) $(O)/asan/fuzz/replay_$$n fuzz/corpus/$$n fuzz/crashes/$$n; \
	done

FORMAT_FILES += $(FUZZ_SRCS) $(wildcard fuzz/*.h)

# `make lint` runs cppcheck over fuzz/ too (same options, plus fuzz/'s header).
lint-fuzz: deps-lint deps
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,portability,performance \
		--inline-suppr --suppress=missingIncludeSystem --suppress=memleak \
		-Iinclude -Ilib -Iagent -Ifuzz -D_GNU_SOURCE $(FUZZ_SRCS)
lint: lint-fuzz
# ---- end of fuzzing ------------------------------------------------------------

-include $(shell find $(O) -name '*.d' 2>/dev/null)
