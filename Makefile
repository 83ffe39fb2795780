# chatd — see README.md. `make run` and `make check` install what is missing
# first (scripts/install-deps); `make` alone only builds.

PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
SBINDIR   ?= $(PREFIX)/sbin
MANDIR    ?= $(PREFIX)/share/man
DATADIR   ?= $(PREFIX)/share/chatd
SYSCONFDIR ?= /etc/chatd
UNITDIR   ?= /lib/systemd/system

CC        ?= cc
PKGS      := liburing libcjson libjwt libxcrypt inih libcrypto libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ls3 -lpthread
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS    ?= -O2 -g
CFLAGS    += -std=gnu11 $(WARN) -I. $(PKG_CFLAGS) -MMD -MP
# CI builds with warnings as errors; so does anyone who sets WERROR=1.
ifneq ($(CI)$(WERROR),)
CFLAGS    += -Werror
endif

BUILD     ?= build
ifeq ($(SANITIZE),1)
override BUILD := $(BUILD)/san
CFLAGS    += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS   += -fsanitize=address,undefined
endif
# Failpoints are compiled into the test build only (see common/failpoint.h).
ifeq ($(FAILPOINTS),1)
CFLAGS    += -DCH_FAILPOINTS=1
endif

MODULES   := common master worker shm journal
MAINS     := master/main.c
LIB_SRC   := $(filter-out $(MAINS),$(wildcard $(addsuffix /*.c,$(MODULES))))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB       := $(BUILD)/libchatd.a

PROGS     := $(BUILD)/chatd
UNIT_SRC  := $(wildcard tests/unit/check_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

# Each program beside the daemon (chatadm, chatbench, chatcli) brings its
# own fragment: it adds to PROGS and says how its binary is linked. A
# fragment's first rule must not become the default goal.
.DEFAULT_GOAL := all
include $(wildcard mk/*.mk)

.PHONY: all deps run check unit unit-san e2e fuzz man-check install clean

all: $(PROGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/chatd: $(BUILD)/master/main.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECK_CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS) $(CHECK_LIBS)

deps:
	@scripts/install-deps

run: deps all
	@mkdir -p var
	exec $(BUILD)/chatd

# Everything a submission must pass: unit tests plain and under ASan/UBSan,
# the man page check, a short fuzz run and the end-to-end tests.
check: deps
	$(MAKE) all unit
	$(MAKE) SANITIZE=1 FAILPOINTS=1 all unit
	$(MAKE) man-check
	$(MAKE) fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-15}
	$(MAKE) e2e

# Each suite's stderr (the expected error lines of failure-path tests) goes
# to a file beside it, shown only when the suite fails.
unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do \
		CK_VERBOSITY=normal $$t 2> $$t.stderr || { tail -n 50 $$t.stderr; exit 1; }; \
	done

# The failpoint tests run $(BUILD)/san/chatd (ASan + failpoints), which
# `make check` builds first; without it they are skipped.
e2e: all
	@cd tests/e2e && CHATD=$(CURDIR)/$(BUILD)/chatd \
		CHATD_FP=$$([ -x $(CURDIR)/$(BUILD)/san/chatd ] && echo $(CURDIR)/$(BUILD)/san/chatd) \
		BUILD_DIR=$(CURDIR)/$(BUILD) \
		node --test --test-concurrency=1 --test-reporter=spec *.test.js

# libFuzzer targets (clang): tests/fuzz/fuzz_<name>.c, each run FUZZ_SECONDS.
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN  := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -std=gnu11 -g -O1 -I. $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined

# The client library (mk/client.mk) is linked too, for its frame parser.
build/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(LIB_SRC) $(CLIENT_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(CLIENT_SRC) $(PKG_LIBS)

fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do \
		name=$$(basename $$f); corpus=tests/fuzz/corpus-$$name; \
		mkdir -p $$corpus tests/fuzz/seeds/$${name#fuzz_}; \
		echo "fuzz: $$name for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) $$corpus tests/fuzz/seeds/$${name#fuzz_} \
		    > build/fuzz/$$name.log 2>&1 || { tail -n 40 build/fuzz/$$name.log; exit 1; }; \
		tail -n 1 build/fuzz/$$name.log; \
	done

man-check:
	@scripts/check-man

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(DATADIR)/www $(DESTDIR)$(SYSCONFDIR)
	install -m 0755 $(BUILD)/chatd $(DESTDIR)$(SBINDIR)/chatd
	cp -R www/. $(DESTDIR)$(DATADIR)/www/
	install -m 0644 conf/chatd.conf $(DESTDIR)$(SYSCONFDIR)/chatd.conf.example
	@for m in man/*.[1-8]; do \
		s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s; \
		install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; \
	done

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(BUILD)/master/main.d
