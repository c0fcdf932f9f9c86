/*
** examples/embed/main.c -- a C host that embeds Lua 5.4 with lunamodb linked
** statically and drives lunamodb's I/O from its own loop.
**
**   make embed && build/embed/lunamodb-embed [repo-dir]
**
** It preloads the core (lunamodb_preload), puts the repo's lua/ on
** package.path, runs examples/embed/script.lua (which spawns lunamodb tasks
** and returns tick and finish), then runs its own event loop: it asks
** lunamodb_io_wait which sockets lunamodb's transfers wait on and for how
** long at most, waits in poll(2) on those (a real host would add its own
** descriptors to the same set), then calls tick() (one scheduler.step(0)),
** until no task is left. Finally it calls finish() and prints its summary,
** the number of ticks and the most sockets it waited on at once. Exit
** status: 0 on success, 1 on any error. The repo dir comes from argv[1], else from the
** compile-time LUNAMODB_REPO_DIR (the Makefile passes its directory).
*/
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lunamodb.h"

#ifndef LUNAMODB_REPO_DIR
#define LUNAMODB_REPO_DIR "."
#endif

/* Prepends <repo>/lua/?.lua;<repo>/lua/?/init.lua; to package.path. */
static int set_path(lua_State *L, const char *repo) {
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s", repo, repo,
                  lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
  return 1;
}

static void report(lua_State *L, const char *what) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "lunamodb-embed: %s: %s\n", what, msg ? msg : "(error object is not a string)");
  lua_pop(L, 1);
}

#define MAX_FDS 64
/* Longest wait when lunamodb has nothing to wait for: the host's own pace. */
#define IDLE_WAIT_MS 100

/* Waits until one of lunamodb's sockets is ready or its timeout is up.
** Returns the number of sockets waited on, or -1 on an error. */
static int wait_for_io(lua_State *L) {
  lunamodb_pollfd lfds[MAX_FDS];
  struct pollfd pfds[MAX_FDS];
  int timeout_ms, i, n = lunamodb_io_wait(L, lfds, MAX_FDS, &timeout_ms);
  if (n < 0)
    return -1;
  if (n > MAX_FDS) {
    n = MAX_FDS;   /* the rest are looked at by the next step: come back soon */
    timeout_ms = 1;
  }
  if (timeout_ms < 0 || timeout_ms > IDLE_WAIT_MS)
    timeout_ms = IDLE_WAIT_MS;
  for (i = 0; i < n; i++) {
    pfds[i].fd = lfds[i].fd;
    pfds[i].events = (short)(((lfds[i].events & LUNAMODB_POLLIN) ? POLLIN : 0) |
                             ((lfds[i].events & LUNAMODB_POLLOUT) ? POLLOUT : 0));
    pfds[i].revents = 0;
  }
  if (timeout_ms > 0)
    (void)poll(n ? pfds : NULL, (nfds_t)n, timeout_ms);   /* EINTR: just step */
  return n;
}

int main(int argc, char **argv) {
  const char *repo = argc > 1 ? argv[1] : LUNAMODB_REPO_DIR;
  lua_State *L;
  int tick_ref, finish_ref, failed = 0, errors = 0, more = 1, all_ok, max_fds = 0;
  long ticks = 0;

  L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "lunamodb-embed: cannot create a Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  lunamodb_preload(L);
  if (!set_path(L, repo)) {
    fprintf(stderr, "lunamodb-embed: no package library\n");
    lua_close(L);
    return 1;
  }

  /* The script returns tick, finish. */
  lua_pushfstring(L, "%s/examples/embed/script.lua", repo);
  if (luaL_loadfile(L, lua_tostring(L, -1)) != LUA_OK) {
    report(L, "load");
    lua_close(L);
    return 1;
  }
  lua_remove(L, -2);
  if (lua_pcall(L, 0, 2, 0) != LUA_OK) {
    report(L, "script");
    lua_close(L);
    return 1;
  }
  if (!lua_isfunction(L, -2) || !lua_isfunction(L, -1)) {
    fprintf(stderr, "lunamodb-embed: the script must return tick, finish\n");
    lua_close(L);
    return 1;
  }
  finish_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  tick_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  /* The host's own loop: one non-blocking tick, then wait for lunamodb's
  ** sockets (and, in a real host, its own). A tick that raises (a task failed
  ** and nobody asked) is reported; the scheduler stays consistent, so the
  ** loop goes on. */
  while (more) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, tick_ref);
    ticks++;
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
      report(L, "tick");
      failed = 1;
      if (++errors >= 100) {
        fprintf(stderr, "lunamodb-embed: giving up after %d failed ticks\n", errors);
        lua_close(L);
        return 1;
      }
    } else {
      more = lua_toboolean(L, -1);
      lua_pop(L, 1);
    }
    if (more) {
      int n = wait_for_io(L);
      if (n < 0) {
        report(L, "io_wait");
        lua_close(L);
        return 1;
      }
      if (n > max_fds)
        max_fds = n;
    }
  }

  lua_rawgeti(L, LUA_REGISTRYINDEX, finish_ref);
  if (lua_pcall(L, 0, 2, 0) != LUA_OK) {
    report(L, "finish");
    lua_close(L);
    return 1;
  }
  all_ok = lua_toboolean(L, -1);
  printf("%s\n", lua_isstring(L, -2) ? lua_tostring(L, -2) : "(no summary)");
  printf("ticks: %ld\n", ticks);
  printf("most sockets waited on: %d\n", max_fds);
  lua_pop(L, 2);
  luaL_unref(L, LUA_REGISTRYINDEX, tick_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, finish_ref);
  lua_close(L);
  return (failed || !all_ok) ? 1 : 0;
}
