# Domain Runner: build, run and test the nginx module on Debian 12.
#
#   make run     install what is missing, build, start PostgreSQL and nginx
#   make test    the same set-up, then the whole suite
#   make stop    stop what "make run" started
#
# Security scanning (each also called by .ci/run, after make test):
#
#   make test-asan    the suite with the module under AddressSanitizer and
#                     UBSan
#   make fuzz         each fuzz target of t/fuzz for FUZZ_SECONDS
#   make scan         clang's static analyzer over the module: no report
#   make secret-scan  no private key, provider key or password in the tree
#
# Everything runs as root (or through sudo): packages are installed with
# apt-get and PostgreSQL runs as the "postgres" user.

SHELL         := /bin/bash
.SHELLFLAGS   := -eu -o pipefail -c

TOP           := $(CURDIR)
BUILD         ?= $(TOP)/build
NGX_SRC       ?= /usr/share/nginx/src
NGINX         ?= /usr/sbin/nginx
MODULE        := $(BUILD)/ngx_http_dr_module.so

# the embedded PostgreSQL cluster: outside any home directory, so that the
# postgres user can reach it.  Every port here lies below Linux's ephemeral
# range (32768-60999), where an outgoing connection could hold it, and the
# tests pick theirs in 10000-29999; 5432 is left to a system cluster.
PG_BIN        ?= /usr/lib/postgresql/15/bin
DR_STATE      ?= /var/lib/domain-runner
PGDATA        := $(DR_STATE)/pg
PG_SOCKET     := $(DR_STATE)/socket
PG_PORT       ?= 25432
PG_USER       := domain_runner
PG_DB         := domain_runner
PG_TEMPLATE   := dr_template

HTTP_PORT     ?= 8080
SIM_PORT      ?= 8089
# the simulator takes any key: this one is no secret
export DR_SIM_KEY ?= sim-local-not-a-secret
BENCH_DOMAINS ?= 1000
BENCH_SECONDS ?= 10
RUN_DIR       := $(DR_STATE)/nginx
KEY_SECRET    := $(DR_STATE)/key_secret
JWT_SECRET    := $(DR_STATE)/jwt_secret

PACKAGES      := nginx nginx-dev postgresql-15 postgresql-client-15 \
                 postgresql-contrib \
                 libpq-dev libcurl4-openssl-dev libjansson-dev libssl-dev \
                 libpcre2-dev zlib1g-dev gcc make perl libdbd-pg-perl \
                 libmojolicious-perl libev-perl libjson-validator-perl \
                 python3-prometheus-client wrk valgrind \
                 curl procps chromium

# operations: promtool for the alerting rules' tests, YAML for reading
# them, and Debian's packaging tools for "make deb"
PACKAGES      += prometheus libyaml-libyaml-perl openssl \
                 debhelper dpkg-dev fakeroot lintian

# what the security scanning adds: libFuzzer and the analyzer are clang's,
# llvm-symbolizer names the frames of a report, and gcc's libasan and
# libubsan run the module built by gcc with the sanitizers
SCAN_PACKAGES := clang clang-tools libclang-rt-14-dev llvm libasan8 libubsan1

# the reference stack of the API benchmark (bench/fastapi_ref.py): the
# original system's FastAPI + asyncpg, from Debian; only "make bench"
# installs them
BENCH_PACKAGES := python3-fastapi python3-uvicorn python3-asyncpg

