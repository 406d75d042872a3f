# ri -- edge ingress tunnel. `make` builds build/ri-core and build/plugins/*.so;
# `make test` builds and runs the whole suite; `make demo` runs the loopback demo.
# SAN=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer into build/san/,
# SAN=thread with ThreadSanitizer into build/tsan/ (the workers' threads).

CC      ?= cc
V       ?= 0
ifeq ($(V),1)
Q :=
else
Q := @
endif
PREFIX  ?= /usr/local
SAN     ?= 0

ifeq ($(SAN),1)
BUILD   ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT     := -O1 -g
else ifeq ($(SAN),thread)
BUILD   ?= build/tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
OPT     := -O1 -g
else
BUILD   ?= build
SANFLAGS :=
OPT     := -O2 -g
endif

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wno-unused-parameter
CSTD    := -std=c11 -D_GNU_SOURCE
PLUGINDIR_DEFAULT := $(PREFIX)/lib/ri/plugins
# systemd units (conf/ri-hub.service, conf/ri-edge.service), installed with
# their paths under /usr/local rewritten to PREFIX
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# where a hub without tls_cert keeps the certificate it makes (hub.state_dir)
STATEDIR ?= /var/lib/ri

# libev ships no pkg-config file: found by header and library name.
PKGS    := gnutls libconfig jansson
CFLAGS_ALL  = $(CSTD) $(OPT) $(WARN) $(SANFLAGS) -Isdk -Icore \
              $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(CFLAGS)
LDLIBS_CORE = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -ldl -lm -lpthread
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)

CORE_SRC  := $(wildcard core/*.c)
CORE_LIB_SRC := $(filter-out core/main.c,$(CORE_SRC))
# plugins/sched_fifo is also the core's built-in scheduler: the same source,
# compiled in with -DRI_BUILTIN
BUILTIN_OBJ := $(BUILD)/obj/builtin/sched_fifo.o
CORE_OBJ  := $(patsubst core/%.c,$(BUILD)/obj/core/%.o,$(CORE_SRC)) $(BUILTIN_OBJ)
CORE_LIB_OBJ := $(patsubst core/%.c,$(BUILD)/obj/core/%.o,$(CORE_LIB_SRC)) $(BUILTIN_OBJ)
PLUGINS   := $(notdir $(patsubst %/,%,$(wildcard plugins/*/)))
PLUGIN_SO := $(patsubst %,$(BUILD)/plugins/%.so,$(PLUGINS))

