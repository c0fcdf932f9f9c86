/*
** compat.h -- lunamodb targets the Lua 5.4 C API; these map the few newer
** calls it uses onto LuaJIT 2.1 (LUA_VERSION_NUM 501), which already has
** luaL_setfuncs, luaL_testudata, luaL_setmetatable and luaL_newlib.
*/
#ifndef LMDB_COMPAT_H
#define LMDB_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#  define lua_rawlen(L, i)              lua_objlen(L, (i))
#endif

#if LUA_VERSION_NUM < 503
/* LuaJIT numbers are doubles: a value is an "integer" when it is integral
** and exactly representable (|n| <= 2^53). */
#  define LMDB_NO_INTEGERS 1
#endif

/* lua_rawget, giving the value's type as Lua 5.3 and later do */
#if LUA_VERSION_NUM < 503
static inline int lmdb_rawget(lua_State *L, int idx) {
  lua_rawget(L, idx);
  return lua_type(L, -1);
}
#else
#  define lmdb_rawget(L, idx) lua_rawget(L, (idx))
#endif

#if LUA_VERSION_NUM < 504
#  define lua_newuserdatauv(L, sz, nuv) lua_newuserdata(L, (sz))
/* a userdata's one user value: LuaJIT's environment table */
#  define lmdb_getuservalue(L, i)       lua_getfenv(L, (i))
#  define lmdb_setuservalue(L, i)       lua_setfenv(L, (i))
#else
#  define lmdb_getuservalue(L, i)       ((void)lua_getiuservalue(L, (i), 1))
#  define lmdb_setuservalue(L, i)       ((void)lua_setiuservalue(L, (i), 1))
#endif

#endif
