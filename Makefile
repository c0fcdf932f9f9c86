# lunamodb -- build, test and demo.
#
#   make            lunamodb.core for Lua 5.4   -> build/lua5.4/lunamodb/core.so
#   make luajit     the same sources for LuaJIT  -> build/luajit/lunamodb/core.so
#   make test       everything: unit and integration specs on Lua 5.4 and LuaJIT (the
#                   integration specs also run examples/embed, game_loop and nginx with
#                   examples/openresty),
#                   ASan+UBSan, valgrind, the rockspec install (installs what it misses)
#   make demo       examples/basic.lua against a DynamoDB Local it starts itself
#   make embed      examples/embed, a C host with the core linked statically
#                   -> build/embed/lunamodb-embed
#   make asan       the specs with the core built under ASan+UBSan
#   make clean

CC       ?= gcc
LUA54_INC := $(shell pkg-config --cflags lua5.4 2>/dev/null || echo -I/usr/include/lua5.4)
LUAJIT_INC := $(shell pkg-config --cflags luajit 2>/dev/null || echo -I/usr/include/luajit-2.1)
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS   ?= -O2 -g
BASE_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -DOPENSSL_API_COMPAT=30000 \
               -fPIC -fvisibility=hidden $(WARN) -Icsrc
LIBS     := -lcurl -lcrypto
SOURCES  := $(wildcard csrc/*.c)
HEADERS  := $(wildcard csrc/*.h)

LUA      := lua5.4
# busted runs under the interpreter named first (its --lua option re-executes
# itself through sh, which would split the ';' of our paths). .busted sets lpath.
BUSTED   := /usr/bin/busted
ASAN_RT  = $(shell $(CC) -print-file-name=libasan.so):$(shell $(CC) -print-file-name=libubsan.so)

export LUNAMODB_CACHE ?= $(HOME)/.cache/lunamodb

.PHONY: all luajit asan-build static embed test unit unit-luajit integration asan valgrind \
        rockspec-check demo deps clean bench

all: build/lua5.4/lunamodb/core.so build/lua5.4/liblunamodb_core.a

luajit: build/luajit/lunamodb/core.so

static: build/lua5.4/liblunamodb_core.a

# One rule per variant: objects go to build/<variant>/obj so flags never mix.
define variant
build/$(1)/obj/%.o: csrc/%.c $(HEADERS)
	@mkdir -p $$(@D)
	$$(CC) $$(BASE_CFLAGS) $(2) $$(CFLAGS) -c $$< -o $$@

build/$(1)/lunamodb/core.so: $(patsubst csrc/%.c,build/$(1)/obj/%.o,$(SOURCES))
	@mkdir -p $$(@D)
	$$(CC) -shared $(3) -o $$@ $$^ $$(LIBS)
endef

$(eval $(call variant,lua5.4,$(LUA54_INC),))
$(eval $(call variant,luajit,$(LUAJIT_INC),))
SANITIZE := -fsanitize=address,undefined
$(eval $(call variant,asan,$(LUA54_INC) $$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer,$$(SANITIZE)))

build/lua5.4/liblunamodb_core.a: $(patsubst csrc/%.c,build/lua5.4/obj/%.o,$(SOURCES))
	ar rcs $@ $^

asan-build: build/asan/lunamodb/core.so

# examples/embed: a C host embedding Lua 5.4 with the core linked statically.
LUA54_LIBS := $(shell pkg-config --libs lua5.4 2>/dev/null || echo -llua5.4)
EMBED_BIN := build/embed/lunamodb-embed

embed: all $(EMBED_BIN)

$(EMBED_BIN): examples/embed/main.c build/lua5.4/liblunamodb_core.a $(HEADERS)
	@mkdir -p $(@D)
	$(CC) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARN) -Icsrc $(LUA54_INC) $(CFLAGS) \
	  -DLUNAMODB_REPO_DIR='"$(CURDIR)"' -o $@ examples/embed/main.c \
	  build/lua5.4/liblunamodb_core.a $(LUA54_LIBS) $(LIBS) -lm -ldl

deps:
	@bash scripts/install-deps.sh

# ---------------------------------------------------------------- tests

unit: all
	$(LUA) $(BUSTED) --cpath='build/lua5.4/?.so' spec/unit

unit-luajit: luajit
	luajit $(BUSTED) --cpath='build/luajit/?.so' spec/unit

integration: all luajit embed
	bash scripts/with-ddb-local.sh $(LUA) $(BUSTED) --cpath='build/lua5.4/?.so' spec/integration

integration-luajit: luajit embed
	bash scripts/with-ddb-local.sh luajit $(BUSTED) --cpath='build/luajit/?.so' spec/integration

# The interpreter is not instrumented, so the sanitizer runtimes are preloaded
# into it alone (never into the shell or DynamoDB Local's JVM).
SANITIZED := env ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
             UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 LD_PRELOAD='$(ASAN_RT)'
asan: deps asan-build luajit embed
	$(SANITIZED) $(LUA) $(BUSTED) --cpath='build/asan/?.so' spec/unit
	bash scripts/with-ddb-local.sh $(SANITIZED) $(LUA) $(BUSTED) --cpath='build/asan/?.so' spec/integration

valgrind: all
	valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	  --show-leak-kinds=definite $(LUA) $(BUSTED) --cpath='build/lua5.4/?.so' spec/unit

# Proves the rockspec builds and installs into a fresh tree that can load it.
rockspec-check:
	bash scripts/rockspec-check.sh

test: deps
	$(MAKE) all luajit
	$(MAKE) unit
	$(MAKE) unit-luajit
	$(MAKE) embed
	$(MAKE) integration
	$(MAKE) integration-luajit
	$(MAKE) asan
	$(MAKE) valgrind
	$(MAKE) rockspec-check

demo: deps all
	bash scripts/with-ddb-local.sh sh -c \
	  'LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/lua5.4/?.so;;" \
	   AWS_ENDPOINT_URL_DYNAMODB="$$LUNAMODB_TEST_ENDPOINT" AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo \
	   $(LUA) examples/basic.lua'

# The benchmark (bench/run.sh: set-up, runners, report in bench/results/latest.txt).
bench:
	bash bench/run.sh

clean:
	rm -rf build