UNIT_SRC  := $(wildcard tests/unit/*.c)
UNIT_OBJ  := $(patsubst tests/unit/%.c,$(BUILD)/obj/tests/%.o,$(UNIT_SRC))
# Pure plugin code the unit tests call directly, linked into unit-tests.
UNIT_EXTRA     := plugins/header_proxy_v1/proxy_v1.c
UNIT_EXTRA_OBJ := $(patsubst %.c,$(BUILD)/obj/tests/extra/%.o,$(UNIT_EXTRA))
TPLUG_SRC := $(wildcard tests/plugins/*.c)
TPLUG_SO  := $(patsubst tests/plugins/%.c,$(BUILD)/test-plugins/%.so,$(TPLUG_SRC))
FUZZ_SRC  := $(wildcard tests/fuzz/*.c)


.PHONY: bench-workers all deps test-deps test unit demo install clean fuzz bench bench-scale soak FORCE

all: $(BUILD)/.deps $(BUILD)/ri-core $(PLUGIN_SO)

# ---- dependencies: install what is missing when root, else name it -------
define need_pkg
	@missing=""; \
	for spec in $(1); do \
	  check=$${spec%%=*}; pkg=$${spec#*=}; \
	  if ! sh -c "$$check" >/dev/null 2>&1; then missing="$$missing $$pkg"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing Debian package(s):$$missing (install them, e.g. sudo apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi
endef

BUILD_DEPS := "command -v pkg-config=pkg-config" \
              "test -f /usr/include/ev.h=libev-dev" \
              "pkg-config --exists gnutls=libgnutls28-dev" \
              "pkg-config --exists libconfig=libconfig-dev" \
              "pkg-config --exists jansson=libjansson-dev" \
              "pkg-config --exists libmicrohttpd=libmicrohttpd-dev"
TEST_DEPS  := "command -v python3=python3" "command -v haproxy=haproxy" \
              "command -v nginx=nginx" \
              "test -f /usr/lib/nginx/modules/ngx_stream_module.so=libnginx-mod-stream" \
              "command -v iperf3=iperf3" "command -v certtool=gnutls-bin" \
              "command -v clang=clang" "command -v openssl=openssl" \
              "command -v ip=iproute2" "command -v prlimit=util-linux" \
              "command -v turnserver=coturn" "command -v systemd-analyze=systemd" \
              "command -v promtool=prometheus" "command -v chromium=chromium" \
              "command -v curl=curl"

$(BUILD)/.deps:
	$(call need_pkg,$(BUILD_DEPS))
	@mkdir -p $(BUILD) && touch $@

test-deps:
	$(call need_pkg,$(TEST_DEPS))

# ---- core and plugins ------------------------------------------------------
$(BUILD)/obj/core/%.o: core/%.c $(wildcard core/*.h) sdk/ri_plugin.h | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -DRI_STATE_DIR_DEFAULT='"$(STATEDIR)"' -c $< -o $@

# The install folder of the plugins is compiled into plugin.o (the last place
# ri-core looks when the config names no plugin_dir). It follows PREFIX: the
# stamp holds the folder of the last build and changes only when PREFIX
# does, so `make install PREFIX=/x` after a `make` with another PREFIX
# rebuilds plugin.o and relinks ri-core before installing it.
PLUGINDIR_STAMP := $(BUILD)/plugindir.stamp
$(PLUGINDIR_STAMP): FORCE | $(BUILD)/.deps
	@echo '$(PLUGINDIR_DEFAULT)' | cmp -s - $@ || echo '$(PLUGINDIR_DEFAULT)' > $@

$(BUILD)/obj/core/plugin.o: core/plugin.c $(wildcard core/*.h) sdk/ri_plugin.h $(PLUGINDIR_STAMP) | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (plugins: $(PLUGINDIR_DEFAULT))")
	$(Q)$(CC) $(CFLAGS_ALL) -DRI_PLUGIN_DIR_DEFAULT='"$(PLUGINDIR_DEFAULT)"' -c $< -o $@

FORCE:

$(BUILTIN_OBJ): plugins/sched_fifo/sched_fifo.c sdk/ri_plugin.h | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $< (built in)")
	$(Q)$(CC) $(CFLAGS_ALL) -DRI_BUILTIN -c $< -o $@

$(BUILD)/ri-core: $(CORE_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_CORE)

# A plugin is every .c in its folder, built against sdk/ only, plus the
# libraries it names here (only that plugin links them).
PLUGIN_PKGS_admin_http := libmicrohttpd jansson
.SECONDEXPANSION:
$(BUILD)/plugins/%.so: $$(wildcard plugins/%/*.c) $$(wildcard plugins/%/*.h) sdk/ri_plugin.h | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  PLUGIN  $@")
	$(Q)$(CC) $(CSTD) $(OPT) $(WARN) $(SANFLAGS) -fPIC -shared -Isdk -Iplugins/$* \
	    $(if $(PLUGIN_PKGS_$*),$$(pkg-config --cflags $(PLUGIN_PKGS_$*))) \
	    -o $@ $(filter %.c,$^) $(LDFLAGS_ALL) \
	    $(if $(PLUGIN_PKGS_$*),$$(pkg-config --libs $(PLUGIN_PKGS_$*)))

# ---- tests -----------------------------------------------------------------
# RI_SRCDIR: where the tests find conf/ and tests/plugins/ (env RI_SRC overrides)
$(BUILD)/obj/tests/%.o: tests/unit/%.c $(wildcard tests/unit/*.h) $(wildcard core/*.h) $(wildcard plugins/*/*.h) | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -Iplugins -DRI_SRCDIR='"$(CURDIR)"' \
	    -DRI_STATE_DIR_DEFAULT='"$(STATEDIR)"' -c $< -o $@

