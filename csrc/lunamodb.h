/*
** lunamodb.h -- what a C program embedding Lua needs from the lunamodb core.
**
** Link the core statically (liblunamodb_core.a, plus -lcurl -lcrypto) and
** preload it before running scripts:
**
**   luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
**   lua_pushcfunction(L, luaopen_lunamodb_core);
**   lua_setfield(L, -2, "lunamodb.core");
**   lua_pop(L, 1);
**
** The Lua half of lunamodb (the files under lua/lunamodb) must be on package.path.
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

#ifdef __cplusplus
}
#endif

#endif
