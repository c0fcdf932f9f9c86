/*
** lunamodb.h -- what a C program embedding Lua needs from the lunamodb core.
**
** Link the core statically (liblunamodb_core.a, plus -lcurl -lcrypto) and
** preload it before running scripts:
**
**   lua_State *L = luaL_newstate();
**   luaL_openlibs(L);
**   lunamodb_preload(L);      -- require("lunamodb.core") now finds the linked core
**
** The Lua half of lunamodb (the files under lua/lunamodb) must be on package.path
** (e.g. "<repo>/lua/?.lua;<repo>/lua/?/init.lua;").
**
** Driving I/O from the host's own loop (never blocking it):
**
**   Work runs in lunamodb tasks: scheduler.spawn(fn, ...) with
**   local scheduler = require "lunamodb.scheduler". Inside a task every lunamodb
**   call (client, models, query/scan, batch, transactions) yields while its
**   request is in flight or while it waits to retry, so many calls share one
**   curl multi handle. The host moves them forward by calling
**   scheduler.step(0) once per tick: it resumes the tasks that are ready and
**   polls curl without waiting (timeout 0), then returns the number of tasks
**   still alive. From C, keep a reference to the function (e.g. in the
**   registry with luaL_ref) and call it with lua_pcall each tick:
**
**     lua_rawgeti(L, LUA_REGISTRYINDEX, step_ref);   -- scheduler.step
**     lua_pushinteger(L, 0);                         -- timeout_ms: never wait
**     if (lua_pcall(L, 1, 1, 0) != LUA_OK) { ... lua_tostring(L, -1) ... }
**     alive = lua_tointeger(L, -1); lua_pop(L, 1);
**
**   Instead of stepping at a fixed rate, a host with its own event loop (poll,
**   epoll, libuv, ...) can sleep until lunamodb has something to do:
**   lunamodb_io_wait() tells which sockets the tasks' transfers wait on and
**   the longest the host may wait; when one of them is ready or the time is
**   up, call scheduler.step(0). examples/embed/main.c does this with poll(2).
**
**   A task's error is raised by the step in which it failed unless someone asked
**   for it (task:result(), scheduler.join()); the scheduler stays consistent, so
**   the host may report it and keep stepping. examples/embed/ is a complete host.
**   Outside a task (a plain lua_pcall of a script), the same calls block.
*/
#ifndef LUNAMODB_H
#define LUNAMODB_H

#include <lua.h>

#define LUNAMODB_VERSION "0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#  define LUNAMODB_EXPORT __attribute__((visibility("default")))
#else
#  define LUNAMODB_EXPORT
#endif

/* Opens the lunamodb.core module and leaves its table on the stack. */
LUNAMODB_EXPORT int luaopen_lunamodb_core(lua_State *L);

/* Registers luaopen_lunamodb_core as package.preload["lunamodb.core"], so
** that require "lunamodb" (and "lunamodb.core") use the statically linked
** core. Leaves the stack as it found it. Needs the package library
** (luaL_openlibs): without it, raises a Lua error (which, outside lua_pcall,
** goes to the panic handler). Works with Lua 5.4 and LuaJIT. */
LUNAMODB_EXPORT void lunamodb_preload(lua_State *L);

/* What lunamodb_io_wait fills in: one socket and what to wait for. */
#define LUNAMODB_POLLIN  1   /* readable */
#define LUNAMODB_POLLOUT 2   /* writable */
typedef struct lunamodb_pollfd {
  int fd;
  int events;   /* LUNAMODB_POLLIN | LUNAMODB_POLLOUT */
} lunamodb_pollfd;

/* What the host should wait on before its next scheduler.step(0) (Lua's
** scheduler.io_wait). Fills up to max entries of fds and returns the number
** of sockets (more than max: call again with a bigger array); *timeout_ms
** gets the longest the host may wait: 0 means step now, -1 means lunamodb
** has nothing to wait for (no task alive). On an error returns -1 and leaves
** the error message on the Lua stack. Call it from the host's loop, outside
** any Lua call. */
LUNAMODB_EXPORT int lunamodb_io_wait(lua_State *L, lunamodb_pollfd *fds, int max,
                                     int *timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