$(BUILD)/obj/tests/extra/%.o: %.c $(wildcard plugins/*/*.h) | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -Iplugins -c $< -o $@

$(BUILD)/unit-tests: $(UNIT_OBJ) $(UNIT_EXTRA_OBJ) $(CORE_LIB_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_CORE)

$(BUILD)/obj/tools/ri_peer.o: tests/tools/ri_peer.c $(wildcard core/*.h) | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

# slowdns.so: an LD_PRELOAD shim that makes some name lookups slow (tests)
$(BUILD)/slowdns.so: tests/tools/slowdns.c | $(BUILD)/.deps
	@$(if $(Q),echo "  SHLIB   $@")
	$(Q)$(CC) -O2 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

# ri-peer: a scriptable rogue tunnel peer for the integration tests
$(BUILD)/ri-peer: $(BUILD)/obj/tools/ri_peer.o $(CORE_LIB_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_CORE)

# ri-edgesim: many simulated edges on the real tunnel code, one event loop
# (tests/bench/edgesim.c; the scale tests and make bench-scale)
$(BUILD)/obj/tools/edgesim.o: tests/bench/edgesim.c $(wildcard core/*.h) | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/ri-edgesim: $(BUILD)/obj/tools/edgesim.o $(CORE_LIB_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LDLIBS_CORE)

$(BUILD)/test-plugins/%.so: tests/plugins/%.c $(wildcard tests/plugins/*.h) sdk/ri_plugin.h | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  PLUGIN  $@")
	$(Q)$(CC) $(CSTD) $(OPT) $(WARN) -Wno-missing-field-initializers $(SANFLAGS) -fPIC -shared -Isdk -o $@ $< $(LDFLAGS_ALL)

test: test-deps all $(BUILD)/unit-tests $(TPLUG_SO) $(BUILD)/ri-peer $(BUILD)/ri-edgesim $(BUILD)/slowdns.so fuzz
	@python3 tests/run.py --build $(BUILD)

unit: all $(BUILD)/unit-tests $(TPLUG_SO)
	@RI_BUILD=$(BUILD) $(BUILD)/unit-tests

# libFuzzer targets (clang), each with the core sources it drives:
# make fuzz builds build/fuzz/fuzz_<name>; run one with e.g.
#   build/fuzz/fuzz_tunnel -max_total_time=60 tests/fuzz/seeds/tunnel
# UBSan must not recover, or libFuzzer would not see its findings as crashes.
# `make test` runs each for a short while (tests/integ/test_fuzz.py) when
# clang is installed.
FUZZ_CC    := clang $(CSTD) -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
              -Isdk -Icore -Itests/fuzz
FUZZ_LIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lev -ldl -lm -lpthread
FUZZ_TUNNEL_SRC := $(filter-out core/main.c core/tlsio.c core/tls.c core/certstate.c core/hub.c core/hubworker.c core/edge.c core/edgeworker.c,$(CORE_SRC)) \
              tests/fuzz/fake_tlsio.c
fuzz_deps_frame  := core/frame.c core/ident.c
fuzz_deps_token  := core/token.c core/b64.c core/ident.c
fuzz_deps_stun   := core/stun.c
fuzz_deps_config := core/config.c core/errs.c core/log.c core/ratelimit.c core/netutil.c \
                    core/token.c core/b64.c core/ident.c
fuzz_deps_tunnel := $(FUZZ_TUNNEL_SRC)
FUZZ_BIN   := $(patsubst tests/fuzz/fuzz_%.c,build/fuzz/fuzz_%,$(FUZZ_SRC))

fuzz: $(FUZZ_BIN)

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(fuzz_deps_$$*) $(wildcard core/*.h) $(wildcard tests/fuzz/*.h) sdk/ri_plugin.h
	@command -v clang >/dev/null || { echo "make fuzz needs clang (apt-get install clang)" >&2; exit 1; }
	@mkdir -p build/fuzz
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $$(pkg-config --cflags $(PKGS)) -o $@ $< $(fuzz_deps_$*) \
	    $(if $(filter tunnel,$*),-DRI_BUILTIN plugins/sched_fifo/sched_fifo.c) $(FUZZ_LIBS)

demo: all
	@python3 tests/demo.py --build $(BUILD)

# ri-loadgen: the benchmark's targets and clients (tests/bench/loadgen.c)
$(BUILD)/ri-loadgen: tests/bench/loadgen.c | $(BUILD)/.deps
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CSTD) -O2 $(WARN) -o $@ $< -lpthread

# ri-delayline: the long-link mode's TUN delay line (tests/bench/delayline.c)
$(BUILD)/ri-delayline: tests/bench/delayline.c | $(BUILD)/.deps
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CSTD) -O2 $(WARN) -o $@ $< -lpthread

# ri beside raw TCP, HAProxy, ssh -L and stunnel (tests/bench/bench.py): the
# loopback table (BENCH_ARGS, e.g. "--link 1gbit --ri-policies fifo,3tier,drr"),
# then the long-link table (BENCH_LONG_ARGS; empty skips it). JSON in $(BUILD)/.
BENCH_ARGS ?= --runs 3
BENCH_LONG_ARGS ?= --delay 50,200 --runs 3
bench: all $(BUILD)/ri-loadgen $(BUILD)/ri-delayline
	@tests/bench/run.sh $(BUILD) $(BENCH_ARGS)
	$(if $(strip $(BENCH_LONG_ARGS)),@tests/bench/run.sh $(BUILD) --json $(BUILD)/bench-long.json $(BENCH_LONG_ARGS))
	@$(MAKE) --no-print-directory bench-scale
	@$(MAKE) --no-print-directory bench-workers

# 1000 simulated edges on one hub (connect, hub kill -9 and restart) and one
# edge filled with streams up to its open-file limit (tests/bench/scale.py)
bench-scale: all $(BUILD)/ri-loadgen $(BUILD)/ri-edgesim
	@python3 tests/bench/scale.py --build $(BUILD) --json $(BUILD)/scale.json $(SCALE_ARGS)

# 4 edges x 2 downloads through one hub with workers = 1, then 2: hub CPU
# per GB and how it divides over the worker threads (tests/bench/workers.py)
WORKERS_ARGS ?= --workers 1,2
bench-workers: all $(BUILD)/ri-loadgen
	@python3 tests/bench/workers.py --build $(BUILD) --json $(BUILD)/workers.json $(WORKERS_ARGS)

# 30 minutes of mixed traffic through an ASan+UBSan pair (tests/bench/soak.py);
# SOAK_MINUTES=5 for a shorter run.
SOAK_MINUTES ?= 30
soak:
	@$(MAKE) -s SAN=1 all build/san/ri-peer
	@python3 tests/bench/soak.py --build build/san --minutes $(SOAK_MINUTES) --json build/soak.json

# ---- install ---------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=/staging]: DESTDIR is prepended
# to every path written (for packages); PREFIX is where the files end up
# and what ri-core has compiled in as its plugin folder. The example configs
# are installed without any plugin_dir line, so the compiled-in default
# applies wherever they are copied.
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PLUGINDIR_DEFAULT) \
	    $(DESTDIR)$(PREFIX)/include/ri $(DESTDIR)$(PREFIX)/share/doc/ri/examples \
	    $(DESTDIR)$(PREFIX)/share/ri/conf $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 755 $(BUILD)/ri-core $(DESTDIR)$(PREFIX)/bin/ri-core
	install -m 644 $(PLUGIN_SO) $(DESTDIR)$(PLUGINDIR_DEFAULT)/
	install -m 644 sdk/ri_plugin.h $(DESTDIR)$(PREFIX)/include/ri/
	install -m 644 sdk/README.md $(DESTDIR)$(PREFIX)/share/doc/ri/README.md
	install -m 644 sdk/examples/*.c $(DESTDIR)$(PREFIX)/share/doc/ri/examples/
	for f in conf/*.cfg; do \
	  sed '/^[[:space:]]*plugin_dir[[:space:]]*=/d' $$f > $(DESTDIR)$(PREFIX)/share/ri/conf/$$(basename $$f) && \
	  chmod 644 $(DESTDIR)$(PREFIX)/share/ri/conf/$$(basename $$f) || exit 1; done
	for u in conf/*.service; do \
	  sed 's|/usr/local/|$(PREFIX)/|g' $$u > $(DESTDIR)$(SYSTEMDUNITDIR)/$$(basename $$u) && \
	  chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$(basename $$u) || exit 1; done

clean:
	rm -rf build