SRCS          := $(wildcard ngx_dr_module/*.c ngx_dr_module/*.h)

# pure parts, with no nginx event code: linked directly by the C unit tests
PURE_SRCS     := ngx_dr_module/ngx_dr_score.c ngx_dr_module/ngx_dr_validate.c \
                 ngx_dr_module/ngx_dr_bucket.c \
                 ngx_dr_module/ngx_dr_provider.c ngx_dr_module/ngx_dr_ground.c \
                 ngx_dr_module/ngx_dr_credential.c
UNIT_CFLAGS   := -std=c99 -O2 -g -Wall -Wextra -Werror -Ingx_dr_module
UNIT_NAMES    := $(patsubst t/unit/%.c,%, \
                   $(filter-out %_bench.c,$(wildcard t/unit/*.c)))
UNIT_TESTS    := $(UNIT_NAMES:%=$(BUILD)/unit/%)
UNIT_LINK      = $(CC) $(UNIT_CFLAGS) -o $@ $< $(PURE_SRCS) -ljansson -lcrypto \
                 -lm

# how the module is compiled; a build directory may set its own
NGX_CC_OPT    := -g -O2 -fPIC -Wextra -Werror
NGX_MAKE_OPT  :=

# the sanitized module and unit tests, in a build directory of their own;
# nginx itself is Debian's, with gcc's runtime preloaded (t/lib/DR/Test.pm)
ASAN_BUILD    ?= $(TOP)/build-asan
ASAN_MODULE   := $(ASAN_BUILD)/ngx_http_dr_module.so
ASAN_UNIT     := $(UNIT_NAMES:%=$(ASAN_BUILD)/unit/%)
SANITIZE      := -fsanitize=address,undefined -fno-omit-frame-pointer \
                 -fno-sanitize-recover=all
# the suite but the simulator's own test and those whose assertions are
# rates (which skip under valgrind too: a sanitized worker is slower);
# another set with ASAN_TESTS="t/10-api.t ..."
ASAN_SKIP     := t/30-simulator.t t/41-limit.t t/42-limit-cluster.t \
                 t/68-runner-rate.t
ASAN_TESTS    ?= $(filter-out $(ASAN_SKIP),$(wildcard t/*.t))

# fuzz targets: t/fuzz/NAME_fuzz.c tests ngx_dr_module/ngx_dr_NAME.c
FUZZ_CC       ?= clang
FUZZ_BUILD    ?= $(BUILD)/fuzz
FUZZ_SECONDS  ?= 60
FUZZ_NAMES    := $(patsubst t/fuzz/%_fuzz.c,%,$(wildcard t/fuzz/*_fuzz.c))

# the static analyzer's build of the module, and its reports
SCAN_BUILD    ?= $(TOP)/build-scan

PSQL          = $(PG_BIN)/psql -X -q -v ON_ERROR_STOP=1 -h $(PG_SOCKET) \
                -p $(PG_PORT)
AS_POSTGRES   = runuser -u postgres --

export DR_PG_BIN    := $(PG_BIN)
export DR_PG_SOCKET := $(PG_SOCKET)
export DR_PG_PORT   := $(PG_PORT)
export DR_PG_USER   := $(PG_USER)
export DR_PG_TEMPLATE := $(PG_TEMPLATE)
export DR_MODULE    := $(MODULE)
export DR_NGINX     := $(NGINX)
export DR_BUILD_DIR := $(BUILD)

.PHONY: all deps packages scan-packages bench-packages build unit pg-start \
        pg-stop db test-db run start stop nginx-stop \
        test test-valgrind test-asan build-asan fuzz scan secret-scan \
        bench clean sim-start sim-stop rescore screenshots

all: build


# packages: nothing is installed when everything is present

deps: packages tools/openapi/node_modules/.package-lock.json

define install_packages
	@missing=""; \
	for p in $(1); do \
	    dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null \
	        | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends $$missing; \
	fi
endef

packages:
	$(call install_packages,$(PACKAGES))

scan-packages: packages
	$(call install_packages,$(SCAN_PACKAGES))

bench-packages: packages
	$(call install_packages,$(BENCH_PACKAGES))


# the OpenAPI validator of the tests, from the npm registry (node and npm
# come with the machine; Debian's npm is the fallback)
tools/openapi/node_modules/.package-lock.json: tools/openapi/package.json \
                                              tools/openapi/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends nodejs npm; }
	cd tools/openapi && npm ci --no-audit --no-fund --loglevel=error

# puppeteer-core, which drives Debian's chromium in the dashboard's
# browser test and takes its screenshots (make screenshots)
BROWSER_DEPS  := tools/browser/node_modules/.package-lock.json

$(BROWSER_DEPS): tools/browser/package.json tools/browser/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        --no-install-recommends nodejs npm; }
	cd tools/browser && npm ci --no-audit --no-fund --loglevel=error

# the OpenAPI document, compiled into the module
ngx_dr_module/ngx_dr_openapi.c: ngx_dr_module/openapi.json tools/openapi2c.pl
	perl tools/openapi2c.pl $< $@


# the module, built against Debian's nginx with its own configure flags

build: deps ngx_dr_module/ngx_dr_openapi.c $(MODULE)

# configure again when a source file comes or goes: config lists them
SRC_LIST      := $(BUILD)/sources
$(shell mkdir -p $(BUILD); \
    echo $(sort $(wildcard ngx_dr_module/*.[ch])) | cmp -s - $(SRC_LIST) \
    || echo $(sort $(wildcard ngx_dr_module/*.[ch])) > $(SRC_LIST))

# one rule for every build directory (build, build-asan, build-scan); a
# build directory stays configured
.PRECIOUS: %/nginx/objs/Makefile
%/nginx/objs/Makefile: config $(NGX_SRC)/conf_flags $(SRC_LIST)
	rm -rf $*/nginx
	mkdir -p $*
	cp -r $(NGX_SRC) $*/nginx
	cd $*/nginx && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" \
	        --with-cc-opt='$(NGX_CC_OPT)' \
	        --add-dynamic-module=$(TOP) > configure.log || \
	    { tail -20 configure.log; exit 1; }

%/ngx_http_dr_module.so: %/nginx/objs/Makefile $(SRCS)
	$(MAKE) -C $*/nginx -f objs/Makefile modules $(NGX_MAKE_OPT)
	@# a new inode: a running nginx keeps its mapping of the old file
	cp $*/nginx/objs/ngx_http_dr_module.so $@.tmp
	mv -f $@.tmp $@


# the C unit tests of the pure parts

unit: $(UNIT_TESTS)

$(BUILD)/unit/%: t/unit/%.c $(PURE_SRCS) $(wildcard t/unit/*.h) \
                 $(wildcard ngx_dr_module/*.h)
	@mkdir -p $(@D)
	$(UNIT_LINK)

$(ASAN_UNIT): $(ASAN_BUILD)/unit/%: t/unit/%.c $(PURE_SRCS) \
              $(wildcard t/unit/*.h) $(wildcard ngx_dr_module/*.h)
	@mkdir -p $(@D)
	$(UNIT_LINK)


# the embedded PostgreSQL cluster

pg-start: deps
	@install -d -o postgres -g postgres -m 0755 $(DR_STATE) $(PG_SOCKET)
	@if [ ! -f $(PGDATA)/PG_VERSION ]; then \
	    install -d -o postgres -g postgres -m 0700 $(PGDATA); \
	    $(AS_POSTGRES) $(PG_BIN)/initdb -D $(PGDATA) -A trust \
	        -E UTF8 --locale=C.UTF-8 >/dev/null; \
	    echo "created a PostgreSQL cluster in $(PGDATA)"; \
	fi
	@if ! $(AS_POSTGRES) $(PG_BIN)/pg_ctl -D $(PGDATA) status >/dev/null; \
	then \
	    $(AS_POSTGRES) $(PG_BIN)/pg_ctl -D $(PGDATA) -w -l $(PGDATA)/log \
	        -o "-p $(PG_PORT) -k $(PG_SOCKET) -c listen_addresses=127.0.0.1" \
	        start >/dev/null; \
	    echo "PostgreSQL listens on $(PG_SOCKET) and 127.0.0.1:$(PG_PORT)"; \
	fi
	@$(AS_POSTGRES) $(PSQL) -U postgres -d postgres -c \
	    "DO \$$\$$ BEGIN CREATE ROLE $(PG_USER) LOGIN CREATEDB; \
	     EXCEPTION WHEN duplicate_object THEN NULL; END \$$\$$"

pg-stop:
	@if [ -f $(PGDATA)/PG_VERSION ] && \
	    $(AS_POSTGRES) $(PG_BIN)/pg_ctl -D $(PGDATA) status >/dev/null; \
	then \
	    $(AS_POSTGRES) $(PG_BIN)/pg_ctl -D $(PGDATA) -m fast -w stop \
	        >/dev/null; \
	    echo "PostgreSQL stopped"; \
	fi

# the database of "make run": migrations and sample domains, idempotent
db: pg-start
	@$(PSQL) -U $(PG_USER) -d postgres -tAc \
	    "SELECT 1 FROM pg_database WHERE datname = '$(PG_DB)'" | grep -q 1 \
	    || $(PSQL) -U $(PG_USER) -d postgres -c "CREATE DATABASE $(PG_DB)"
	@sql/migrate.sh -h $(PG_SOCKET) -p $(PG_PORT) -U $(PG_USER) -d $(PG_DB)
	@$(PSQL) -U $(PG_USER) -d $(PG_DB) -f sql/seed/domains.sql

# the template every test database is cloned from: always rebuilt, so the
# suite runs on exactly the migrations of this tree
test-db: pg-start
	@$(PSQL) -U $(PG_USER) -d postgres \
	    -c "SET client_min_messages = warning" \
	    -c "DROP DATABASE IF EXISTS $(PG_TEMPLATE) WITH (FORCE)" \
	    -c "CREATE DATABASE $(PG_TEMPLATE)"
	@sql/migrate.sh -h $(PG_SOCKET) -p $(PG_PORT) -U $(PG_USER) \
	    -d $(PG_TEMPLATE) >/dev/null


# nginx with conf/local.conf

$(RUN_DIR)/nginx.conf: conf/local.conf
	@install -d -m 0755 $(RUN_DIR) $(RUN_DIR)/logs
	@install -d -o nobody -m 0700 $(RUN_DIR)/tmp
	@sed -e 's|@MODULE@|$(MODULE)|g' -e 's|@RUN_DIR@|$(RUN_DIR)|g' \
	    -e 's|@PG_SOCKET@|$(PG_SOCKET)|g' -e 's|@PG_PORT@|$(PG_PORT)|g' \
	    -e 's|@PG_USER@|$(PG_USER)|g' -e 's|@PG_DB@|$(PG_DB)|g' \
	    -e 's|@HTTP_PORT@|$(HTTP_PORT)|g' -e 's|@SIM_PORT@|$(SIM_PORT)|g' \
	    -e 's|@KEY_SECRET@|$(KEY_SECRET)|g' -e 's|@HTML_DIR@|$(TOP)/html|g' \
	    -e 's|@JWT_SECRET@|$(JWT_SECRET)|g' \
	    $< > $@

# the server secret of API keys: made once, readable by root only
$(KEY_SECRET):
	@install -d -m 0755 $(DR_STATE)
	@umask 077 && head -c 48 /dev/urandom | base64 -w0 > $@
	@echo "made the API key secret $@"

# the secret the accounts' access tokens are signed with, likewise
$(JWT_SECRET):
	@install -d -m 0755 $(DR_STATE)
	@umask 077 && head -c 48 /dev/urandom | base64 -w0 > $@
	@echo "made the access token secret $@"

# a reload would keep the module already loaded (same path), so a running
# nginx is stopped and started again
start: build db $(KEY_SECRET) $(JWT_SECRET) $(RUN_DIR)/nginx.conf nginx-stop \
       sim-start
	@$(NGINX) -p $(RUN_DIR) -c nginx.conf
	@# a new admin key for this run; those of earlier runs are revoked
	@$(PSQL) -U $(PG_USER) -d $(PG_DB) -c "UPDATE api_keys \
	    SET revoked_at = now() WHERE name = 'make run' \
	    AND revoked_at IS NULL"
	@tools/dr-key --secret-file $(KEY_SECRET) --tier admin \
	    --name 'make run' --host $(PG_SOCKET) --port $(PG_PORT) \
	    --user $(PG_USER) --dbname $(PG_DB) > $(DR_STATE)/admin_key
	@chmod 600 $(DR_STATE)/admin_key
	@echo
	@echo "Domain Runner is up:"
	@echo "  http://127.0.0.1:$(HTTP_PORT)/healthz   liveness"
	@echo "  http://127.0.0.1:$(HTTP_PORT)/readyz    readiness"
	@echo "  http://127.0.0.1:$(HTTP_PORT)/health    health summary"
	@echo "  http://127.0.0.1:$(HTTP_PORT)/dashboard/  the dashboard"
	@echo "  http://127.0.0.1:$(HTTP_PORT)/api/rankings"
	@echo "  http://127.0.0.1:$(HTTP_PORT)/api/openapi.json"
	@echo "  http://127.0.0.1:$(HTTP_PORT)/metrics   Prometheus metrics"
	@echo "  http://127.0.0.1:$(HTTP_PORT)/admin/keys  (admin key below)"
	@echo
	@echo "  admin key (also in $(DR_STATE)/admin_key, readable by root):"
	@echo "    $$(cat $(DR_STATE)/admin_key)"
	@echo "  try: curl -H \"X-API-Key: $$(cat $(DR_STATE)/admin_key)\" \\"
	@echo "         http://127.0.0.1:$(HTTP_PORT)/admin/keys"
	@echo
	@echo "  crawl (against the provider simulator on port $(SIM_PORT)):"
	@echo "    curl -X POST -H \"X-API-Key: ...\" -d '{\"domains\":[\"stripe.com\"]}' \\"
	@echo "         http://127.0.0.1:$(HTTP_PORT)/admin/runs"
	@echo
	@echo "  error log: $(RUN_DIR)/logs/error.log"
	@echo

# in the foreground until Ctrl-C, which stops nginx and PostgreSQL
run: start
	@echo "Ctrl-C (or \"make stop\" elsewhere) stops nginx and PostgreSQL."
	@trap '$(MAKE) --no-print-directory stop; exit 0' INT TERM; \
	    tail -n 0 -F $(RUN_DIR)/logs/error.log & wait

stop: nginx-stop sim-stop
	@$(MAKE) --no-print-directory pg-stop

# every stored run scored again by the node "make run" started, with its
# admin key (docs/scoring.md)
rescore:
	@test -s $(DR_STATE)/admin_key || { echo "no admin key: make run first"; \
	    exit 1; }
	@curl -sS --fail-with-body -X POST \
	    -H "X-API-Key: $$(cat $(DR_STATE)/admin_key)" \
	    http://127.0.0.1:$(HTTP_PORT)/admin/rescore; echo

# the provider simulator stands in for the eight providers: no real key,
# no network, their formats and limits (SPEC section 7)
sim-start: sim-stop
	@install -d -m 0755 $(DR_STATE)
	@setsid t/sim/provider-sim --port $(SIM_PORT) --spec-limits \
	    --pid-file $(DR_STATE)/sim.pid > $(DR_STATE)/sim.log 2>&1 &
	@for i in $$(seq 50); do \
	    grep -q listening $(DR_STATE)/sim.log 2>/dev/null && break; \
	    sleep 0.1; done; grep -q listening $(DR_STATE)/sim.log \
	    || { cat $(DR_STATE)/sim.log; exit 1; }

sim-stop:
	@if [ -f $(DR_STATE)/sim.pid ] \
	    && kill $$(cat $(DR_STATE)/sim.pid) 2>/dev/null; then \
	    echo "provider simulator stopped"; fi; rm -f $(DR_STATE)/sim.pid

nginx-stop:
	@if [ -f $(RUN_DIR)/nginx.pid ] && kill -0 $$(cat $(RUN_DIR)/nginx.pid) \
	    2>/dev/null; then \
	    kill -QUIT $$(cat $(RUN_DIR)/nginx.pid); \
	    while [ -f $(RUN_DIR)/nginx.pid ]; do sleep 0.1; done; \
	    echo "nginx stopped"; \
	fi


# tests

test: build unit test-db $(BROWSER_DEPS)
	prove -r t/

test-valgrind: build unit test-db $(BROWSER_DEPS)
	DR_VALGRIND=1 prove -r t/

# the dashboard's pages after a simulated crawl, taken by its browser
# test, for the README
screenshots: build test-db $(BROWSER_DEPS)
	DR_SCREENSHOTS=$(TOP)/docs prove t/90-dashboard.t


# security scanning

# the module and the unit tests with AddressSanitizer and UBSan; nginx
# loads the module with the runtime preloaded, and a test fails on any
# report of the sanitizers (t/lib/DR/Test.pm)
$(ASAN_BUILD)/nginx/objs/Makefile: NGX_CC_OPT := -g -O1 -fPIC -Wextra \
                                                -Werror $(SANITIZE)
$(ASAN_MODULE): NGX_MAKE_OPT := LINK='$$(CC) $(SANITIZE)'
$(ASAN_UNIT): UNIT_CFLAGS += -O1 $(SANITIZE)

build-asan: scan-packages deps ngx_dr_module/ngx_dr_openapi.c $(ASAN_MODULE)

test-asan: build-asan $(ASAN_UNIT) test-db $(BROWSER_DEPS)
	DR_ASAN=1 DR_MODULE=$(ASAN_MODULE) DR_BUILD_DIR=$(ASAN_BUILD) \
	    DR_ASAN_RUNTIME=$$($(CC) -print-file-name=libasan.so) \
	    prove $(ASAN_TESTS)

# libFuzzer targets with ASan and UBSan, each run for FUZZ_SECONDS from
# the corpus of earlier runs (scratch, in the build directory); a crash
# or a broken invariant fails, its input kept beside the log
$(FUZZ_BUILD)/%_fuzz: t/fuzz/%_fuzz.c ngx_dr_module/ngx_dr_%.c \
                      ngx_dr_module/ngx_dr_%.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=all -Ingx_dr_module -o $@ $< \
	    ngx_dr_module/ngx_dr_$*.c -ljansson -lm

fuzz: scan-packages $(FUZZ_NAMES:%=$(FUZZ_BUILD)/%_fuzz)
	@for f in $(FUZZ_NAMES); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$f; \
	    echo "fuzzing $$f for $(FUZZ_SECONDS) s"; \
	    $(FUZZ_BUILD)/$${f}_fuzz -max_total_time=$(FUZZ_SECONDS) \
	        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/$$f- \
	        $(FUZZ_BUILD)/corpus/$$f > $(FUZZ_BUILD)/$$f.log 2>&1 \
	        || { tail -40 $(FUZZ_BUILD)/$$f.log; \
	             echo "$$f failed: $(FUZZ_BUILD)/$$f.log"; exit 1; }; \
	    grep -E '^stat::number_of_executed_units|^Done' \
	        $(FUZZ_BUILD)/$$f.log; \
	done

# clang's static analyzer over every file of the module, compiled again
# in a build directory of its own; any report fails
scan: scan-packages deps ngx_dr_module/ngx_dr_openapi.c \
      $(SCAN_BUILD)/nginx/objs/Makefile
	rm -rf $(SCAN_BUILD)/report
	rm -f $(SCAN_BUILD)/nginx/objs/addon/*/*.o \
	    $(SCAN_BUILD)/nginx/objs/ngx_http_dr_module_modules.o
	scan-build -o $(SCAN_BUILD)/report --status-bugs sh -c \
	    'exec $(MAKE) -C "$$0" -f objs/Makefile modules CC="$$CC"' \
	    $(SCAN_BUILD)/nginx


# benchmarks: reports are written to bench/; how fast this machine does
# something is measured here, never asserted by the tests

bench: build test-db bench-packages $(BUILD)/unit/score_bench
	$(BUILD)/unit/score_bench | tee bench/score.txt
	perl bench/simulator.pl
	perl bench/api.pl $(BENCH_SECONDS)
	perl bench/gateway.pl $(BENCH_SECONDS)
	perl bench/crawl-rate.pl
	perl bench/crawl.pl $(BENCH_DOMAINS)

# private keys, provider keys and passwords in the files of the tree
secret-scan:
	tools/secret-scan $(TOP)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(SCAN_BUILD)


# the Debian package libnginx-mod-http-dr, built with Debian's tools
# (debhelper and the nginx addon of nginx-dev) from a copy of the tree in
# $(DEB_DIR), so that nothing is written into the sources; lintian must
# find no error and no warning (docs/operations.md, "The Debian package")

DEB_DIR       := $(BUILD)/deb
DEB_VERSION    = $(shell dpkg-parsechangelog -l debian/changelog -S Version)
DEB_ARCH       = $(shell dpkg-architecture -q DEB_HOST_ARCH)
DEB            = $(DEB_DIR)/libnginx-mod-http-dr_$(DEB_VERSION)_$(DEB_ARCH).deb
# the files of the tree the package is made of (tests and benchmarks
# aside), committed or not
DEB_FILES      = git ls-files -z --cached --others --exclude-standard \
                 | grep -zv -e '^t/' -e '^bench/'
DEB_INPUTS    := $(wildcard $(shell $(DEB_FILES) 2>/dev/null | tr '\0' ' '))

.PHONY: deb
deb: packages
	@$(MAKE) --no-print-directory $(DEB)

$(DEB): $(DEB_INPUTS)
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	$(DEB_FILES) | tar --null --ignore-failed-read -T - -cf - \
	    | tar -xf - -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -b --no-sign \
	    > $(DEB_DIR)/build.log 2>&1 || { tail -40 $(DEB_DIR)/build.log; \
	    exit 1; }
	lintian --fail-on error,warning --info $(DEB_DIR)/*.changes \
	    | tee $(DEB_DIR)/lintian.txt
	@echo "built $@"
