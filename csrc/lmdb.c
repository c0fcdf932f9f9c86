/*
** lmdb.c -- the only file of the core that touches the Lua API.
**
** It checks arguments, converts between Lua values and the pure-C parts
** (buf, json, paginate, batch, transact, digest, sigv4, retry, endpoint,
** credentials, http)
** and owns
** every C resource through a userdata whose __gc frees it, so a raised
** error never leaks.
*/
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compat.h"
#include "lunamodb.h"
#include "lmdb_private.h"

#define JSON_MAX_DEPTH 128

#define MT_STATE    "lunamodb.core_state"
#define MT_RAW_JSON "lunamodb.raw_json"
#define MT_SIGNER   "lunamodb.signer"
#define MT_POLICY   "lunamodb.retry_policy"
#define MT_HTTP     "lunamodb.http"
#define MT_REQUEST  "lunamodb.http_request"
#define MT_BODY     "lunamodb.body"

/* Per-lua_State scratch space, an upvalue of every module function that
** needs it, so two states never share buffers (OpenResty: one per worker). */

/* Upvalues of module functions: 1 = core_state, 2 = array_mt. */
#define STATE_UPVALUE lua_upvalueindex(1)
#define ARRAY_MT_UPVALUE lua_upvalueindex(2)
#define PLAN_MT_UPVALUE lua_upvalueindex(3)

/* The address of this variable is the light userdata standing for null. */
static const char json_null_sentinel = 0;
#define JSON_NULL ((void *)&json_null_sentinel)


/* ------------------------------------------------------------ helpers */

static lmdb_str check_str(lua_State *L, int idx) {
  lmdb_str s;
  s.ptr = luaL_checklstring(L, idx, &s.len);
  return s;
}

static lmdb_str opt_str(lua_State *L, int idx) {
  lmdb_str s = { NULL, 0 };
  if (!lua_isnoneornil(L, idx))
    s.ptr = luaL_checklstring(L, idx, &s.len);
  return s;
}

/* A request body held in C memory (builder:bodies(true)): a batch's bodies, 12.5 KB for 25
** items, never become Lua strings, which would be most of what a batch write allocates and
** so pace the collector. sign_post and http:perform/submit read one as they read a string;
** tostring gives its text (for transports that send strings); release frees it at once. */
typedef struct body_ud {
  lmdb_buf buf;
  int released;
} body_ud;

/* The text of the string or body at idx; with optional, none or nil is an empty string
** (ptr NULL). */
static lmdb_str body_arg(lua_State *L, int idx, int optional) {
  lmdb_str s = { NULL, 0 };
  body_ud *b;
  if (lua_type(L, idx) == LUA_TSTRING) {
    s.ptr = lua_tolstring(L, idx, &s.len);
    return s;
  }
  if (optional && lua_isnoneornil(L, idx)) return s;
  b = (body_ud *)luaL_testudata(L, idx, MT_BODY);
  if (b == NULL) {
    luaL_argerror(L, idx, lua_pushfstring(L, "a string or a lunamodb.body expected (got %s)",
                                          luaL_typename(L, idx)));
    return s;
  }
  if (b->released) luaL_argerror(L, idx, "a released lunamodb.body");
  s.ptr = b->buf.data ? b->buf.data : "";
  s.len = b->buf.len;
  return s;
}

/* The userdata at idx when its metatable is the value at mt (an absolute or upvalue index
** where the caller holds the class's metatable: comparing costs less than luaL_checkudata's
** registry lookup by name), else NULL. */
static void *udata_with_mt(lua_State *L, int idx, int mt) {
  void *p = lua_touserdata(L, idx);
  int same;
  if (p == NULL || !lua_getmetatable(L, idx))
    return NULL;
  same = lua_rawequal(L, -1, mt);
  lua_pop(L, 1);
  return same ? p : NULL;
}

/* The userdata at 1 when its metatable is the method's upvalue 1 (new_class puts the
** class's metatable there); any other value gets luaL_checkudata's check and error. */
static void *check_self(lua_State *L, const char *tname) {
  void *p = udata_with_mt(L, 1, lua_upvalueindex(1));
  return p ? p : luaL_checkudata(L, 1, tname);
}

/* t[field] as a string; raises naming the field when it is missing or of
** the wrong type (required) or of the wrong type (optional). */
static lmdb_str field_str(lua_State *L, int t, const char *field, int required) {
  lmdb_str s = { NULL, 0 };
  int ty;
  lua_getfield(L, t, field);
  ty = lua_type(L, -1);
  if (ty == LUA_TSTRING) {
    s.ptr = lua_tolstring(L, -1, &s.len);       /* stays alive: t holds it */
  } else if (ty != LUA_TNIL || required) {
    luaL_error(L, "field '%s' must be a string (got %s)", field, lua_typename(L, ty));
  }
  lua_pop(L, 1);
  return s;
}

static int field_bool(lua_State *L, int t, const char *field, int dflt) {
  int v = dflt, ty;
  lua_getfield(L, t, field);
  ty = lua_type(L, -1);
  if (ty == LUA_TBOOLEAN)
    v = lua_toboolean(L, -1);
  else if (ty != LUA_TNIL)
    luaL_error(L, "field '%s' must be a boolean (got %s)", field, lua_typename(L, ty));
  lua_pop(L, 1);
  return v;
}

static double field_num(lua_State *L, int t, const char *field, double dflt,
                        double lo, double hi) {
  double v = dflt;
  int ty;
  lua_getfield(L, t, field);
  ty = lua_type(L, -1);
  if (ty == LUA_TNUMBER) {
    v = lua_tonumber(L, -1);
    if (!(v >= lo && v <= hi)) {
      char range[96];                          /* lua_pushfstring has no %g */
      snprintf(range, sizeof range, "between %g and %g (got %g)", lo, hi, v);
      luaL_error(L, "field '%s' must be %s", field, range);
    }
  } else if (ty != LUA_TNIL) {
    luaL_error(L, "field '%s' must be a number (got %s)", field, lua_typename(L, ty));
  }
  lua_pop(L, 1);
  return v;
}

static int64_t check_int64(lua_State *L, int idx) {
#ifdef LMDB_NO_INTEGERS
  lua_Number n = luaL_checknumber(L, idx);
  luaL_argcheck(L, n == floor(n) && fabs(n) <= 9007199254740992.0, idx, "integer expected");
  return (int64_t)n;
#else
  return (int64_t)luaL_checkinteger(L, idx);
#endif
}

static void push_int64(lua_State *L, int64_t v) {
#ifdef LMDB_NO_INTEGERS
  lua_pushnumber(L, (lua_Number)v);
#else
  lua_pushinteger(L, (lua_Integer)v);
#endif
}

static void push_str(lua_State *L, lmdb_str s) {
  lua_pushlstring(L, s.ptr ? s.ptr : "", s.len);
}

static void push_buf(lua_State *L, const lmdb_buf *b) {
  lua_pushlstring(L, b->data ? b->data : "", b->len);
}

/* --------------------------------------------------------- JSON encode */

typedef struct path_seg {
  const char *key;     /* NULL: array index */
  size_t keylen;
  lua_Integer index;
} path_seg;

typedef struct encoder {
  lua_State *L;
  lmdb_buf *out;
  int array_mt;        /* stack index of core.array_mt */
  int depth;
  path_seg path[JSON_MAX_DEPTH + 1];
} encoder;

/* Raises "lunamodb.json: $.a.b[2]: what". */
static int encode_error(encoder *e, const char *what) {
  lua_State *L = e->L;
  luaL_Buffer b;
  int i;
  char num[32];
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "lunamodb.json: $");
  for (i = 0; i < e->depth; i++) {
    if (e->path[i].key) {
      luaL_addchar(&b, '.');
      luaL_addlstring(&b, e->path[i].key, e->path[i].keylen > 64 ? 64 : e->path[i].keylen);
    } else {
      snprintf(num, sizeof num, "[%lld]", (long long)e->path[i].index);
      luaL_addstring(&b, num);
    }
  }
  luaL_addstring(&b, ": ");
  luaL_addstring(&b, what);
  luaL_pushresult(&b);
  return lua_error(L);
}

static void encode_value(encoder *e, int idx);

/* Per-lua_State scratch space, an upvalue of every module function that
** needs it, so two states never share buffers (OpenResty: one per worker).
** Neither the encoder nor the decoder calls back into Lua code, so they are
** never re-entered. */
typedef struct core_state {
  lmdb_buf out;               /* JSON encoder output, reused */
  encoder enc;
  lmdb_json_lexer lexer;      /* its scratch buffer is reused */
  lmdb_json_lexer item_lexer; /* decode_items' own: its hooks may call json_decode */
  lmdb_buf item_out;          /* encode_item's own output and encoder: its hooks may */
  encoder item_enc;           /* call json_encode or base64_encode (which use out) */
  lmdb_buf upd[3];            /* update_body's expression, names and values */
  int holds_digest;           /* lmdb_digest_acquire'd, released by __gc */
} core_state;

static int state_gc(lua_State *L) {
  core_state *st = (core_state *)check_self(L, MT_STATE);
  lmdb_buf_free(&st->out);
  lmdb_json_lexer_free(&st->lexer);
  lmdb_json_lexer_free(&st->item_lexer);
  lmdb_buf_free(&st->item_out);
  lmdb_buf_free(&st->upd[0]);
  lmdb_buf_free(&st->upd[1]);
  lmdb_buf_free(&st->upd[2]);
  if (st->holds_digest) {
    st->holds_digest = 0;
    lmdb_digest_release();
  }
  return 0;
}

static core_state *get_state(lua_State *L) {
  return (core_state *)lua_touserdata(L, STATE_UPVALUE);
}

static void encode_number(encoder *e, int idx) {
  char tmp[40];
  int n;
#ifndef LMDB_NO_INTEGERS
  if (lua_isinteger(e->L, idx)) {
    n = lmdb_fmt_int64(tmp, (int64_t)lua_tointeger(e->L, idx));
  } else
#endif
  {
    lua_Number v = lua_tonumber(e->L, idx);
    if (v != v || v == HUGE_VAL || v == -HUGE_VAL)
      encode_error(e, "NaN and infinity cannot be encoded");
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
      n = snprintf(tmp, sizeof tmp, "%.0f", (double)v);
    else
      n = snprintf(tmp, sizeof tmp, "%.17g", (double)v);
  }
  if (lmdb_buf_append(e->out, tmp, (size_t)n) != 0)
    encode_error(e, "not enough memory");
}

static void encode_string(encoder *e, int idx) {
  size_t len;
  const char *s = lua_tolstring(e->L, idx, &len);
  int rc = lmdb_json_put_string(e->out, s, len);
  if (rc == -2)
    encode_error(e, "string is not valid UTF-8 (binary data must be base64-encoded)");
  else if (rc != 0)
    encode_error(e, "not enough memory");
}

static void encode_array(encoder *e, int idx, size_t n) {
  size_t i;
  if (lmdb_buf_putc(e->out, '[') != 0)
    encode_error(e, "not enough memory");
  for (i = 1; i <= n; i++) {
    if (i > 1 && lmdb_buf_putc(e->out, ',') != 0)
      encode_error(e, "not enough memory");
    e->path[e->depth].key = NULL;
    e->path[e->depth].index = (lua_Integer)i;
    e->depth++;
    lua_rawgeti(e->L, idx, (int)i);
    encode_value(e, lua_gettop(e->L));
    lua_pop(e->L, 1);
    e->depth--;
  }
  if (lmdb_buf_putc(e->out, ']') != 0)
    encode_error(e, "not enough memory");
}

static void encode_table(encoder *e, int idx) {
  lua_State *L = e->L;
  int first = 1;
  if (e->depth >= JSON_MAX_DEPTH)
    encode_error(e, "nesting deeper than 128 levels (or a cycle)");
  luaL_checkstack(L, 6, "lunamodb.json: nesting too deep");
  if (lua_getmetatable(L, idx)) {
    int is_array = lua_rawequal(L, -1, e->array_mt), is_raw = 0;
    if (!is_array) {
      luaL_getmetatable(L, MT_RAW_JSON);
      is_raw = lua_rawequal(L, -1, -2);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (is_array) {
      encode_array(e, idx, lua_rawlen(L, idx));
      return;
    }
    if (is_raw) {                                 /* core.raw_json: JSON text as is */
      size_t n;
      const char *text;
      lua_rawgeti(L, idx, 1);
      text = lua_tolstring(L, -1, &n);
      if (text == NULL)
        encode_error(e, "a raw JSON value holds no text");
      if (lmdb_buf_append(e->out, text, n) != 0)
        encode_error(e, "not enough memory");
      lua_pop(L, 1);
      return;
    }
  }
  lua_rawgeti(L, idx, 1);
  if (!lua_isnil(L, -1)) {                      /* a sequence: check it is pure */
    size_t n = lua_rawlen(L, idx), count = 0;
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      lua_pop(L, 1);
      count++;
    }
    if (count != n)
      encode_error(e, "table mixes array items and other keys (or has holes)");
    encode_array(e, idx, n);
    return;
  }
  lua_pop(L, 1);
  if (lmdb_buf_putc(e->out, '{') != 0)
    encode_error(e, "not enough memory");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t klen;
    const char *k;
    if (lua_type(L, -2) != LUA_TSTRING) {
      const char *tn = lua_typename(L, lua_type(L, -2));
      lua_pushfstring(L, "object keys must be strings (got a %s key)", tn);
      encode_error(e, lua_tostring(L, -1));
    }
    k = lua_tolstring(L, -2, &klen);
    if (!first && lmdb_buf_putc(e->out, ',') != 0)
      encode_error(e, "not enough memory");
    first = 0;
    e->path[e->depth].key = k;
    e->path[e->depth].keylen = klen;
    e->depth++;
    if (lmdb_json_put_string(e->out, k, klen) != 0) {
      e->depth--;
      encode_error(e, "key is not valid UTF-8");
    }
    if (lmdb_buf_putc(e->out, ':') != 0)
      encode_error(e, "not enough memory");
    encode_value(e, lua_gettop(L));
    e->depth--;
    lua_pop(L, 1);
  }
  if (lmdb_buf_putc(e->out, '}') != 0)
    encode_error(e, "not enough memory");
}

static void encode_value(encoder *e, int idx) {
  switch (lua_type(e->L, idx)) {
    case LUA_TSTRING: encode_string(e, idx); break;
    case LUA_TNUMBER: encode_number(e, idx); break;
    case LUA_TTABLE: encode_table(e, idx); break;
    case LUA_TBOOLEAN:
      if (lmdb_buf_puts(e->out, lua_toboolean(e->L, idx) ? "true" : "false") != 0)
        encode_error(e, "not enough memory");
      break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(e->L, idx) == JSON_NULL) {
        if (lmdb_buf_puts(e->out, "null") != 0)
          encode_error(e, "not enough memory");
        break;
      }
      /* fall through */
    default: {
      const char *tn = lua_typename(e->L, lua_type(e->L, idx));
      lua_pushfstring(e->L, "a %s cannot be encoded", tn);
      encode_error(e, lua_tostring(e->L, -1));
    }
  }
}

static int core_json_encode(lua_State *L) {
  core_state *st = get_state(L);
  encoder *e = &st->enc;
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  e->L = L;
  e->out = &st->out;
  e->depth = 0;
  lua_pushvalue(L, ARRAY_MT_UPVALUE);
  e->array_mt = lua_gettop(L);
  lmdb_buf_reset(&st->out);
  encode_value(e, 1);
  push_buf(L, &st->out);
  if (st->out.cap > 1 << 20) {                 /* don't pin a huge buffer */
    lmdb_buf_free(&st->out);
  }
  return 1;
}

/* --------------------------------------------------------- JSON decode */

static int decode_value(lua_State *L, lmdb_json_lexer *lx, lmdb_json_token t, int array_mt);

static void push_number_token(lua_State *L, lmdb_json_lexer *lx) {
  if (lx->is_integer) {
#ifdef LMDB_NO_INTEGERS
    lua_pushnumber(L, (lua_Number)lx->integer);
#else
    lua_pushinteger(L, (lua_Integer)lx->integer);
#endif
  } else {
    char tmp[64];
    size_t n = lx->tok.len < sizeof tmp - 1 ? lx->tok.len : sizeof tmp - 1;
    char *endp;
    if (lx->tok.len >= sizeof tmp) {            /* a very long number: copy it */
      char *big = (char *)malloc(lx->tok.len + 1);
      double v;
      if (big == NULL) { lua_pushnumber(L, 0); return; }
      memcpy(big, lx->tok.ptr, lx->tok.len);
      big[lx->tok.len] = '\0';
      v = strtod(big, &endp);
      free(big);
      lua_pushnumber(L, (lua_Number)v);
      return;
    }
    memcpy(tmp, lx->tok.ptr, n);
    tmp[n] = '\0';
    lua_pushnumber(L, (lua_Number)strtod(tmp, &endp));
  }
}

/* Pushes the value that starts with token t; returns 0 on a lexer error. */
static int decode_value(lua_State *L, lmdb_json_lexer *lx, lmdb_json_token t, int array_mt) {
  switch (t) {
    case LMDB_JSON_STRING: lua_pushlstring(L, lx->tok.ptr, lx->tok.len); return 1;
    case LMDB_JSON_NUMBER: push_number_token(L, lx); return 1;
    case LMDB_JSON_TRUE: lua_pushboolean(L, 1); return 1;
    case LMDB_JSON_FALSE: lua_pushboolean(L, 0); return 1;
    case LMDB_JSON_NULL: lua_pushlightuserdata(L, JSON_NULL); return 1;
    case LMDB_JSON_OBJECT_START:
      luaL_checkstack(L, 4, "lunamodb.json: nesting too deep");
      lua_createtable(L, 0, 4);
      for (;;) {
        t = lmdb_json_next(lx);
        if (t == LMDB_JSON_OBJECT_END) return 1;
        if (t != LMDB_JSON_STRING) return 0;
        lua_pushlstring(L, lx->tok.ptr, lx->tok.len);
        if (!decode_value(L, lx, lmdb_json_next(lx), array_mt)) return 0;
        lua_rawset(L, -3);
      }
    case LMDB_JSON_ARRAY_START: {
      int i = 0;
      luaL_checkstack(L, 4, "lunamodb.json: nesting too deep");
      lua_createtable(L, 4, 0);
      lua_pushvalue(L, array_mt);
      lua_setmetatable(L, -2);
      for (;;) {
        t = lmdb_json_next(lx);
        if (t == LMDB_JSON_ARRAY_END) return 1;
        if (!decode_value(L, lx, t, array_mt)) return 0;
        lua_rawseti(L, -2, ++i);
      }
    }
    default:
      return 0;
  }
}

static int core_json_decode(lua_State *L) {
  core_state *st = get_state(L);
  lmdb_json_lexer *lx = &st->lexer;
  lmdb_str s = check_str(L, 1);
  int base, ok;
  lua_settop(L, 1);
  lua_pushvalue(L, ARRAY_MT_UPVALUE);
  base = lua_gettop(L);
  lmdb_json_lexer_init(lx, s.ptr, s.len, JSON_MAX_DEPTH);
  ok = decode_value(L, lx, lmdb_json_next(lx), base);
  if (ok && lmdb_json_next(lx) != LMDB_JSON_END)
    ok = 0;
  if (!ok) {
    lua_settop(L, base);
    lua_pushnil(L);
    lua_pushfstring(L, "invalid JSON at byte %d: %s", (int)lx->error_offset + 1,
                    lx->error ? lx->error : "unexpected token");
    return 2;
  }
  if (lx->scratch.cap > 1 << 20)
    lmdb_buf_free(&lx->scratch);
  return 1;
}

/* ------------------------------------------- schema-directed item decode */

/*
** core.decode_items(text, spec, mode, field, hooks) decodes a DynamoDB
** response whose items a model's schema describes straight into native Lua
** values, without the intermediate attribute-value tables json_decode would
** build (about five tables per item instead of twenty-five).
**
** spec: a map level (an item, or a typed map's fields): spec[wire_name] =
** { code, name, sub, attr }; spec[1] == true keeps names spec does not
** declare (decoded by hooks.dynamic), else they are skipped; with spec[2] they go
** aside, into a table at key spec[2] of the level's table (an item's undeclared names,
** which the model keeps apart from its fields). Codes below.
** mode: "list" (field is an array of items: Query, Scan), "item" (field is
** one item: GetItem's Item, UpdateItem's Attributes), "tables" (field maps
** table names to arrays of items: BatchGetItem's Responses). Every other
** member is decoded as json_decode would.
** hooks: fallback(attr, av, name) -> value (the attribute's own decode, for
** codes it has no fast path for and for unexpected shapes), dynamic(av,
** name), number(text) -> value | nil, null, set_mt, k_members, k_size,
** k_kind, dt_mt, k_sec, k_usec (copied once into the table's array part, which
** the decoder reads: the hooks are fixed once given).
** Returns the response table, or nil when the text is not what DynamoDB
** sends (malformed JSON, an attribute value of several members, a number or
** datetime text the fast path does not take): the caller then decodes it the
** slow way, which reports precisely what is wrong.
*/
enum {
  DEC_FALLBACK = 0, DEC_S = 1, DEC_N = 2, DEC_BOOL = 3, DEC_SS = 4, DEC_DATETIME = 5,
  DEC_MAP = 6, DEC_LIST = 7
};

/* Stack slots of one decode call. */
typedef struct item_decoder {
  lua_State *L;
  lmdb_json_lexer *lx;
  int hooks, array_mt;
  int index_mt;              /* stack slot of the level indexes' metatable (dec_index_of) */
} item_decoder;

#define DEC_ABSENT 2   /* an attribute value stored as NULL: nothing pushed */
#define LIST_ON_STACK 32   /* list elements decoded before their table is made (exact size) */

/* The decode hooks by number: core_decode_items copies them by name into the hooks table's
** array part once (its first call with that table), then reads them with rawgeti. */
enum { DH_FALLBACK = 1, DH_DYNAMIC, DH_NUMBER, DH_NULL, DH_SET_MT, DH_K_MEMBERS, DH_K_SIZE,
       DH_K_KIND, DH_DT_MT, DH_K_SEC, DH_K_USEC, DH_COUNT = DH_K_USEC };
static const char *const dec_hook_names[DH_COUNT] = {
  "fallback", "dynamic", "number", "null", "set_mt", "k_members", "k_size", "k_kind", "dt_mt",
  "k_sec", "k_usec"
};

static void dec_hook(item_decoder *d, int which) {
  lua_rawgeti(d->L, d->hooks, which);
}

/* Pushes the number a canonical DynamoDB N text stands for, as values.decode_number
** would: integers that fit as integers, non-integers of at most 15 significant
** digits as floats. Returns 0 for any other text (the hook decides). */
static int dec_number_fast(lua_State *L, const char *s, size_t n) {
  size_t i = 0, intd = 0, fracd = 0, sig = 0, lead = 0, trail = 0;
  int neg = 0, seen_nonzero = 0;
  uint64_t acc = 0;
  if (n > 0 && s[0] == '-') { neg = 1; i = 1; }
  if (i >= n) return 0;
  for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
    intd++;
    if (s[i] != '0') seen_nonzero = 1;
    if (!seen_nonzero) lead++;
    acc = acc * 10 + (uint64_t)(s[i] - '0');
    if (intd > 19) return 0;
  }
  if (intd == 0) return 0;
  if (i == n) {
#ifdef LMDB_NO_INTEGERS
    if (intd - lead > 15) return 0;
    lua_pushnumber(L, neg ? -(lua_Number)acc : (lua_Number)acc);
#else
    if (intd - lead > 18) return 0;
    lua_pushinteger(L, neg ? -(lua_Integer)acc : (lua_Integer)acc);
#endif
    return 1;
  }
  if (s[i] != '.') return 0;
  for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
    fracd++;
    trail = s[i] == '0' ? trail + 1 : 0;
    if (s[i] != '0') seen_nonzero = 1;
    if (!seen_nonzero) lead++;
  }
  if (i != n || fracd == 0 || trail == fracd || n >= 64) return 0;
  sig = intd + fracd - lead - trail;
  if (!seen_nonzero || sig > 15) return 0;
#if FLT_EVAL_METHOD == 0
  /* At most 15 significant digits M and at most 22 decimals k: M and 10^k are exact doubles,
  ** so M / 10^k, one correctly rounded division, is the double strtod would give (Clinger's
  ** fast path), without strtod's code and its copy of the text. */
  if (fracd - trail <= 22) {
    static const double pow10[23] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
      1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };
    size_t k, dot = intd + (size_t)neg;
    uint64_t m = acc;
    for (k = 1; k <= fracd - trail; k++)
      m = m * 10 + (uint64_t)(s[dot + k] - '0');
    lua_pushnumber(L, (lua_Number)((neg ? -(double)m : (double)m) / pow10[fracd - trail]));
    return 1;
  }
#endif
  {
    char tmp[64];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    lua_pushnumber(L, (lua_Number)strtod(tmp, NULL));
  }
  return 1;
}

static int dec_digits(const char *s, int n, int *out) {
  int i, v = 0;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 1;
}

/* "YYYY-MM-DDTHH:MM:SS.ffffff+0000" -> epoch seconds, microseconds. */
static int dec_datetime(const char *s, size_t n, int64_t *sec, int *usec) {
  int y, mo, d, h, mi, se;
  if (n != 31 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
      s[19] != '.' || memcmp(s + 26, "+0000", 5) != 0)
    return 0;
  if (!dec_digits(s, 4, &y) || !dec_digits(s + 5, 2, &mo) || !dec_digits(s + 8, 2, &d) ||
      !dec_digits(s + 11, 2, &h) || !dec_digits(s + 14, 2, &mi) ||
      !dec_digits(s + 17, 2, &se) || !dec_digits(s + 20, 6, usec))
    return 0;
  if (y < 1 || h > 23 || mi > 59 || se > 59 || d < 1 || d > lmdb_days_in_month(y, mo))
    return 0;
  *sec = lmdb_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
  return 1;
}

static int dec_object(item_decoder *d, int spec);
static int dec_attr(item_decoder *d, int entry, int code, lmdb_json_token t);

/* The rest of an attribute value whose first member (letter, then its value
** token t) was read already, as a generic table; then hooks.fallback(attr,
** av, name) decodes it. Returns 1 or 0 (malformed). */
static int dec_fallback(item_decoder *d, int entry, const char *letter, size_t llen,
                        lmdb_json_token t) {
  lua_State *L = d->L;
  lua_createtable(L, 0, 1);
  lua_pushlstring(L, letter, llen);
  if (!decode_value(L, d->lx, t, d->array_mt)) return 0;
  lua_rawset(L, -3);
  for (;;) {
    t = lmdb_json_next(d->lx);
    if (t == LMDB_JSON_OBJECT_END) break;
    if (t != LMDB_JSON_STRING) return 0;
    lua_pushlstring(L, d->lx->tok.ptr, d->lx->tok.len);
    if (!decode_value(L, d->lx, lmdb_json_next(d->lx), d->array_mt)) return 0;
    lua_rawset(L, -3);
  }
  /* fallback(attr, av, name) */
  dec_hook(d, DH_FALLBACK);
  lua_insert(L, -2);
  lua_rawgeti(L, entry, 4);
  lua_insert(L, -2);
  lua_rawgeti(L, entry, 2);
  lua_call(L, 3, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return DEC_ABSENT;
  }
  return 1;
}

static int expect_object_end(item_decoder *d, int r) {
  if (r == 0) return 0;
  if (lmdb_json_next(d->lx) != LMDB_JSON_OBJECT_END) {
    if (r == 1) lua_pop(d->L, 1);
    return 0;
  }
  return r;
}

/* The attribute values most items are made of, read straight from the text as DynamoDB
** writes them: {"S":"text"} and {"N":"digits"} with nothing to unescape, {"BOOL":true}.
** lx is just past the '{'. 1: the value pushed and the object read; 0: not such a value,
** nothing read (the lexer reads it, and reports what is wrong). */
static int dec_plain(item_decoder *d, int code) {
  lmdb_json_lexer *lx = d->lx;
  const unsigned char *p = (const unsigned char *)lx->p, *end = (const unsigned char *)lx->end;
  const unsigned char *s, *q;
  if (code == DEC_BOOL) {
    if (end - p >= 12 && memcmp(p, "\"BOOL\":true}", 12) == 0) {
      lua_pushboolean(d->L, 1);
      lmdb_json_close_object(lx, (const char *)p + 11);
      return 1;
    }
    if (end - p >= 13 && memcmp(p, "\"BOOL\":false}", 13) == 0) {
      lua_pushboolean(d->L, 0);
      lmdb_json_close_object(lx, (const char *)p + 12);
      return 1;
    }
    return 0;
  }
  if (end - p < 7 || p[0] != '"' || p[1] != (code == DEC_S ? 'S' : 'N') || p[2] != '"' ||
      p[3] != ':' || p[4] != '"')
    return 0;
  s = q = p + 5;
  while (q < end && lmdb_json_plain[*q]) q++;
  if (end - q < 2 || q[0] != '"' || q[1] != '}') return 0;
  if (code == DEC_S) {
    lua_pushlstring(d->L, (const char *)s, (size_t)(q - s));
  } else if (!dec_number_fast(d->L, (const char *)s, (size_t)(q - s))) {
    return 0;                                  /* the number hook's, through the lexer */
  }
  lmdb_json_close_object(lx, (const char *)q + 1);
  return 1;
}

/* One attribute value (its first token t) with the entry at stack index entry and its code:
** pushes the value (1), nothing for NULL (DEC_ABSENT), or 0. */
static int dec_attr(item_decoder *d, int entry, int code, lmdb_json_token t) {
  lua_State *L = d->L;
  lmdb_json_lexer *lx = d->lx;
  int r = 1;
  char letter[8];
  size_t llen;
  if (t != LMDB_JSON_OBJECT_START) return 0;
  if ((code == DEC_S || code == DEC_N || code == DEC_BOOL) && dec_plain(d, code)) return 1;
  if (lmdb_json_next(lx) != LMDB_JSON_STRING || lx->tok.len >= sizeof letter) return 0;
  llen = lx->tok.len;
  memcpy(letter, lx->tok.ptr, llen);
  letter[llen] = '\0';
  t = lmdb_json_next(lx);
  if (code != DEC_FALLBACK && strcmp(letter, "NULL") == 0 && t == LMDB_JSON_TRUE)
    return expect_object_end(d, DEC_ABSENT);
  switch (code) {
    case DEC_S:
      if (strcmp(letter, "S") || t != LMDB_JSON_STRING) break;
      lua_pushlstring(L, lx->tok.ptr, lx->tok.len);
      return expect_object_end(d, 1);
    case DEC_N:
      if (strcmp(letter, "N") || t != LMDB_JSON_STRING) break;
      if (!dec_number_fast(L, lx->tok.ptr, lx->tok.len)) {
        dec_hook(d, DH_NUMBER);
        lua_pushlstring(L, lx->tok.ptr, lx->tok.len);
        lua_call(L, 1, 1);
        if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
      }
      return expect_object_end(d, 1);
    case DEC_BOOL:
      if (strcmp(letter, "BOOL") || (t != LMDB_JSON_TRUE && t != LMDB_JSON_FALSE)) break;
      lua_pushboolean(L, t == LMDB_JSON_TRUE);
      return expect_object_end(d, 1);
    case DEC_DATETIME: {
      int64_t sec;
      int usec;
      if (strcmp(letter, "S") || t != LMDB_JSON_STRING) break;
      if (!dec_datetime(lx->tok.ptr, lx->tok.len, &sec, &usec)) return 0;
      lua_createtable(L, 0, 2);
      dec_hook(d, DH_K_SEC);
      push_int64(L, sec);
      lua_rawset(L, -3);
      dec_hook(d, DH_K_USEC);
      lua_pushinteger(L, usec);
      lua_rawset(L, -3);
      dec_hook(d, DH_DT_MT);
      lua_setmetatable(L, -2);
      return expect_object_end(d, 1);
    }
    case DEC_SS: {
      int n = 0, members;
      if (strcmp(letter, "SS") || t != LMDB_JSON_ARRAY_START) break;
      lua_createtable(L, 0, 3);
      lua_createtable(L, 0, 4);
      members = lua_gettop(L);
      for (;;) {
        t = lmdb_json_next(lx);
        if (t == LMDB_JSON_ARRAY_END) break;
        if (t != LMDB_JSON_STRING) { lua_pop(L, 2); return 0; }
        lua_pushlstring(L, lx->tok.ptr, lx->tok.len);
        lua_pushvalue(L, -1);
        lua_rawget(L, members);
        if (lua_isnil(L, -1)) {
          lua_pop(L, 1);
          lua_pushvalue(L, -1);
          lua_rawset(L, members);
          n++;
        } else {
          lua_pop(L, 2);
        }
      }
      dec_hook(d, DH_K_MEMBERS);
      lua_insert(L, -2);
      lua_rawset(L, -3);
      dec_hook(d, DH_K_SIZE);
      lua_pushinteger(L, n);
      lua_rawset(L, -3);
      if (n > 0) {
        dec_hook(d, DH_K_KIND);
        lua_pushliteral(L, "string");
        lua_rawset(L, -3);
      }
      dec_hook(d, DH_SET_MT);
      lua_setmetatable(L, -2);
      return expect_object_end(d, 1);
    }
    case DEC_MAP:
      if (strcmp(letter, "M") || t != LMDB_JSON_OBJECT_START) break;
      lua_rawgeti(L, entry, 3);
      if (!lua_istable(L, -1)) { lua_pop(L, 1); return 0; }    /* not a spec: give up */
      r = dec_object(d, lua_gettop(L));
      lua_remove(L, r ? -2 : -1);
      return expect_object_end(d, r);
    case DEC_LIST: {
      int i = 0, elem, elem_code;
      if (strcmp(letter, "L") || t != LMDB_JSON_ARRAY_START) break;
      luaL_checkstack(L, 8, "lunamodb: nesting too deep");
      lua_rawgeti(L, entry, 3);
      elem = lua_gettop(L);
      if (!lua_istable(L, elem)) { lua_pop(L, 1); return 0; }   /* not a spec: give up */
      lua_rawgeti(L, elem, 1);
      elem_code = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
      /* The first LIST_ON_STACK elements wait on the stack, so a list that short gets a table
      ** of its exact size (no growth step when it passes a guessed size); a longer one goes
      ** on growing the table by doubling. */
      luaL_checkstack(L, LIST_ON_STACK + 8, "lunamodb: nesting too deep");
      for (;;) {
        t = lmdb_json_next(lx);
        if (t == LMDB_JSON_ARRAY_END || i == LIST_ON_STACK) break;
        r = dec_attr(d, elem, elem_code, t);
        if (r == 0) { lua_settop(L, elem - 1); return 0; }
        if (r == DEC_ABSENT) dec_hook(d, DH_NULL);
        i++;
      }
      lua_createtable(L, t == LMDB_JSON_ARRAY_END ? i : 2 * LIST_ON_STACK, 0);
      lua_pushvalue(L, d->array_mt);
      lua_setmetatable(L, -2);
      lua_insert(L, elem + 1);
      for (r = i; r > 0; r--)
        lua_rawseti(L, elem + 1, r);       /* pops the elements, last first */
      for (; t != LMDB_JSON_ARRAY_END; t = lmdb_json_next(lx)) {
        r = dec_attr(d, elem, elem_code, t);
        if (r == 0) { lua_settop(L, elem - 1); return 0; }
        if (r == DEC_ABSENT) dec_hook(d, DH_NULL);
        lua_rawseti(L, elem + 1, ++i);
      }
      lua_remove(L, elem);
      return expect_object_end(d, 1);
    }
    default:
      break;
  }
  return dec_fallback(d, entry, letter, llen, t);
}

/* A level's names indexed by their bytes (the batch keyset's table), built on the level's
** first decode and kept at spec[DEC_INDEX]: a name read from the text is found without a
** Lua string made for it. Name i (as the keyset numbers them) has its code at code[i] and
** its entry at i + 1 of the index's user value. */
#define MT_DEC_INDEX "lunamodb.decode_index"
#define DEC_INDEX 3

typedef struct dec_index {
  lmdb_keyset names;
  int *code;                 /* in the userdata's own block, after the struct */
} dec_index;

static int dec_index_gc(lua_State *L) {
  dec_index *x = (dec_index *)check_self(L, MT_DEC_INDEX);
  lmdb_keyset_free(&x->names);
  return 0;
}

/* Pushes the index of the level spec (a table) and its user value; builds it the first
** time. Returns the index. index_mt: the stack slot of the indexes' metatable. */
static dec_index *dec_index_of(lua_State *L, int spec, int index_mt) {
  dec_index *x;
  int n = 0, uv;
  lua_rawgeti(L, spec, DEC_INDEX);
  x = (dec_index *)udata_with_mt(L, -1, index_mt);
  if (x != NULL) {
    lmdb_getuservalue(L, -1);
    return x;
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  while (lua_next(L, spec)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) n++;
  }
  if (n > 100000) luaL_error(L, "lunamodb: decode_items: too many attributes");
  x = (dec_index *)lua_newuserdatauv(L, sizeof *x + (size_t)n * sizeof(int), 1);
  lmdb_keyset_init(&x->names);
  x->code = (int *)(void *)(x + 1);
  luaL_setmetatable(L, MT_DEC_INDEX);
  lua_createtable(L, n, 0);
  uv = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, spec)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1) && (int)x->names.n < n) {
      size_t len;
      const char *wire = lua_tolstring(L, -2, &len);
      long i = lmdb_keyset_add(&x->names, 0, wire, len);
      if (i == -2) luaL_error(L, "lunamodb: decode_items: not enough memory");
      lua_rawgeti(L, -1, 1);
      x->code[i] = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
      lua_rawseti(L, uv, (int)i + 1);                  /* the entry */
    } else {
      lua_pop(L, 1);
    }
  }
  lmdb_setuservalue(L, -2);                           /* pops uv */
  lua_pushvalue(L, -1);
  lua_rawseti(L, spec, DEC_INDEX);
  lmdb_getuservalue(L, -1);
  return x;
}

/* A map level (an item or a typed map) whose OBJECT_START was read: pushes the
** table of its values. Returns 1, or 0 with nothing pushed. */
static int dec_object(item_decoder *d, int spec) {
  lua_State *L = d->L;
  lmdb_json_lexer *lx = d->lx;
  int out, keep, aside, r, uv;
  const dec_index *x;
  lmdb_json_token t;
  luaL_checkstack(L, 12, "lunamodb: nesting too deep");
  x = dec_index_of(L, spec, d->index_mt);               /* index, user value */
  uv = lua_gettop(L);
  lua_rawgeti(L, spec, 1);
  keep = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_createtable(L, 0, (int)x->names.n);       /* room for what the level declares */
  out = lua_gettop(L);
  lua_rawgeti(L, spec, 2);                      /* the key of the names put aside, or nil */
  aside = lua_isnil(L, -1) ? 0 : lua_gettop(L);
  if (!aside) lua_pop(L, 1);
  for (;;) {
    long f;
    t = lmdb_json_next(lx);
    if (t == LMDB_JSON_OBJECT_END) {
      lua_settop(L, out);
      lua_remove(L, uv);
      lua_remove(L, uv - 1);
      return 1;
    }
    if (t != LMDB_JSON_STRING) break;
    f = lmdb_keyset_find(&x->names, 0, lx->tok.ptr, lx->tok.len);
    if (f < 0) {
      lua_pushlstring(L, lx->tok.ptr, lx->tok.len);       /* wire name */
      t = lmdb_json_next(lx);
      if (!keep) {
        lua_pop(L, 1);
        if (lmdb_json_skip(lx, t) != 0) break;
        continue;
      }
      dec_hook(d, DH_DYNAMIC);                             /* dynamic(av, name) */
      if (!decode_value(L, lx, t, d->array_mt)) break;
      lua_pushvalue(L, -3);
      lua_call(L, 2, 1);
      if (aside) {                                         /* name, value -> out[aside] */
        lua_pushvalue(L, aside);
        lua_rawget(L, out);
        if (lua_isnil(L, -1)) {
          lua_pop(L, 1);
          lua_createtable(L, 0, 4);
          lua_pushvalue(L, aside);
          lua_pushvalue(L, -2);
          lua_rawset(L, out);
        }
        lua_insert(L, -3);
        lua_rawset(L, -3);
        lua_pop(L, 1);
      } else {
        lua_rawset(L, out);
      }
      continue;
    }
    lua_rawgeti(L, uv, (int)f + 1);                       /* entry */
    lua_rawgeti(L, -1, 2);                                /* name, under the value */
    r = dec_attr(d, lua_gettop(L) - 1, x->code[f], lmdb_json_next(lx));
    if (r == 0) break;
    if (r == DEC_ABSENT) {
      lua_pop(L, 2);
      continue;
    }
    lua_rawset(L, out);
    lua_pop(L, 1);
  }
  lua_settop(L, uv - 2);
  return 0;
}

/* An array of items (its ARRAY_START read): pushes the list. */
static int dec_item_list(item_decoder *d, int spec) {
  lua_State *L = d->L;
  int i = 0;
  lua_createtable(L, 16, 0);
  lua_pushvalue(L, d->array_mt);
  lua_setmetatable(L, -2);
  for (;;) {
    lmdb_json_token t = lmdb_json_next(d->lx);
    if (t == LMDB_JSON_ARRAY_END) return 1;
    if (t != LMDB_JSON_OBJECT_START || !dec_object(d, spec)) {
      lua_pop(L, 1);
      return 0;
    }
    lua_rawseti(L, -2, ++i);
  }
}

static int core_decode_items(lua_State *L) {
  core_state *st = get_state(L);
  lmdb_json_lexer *lx = &st->item_lexer;
  lmdb_str s = check_str(L, 1);
  const char *mode = luaL_checkstring(L, 3);
  lmdb_str field = check_str(L, 4);
  item_decoder d;
  int ok = 1, out, spec = 2;
  lmdb_json_token t;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 5, LUA_TTABLE);
  lua_settop(L, 5);
  lua_rawgeti(L, 5, DH_FALLBACK);                     /* LuaJIT's returns no type */
  if (lua_isnil(L, -1)) {                             /* first use of this hooks table */
    int k;
    for (k = 0; k < DH_COUNT; k++) {
      lua_getfield(L, 5, dec_hook_names[k]);
      lua_rawseti(L, 5, k + 1);
    }
  }
  lua_pop(L, 1);
  lua_pushvalue(L, ARRAY_MT_UPVALUE);
  d.L = L;
  d.lx = lx;
  d.hooks = 5;
  d.array_mt = 6;
  luaL_getmetatable(L, MT_DEC_INDEX);
  d.index_mt = 7;
  lmdb_json_lexer_init(lx, s.ptr, s.len, JSON_MAX_DEPTH);
  if (lmdb_json_next(lx) != LMDB_JSON_OBJECT_START) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 4);
  out = lua_gettop(L);
  while (ok) {
    t = lmdb_json_next(lx);
    if (t == LMDB_JSON_OBJECT_END) break;
    if (t != LMDB_JSON_STRING) { ok = 0; break; }
    lua_pushlstring(L, lx->tok.ptr, lx->tok.len);
    t = lmdb_json_next(lx);
    if (lua_rawlen(L, -1) == field.len && memcmp(lua_tostring(L, -1), field.ptr, field.len) == 0) {
      if (strcmp(mode, "list") == 0)
        ok = t == LMDB_JSON_ARRAY_START && dec_item_list(&d, spec);
      else if (strcmp(mode, "item") == 0)
        ok = t == LMDB_JSON_OBJECT_START && dec_object(&d, spec);
      else if (strcmp(mode, "tables") == 0 && t == LMDB_JSON_OBJECT_START) {
        lua_createtable(L, 0, 1);
        for (;;) {
          t = lmdb_json_next(lx);
          if (t == LMDB_JSON_OBJECT_END) break;
          if (t != LMDB_JSON_STRING) { ok = 0; break; }
          lua_pushlstring(L, lx->tok.ptr, lx->tok.len);
          if (lmdb_json_next(lx) != LMDB_JSON_ARRAY_START || !dec_item_list(&d, spec)) {
            ok = 0;
            break;
          }
          lua_rawset(L, -3);
        }
      }
      else
        ok = 0;
    }
    else
      ok = decode_value(L, lx, t, d.array_mt);
    if (ok)
      lua_rawset(L, out);
  }
  if (ok && lmdb_json_next(lx) != LMDB_JSON_END)
    ok = 0;
  if (lx->scratch.cap > 1 << 20)
    lmdb_buf_free(&lx->scratch);
  if (!ok) {
    lua_pushnil(L);
    return 1;
  }
  lua_settop(L, out);
  return 1;
}

/* ------------------------------------------- schema-directed item encode */

/*
** core.encode_plan(spec, hooks) -> a plan: an encode spec compiled once per schema
** (attributes.encode_spec and key_spec build the specs). spec: an array, in attribute order,
** of { code + flags (ENC_*), name, wire_json ('"wire":'), sub, attr, key_pos }; a typed map's
** sub is such an array of its fields, a list's sub the entry of its elements; key_pos 1 marks
** the hash key, 2 the range key; spec.subset: the values may hold other names (a Key: only
** the listed ones are written). Codes as for decode_items. hooks: encode(attr, value, name) ->
** attribute value table or nil (the attribute's own encode), encode_number(v) -> text or
** nil, set_mt, k_members, k_size, k_wire, dt_mt, k_sec, k_usec, k_iso.
**
** core.encode_item(values, plan[, with_key[, prefix, suffix]]) -> the JSON text of a model
** item's DynamoDB attribute map written straight from its values (between prefix and suffix
** when given) and, with with_key, the JSON of its Key map ({"hash":..,"range":..}); or nil
** when the fast path does not take the values (then A.serialize_item does, and raises the
** precise error for a value that is wrong). It raises only for misuse (not a plan) and when
** out of memory: the hooks run protected. It gives up on: a missing value that is not
** null_ok or has a default, a value a hook refuses, names the plan does not declare (unless
** subset), an empty key, invalid UTF-8, a number encode_number refuses, a set of other
** members, a list with holes, and items over 400 KB of JSON.
*/
#define ENC_MAX_JSON (400 * 1024)
#define MT_ENC_PLAN "lunamodb.encode_plan"

/* The hooks sit at these indexes (+ 1) of a plan's anchor table. */
enum { H_ENCODE, H_ENCODE_NUMBER, H_SET_MT, H_K_MEMBERS, H_K_SIZE, H_K_WIRE, H_DT_MT,
       H_K_SEC, H_K_USEC, H_K_ISO, H_COUNT };
static const char *const hook_names[H_COUNT] = {
  "encode", "encode_number", "set_mt", "k_members", "k_size", "k_wire", "dt_mt",
  "k_sec", "k_usec", "k_iso"
};

/* An entry's first field: its code plus these flags. */
#define ENC_NULL_OK     16
#define ENC_IS_KEY      32
#define ENC_HAS_DEFAULT 64

typedef struct enc_level_plan enc_level_plan;

typedef struct enc_field {
  int flags;                 /* code | ENC_* */
  int key_pos;               /* 1 the hash key, 2 the range key, else 0 */
  int must;                  /* its absence makes the encoder give up */
  const char *name;          /* anchored in the plan's anchor table */
  size_t name_len;
  const void *name_id;       /* the name's lua_topointer: one string object (see plan_level) */
  const char *head;          /* ',"wire":' and the value's opening tag ('{"S":'; none for a
                             ** hooked attribute, whose encode writes it all), in plan memory */
  size_t head_len, tag_len;  /* the whole head's length, its tag's (the head's tail) */
  int name_slot, attr_slot;  /* the name's and the attribute's indexes in the anchor table */
  enc_level_plan *map;       /* a typed map's fields */
  struct enc_field *elem;    /* a list's elements */
} enc_field;

/* One level (the item, or a typed map): its fields, found by name through a hash of the
** names' string objects (lua_topointer: Lua interns the names a model's values use, so a
** name found in the values is the plan's own string; long names that Lua 5.4 does not
** intern are compared by text). */
struct enc_level_plan {
  enc_field *fields;
  int n, must, subset;
  size_t hmask;
  int *slots;                /* field index + 1; 0 empty */
};

typedef struct enc_plan {
  enc_level_plan *top;
  const void *set_mt, *dt_mt;  /* the set and datetime metatables (anchored as hooks) */
  void **allocs;             /* every block of the plan, freed by __gc */
  size_t nallocs, capallocs;
  int nanchor;
} enc_plan;

static int enc_plan_gc(lua_State *L) {
  enc_plan *p = (enc_plan *)check_self(L, MT_ENC_PLAN);
  size_t i;
  for (i = 0; i < p->nallocs; i++)
    free(p->allocs[i]);
  free(p->allocs);
  p->allocs = NULL;
  p->nallocs = p->capallocs = 0;
  p->top = NULL;
  return 0;
}

static void *plan_alloc(lua_State *L, enc_plan *p, size_t size) {
  void *m;
  if (p->nallocs == p->capallocs) {
    size_t cap = p->capallocs ? p->capallocs * 2 : 16;
    void **a = (void **)realloc(p->allocs, cap * sizeof *a);
    if (a == NULL) luaL_error(L, "lunamodb: encode_plan: not enough memory");
    p->allocs = a;
    p->capallocs = cap;
  }
  m = calloc(1, size ? size : 1);
  if (m == NULL) luaL_error(L, "lunamodb: encode_plan: not enough memory");
  p->allocs[p->nallocs++] = m;
  return m;
}

static size_t name_hash(const void *s) {
  uintptr_t a = (uintptr_t)s;
  return (size_t)((a >> 4) ^ (a >> 11));
}

/* Anchors the value on top of the stack (popped) and returns its slot. */
static int plan_anchor(lua_State *L, enc_plan *p, int anchor) {
  lua_rawseti(L, anchor, ++p->nanchor);
  return p->nanchor;
}

static enc_level_plan *plan_level(lua_State *L, enc_plan *p, int anchor, int spec, int depth);

/* The opening of each fast code's attribute value, written with its name (the hooked codes
** have none: their encode gives the whole attribute value). */
static const char *const enc_tags[] = {
  "", "{\"S\":", "{\"N\":", "{\"BOOL\":", "{\"SS\":[", "{\"S\":", "{\"M\":", "{\"L\":["
};

static void plan_field(lua_State *L, enc_plan *p, int anchor, int entry, enc_field *f,
                       int depth) {
  int code;
  if (!lua_istable(L, entry)) luaL_error(L, "lunamodb: encode_plan: an entry is not a table");
  lua_rawgeti(L, entry, 1);
  f->flags = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_rawgeti(L, entry, 6);
  f->key_pos = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  f->must = !(f->flags & ENC_NULL_OK) || (f->flags & ENC_HAS_DEFAULT);
  lua_rawgeti(L, entry, 2);
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "lunamodb: encode_plan: a name is not a string");
  f->name = lua_tolstring(L, -1, &f->name_len);
  f->name_id = lua_topointer(L, -1);
  f->name_slot = plan_anchor(L, p, anchor);
  lua_rawgeti(L, entry, 3);
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "lunamodb: encode_plan: a wire name is not a string");
  code = f->flags & 15;
  {
    size_t wlen, tlen = code < (int)(sizeof enc_tags / sizeof enc_tags[0]) ? strlen(enc_tags[code]) : 0;
    const char *wire = lua_tolstring(L, -1, &wlen);
    char *head;
    if (wlen > 100000) luaL_error(L, "lunamodb: encode_plan: a wire name is too long");
    head = (char *)plan_alloc(L, p, 1 + wlen + tlen + 1);
    head[0] = ',';
    memcpy(head + 1, wire, wlen);
    memcpy(head + 1 + wlen, tlen ? enc_tags[code] : "", tlen);
    f->head = head;
    f->head_len = 1 + wlen + tlen;
    f->tag_len = tlen;
    lua_pop(L, 1);
  }
  lua_rawgeti(L, entry, 5);
  f->attr_slot = plan_anchor(L, p, anchor);
  if (code == DEC_MAP || code == DEC_LIST) {
    lua_rawgeti(L, entry, 4);
    if (!lua_istable(L, -1)) luaL_error(L, "lunamodb: encode_plan: a map or list has no sub spec");
    if (code == DEC_MAP) {
      f->map = plan_level(L, p, anchor, lua_gettop(L), depth + 1);
    } else {
      if (depth >= 32) luaL_error(L, "lunamodb: encode_plan: nesting too deep");
      f->elem = (enc_field *)plan_alloc(L, p, sizeof *f->elem);
      plan_field(L, p, anchor, lua_gettop(L), f->elem, depth + 1);
    }
    lua_pop(L, 1);
  }
}

static enc_level_plan *plan_level(lua_State *L, enc_plan *p, int anchor, int spec, int depth) {
  enc_level_plan *lp = (enc_level_plan *)plan_alloc(L, p, sizeof *lp);
  size_t n = lua_rawlen(L, spec), i, cap = 4;
  if (depth >= 32) luaL_error(L, "lunamodb: encode_plan: nesting too deep");
  if (n > 100000) luaL_error(L, "lunamodb: encode_plan: too many attributes");
  luaL_checkstack(L, 8, "lunamodb: encode_plan: nesting too deep");
  lp->n = (int)n;
  lp->fields = (enc_field *)plan_alloc(L, p, n * sizeof *lp->fields);
  lua_getfield(L, spec, "subset");
  lp->subset = lua_toboolean(L, -1);
  lua_pop(L, 1);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, spec, (int)i + 1);
    plan_field(L, p, anchor, lua_gettop(L), &lp->fields[i], depth);
    lua_pop(L, 1);
    lp->must += lp->fields[i].must;
  }
  while (cap < 2 * n) cap *= 2;
  lp->hmask = cap - 1;
  lp->slots = (int *)plan_alloc(L, p, cap * sizeof *lp->slots);
  for (i = 0; i < n; i++) {
    size_t h = name_hash(lp->fields[i].name_id) & lp->hmask;
    while (lp->slots[h]) h = (h + 1) & lp->hmask;
    lp->slots[h] = (int)i + 1;
  }
  return lp;
}

/* The field of the key at idx: by its string object, else (a long name Lua 5.4 did not
** intern) by its text; NULL for a name the level does not declare or a key not a string. */
static const enc_field *plan_find(lua_State *L, const enc_level_plan *lp, int idx) {
  const void *id = lua_topointer(L, idx);
  size_t h = name_hash(id) & lp->hmask, len;
  const char *s;
  int k;
  while ((k = lp->slots[h]) != 0) {
    if (lp->fields[k - 1].name_id == id) return &lp->fields[k - 1];
    h = (h + 1) & lp->hmask;
  }
  if (lua_type(L, idx) != LUA_TSTRING) return NULL;
  s = lua_tolstring(L, idx, &len);
  for (k = 0; k < lp->n; k++)
    if (lp->fields[k].name_len == len && memcmp(lp->fields[k].name, s, len) == 0)
      return &lp->fields[k];
  return NULL;
}

static int core_encode_plan(lua_State *L) {
  enc_plan *p;
  int k;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  p = (enc_plan *)lua_newuserdatauv(L, sizeof *p, 1);                 /* 3 */
  memset(p, 0, sizeof *p);
  luaL_setmetatable(L, MT_ENC_PLAN);
  lua_createtable(L, 64, 0);                                           /* 4: anchor */
  lua_pushvalue(L, 4);
  lmdb_setuservalue(L, 3);
  for (k = 0; k < H_COUNT; k++) {
    lua_getfield(L, 2, hook_names[k]);
    if (k == H_SET_MT || k == H_DT_MT) {
      const void *mt = lua_istable(L, -1) ? lua_topointer(L, -1) : NULL;
      if (k == H_SET_MT) p->set_mt = mt;
      else p->dt_mt = mt;
    }
    lua_rawseti(L, 4, k + 1);
  }
  p->nanchor = H_COUNT;
  p->top = plan_level(L, p, 4, 1, 0);
  lua_settop(L, 3);
  return 1;
}

typedef struct item_encoder {
  encoder *e;
  const enc_plan *p;
  int anchor;                /* the plan's anchor table (hooks first) */
  size_t key_at[2], key_end[2];  /* the key members' text in the output */
} item_encoder;

/* Pushes a hook's value (read when needed: most items need few of them). */
#define HOOK(ie, h) lua_rawgeti((ie)->e->L, (ie)->anchor, (h) + 1)

/* Copies n bytes without a call for n up to 16 (two overlapping moves), the size of most
** pieces an item is written from. */
static inline void copy_small(char *d, const char *s, size_t n) {
  if (n >= 8 && n <= 16) {
    uint64_t a, z;
    memcpy(&a, s, 8);
    memcpy(&z, s + n - 8, 8);
    memcpy(d, &a, 8);
    memcpy(d + n - 8, &z, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t a, z;
    memcpy(&a, s, 4);
    memcpy(&z, s + n - 4, 4);
    memcpy(d, &a, 4);
    memcpy(d + n - 4, &z, 4);
  } else if (n < 4) {
    if (n) {
      d[0] = s[0];
      d[n - 1] = s[n - 1];
      if (n == 3) d[1] = s[1];
    }
  } else {
    memcpy(d, s, n);
  }
}

/* Where n more bytes go at the end of the output, room reserved (a call only when it is
** short): the encoder writes there, then counts them in len. The text is NUL-terminated
** once, when the item is done (encode_values). */
static inline char *enc_room(encoder *e, size_t n) {
  lmdb_buf *b = e->out;
  if (b->cap - b->len <= n && lmdb_buf_reserve(b, n) != 0)
    encode_error(e, "not enough memory");
  return b->data + b->len;
}

/* Appends without a call when the buffer has room (most appends here are a few bytes). */
static inline void enc_put(encoder *e, const char *s, size_t n) {
  copy_small(enc_room(e, n), s, n);
  e->out->len += n;
}
#define ENC_LIT(e, s) enc_put((e), (s), sizeof(s) - 1)

/* The text %.15g writes for v (values.encode_number's shortest round-trip text) when v is
** m / 10^k for an integer m below 10^15 and 1e-4 <= |v| < 1e15 (fixed notation), found
** without printf; 0 for any other v. Such an m is unique: the product's rounding error is
** under 0.11, and m / 10^k == v checks it reads back (both exact doubles, the division
** correctly rounded as strtod is). buf: at least 24 bytes. */
static int fmt_short_float(char *buf, double v) {
  static const double p10[16] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                  1e11, 1e12, 1e13, 1e14, 1e15 };
  double a = fabs(v);
  char digits[24];
  int k, nd, len = 0, i;
  if (!(a >= 1e-4 && a < 1e15)) return 0;
  for (k = 0; k <= 15; k++) {
    double s = a * p10[k], m;
    if (s >= 1e15) return 0;                   /* more than 15 significant digits */
    m = floor(s + 0.5);
    if (m / p10[k] != a) continue;
    nd = lmdb_fmt_int64(digits, (int64_t)m);
    if (v < 0) buf[len++] = '-';
    if (k == 0) {
      memcpy(buf + len, digits, (size_t)nd);
      return len + nd;
    }
    if (nd <= k) {                             /* 0.000ddd */
      buf[len++] = '0';
      buf[len++] = '.';
      for (i = nd; i < k; i++) buf[len++] = '0';
      memcpy(buf + len, digits, (size_t)nd);
      return len + nd;
    }
    memcpy(buf + len, digits, (size_t)(nd - k));
    len += nd - k;
    buf[len++] = '.';
    memcpy(buf + len, digits + nd - k, (size_t)k);
    return len + k;
  }
  return 0;
}

/* The shortest of %.15g, %.16g and %.17g that reads back as the finite v: the float text
** of values.encode_number (through core.number_text) and of encode_item alike, so both
** paths write one decimal (LuaJIT's own %g rounds ties otherwise). Returns its length. */
static int fmt_shortest(char *buf, size_t size, double v) {
  int n = size >= 24 ? fmt_short_float(buf, v) : 0, prec;
  if (n > 0) return n;
  for (prec = 15; prec <= 17; prec++) {
    n = snprintf(buf, size, "%.*g", prec, v);
    if (prec == 17 || (n > 0 && (size_t)n < size && strtod(buf, NULL) == v))
      break;
  }
  return n;
}

/* core.number_text(v) -> the text of a finite number: an integer (a Lua 5.4 integer, or on
** LuaJIT an integral double of at most 2^53) in decimal, any other float as the shortest
** %.Ng (N = 15, 16, 17) that reads back as v. */
static int core_number_text(lua_State *L) {
  char buf[40];
  double v;
  int n;
#ifndef LMDB_NO_INTEGERS
  if (lua_isinteger(L, 1)) {
    n = lmdb_fmt_int64(buf, (int64_t)lua_tointeger(L, 1));
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
  }
#endif
  v = (double)luaL_checknumber(L, 1);
  if (v != v || v == HUGE_VAL || v == -HUGE_VAL)
    return luaL_argerror(L, 1, "a finite number expected");
#ifdef LMDB_NO_INTEGERS
  if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
    n = lmdb_fmt_int64(buf, (int64_t)v);
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
  }
#endif
  n = fmt_shortest(buf, sizeof buf, v);
  lua_pushlstring(L, buf, n > 0 && (size_t)n < sizeof buf ? (size_t)n : 0);
  return 1;
}

/* Two digits of v (0..99) at p. */
static void put2(char *p, int v) {
  p[0] = (char)('0' + v / 10);
  p[1] = (char)('0' + v % 10);
}

static int enc_string(item_encoder *ie, int idx, int nonempty) {
  size_t len;
  const char *s = lua_tolstring(ie->e->L, idx, &len);
  int rc;
  if (nonempty && len == 0) return 0;
  rc = lmdb_json_put_string(ie->e->out, s, len);
  if (rc == -1) encode_error(ie->e, "not enough memory");
  return rc == 0;
}

/* Writes the N text of the number at idx (quoted; type: its lua_type), or returns 0. */
#define ENC_NUMBER_ROOM 48
static int enc_number(item_encoder *ie, int idx, int type) {
  lua_State *L = ie->e->L;
  lmdb_buf *out = ie->e->out;
  char *tmp;
  int n = -1, is_number = type == LUA_TNUMBER;
  /* the text is written in place (a copy from a scratch array written a byte at a time
  ** stalls on store forwarding), and kept by moving the length */
  tmp = enc_room(ie->e, ENC_NUMBER_ROOM);
  if (is_number) {
#ifndef LMDB_NO_INTEGERS
    /* an integer, or a float with an integer's value below 2^53: encode_number writes both
    ** as the integer (a larger float goes through its shortest %g text) */
    int isint;
    lua_Integer i = lua_tointegerx(L, idx, &isint);
    if (isint && ((i <= 9007199254740992 && i >= -9007199254740992) || lua_isinteger(L, idx))) {
      tmp[0] = '"';
      n = 1 + lmdb_fmt_int64(tmp + 1, (int64_t)i);
      tmp[n++] = '"';
    }
#else
    lua_Number v = lua_tonumber(L, idx);
    if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
      tmp[0] = '"';
      n = 1 + lmdb_fmt_int64(tmp + 1, (int64_t)v);   /* -0.0 reads "0", as encode_number */
      tmp[n++] = '"';
    }
#endif
  }
  if (n < 0 && is_number) {
    /* values.encode_number's float text (core.number_text); an exponent form is left to
    ** it (it spells such numbers out, or refuses them) */
    double v = (double)lua_tonumber(L, idx);
    if (v == v && v != HUGE_VAL && v != -HUGE_VAL) {
      n = fmt_shortest(tmp + 1, ENC_NUMBER_ROOM - 2, v);
      if (n <= 0 || n >= ENC_NUMBER_ROOM - 2 || memchr(tmp + 1, 'e', (size_t)n)) {
        n = -1;
      } else {
        if (v == 0) {                         /* -0.0 */
          tmp[1] = '0';
          n = 1;
        }
        tmp[0] = '"';
        tmp[n + 1] = '"';
        n += 2;
      }
    }
  }
  if (n > 0) {
    out->len += (size_t)n;
    return 1;
  }
  HOOK(ie, H_ENCODE_NUMBER);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    return 0;
  }
  n = enc_string(ie, lua_gettop(L), 1);
  lua_pop(L, 1);
  return n;
}

/* Whether the value at idx has the metatable mt (compared by address: the plan anchors it). */
static int has_metatable(item_encoder *ie, int idx, const void *mt) {
  lua_State *L = ie->e->L;
  int same;
  if (mt == NULL || !lua_getmetatable(L, idx)) return 0;
  same = lua_topointer(L, -1) == mt;
  lua_pop(L, 1);
  return same;
}

typedef struct { const char *s; size_t n; } set_member;

static int member_cmp(const void *a, const void *b) {
  const set_member *x = (const set_member *)a, *y = (const set_member *)b;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, n);
  if (c != 0) return c;
  return x->n < y->n ? -1 : x->n > y->n;
}

/* A string set's members, sorted bytewise as set:items() gives them, and its closing (the
** caller wrote '{"SS":['). Only a string set maps its members to strings (a number set maps
** N texts to numbers, a binary set to binaries), so string values are all it takes; no
** members: absent. The members' text is kept in the set (at k_wire, which every change of
** its members drops), so a set written again is one copy. */
static int enc_string_set(item_encoder *ie, int idx) {
  lua_State *L = ie->e->L;
  set_member small[16], *m = small;
  size_t cap = 16, i = 0, k, start;
  int members;
  HOOK(ie, H_K_WIRE);
  if (lmdb_rawget(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *text = lua_tolstring(L, -1, &len);
    enc_put(ie->e, text, len);
    lua_pop(L, 1);
    ENC_LIT(ie->e, "]}");
    return 1;
  }
  lua_pop(L, 1);
  HOOK(ie, H_K_MEMBERS);
  lua_rawget(L, idx);
  members = lua_gettop(L);
  if (lua_type(L, members) != LUA_TTABLE) return 0;
  lua_pushnil(L);
  while (lua_next(L, members)) {
    if (lua_type(L, -1) != LUA_TSTRING) return 0;
    if (i == cap) {                         /* more than 16: room for all, from the size */
      lua_Integer size;
      HOOK(ie, H_K_SIZE);
      lua_rawget(L, idx);
      size = lua_tointeger(L, -1);
      lua_pop(L, 1);
      if (size <= (lua_Integer)i || size > 100000) return 0;
      cap = (size_t)size;
      m = (set_member *)lua_newuserdatauv(L, cap * sizeof *m, 0);
      memcpy(m, small, sizeof small);
      lua_insert(L, members + 1);          /* below the traversal's key */
    }
    m[i].s = lua_tolstring(L, -1, &m[i].n);     /* the member itself: anchored in members */
    i++;
    lua_pop(L, 1);
  }
  if (i == 0) {
    lua_settop(L, members - 1);
    return 2;                                            /* empty: absent */
  }
  if (i <= 16) {                           /* most sets are small: no qsort callbacks */
    for (k = 1; k < i; k++) {
      set_member x = m[k];
      size_t j = k;
      while (j > 0 && member_cmp(&x, &m[j - 1]) < 0) {
        m[j] = m[j - 1];
        j--;
      }
      m[j] = x;
    }
  } else {
    qsort(m, i, sizeof *m, member_cmp);
  }
  start = ie->e->out->len;
  for (k = 0; k < i; k++) {
    if (k) ENC_LIT(ie->e, ",");
    if (lmdb_json_put_string(ie->e->out, m[k].s, m[k].n) != 0) return 0;
  }
  lua_settop(L, members - 1);
  HOOK(ie, H_K_WIRE);
  lua_pushlstring(L, ie->e->out->data + start, ie->e->out->len - start);
  lua_rawset(L, idx);
  ENC_LIT(ie->e, "]}");
  return 1;
}

/* A datetime's text and the closing (the caller wrote '{"S":'). */
static int enc_datetime(item_encoder *ie, int idx) {
  lua_State *L = ie->e->L;
  char *tmp;
  int64_t sec, days, rem;
  lua_Integer usec;
  int y, mo, d, n;
  HOOK(ie, H_K_ISO);
  lua_rawget(L, idx);
  if (lua_type(L, -1) == LUA_TSTRING) {
    n = enc_string(ie, lua_gettop(L), 1);
    lua_pop(L, 1);
    ENC_LIT(ie->e, "}");
    return n;
  }
  lua_pop(L, 1);
  HOOK(ie, H_K_SEC);
  lua_rawget(L, idx);
  HOOK(ie, H_K_USEC);
  lua_rawget(L, idx);
  if (lua_type(L, -1) != LUA_TNUMBER || lua_type(L, -2) != LUA_TNUMBER) { lua_pop(L, 2); return 0; }
  sec = (int64_t)lua_tonumber(L, -2);
  usec = (lua_Integer)lua_tonumber(L, -1);
  lua_pop(L, 2);
  if (usec < 0 || usec > 999999) return 0;
  days = lmdb_days_from_epoch(sec, &rem);
  lmdb_civil_from_days(days, &y, &mo, &d);
  if (y < 1 || y > 9999) return 0;
  /* "YYYY-MM-DDTHH:MM:SS.ffffff+0000"}, in place (see enc_number) */
  tmp = enc_room(ie->e, 34);
  memcpy(tmp, "\"0000-00-00T00:00:00.000000+0000\"}", 34);
  put2(tmp + 1, y / 100);
  put2(tmp + 3, y % 100);
  put2(tmp + 6, mo);
  put2(tmp + 9, d);
  put2(tmp + 12, (int)(rem / 3600));
  put2(tmp + 15, (int)(rem % 3600 / 60));
  put2(tmp + 18, (int)(rem % 60));
  put2(tmp + 21, (int)(usec / 10000));
  put2(tmp + 23, (int)(usec / 100 % 100));
  put2(tmp + 25, (int)(usec % 100));
  ie->e->out->len += 34;
  /* kept as the datetime's wire text, as values' iso_of keeps it (datetimes never change):
  ** the next encode of this one copies it */
  HOOK(ie, H_K_ISO);
  lua_pushlstring(L, tmp + 1, 31);
  lua_rawset(L, idx);
  return 1;
}

static int enc_level(item_encoder *ie, const enc_level_plan *lp, int vals);
static int enc_attr(item_encoder *ie, const enc_field *f, int idx, int type);

/* A list element at idx: lunamodb.null, or its tag and what enc_attr writes
** ({"NULL":true} for an element it leaves absent). 0: give up. */
static int enc_element(item_encoder *ie, const enc_field *elem, int idx) {
  lua_State *L = ie->e->L;
  size_t mark = ie->e->out->len;
  int r, type = lua_type(L, idx);
  if (type == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == JSON_NULL) {
    r = 2;
  } else {
    enc_put(ie->e, elem->head + elem->head_len - elem->tag_len, elem->tag_len);
    r = enc_attr(ie, elem, idx, type);
  }
  if (r == 2) {
    ie->e->out->len = mark;
    ENC_LIT(ie->e, "{\"NULL\":true}");
  }
  return r != 0;
}

/* A list's elements in order and its closing (the caller wrote '{"L":['). A list built in
** order is read in one traversal; one whose elements the traversal gives out of order (in
** Lua's hash part) is read by index once its keys are counted. Holes and other keys make
** it give up. */
static int enc_list(item_encoder *ie, const enc_field *f, int idx, int type) {
  lua_State *L = ie->e->L;
  lmdb_buf *out = ie->e->out;
  size_t mark, i = 0, n, count = 0;
  int in_order = 1;
  if (type != LUA_TTABLE || ie->e->depth >= 32) return 0;
  if (lua_getmetatable(L, idx)) {
    int ok = lua_rawequal(L, -1, ie->e->array_mt);
    lua_pop(L, 1);
    if (!ok) return 0;
  }
  mark = out->len;
  ie->e->depth++;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    i++;
    if (lua_type(L, -2) != LUA_TNUMBER || lua_tonumber(L, -2) != (lua_Number)i) {
      lua_pop(L, 2);
      in_order = 0;
      break;
    }
    if (i > 1) ENC_LIT(ie->e, ",");
    if (!enc_element(ie, f->elem, lua_gettop(L))) return 0;
    lua_pop(L, 1);
  }
  if (!in_order) {
    out->len = mark;
    n = lua_rawlen(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) { lua_pop(L, 1); count++; }
    if (count != n) return 0;
    for (i = 1; i <= n; i++) {
      if (i > 1) ENC_LIT(ie->e, ",");
      lua_rawgeti(L, idx, (int)i);
      if (!enc_element(ie, f->elem, lua_gettop(L))) return 0;
      lua_pop(L, 1);
    }
  }
  ie->e->depth--;
  ENC_LIT(ie->e, "]}");
  return 1;
}

/* The attribute value of the value at idx (type: its lua_type) after its tag (which the
** caller wrote, from the field's head): 1 written, 2 absent (the caller takes the tag back),
** 0 give up. */
static int enc_attr(item_encoder *ie, const enc_field *f, int idx, int type) {
  lua_State *L = ie->e->L;
  int r;
  switch (f->flags & 15) {
    case DEC_S:
      if (type != LUA_TSTRING) return 0;
      if (!enc_string(ie, idx, f->flags & ENC_IS_KEY)) return 0;
      ENC_LIT(ie->e, "}");
      return 1;
    case DEC_N:
      if (!enc_number(ie, idx, type)) return 0;
      ENC_LIT(ie->e, "}");
      return 1;
    case DEC_BOOL:
      if (type != LUA_TBOOLEAN) return 0;
      if (lua_toboolean(L, idx))
        ENC_LIT(ie->e, "true}");
      else
        ENC_LIT(ie->e, "false}");
      return 1;
    case DEC_SS:
      if (type != LUA_TTABLE || !has_metatable(ie, idx, ie->p->set_mt)) return 0;
      return enc_string_set(ie, idx);
    case DEC_DATETIME:
      if (type != LUA_TTABLE || !has_metatable(ie, idx, ie->p->dt_mt)) return 0;
      return enc_datetime(ie, idx);
    case DEC_MAP:
      if (type != LUA_TTABLE || lua_getmetatable(L, idx)) return 0;
      if (ie->e->depth >= 32) return 0;
      ie->e->depth++;
      r = enc_level(ie, f->map, idx);
      ie->e->depth--;
      if (!r) return 0;
      ENC_LIT(ie->e, "}");
      return 1;
    case DEC_LIST:
      return enc_list(ie, f, idx, type);
    default:
      break;
  }
  /* the attribute's own encode: encode(attr, value, name) -> av or nil */
  HOOK(ie, H_ENCODE);
  lua_rawgeti(L, ie->anchor, f->attr_slot);
  lua_pushvalue(L, idx);
  lua_rawgeti(L, ie->anchor, f->name_slot);
  /* protected: a value its encode refuses makes the fast path give up, and the slow path
  ** raises the attribute's own error with its context */
  if (lua_pcall(L, 3, 1, 0) != LUA_OK) return 0;
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return 2; }
  if (lua_type(L, -1) != LUA_TTABLE) return 0;
  encode_value(ie->e, lua_gettop(L));
  lua_pop(L, 1);
  return 1;
}

/* The most common member, a string that needs no escaping, in one reserved write:
** ',"wire":{"S":' '"' text '"}' (the comma unless first). 1 written, 0 not taken (the
** value is not such a string: enc_attr writes it or gives up), -1 give up (an empty key). */
static int enc_plain_string(item_encoder *ie, const enc_field *f, int v, int type,
                            int first) {
  lua_State *L = ie->e->L;
  lmdb_buf *out = ie->e->out;
  size_t len, hl = f->head_len - (size_t)first;
  const char *s;
  char *d;
  if (type != LUA_TSTRING) return 0;
  s = lua_tolstring(L, v, &len);
  if (len == 0 && (f->flags & ENC_IS_KEY)) return -1;
  if (lmdb_json_plain_len(s, len) < len) return 0;
  d = enc_room(ie->e, hl + len + 3);
  copy_small(d, f->head + first, hl);
  d += hl;
  *d++ = '"';
  copy_small(d, s, len);
  d += len;
  *d++ = '"';
  *d++ = '}';
  out->len = (size_t)(d - out->data);
  return 1;
}

/* One member ('"wire":value') for the value at v (type: its lua_type), after a comma unless
** it is the first; 0: give up. */
static int enc_member(item_encoder *ie, const enc_field *f, int v, int type, int *first) {
  lmdb_buf *out = ie->e->out;
  size_t mark = out->len, start = mark + !*first;
  int r = (f->flags & 15) == DEC_S ? enc_plain_string(ie, f, v, type, *first) : 0;
  if (r < 0) return 0;
  if (r == 0) {
    enc_put(ie->e, f->head + *first, f->head_len - *first);
    r = enc_attr(ie, f, v, type);
    if (r == 0) return 0;
    if (r == 2) {                                        /* absent: an empty set */
      if (!(f->flags & ENC_NULL_OK)) return 0;
      out->len = mark;
      return 1;
    }
  }
  if (f->key_pos == 1 || f->key_pos == 2) {
    ie->key_at[f->key_pos - 1] = start;
    ie->key_end[f->key_pos - 1] = out->len;
  }
  *first = 0;
  return 1;
}

/* An item or a typed map (the table at vals) as a JSON object. A whole level is read in one
** traversal of the values; a subset (a Key) by name. On giving up the stack is left as it
** is (core_encode_item returns only its top). */
static int enc_level(item_encoder *ie, const enc_level_plan *lp, int vals) {
  lua_State *L = ie->e->L;
  int first = 1, must = 0, i;
  luaL_checkstack(L, 12, "lunamodb: nesting too deep");
  ENC_LIT(ie->e, "{");
  if (lp->subset) {
    /* each value is read to the slot above the last one, which stays until the end: one
    ** settop for the level instead of a pop per field */
    int base = lua_gettop(L), value = base;
    luaL_checkstack(L, lp->n + 2, "lunamodb: too many attributes");
    for (i = 0; i < lp->n; i++) {
      const enc_field *f = &lp->fields[i];
      int type;
      lua_rawgeti(L, ie->anchor, f->name_slot);
      type = lmdb_rawget(L, vals);
      value++;
      if (type == LUA_TNIL) {
        if (f->must) return 0;
        continue;
      }
      if (!enc_member(ie, f, value, type, &first)) return 0;
    }
    lua_settop(L, base);
  } else {
    int value = lua_gettop(L) + 2;                     /* where lua_next leaves each value */
    lua_pushnil(L);
    while (lua_next(L, vals)) {
      const enc_field *f = plan_find(L, lp, value - 1);
      if (f == NULL || !enc_member(ie, f, value, lua_type(L, value), &first)) return 0;
      must += f->must;
      lua_pop(L, 1);
    }
    if (must != lp->must) return 0;                     /* a value it needs is missing */
  }
  ENC_LIT(ie->e, "}");
  return 1;
}

/* core.raw_json(text): a value core.json_encode writes as the JSON text it
** holds (already encoded, e.g. by core.encode_item). */
static int core_raw_json(lua_State *L) {
  luaL_checktype(L, 1, LUA_TSTRING);
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  luaL_setmetatable(L, MT_RAW_JSON);
  return 1;
}

/* Encodes the values at `values` with the plan at `plan` onto the end of out, between prefix
** and suffix. Returns 1, or 0 when the fast path does not take the values (out is back to its
** length at entry). With key_len, the JSON of the Key map ({"hash":..[,"range":..]}, cut from
** the key members written) is left just past out's end, at *key_off (*key_len 0: none): push
** it before appending anything else. */
static int encode_values(lua_State *L, core_state *st, lmdb_buf *out, int values, int plan,
                         lmdb_str prefix, lmdb_str suffix, size_t *key_off, size_t *key_len) {
  encoder *e = &st->item_enc;
  item_encoder ie;
  const enc_plan *p;
  size_t start = out->len;
  int top = lua_gettop(L), ok;
  p = (const enc_plan *)udata_with_mt(L, plan, PLAN_MT_UPVALUE);
  if (p == NULL)
    return luaL_argerror(L, plan, "an encode plan (core.encode_plan) expected");
  if (p->top == NULL) return luaL_argerror(L, plan, "a released plan");
  e->L = L;
  e->out = out;
  e->depth = 0;
  lua_pushvalue(L, ARRAY_MT_UPVALUE);
  e->array_mt = lua_gettop(L);
  lmdb_getuservalue(L, plan);
  ie.anchor = lua_gettop(L);
  ie.e = e;
  ie.p = p;
  ie.key_at[0] = ie.key_at[1] = ie.key_end[0] = ie.key_end[1] = 0;
  if (prefix.len) enc_put(e, prefix.ptr, prefix.len);
  ok = enc_level(&ie, p->top, values) && out->len - start - prefix.len <= ENC_MAX_JSON;
  if (ok && suffix.len) enc_put(e, suffix.ptr, suffix.len);
  if (ok) {
    if (lmdb_buf_reserve(out, 0) != 0) encode_error(e, "not enough memory");
    out->data[out->len] = '\0';                        /* enc_put leaves it to the end */
  }
  lua_settop(L, top);                                  /* a give-up leaves the stack as it is */
  if (!ok) {
    out->len = start;
    if (out->data) out->data[start] = '\0';
    return 0;
  }
  if (key_len) {
    size_t h = ie.key_end[0] - ie.key_at[0];
    size_t r = ie.key_end[1] ? ie.key_end[1] - ie.key_at[1] : 0;
    *key_off = out->len;
    *key_len = 0;
    if (ie.key_end[0] && lmdb_buf_reserve(out, h + r + 3) == 0) {
      char *d = out->data + out->len;
      *d++ = '{';
      memcpy(d, out->data + ie.key_at[0], h);
      d += h;
      if (ie.key_end[1]) {
        *d++ = ',';
        memcpy(d, out->data + ie.key_at[1], r);
        d += r;
      }
      *d++ = '}';
      *key_len = (size_t)(d - (out->data + out->len));
    }
  }
  return 1;
}

static int core_encode_item(lua_State *L) {
  core_state *st = get_state(L);
  lmdb_buf *out = &st->item_out;
  lmdb_str prefix, suffix;
  size_t key_off = 0, key_len = 0;
  int with_key, n = 1;
  luaL_checktype(L, 1, LUA_TTABLE);
  with_key = lua_toboolean(L, 3);
  prefix = opt_str(L, 4);
  suffix = opt_str(L, 5);
  lua_settop(L, 5);
  lmdb_buf_reset(out);
  if (!encode_values(L, st, out, 1, 2, prefix, suffix, &key_off, with_key ? &key_len : NULL)) {
    lua_pushnil(L);
  } else {
    push_buf(L, out);
    if (with_key) {
      if (key_len) lua_pushlstring(L, out->data + key_off, key_len);
      else lua_pushnil(L);
      n = 2;
    }
  }
  if (out->cap > 1 << 20)
    lmdb_buf_free(out);
  return n;
}

/* ------------------------------------------------ update expression body */

/*
** core.update_body(spec, actions, head, tail) -> an UpdateItem body: head, then the members
** UpdateExpression, ExpressionAttributeNames and ExpressionAttributeValues, then tail; or nil
** when it does not take the actions (the Lua serializer then does, and raises what is wrong).
** spec: { segs = the paths' segments key, kinds = { [metatable] = kind } } (kinds below, as
** lunamodb.expressions.path.UPDATE_SPEC numbers them); actions: an array of update actions;
** head: the members before, e.g. '{"TableName":"t","Key":{..},'; tail: after, e.g. '}'. The text is
** the serializer's byte for byte: clauses SET, REMOVE, ADD, DELETE in that order, each keeping
** the actions' order; names #0.. de-duplicated, values :0.., numbered in text order.
*/
enum { UK_ACTION = 1, UK_PATH, UK_VALUE, UK_ARITH, UK_IF_NOT_EXISTS, UK_LIST_APPEND };
#define UPD_MAX_NAMES 256
#define UPD_MAX_ACTIONS 256       /* more: the Lua serializer writes them */
#define UPD_MAX_EXPR 4096

typedef struct upd_writer {
  lua_State *L;
  encoder *e;                  /* writes the values' attribute values */
  int segs, kinds;             /* stack slots: the segments key, the kinds table */
  lmdb_buf *expr, *names, *values;
  struct { const char *s; size_t n; } name[UPD_MAX_NAMES];
  int nn, nv;
} upd_writer;

static int upd_put(lmdb_buf *b, const char *s, size_t n) {
  return lmdb_buf_append(b, s, n) == 0;
}
#define UPD_LIT(b, s) upd_put((b), (s), sizeof(s) - 1)

static int upd_placeholder(lmdb_buf *b, char c, int n) {
  char tmp[24];
  tmp[0] = c;
  return upd_put(b, tmp, (size_t)(1 + lmdb_fmt_int64(tmp + 1, n)));
}

/* The kind of the value at idx (its metatable's number in spec.kinds), 0 for others. */
static int upd_kind(upd_writer *w, int idx) {
  lua_State *L = w->L;
  int k;
  if (!lua_getmetatable(L, idx)) return 0;
  lua_rawget(L, w->kinds);
  k = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return k;
}

/* The placeholder of the name at idx (a string the actions hold), new ones added to the map. */
static int upd_name(upd_writer *w, int idx) {
  size_t n;
  const char *s = lua_tolstring(w->L, idx, &n);
  int i;
  if (n == 0 || n > 65535) return 0;
  for (i = 0; i < w->nn; i++)
    if (w->name[i].n == n && (w->name[i].s == s || memcmp(w->name[i].s, s, n) == 0))
      return upd_placeholder(w->expr, '#', i);
  if (w->nn >= UPD_MAX_NAMES) return 0;
  w->name[w->nn].s = s;
  w->name[w->nn].n = n;
  if ((w->nn > 0 && !UPD_LIT(w->names, ",")) || !UPD_LIT(w->names, "\"") ||
      !upd_placeholder(w->names, '#', w->nn) || !UPD_LIT(w->names, "\":") ||
      lmdb_json_put_string(w->names, s, n) != 0)
    return 0;
  return upd_placeholder(w->expr, '#', w->nn++);
}

/* A path's text: #0.#1[2]. */
static int upd_path(upd_writer *w, int idx) {
  lua_State *L = w->L;
  size_t i, n;
  int segs, ok;
  lua_pushvalue(L, w->segs);
  lua_rawget(L, idx);
  segs = lua_gettop(L);
  ok = lua_istable(L, segs) && (n = (size_t)lua_rawlen(L, segs)) > 0;
  for (i = 1; ok && i <= n; i++) {
    lua_rawgeti(L, segs, (int)i);
    if (lua_type(L, -1) == LUA_TSTRING) {
      ok = (i == 1 || UPD_LIT(w->expr, ".")) && upd_name(w, lua_gettop(L));
    } else if (lua_type(L, -1) == LUA_TNUMBER && i > 1) {
      char tmp[32];
      int len = 1;
      tmp[0] = '[';
      len += lmdb_fmt_int64(tmp + 1, (int64_t)lua_tonumber(L, -1));
      tmp[len++] = ']';
      ok = upd_put(w->expr, tmp, (size_t)len);
    } else {
      ok = 0;
    }
    lua_pop(L, 1);
  }
  lua_settop(L, segs - 1);
  return ok;
}

/* The field k of the table at idx, pushed; returns its stack index. */
static int upd_field(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  return lua_gettop(L);
}

static int upd_operand(upd_writer *w, int idx) {
  lua_State *L = w->L;
  int top = lua_gettop(L), ok = 0, a, b;
  luaL_checkstack(L, 8, "lunamodb: update expression too deep");
  switch (upd_kind(w, idx)) {
    case UK_PATH:
      return upd_path(w, idx);
    case UK_VALUE: {
      /* a plain value holds its type letter and text (t, v), anything else its av */
      size_t tl = 0, vl = 0;
      const char *t = NULL, *v = NULL;
      lua_pushliteral(L, "t");
      if (lmdb_rawget(L, idx) == LUA_TSTRING) {
        t = lua_tolstring(L, -1, &tl);
        lua_pushliteral(L, "v");
        if (lmdb_rawget(L, idx) == LUA_TSTRING)
          v = lua_tolstring(L, -1, &vl);
      }
      a = t ? 0 : upd_field(L, idx, "av");
      ok = (t ? v != NULL : lua_istable(L, a)) && (w->nv == 0 || UPD_LIT(w->values, ",")) &&
           UPD_LIT(w->values, "\"") && upd_placeholder(w->values, ':', w->nv) &&
           UPD_LIT(w->values, "\":");
      if (ok && t) {
        ok = UPD_LIT(w->values, "{") && lmdb_json_put_string(w->values, t, tl) == 0 &&
             UPD_LIT(w->values, ":") && lmdb_json_put_string(w->values, v, vl) == 0 &&
             UPD_LIT(w->values, "}") && upd_placeholder(w->expr, ':', w->nv++);
      }
      else if (ok) {
        w->e->out = w->values;
        encode_value(w->e, a);
        ok = upd_placeholder(w->expr, ':', w->nv++);
      }
      break;
    }
    case UK_ARITH: {
      size_t sl;
      const char *sym;
      a = upd_field(L, idx, "a");
      b = upd_field(L, idx, "b");
      sym = lua_tolstring(L, upd_field(L, idx, "sym"), &sl);
      ok = sym && upd_operand(w, a) && UPD_LIT(w->expr, " ") && upd_put(w->expr, sym, sl) &&
           UPD_LIT(w->expr, " ") && upd_operand(w, b);
      break;
    }
    case UK_IF_NOT_EXISTS:
      a = upd_field(L, idx, "path");
      b = upd_field(L, idx, "value");
      ok = upd_kind(w, a) == UK_PATH && UPD_LIT(w->expr, "if_not_exists (") &&
           upd_path(w, a) && UPD_LIT(w->expr, ", ") && upd_operand(w, b) &&
           UPD_LIT(w->expr, ")");
      break;
    case UK_LIST_APPEND:
      a = upd_field(L, idx, "a");
      b = upd_field(L, idx, "b");
      ok = UPD_LIT(w->expr, "list_append (") && upd_operand(w, a) && UPD_LIT(w->expr, ", ") &&
           upd_operand(w, b) && UPD_LIT(w->expr, ")");
      break;
    default:
      break;
  }
  lua_settop(L, top);
  return ok;
}

/* One action of clause c: its target, then (SET) " = " operand or (ADD, DELETE) " " operand. */
static int upd_action(upd_writer *w, int idx, int c) {
  lua_State *L = w->L;
  int top = lua_gettop(L), p = upd_field(L, idx, "path"), ok;
  ok = upd_kind(w, p) == UK_PATH && upd_path(w, p);
  if (ok && c != 1) {
    int v = upd_field(L, idx, "value");
    ok = (c == 0 ? UPD_LIT(w->expr, " = ") : UPD_LIT(w->expr, " ")) && upd_operand(w, v);
  }
  lua_settop(L, top);
  return ok;
}

static int core_update_body(lua_State *L) {
  static const char *const clauses[4] = { "SET", "REMOVE", "ADD", "DELETE" };
  core_state *st = get_state(L);
  upd_writer w;
  lmdb_str head, tail;
  size_t n, i, count = 0;
  int c, ok = 1, which[4] = { 0, 0, 0, 0 };
  unsigned char clause_of[UPD_MAX_ACTIONS];
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  head = check_str(L, 3);
  tail = check_str(L, 4);
  lua_settop(L, 4);
  w.L = L;
  w.segs = upd_field(L, 1, "segs");                                  /* 5 */
  w.kinds = upd_field(L, 1, "kinds");                                /* 6 */
  luaL_argcheck(L, lua_istable(L, w.kinds), 1, "spec.kinds must be a table");
  lua_pushvalue(L, ARRAY_MT_UPVALUE);                                /* 7 */
  w.e = &st->enc;
  w.e->L = L;
  w.e->depth = 0;
  w.e->array_mt = 7;
  w.nn = w.nv = 0;
  /* an array of actions and nothing else, each of a known clause */
  n = (size_t)lua_rawlen(L, 2);
  if (n == 0 || n > UPD_MAX_ACTIONS || lua_getmetatable(L, 2)) { lua_pushnil(L); return 1; }
  lua_pushnil(L);
  while (lua_next(L, 2)) { lua_pop(L, 1); count++; }
  if (count != n) { lua_pushnil(L); return 1; }
  for (i = 1; i <= n; i++) {
    size_t len;
    const char *cl;
    lua_rawgeti(L, 2, (int)i);
    if (upd_kind(&w, lua_gettop(L)) != UK_ACTION) { lua_pushnil(L); return 1; }
    cl = lua_tolstring(L, upd_field(L, lua_gettop(L), "clause"), &len);
    for (c = 0; c < 4 && (cl == NULL || len != strlen(clauses[c]) ||
                          memcmp(cl, clauses[c], len) != 0); c++) {}
    if (c == 4) { lua_pushnil(L); return 1; }
    which[c]++;
    clause_of[i - 1] = (unsigned char)c;   /* read once: the clause passes below use it */
    lua_pop(L, 2);
  }
  /* the state's (nothing here calls Lua code, so no nested call can clobber them) */
  for (c = 0; c < 3; c++) lmdb_buf_reset(&st->upd[c]);
  w.expr = &st->upd[0];
  w.names = &st->upd[1];
  w.values = &st->upd[2];
  for (c = 0; ok && c < 4; c++) {
    int first = 1;
    if (!which[c]) continue;
    ok = (w.expr->len == 0 || UPD_LIT(w.expr, " ")) &&
         upd_put(w.expr, clauses[c], strlen(clauses[c])) && UPD_LIT(w.expr, " ");
    for (i = 1; ok && i <= n; i++) {
      int a;
      if (clause_of[i - 1] != c) continue;
      lua_rawgeti(L, 2, (int)i);
      a = lua_gettop(L);
      ok = (first || UPD_LIT(w.expr, ", ")) && upd_action(&w, a, c);
      first = 0;
      lua_settop(L, a - 1);
    }
  }
  ok = ok && w.expr->len <= UPD_MAX_EXPR;
  if (ok) {
    lmdb_buf *out = &st->out;
    lmdb_buf_reset(out);
    ok = upd_put(out, head.ptr, head.len) && UPD_LIT(out, "\"UpdateExpression\":") &&
         lmdb_json_put_string(out, w.expr->data, w.expr->len) == 0 &&
         (w.nn == 0 || (UPD_LIT(out, ",\"ExpressionAttributeNames\":{") &&
                        upd_put(out, w.names->data, w.names->len) && UPD_LIT(out, "}"))) &&
         (w.nv == 0 || (UPD_LIT(out, ",\"ExpressionAttributeValues\":{") &&
                        upd_put(out, w.values->data, w.values->len) && UPD_LIT(out, "}"))) &&
         upd_put(out, tail.ptr, tail.len);
    if (ok) push_buf(L, out);
    lmdb_buf_reset(out);
    if (out->cap > 1 << 20) lmdb_buf_free(out);
  }
  for (c = 0; c < 3; c++)
    if (st->upd[c].cap > 1 << 16) lmdb_buf_free(&st->upd[c]);
  if (!ok) lua_pushnil(L);
  return 1;
}

/* Checks a JSON text without building Lua values: true, or nil, message
** (the messages of core.json_decode). */
static int core_json_valid(lua_State *L) {
  core_state *st = get_state(L);
  lmdb_json_lexer *lx = &st->lexer;
  lmdb_str s = check_str(L, 1);
  lmdb_json_token t;
  lmdb_json_lexer_init(lx, s.ptr, s.len, JSON_MAX_DEPTH);
  do {
    t = lmdb_json_next(lx);
  } while (t != LMDB_JSON_END && t != LMDB_JSON_ERROR);
  if (lx->scratch.cap > 1 << 20)
    lmdb_buf_free(&lx->scratch);
  if (t == LMDB_JSON_ERROR) {
    lua_pushnil(L);
    lua_pushfstring(L, "invalid JSON at byte %d: %s", (int)lx->error_offset + 1,
                    lx->error ? lx->error : "unexpected token");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* ---------------------------------------------------------- pagination */

static const lmdb_paginator *check_paginator(lua_State *L, int idx) {
  lmdb_str op = check_str(L, idx);
  const lmdb_paginator *pg = lmdb_paginator_find(op);
  if (pg == NULL)
    luaL_error(L, "lunamodb: operation '%s' does not paginate", op.ptr);
  return pg;
}

static int core_paginated(lua_State *L) {
  lua_pushboolean(L, lmdb_paginator_find(check_str(L, 1)) != NULL);
  return 1;
}

/* paginate_next(operation, request_json, response_json) ->
** next_request_json | false, { count, scanned, capacity }; nil, message
** for a malformed response (or request); raises for an operation that
** does not paginate. */
static int core_paginate_next(lua_State *L) {
  core_state *st = get_state(L);
  const lmdb_paginator *pg = check_paginator(L, 1);
  lmdb_str req = check_str(L, 2), resp = check_str(L, 3);
  lmdb_page_info info;
  char err[192];
  int rc = lmdb_paginate_next(pg, req, resp, &st->lexer, &st->out, &info, err, sizeof err);
  if (st->lexer.scratch.cap > 1 << 20)
    lmdb_buf_free(&st->lexer.scratch);
  if (rc != 0) {
    lmdb_buf_reset(&st->out);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  if (info.more)
    push_buf(L, &st->out);
  else
    lua_pushboolean(L, 0);
  lmdb_buf_reset(&st->out);
  if (st->out.cap > 1 << 20)
    lmdb_buf_free(&st->out);
  lua_createtable(L, 0, 3);
  push_int64(L, info.count);
  lua_setfield(L, -2, "count");
  if (info.has_scanned) {
    push_int64(L, info.scanned);
    lua_setfield(L, -2, "scanned");
  }
  if (info.has_capacity) {
    lua_pushnumber(L, (lua_Number)info.capacity);
    lua_setfield(L, -2, "capacity");
  }
  return 2;
}

/* ---------------------------------------------- batches, transactions */

/* Entries are read with raw accesses only (no metamethod runs), and every
** string the C side borrows is also stored in an "anchor" table on the
** stack, presized so storing never allocates: a finalizer run by a later
** allocation (pushing a body) cannot free a string still to be copied,
** whatever it does to the caller's tables. */

#define BATCH_MAX_ENTRIES (INT_MAX / 4)

static void release_out(core_state *st) {
  lmdb_buf_reset(&st->out);
  if (st->out.cap > 1 << 20)                   /* don't pin a huge buffer */
    lmdb_buf_free(&st->out);
}

/* n elements of size sz as a userdata (freed by the GC, so a raise never
** leaks), raising when the count is out of reach. */
static void *new_array(lua_State *L, size_t n, size_t sz, const char *fn) {
  if (n > BATCH_MAX_ENTRIES || n > ((size_t)-1) / sz)
    luaL_error(L, "lunamodb: %s: too many entries", fn);
  return lua_newuserdatauv(L, n > 0 ? n * sz : 1, 0);
}

/* The value on top of the stack, when it is a string: stored at slot of the
** anchor table (popped from the stack) and returned; otherwise raises
** "lunamodb: <fn>: <what> <index>: <field> must be a string (got <type>)". */
static lmdb_str take_str(lua_State *L, int anchor, int slot, const char *fn,
                         const char *what, size_t index, const char *field) {
  lmdb_str s;
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_error(L, "lunamodb: %s: %s %d: %s must be a string (got %s)", fn, what, (int)index,
               field, luaL_typename(L, -1));
  s.ptr = lua_tolstring(L, -1, &s.len);
  lua_rawseti(L, anchor, slot);
  return s;
}

/* Pushes t[i] and checks it is a table. */
static void get_entry(lua_State *L, int t, size_t i, const char *fn, const char *what,
                      const char *shape) {
  lua_rawgeti(L, t, (int)i);
  if (!lua_istable(L, -1))
    luaL_error(L, "lunamodb: %s: %s %d must be a %s table (got %s)", fn, what, (int)i, shape,
               luaL_typename(L, -1));
}

static int body_release(lua_State *L) {
  body_ud *b = (body_ud *)check_self(L, MT_BODY);
  lmdb_buf_free(&b->buf);
  b->released = 1;
  return 0;
}

static int body_tostring(lua_State *L) {
  lmdb_str t = body_arg(L, 1, 0);
  lua_pushlstring(L, t.ptr, t.len);
  return 1;
}

static int body_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)body_arg(L, 1, 0).len);
  return 1;
}

static const luaL_Reg body_methods[] = {
  {"release", body_release},
  {NULL, NULL}
};

/* core.is_body(v) -> whether v is a lunamodb.body. */
static int core_is_body(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, MT_BODY) != NULL);
  return 1;
}

/* Pushes the bodies lmdb_batch_write_next packs from e[0..n): strings, or with as_bodies
** lunamodb.body objects (each takes the packed buffer over: no copy). */
static int push_write_bodies(lua_State *L, core_state *st, const lmdb_batch_write_entry *e,
                             size_t n, const char *fn, int as_bodies) {
  lmdb_batch_pos pos = { 0, 0 };
  char err[256];
  int k = 0, rc, result;
  lua_createtable(L, (int)(n / LMDB_BATCH_WRITE_MAX + 1), 0);
  result = lua_gettop(L);
  while ((rc = lmdb_batch_write_next(e, n, &pos, &st->out, err, sizeof err)) > 0) {
    if (as_bodies) {
      body_ud *b = (body_ud *)lua_newuserdatauv(L, sizeof *b, 0);
      b->buf = st->out;
      b->released = 0;
      lmdb_buf_init(&st->out);
      luaL_setmetatable(L, MT_BODY);
    } else {
      push_buf(L, &st->out);
    }
    lua_rawseti(L, result, ++k);
  }
  release_out(st);
  if (rc < 0)
    return luaL_error(L, "lunamodb: %s: %s", fn, err);
  return 1;
}

/* batch_write_bodies(entries) -> { body_json, ... }; entries: array of
** { table_name, request_json }. */
static int core_batch_write_bodies(lua_State *L) {
  static const char fn[] = "batch_write_bodies";
  core_state *st = get_state(L);
  lmdb_batch_write_entry *e;
  size_t n, i;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  n = (size_t)lua_rawlen(L, 1);
  e = (lmdb_batch_write_entry *)new_array(L, n, sizeof *e, fn);      /* 2 */
  lua_createtable(L, (int)(2 * n), 0);                               /* 3: anchor */
  for (i = 0; i < n; i++) {
    get_entry(L, 1, i + 1, fn, "entry", "{ table_name, request_json }");
    lua_rawgeti(L, -1, 1);
    e[i].table = take_str(L, 3, (int)(2 * i + 1), fn, "entry", i + 1, "table_name (entry[1])");
    lua_rawgeti(L, -1, 2);
    e[i].request = take_str(L, 3, (int)(2 * i + 2), fn, "entry", i + 1,
                            "request_json (entry[2])");
    lua_pop(L, 1);
  }
  return push_write_bodies(L, st, e, n, fn, 0);
}

/* ---------------------------------------------------------- batch builder */

/*
** core.batch_builder() -> a BatchWriteItem builder: the requests of one client's batch,
** written one after another into its own buffer (no Lua string per request), each with
** the item it writes and its key, so a second write of one item is refused as it is added
** and an unprocessed request leads back to its item.
**   b:put(values, plan, table_name) -> true: the item's PutRequest, encoded as
**     core.encode_item does, is queued (values is its item); false: the table has a write of
**     this key already (nothing queued); nil: the fast path does not take the values
**     (nothing queued: the caller encodes it the slow way and uses b:add_put).
**   b:add(table_name, request_json, key_json, item, op) -> true, or false for a key already
**     queued: a request encoded elsewhere; op "save" or "delete".
**   b:add_put(table_name, item_json, key_json, item) -> the same for the PutRequest of an
**     item encoded elsewhere.
**   b:find(table_name, key_json) -> item, op: the write of that key, or nil.
**   b:bodies() -> { body_json, ... }: as core.batch_write_bodies packs them.
**   b:reset(): empties it for another batch, keeping its memory (see builder_reset).
**   #b: the number of requests.
** The user value anchors the items at 1..#b and the table names at -1, -2, ...
*/
#define MT_BATCH_BUILDER "lunamodb.batch_builder"

typedef struct batch_request {
  size_t off, len;             /* its text in the builder's buffer */
  int table;                   /* its table name's slot: -table in the user value */
  int is_delete;
} batch_request;

typedef struct batch_builder {
  lmdb_buf data;
  batch_request *req;
  size_t n, cap;
  lmdb_keyset keys;            /* entry i: the key of req[i], grouped by table */
  int ntables;
  const char *last_table;      /* the last one used, and its slot */
  int last_slot;
} batch_builder;

static batch_builder *check_builder(lua_State *L) {
  return (batch_builder *)check_self(L, MT_BATCH_BUILDER);
}

static int builder_gc(lua_State *L) {
  batch_builder *b = check_builder(L);
  lmdb_buf_free(&b->data);
  lmdb_keyset_free(&b->keys);
  free(b->req);
  b->req = NULL;
  b->n = b->cap = 0;
  return 0;
}

static int core_batch_builder(lua_State *L) {
  batch_builder *b = (batch_builder *)lua_newuserdatauv(L, sizeof *b, 1);
  memset(b, 0, sizeof *b);
  lmdb_buf_init(&b->data);
  lmdb_keyset_init(&b->keys);
  luaL_setmetatable(L, MT_BATCH_BUILDER);
  lua_createtable(L, 32, 1);
  lmdb_setuservalue(L, -2);
  return 1;
}

/* The slot of the table name at idx; 0 when it is not anchored yet and add is 0. The
** user value is at uv. */
static int builder_table(lua_State *L, batch_builder *b, int idx, int uv, int add) {
  size_t len;
  const char *name = luaL_checklstring(L, idx, &len);
  int k;
  if (name == b->last_table) return b->last_slot;
  for (k = 1; k <= b->ntables; k++) {
    lua_rawgeti(L, uv, -k);
    if (lua_rawequal(L, -1, idx)) {
      lua_pop(L, 1);
      b->last_table = name;
      b->last_slot = k;
      return k;
    }
    lua_pop(L, 1);
  }
  if (!add) return 0;
  lua_pushvalue(L, idx);
  lua_rawseti(L, uv, -++b->ntables);
  b->last_table = name;                 /* anchored: the pointer stays valid */
  b->last_slot = b->ntables;
  return b->ntables;
}

/* Makes room for one more request (before anything is written, so a raise leaves the
** builder as it was). */
static void builder_room(lua_State *L, batch_builder *b) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 32;
    batch_request *r;
    if (cap > BATCH_MAX_ENTRIES) luaL_error(L, "lunamodb: batch_builder: too many requests");
    r = (batch_request *)realloc(b->req, cap * sizeof *r);
    if (r == NULL) luaL_error(L, "lunamodb: batch_builder: not enough memory");
    b->req = r;
    b->cap = cap;
  }
}

/* Records the request written at off.. (its key already in b->keys) and anchors its item,
** at item, in the user value at uv. */
static void builder_record(lua_State *L, batch_builder *b, size_t off, int table,
                           int is_delete, int item, int uv) {
  b->req[b->n].off = off;
  b->req[b->n].len = b->data.len - off;
  b->req[b->n].table = table;
  b->req[b->n].is_delete = is_delete;
  b->n++;
  lua_pushvalue(L, item);
  lua_rawseti(L, uv, (int)b->n);
}

/* Adds the key of the next request: 1, or 0 when the table has it already. */
static int builder_key(lua_State *L, batch_builder *b, int table, const char *key,
                       size_t len) {
  long r = lmdb_keyset_add(&b->keys, table, key, len);
  if (r == -2) luaL_error(L, "lunamodb: batch_builder: not enough memory");
  return r >= 0;
}

/* A put request's text around its item's JSON. */
static const lmdb_str put_prefix = { "{\"PutRequest\":{\"Item\":", 22 };
static const lmdb_str put_suffix = { "}}", 2 };

/* Queues a put of the item at item (a table) encoded with the plan at plan into the table
** named at name: 1 queued, 0 the table has this item's key already, -1 the encoder does not
** take the item (nothing queued either way). The builder's user value is pushed. */
static int builder_put_at(lua_State *L, batch_builder *b, int builder, int item, int plan,
                          int name) {
  size_t off = b->data.len, key_off = 0, key_len = 0;
  int table, uv;
  lmdb_getuservalue(L, builder);
  uv = lua_gettop(L);
  table = builder_table(L, b, name, uv, 1);
  builder_room(L, b);
  /* a batch is tens of items of hundreds of bytes: start past the first few doublings */
  if (b->data.cap == 0 && lmdb_buf_reserve(&b->data, 4096) != 0)
    luaL_error(L, "lunamodb: batch_builder: not enough memory");
  if (encode_values(L, get_state(L), &b->data, item, plan, put_prefix, put_suffix, &key_off,
                    &key_len) && key_len > 0) {
    /* the key's text lies past the end of the data: it is copied before anything else */
    if (builder_key(L, b, table, b->data.data + key_off, key_len)) {
      builder_record(L, b, off, table, 0, item, uv);
      return 1;
    }
  }
  b->data.len = off;
  if (b->data.data) b->data.data[off] = '\0';
  return key_len > 0 ? 0 : -1;
}

static int builder_put(lua_State *L) {
  batch_builder *b = check_builder(L);
  int r;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 4);
  r = builder_put_at(L, b, 1, 2, 3, 4);
  if (r < 0) lua_pushnil(L);
  else lua_pushboolean(L, r);
  return 1;
}

/*
** core.batch_saver(add, duplicate, item_state) -> save(batch, item): batch:save, whose
** common case (a whole item of a class the batch has seen, which the encoder takes) runs
** here without a Lua call. batch[1] maps an item metatable to its target { builder, plan,
** table_name }; item_state[item] must be nil (a whole item with nothing aside has no
** entry). Anything else goes to
** add(batch, item, "save", "batch:save"[, true when the encoder declined the item]); a
** second write of one item to duplicate("batch:save", 2). Both are called from here, as the
** Lua batch:save called them, so the levels of the errors they raise still name the user's
** line.
*/
enum { SAVE_ADD = 4, SAVE_DUPLICATE, SAVE_ITEM_STATE, SAVE_BUILDER_MT };

static int batch_save(lua_State *L) {
  int declined = 0;
  lua_settop(L, 2);
  if (!lua_istable(L, 1))                      /* luaL_error: at the caller's line */
    return luaL_error(L, "lunamodb: batch:save: call it on the batch, with a colon "
                         "(batch:save(item))");
  lua_rawgeti(L, 1, 1);                                                    /* 3: targets */
  if (lua_istable(L, 2) && lua_istable(L, 3) && lua_getmetatable(L, 2)) {
    lua_rawget(L, 3);                                                      /* 4: target */
    if (lua_istable(L, 4)) {
      lua_pushvalue(L, 2);
      lua_rawget(L, lua_upvalueindex(SAVE_ITEM_STATE));                    /* 5: state */
      if (lua_isnil(L, 5)) {
        batch_builder *b;
        int r;
        lua_rawgeti(L, 4, 1);                                              /* 6: builder */
        lua_rawgeti(L, 4, 2);                                              /* 7: plan */
        lua_rawgeti(L, 4, 3);                                              /* 8: table name */
        b = (batch_builder *)udata_with_mt(L, 6, lua_upvalueindex(SAVE_BUILDER_MT));
        if (b != NULL && lua_type(L, 8) == LUA_TSTRING) {
          r = builder_put_at(L, b, 6, 2, 7, 8);
          if (r > 0) return 0;
          if (r == 0) {
            lua_pushvalue(L, lua_upvalueindex(SAVE_DUPLICATE));
            lua_pushliteral(L, "batch:save");
            lua_pushinteger(L, 2);
            lua_call(L, 2, 0);
            return 0;
          }
          declined = 1;
        }
      }
    }
  }
  lua_pushvalue(L, lua_upvalueindex(SAVE_ADD));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushliteral(L, "save");
  lua_pushliteral(L, "batch:save");
  lua_pushboolean(L, declined);
  lua_call(L, 5, 0);
  return 0;
}

static int core_batch_saver(lua_State *L) {
  int i;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  for (i = 1; i <= 3; i++)                      /* the module's upvalues, as every encoder */
    lua_pushvalue(L, lua_upvalueindex(i));
  for (i = 1; i <= 3; i++)
    lua_pushvalue(L, i);
  luaL_getmetatable(L, MT_BATCH_BUILDER);
  lua_pushcclosure(L, batch_save, 7);
  return 1;
}

/* Queues a request text (between prefix and suffix): args table_name, text, key_json, item. */
static int builder_queue(lua_State *L, lmdb_str prefix, lmdb_str suffix, int is_delete) {
  batch_builder *b = check_builder(L);
  size_t off = b->data.len, len, key_len;
  const char *text = luaL_checklstring(L, 3, &len);
  const char *key = luaL_checklstring(L, 4, &key_len);
  int table;
  if (len == 0) return luaL_argerror(L, 3, "an empty request");
  if (key_len == 0) return luaL_argerror(L, 4, "an empty key");
  luaL_checkany(L, 5);
  lua_settop(L, 5);
  lmdb_getuservalue(L, 1);                                                 /* 6 */
  table = builder_table(L, b, 2, 6, 1);
  builder_room(L, b);
  if (lmdb_buf_reserve(&b->data, prefix.len + len + suffix.len) != 0)
    return luaL_error(L, "lunamodb: batch_builder: not enough memory");
  if (!builder_key(L, b, table, key, key_len)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  /* reserved: these cannot fail */
  lmdb_buf_append(&b->data, prefix.ptr, prefix.len);
  lmdb_buf_append(&b->data, text, len);
  lmdb_buf_append(&b->data, suffix.ptr, suffix.len);
  builder_record(L, b, off, table, is_delete, 5, 6);
  lua_pushboolean(L, 1);
  return 1;
}

static int builder_add(lua_State *L) {
  static const lmdb_str none = { "", 0 };
  static const char *const ops[] = { "save", "delete", NULL };
  return builder_queue(L, none, none, luaL_checkoption(L, 6, NULL, ops));
}

static int builder_add_put(lua_State *L) {
  return builder_queue(L, put_prefix, put_suffix, 0);
}

static int builder_find(lua_State *L) {
  batch_builder *b = check_builder(L);
  size_t len;
  const char *key = luaL_checklstring(L, 3, &len);
  int table;
  long i;
  lua_settop(L, 3);
  lmdb_getuservalue(L, 1);                                                 /* 4 */
  table = builder_table(L, b, 2, 4, 0);
  i = table ? lmdb_keyset_find(&b->keys, table, key, len) : -1;
  if (i < 0) return 0;
  lua_rawgeti(L, 4, (int)(i + 1));
  if (b->req[i].is_delete) lua_pushliteral(L, "delete");
  else lua_pushliteral(L, "save");
  return 2;
}

/* b:reset(): empties the builder for another batch (its requests, keys, items and table
** names gone), keeping its memory. */
static int builder_reset(lua_State *L) {
  batch_builder *b = check_builder(L);
  int k;
  lua_settop(L, 1);
  lmdb_getuservalue(L, 1);
  for (k = 1; k <= (int)b->n; k++) {
    lua_pushnil(L);
    lua_rawseti(L, 2, k);
  }
  for (k = 1; k <= b->ntables; k++) {
    lua_pushnil(L);
    lua_rawseti(L, 2, -k);
  }
  b->n = 0;
  b->ntables = 0;
  b->last_table = NULL;
  b->last_slot = 0;
  lmdb_buf_reset(&b->data);
  lmdb_keyset_clear(&b->keys);
  if (b->data.cap > 1 << 20) {                  /* a big batch's memory is not kept */
    lmdb_buf_free(&b->data);
    lmdb_keyset_free(&b->keys);
    free(b->req);
    b->req = NULL;
    b->cap = 0;
  }
  return 0;
}

static int builder_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_builder(L)->n);
  return 1;
}

static int builder_bodies(lua_State *L) {
  batch_builder *b = check_builder(L);
  lmdb_batch_write_entry *e;
  size_t i;
  lua_settop(L, 2);
  lmdb_getuservalue(L, 1);                                           /* 3: table names */
  e = (lmdb_batch_write_entry *)new_array(L, b->n, sizeof *e, "batch_builder");   /* 4 */
  for (i = 0; i < b->n; i++) {
    lua_rawgeti(L, 3, -b->req[i].table);
    e[i].table.ptr = lua_tolstring(L, -1, &e[i].table.len);          /* anchored in 3 */
    lua_pop(L, 1);
    e[i].request.ptr = b->data.data + b->req[i].off;
    e[i].request.len = b->req[i].len;
  }
  return push_write_bodies(L, get_state(L), e, b->n, "batch_builder", lua_toboolean(L, 2));
}

static const luaL_Reg builder_methods[] = {
  {"put", builder_put},
  {"add", builder_add},
  {"add_put", builder_add_put},
  {"find", builder_find},
  {"bodies", builder_bodies},
  {"reset", builder_reset},
  {NULL, NULL}
};

/* batch_get_bodies(tables) -> { body_json, ... }; tables: array of
** { table_name, keys = { key_json, ... }, options_json = "" | members }. */
static int core_batch_get_bodies(lua_State *L) {
  static const char fn[] = "batch_get_bodies";
  static const char shape[] = "{ table_name, keys = {...}, options_json = ... }";
  core_state *st = get_state(L);
  lmdb_batch_get_table *t;
  lmdb_str *keys;
  lmdb_batch_pos pos = { 0, 0 };
  size_t n, i, j, nkeys = 0, used = 0;
  int k = 0, slot = 0, rc;
  char err[256];
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushliteral(L, "keys");                                        /* 2 */
  lua_pushliteral(L, "options_json");                                /* 3 */
  n = (size_t)lua_rawlen(L, 1);
  for (i = 0; i < n; i++) {                      /* count the keys */
    size_t m;
    get_entry(L, 1, i + 1, fn, "table", shape);
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    if (!lua_istable(L, -1))
      luaL_error(L, "lunamodb: %s: table %d: keys must be an array of key JSON texts (got %s)",
                 fn, (int)(i + 1), luaL_typename(L, -1));
    m = (size_t)lua_rawlen(L, -1);
    if (m > BATCH_MAX_ENTRIES - nkeys)
      luaL_error(L, "lunamodb: %s: too many keys", fn);
    nkeys += m;
    lua_pop(L, 2);
  }
  if (n > BATCH_MAX_ENTRIES - nkeys)
    luaL_error(L, "lunamodb: %s: too many entries", fn);
  t = (lmdb_batch_get_table *)new_array(L, n, sizeof *t, fn);        /* 4 */
  keys = (lmdb_str *)new_array(L, nkeys, sizeof *keys, fn);          /* 5 */
  lua_createtable(L, (int)(2 * n + nkeys), 0);                       /* 6: anchor */
  for (i = 0; i < n; i++) {
    size_t m;
    get_entry(L, 1, i + 1, fn, "table", shape);
    lua_rawgeti(L, -1, 1);
    t[i].table = take_str(L, 6, ++slot, fn, "table", i + 1, "table_name (table[1])");
    lua_pushvalue(L, 3);
    lua_rawget(L, -2);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      t[i].options.ptr = "";
      t[i].options.len = 0;
    } else {
      t[i].options = take_str(L, 6, ++slot, fn, "table", i + 1, "options_json");
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    if (!lua_istable(L, -1))                     /* checked above; be sure */
      luaL_error(L, "lunamodb: %s: table %d: keys must be an array", fn, (int)(i + 1));
    m = (size_t)lua_rawlen(L, -1);
    if (m > nkeys - used)
      luaL_error(L, "lunamodb: %s: the tables changed during the call", fn);
    t[i].keys = keys + used;
    t[i].nkeys = m;
    for (j = 0; j < m; j++) {
      lua_rawgeti(L, -1, (int)(j + 1));
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "lunamodb: %s: table %d: key %d must be a string (got %s)", fn,
                   (int)(i + 1), (int)(j + 1), luaL_typename(L, -1));
      keys[used + j].ptr = lua_tolstring(L, -1, &keys[used + j].len);
      lua_rawseti(L, 6, ++slot);
    }
    used += m;
    lua_pop(L, 2);
  }
  lua_createtable(L, (int)(nkeys / LMDB_BATCH_GET_MAX + 1), 0);      /* 7: result */
  while ((rc = lmdb_batch_get_next(t, n, &pos, &st->out, err, sizeof err)) > 0) {
    push_buf(L, &st->out);
    lua_rawseti(L, 7, ++k);
  }
  release_out(st);
  if (rc < 0)
    return luaL_error(L, "lunamodb: %s: %s", fn, err);
  return 1;
}

/* batch_unprocessed(kind, response_json) -> next_body_json | false, count;
** nil, message for a malformed response. */
static int core_batch_unprocessed(lua_State *L) {
  static const char *const kinds[] = { "write", "get", NULL };
  core_state *st = get_state(L);
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  lmdb_str resp = check_str(L, 2);
  int64_t count = 0;
  char err[192];
  int rc = lmdb_batch_unprocessed(kind == 0 ? LMDB_BATCH_WRITE : LMDB_BATCH_GET, resp,
                                  &st->lexer, &st->out, &count, err, sizeof err);
  if (st->lexer.scratch.cap > 1 << 20)
    lmdb_buf_free(&st->lexer.scratch);
  if (rc != 0) {
    release_out(st);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  if (st->out.len > 0)
    push_buf(L, &st->out);
  else
    lua_pushboolean(L, 0);
  release_out(st);
  push_int64(L, count);
  return 2;
}

/* transact_body(kind, entries[, token]) -> body_json; entries: array of
** { table_name, key_id, action_json }. Raises on every limit. */
static int core_transact_body(lua_State *L) {
  static const char fn[] = "transact_body";
  static const char *const kinds[] = { "write", "get", NULL };
  core_state *st = get_state(L);
  lmdb_transact_action a[LMDB_TRANSACT_MAX];
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  lmdb_str token;
  size_t n, i;
  char err[320];
  int rc;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3))
    luaL_checktype(L, 3, LUA_TSTRING);           /* a number is not a token */
  token = opt_str(L, 3);
  lua_settop(L, 3);
  n = (size_t)lua_rawlen(L, 2);
  /* Over the limit, the actions are not read: the count is the error. No
  ** allocation happens between reading them and building the body. */
  for (i = 0; i < n && n <= LMDB_TRANSACT_MAX; i++) {
    get_entry(L, 2, i + 1, fn, "action", "{ table_name, key_id, action_json }");
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    lua_rawgeti(L, -3, 3);
    if (lua_type(L, -3) != LUA_TSTRING || lua_type(L, -2) != LUA_TSTRING ||
        lua_type(L, -1) != LUA_TSTRING) {
      int bad = lua_type(L, -3) != LUA_TSTRING ? -3 : lua_type(L, -2) != LUA_TSTRING ? -2 : -1;
      const char *field = bad == -3 ? "table_name (action[1])"
                        : bad == -2 ? "key_id (action[2])" : "action_json (action[3])";
      luaL_error(L, "lunamodb: %s: action %d: %s must be a string (got %s)", fn, (int)(i + 1),
                 field, luaL_typename(L, bad));
    }
    a[i].table.ptr = lua_tolstring(L, -3, &a[i].table.len);
    a[i].key_id.ptr = lua_tolstring(L, -2, &a[i].key_id.len);
    a[i].action.ptr = lua_tolstring(L, -1, &a[i].action.len);
    lua_pop(L, 4);                               /* the entries table keeps them */
  }
  rc = lmdb_transact_build(kind == 0 ? LMDB_TRANSACT_WRITE : LMDB_TRANSACT_GET,
                           n > LMDB_TRANSACT_MAX ? NULL : a, n, token, &st->out, err,
                           sizeof err);
  if (rc != 0) {
    release_out(st);
    return luaL_error(L, "lunamodb: %s: %s", fn, err);
  }
  push_buf(L, &st->out);
  release_out(st);
  return 1;
}

/* ------------------------------------------------- digests, time, misc */

static int core_sha256_hex(lua_State *L) {
  lmdb_str s = check_str(L, 1);
  char hex[65];
  lmdb_sha256_hex(s.ptr, s.len, hex);
  lua_pushlstring(L, hex, 64);
  return 1;
}

static int core_hmac_sha256(lua_State *L) {
  lmdb_str k = check_str(L, 1), m = check_str(L, 2);
  unsigned char out[32];
  if (lmdb_hmac_sha256(k.ptr, k.len, m.ptr, m.len, out) != 0)
    return luaL_error(L, "lunamodb: HMAC-SHA256 failed");
  lua_pushlstring(L, (const char *)out, 32);
  lmdb_cleanse(out, sizeof out);
  return 1;
}

/* core.crc32(s[, portable]): portable takes the table code even on a CPU with carry-less
** multiply, so the specs can check each path against the other. */
static int core_crc32(lua_State *L) {
  lmdb_str s = check_str(L, 1);
  uint32_t (*crc32)(uint32_t, const void *, size_t) =
    lua_toboolean(L, 2) ? lmdb_crc32_portable : lmdb_crc32;
  push_int64(L, (int64_t)crc32(0, s.ptr, s.len));
  return 1;
}

static int core_uuid4(lua_State *L) {
  char u[37];
  if (lmdb_uuid4(u) != 0)
    return luaL_error(L, "lunamodb: the random number generator failed");
  lua_pushlstring(L, u, 36);
  return 1;
}

static int core_random(lua_State *L) {
  uint64_t r;
  if (lmdb_random_bytes(&r, sizeof r) != 0)
    return luaL_error(L, "lunamodb: the random number generator failed");
  lua_pushnumber(L, (lua_Number)(r >> 11) * (1.0 / 9007199254740992.0));  /* 53 bits */
  return 1;
}

static int64_t clock_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int core_now_ms(lua_State *L) {
  push_int64(L, clock_ms(CLOCK_REALTIME));
  return 1;
}

static int core_monotonic_ms(lua_State *L) {
  push_int64(L, clock_ms(CLOCK_MONOTONIC));
  return 1;
}

/* Microseconds, for budgets below a millisecond (scheduler.step's budget_ms). */
static int core_monotonic_us(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  push_int64(L, (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
  return 1;
}

static int core_utf8_valid(lua_State *L) {
  lmdb_str s = check_str(L, 1);
  lua_pushboolean(L, lmdb_utf8_valid(s.ptr, s.len));
  return 1;
}

static int core_base64_encode(lua_State *L) {
  core_state *st = get_state(L);
  lmdb_str s = check_str(L, 1);
  lmdb_buf_reset(&st->out);
  if (lmdb_base64_encode(&st->out, s.ptr, s.len) != 0)
    return luaL_error(L, "lunamodb: not enough memory");
  push_buf(L, &st->out);
  return 1;
}

/* Returns the bytes, or nil, message for text that is not strict base64. */
static int core_base64_decode(lua_State *L) {
  core_state *st = get_state(L);
  lmdb_str s = check_str(L, 1);
  int rc;
  lmdb_buf_reset(&st->out);
  rc = lmdb_base64_decode(&st->out, s.ptr, s.len);
  if (rc == -1)
    return luaL_error(L, "lunamodb: not enough memory");
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "not valid base64");
    return 2;
  }
  push_buf(L, &st->out);
  return 1;
}

/* Blocks the calling thread: only the blocking driver uses it, between
** retries, when nothing else is waiting on the transport. */
static int core_sleep_ms(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  struct timespec ts;
  if (ms > 0) {
    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)((ms - (lua_Number)ts.tv_sec * 1000) * 1000000);
    while (nanosleep(&ts, &ts) != 0)
      ;                                         /* resumed after a signal */
  }
  return 0;
}

static int core_parse_http_date(lua_State *L) {
  int64_t t;
  if (lmdb_parse_http_date(check_str(L, 1), &t) != 0)
    return 0;
  push_int64(L, t);
  return 1;
}

/* --------------------------------------------------------------- SigV4 */

typedef struct signer_ud {
  lmdb_sigv4_signer s;
  lmdb_sigv4_result r;
} signer_ud;

static int signer_gc(lua_State *L) {
  signer_ud *u = (signer_ud *)check_self(L, MT_SIGNER);
  lmdb_sigv4_signer_free(&u->s);
  lmdb_sigv4_result_free(&u->r);
  return 0;
}

static signer_ud *signer_new(lua_State *L) {
  signer_ud *u = (signer_ud *)lua_newuserdatauv(L, sizeof *u, 0);
  lmdb_sigv4_signer_init(&u->s);
  lmdb_sigv4_result_init(&u->r);
  luaL_setmetatable(L, MT_SIGNER);
  return u;
}

static void check_header_safe(lua_State *L, lmdb_str v, const char *what) {
  if (!lmdb_header_value_safe(v))
    luaL_error(L, "lunamodb: %s contains CR, LF or NUL", what);
}

static void signer_set(lua_State *L, signer_ud *u, lmdb_str akid, lmdb_str secret,
                       lmdb_str token) {
  if (akid.len == 0)
    luaL_error(L, "lunamodb: access key id is empty");
  if (secret.len == 0)
    luaL_error(L, "lunamodb: secret access key is empty");
  check_header_safe(L, akid, "access key id");
  check_header_safe(L, token, "session token");
  if (lmdb_sigv4_set_credentials(&u->s, akid, secret, token) != 0)
    luaL_error(L, "lunamodb: not enough memory");
}

static int core_signer(lua_State *L) {
  signer_new(L);
  return 1;
}

static int signer_set_credentials(lua_State *L) {
  signer_ud *u = (signer_ud *)check_self(L, MT_SIGNER);
  signer_set(L, u, check_str(L, 2), check_str(L, 3), opt_str(L, 4));
  return 0;
}

static int signer_tostring(lua_State *L) {
  signer_ud *u = (signer_ud *)check_self(L, MT_SIGNER);
  if (u->s.access_key_id.len)
    lua_pushfstring(L, "lunamodb.signer (%s)", u->s.access_key_id.data);
  else
    lua_pushliteral(L, "lunamodb.signer (no credentials)");
  return 1;
}

/* A value may carry obs-fold continuation lines ("\n" then a space or tab),
** which canonicalisation collapses; anything else that could end a header
** line is refused. */
static int value_folding_safe(lmdb_str v) {
  size_t i;
  for (i = 0; i < v.len; i++) {
    char c = v.ptr[i];
    if (c == '\r' || c == '\0')
      return 0;
    if (c == '\n' && (i + 1 >= v.len || (v.ptr[i + 1] != ' ' && v.ptr[i + 1] != '\t')))
      return 0;
  }
  return 1;
}

/* Reads an array of {name, value} pairs at idx into a header array that
** lives in a userdata pushed on the stack (freed by the GC). */
static lmdb_header *check_headers(lua_State *L, int idx, size_t *n) {
  size_t i, count;
  lmdb_header *h;
  luaL_checktype(L, idx, LUA_TTABLE);
  count = lua_rawlen(L, idx);
  h = (lmdb_header *)lua_newuserdatauv(L, (count ? count : 1) * sizeof *h, 0);
  for (i = 0; i < count; i++) {
    lua_rawgeti(L, idx, (int)i + 1);
    if (lua_type(L, -1) != LUA_TTABLE)
      luaL_error(L, "lunamodb: header %d must be a {name, value} pair", (int)i + 1);
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "lunamodb: header %d must have a string name and value", (int)i + 1);
    h[i].name.ptr = lua_tolstring(L, -2, &h[i].name.len);
    h[i].value.ptr = lua_tolstring(L, -1, &h[i].value.len);
    /* the strings stay alive: the pair table is held by the headers table */
    lua_pop(L, 3);
    if (h[i].name.len == 0)
      luaL_error(L, "lunamodb: header %d has an empty name", (int)i + 1);
    check_header_safe(L, h[i].name, "a header name");
    if (!value_folding_safe(h[i].value)) {
      lua_pushlstring(L, h[i].name.ptr, h[i].name.len);
      luaL_error(L, "lunamodb: header '%s' value contains CR, NUL or a line break "
                 "not followed by whitespace", lua_tostring(L, -1));
    }
  }
  *n = count;
  return h;
}

static void push_sign_result(lua_State *L, const lmdb_sigv4_signer *s,
                             const lmdb_sigv4_result *r, int sign_body) {
  int n = 0;
  lua_createtable(L, 0, 8);
  push_buf(L, &r->canonical_request); lua_setfield(L, -2, "canonical_request");
  push_buf(L, &r->string_to_sign); lua_setfield(L, -2, "string_to_sign");
  lua_pushlstring(L, r->signature, 64); lua_setfield(L, -2, "signature");
  push_buf(L, &r->signed_headers); lua_setfield(L, -2, "signed_headers");
  push_buf(L, &r->authorization); lua_setfield(L, -2, "authorization");
  lua_pushlstring(L, r->amz_date, 16); lua_setfield(L, -2, "amz_date");
  lua_createtable(L, 4, 0);
#define ADD_PAIR(NAME, PUSHV) do { lua_createtable(L, 2, 0); lua_pushliteral(L, NAME); \
    lua_rawseti(L, -2, 1); PUSHV; lua_rawseti(L, -2, 2); lua_rawseti(L, -2, ++n); } while (0)
  ADD_PAIR("X-Amz-Date", lua_pushlstring(L, r->amz_date, 16));
  if (s->session_token.len)
    ADD_PAIR("X-Amz-Security-Token", push_buf(L, &s->session_token));
  if (sign_body)
    ADD_PAIR("x-amz-content-sha256", push_buf(L, &r->payload_hash));
  ADD_PAIR("Authorization", push_buf(L, &r->authorization));
#undef ADD_PAIR
  lua_setfield(L, -2, "headers");
}

static int do_sign(lua_State *L, signer_ud *u, lmdb_str region, lmdb_str service,
                   int64_t when, lmdb_sigv4_request *req) {
  if (region.len == 0)
    return luaL_error(L, "lunamodb: region is required for signing");
  if (service.len == 0)
    return luaL_error(L, "lunamodb: service is required for signing");
  if (u->s.access_key_id.len == 0)
    return luaL_error(L, "lunamodb: no credentials to sign with");
  if (lmdb_sigv4_sign(&u->s, region, service, when, req, &u->r) != 0)
    return luaL_error(L, "lunamodb: cannot sign: %s", u->r.error);
  push_sign_result(L, &u->s, &u->r, req->sign_body);
  return 1;
}

static int core_sigv4_sign(lua_State *L) {
  lmdb_sigv4_request req;
  lmdb_str region, service, akid, secret, token;
  int64_t when;
  signer_ud *u;
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(&req, 0, sizeof req);
  req.method = field_str(L, 1, "method", 1);
  req.path = field_str(L, 1, "path", 1);
  req.query = field_str(L, 1, "query", 0);
  req.body = field_str(L, 1, "body", 0);
  region = field_str(L, 1, "region", 0);
  service = field_str(L, 1, "service", 0);
  akid = field_str(L, 1, "access_key_id", 1);
  secret = field_str(L, 1, "secret_access_key", 1);
  token = field_str(L, 1, "session_token", 0);
  req.normalize_path = field_bool(L, 1, "normalize", 1);
  req.sign_body = field_bool(L, 1, "sign_body", 0);
  req.omit_session_token = field_bool(L, 1, "omit_session_token", 0);
  lua_getfield(L, 1, "time");
  if (lua_type(L, -1) != LUA_TNUMBER)
    return luaL_error(L, "field 'time' must be epoch seconds (got %s)", luaL_typename(L, -1));
  when = check_int64(L, -1);
  lua_getfield(L, 1, "headers");
  if (lua_type(L, -1) != LUA_TTABLE)
    return luaL_error(L, "field 'headers' must be an array of {name, value} pairs");
  req.headers = check_headers(L, lua_gettop(L), &req.nheaders);
  u = signer_new(L);
  signer_set(L, u, akid, secret, token);
  return do_sign(L, u, region, service, when, &req);
}

static int signer_sign(lua_State *L) {
  signer_ud *u = (signer_ud *)check_self(L, MT_SIGNER);
  lmdb_sigv4_request req;
  lmdb_str region = check_str(L, 2), service = check_str(L, 3);
  int64_t when = check_int64(L, 4);
  memset(&req, 0, sizeof req);
  req.method = check_str(L, 5);
  req.path = check_str(L, 6);
  req.query = opt_str(L, 7);
  req.body = opt_str(L, 9);
  req.normalize_path = 1;
  req.headers = check_headers(L, 8, &req.nheaders);
  return do_sign(L, u, region, service, when, &req);
}

/* signer:sign_post(region, service, time, host, target, body) -> the header lines
** "X-Amz-Date: ...", "Authorization: ..." [, "X-Amz-Security-Token: ..."]: the DynamoDB
** request shape, without building tables (or concatenating in Lua). */
static int signer_sign_post(lua_State *L) {
  signer_ud *u = (signer_ud *)check_self(L, MT_SIGNER);
  lmdb_sigv4_request req;
  lmdb_header h[3];
  lmdb_str region = check_str(L, 2), service = check_str(L, 3);
  int64_t when = check_int64(L, 4);
  memset(&req, 0, sizeof req);
  h[0].name.ptr = "Content-Type"; h[0].name.len = 12;
  h[0].value.ptr = "application/x-amz-json-1.0"; h[0].value.len = 26;
  h[1].name.ptr = "Host"; h[1].name.len = 4;
  h[1].value = check_str(L, 5);
  h[2].name.ptr = "X-Amz-Target"; h[2].name.len = 12;
  h[2].value = check_str(L, 6);
  check_header_safe(L, h[1].value, "host");
  check_header_safe(L, h[2].value, "target");
  req.method.ptr = "POST"; req.method.len = 4;
  req.path.ptr = "/"; req.path.len = 1;
  req.body = body_arg(L, 7, 0);
  req.headers = h;
  req.nheaders = 3;
  req.normalize_path = 1;
  if (region.len == 0)
    return luaL_error(L, "lunamodb: region is required for signing");
  if (u->s.access_key_id.len == 0)
    return luaL_error(L, "lunamodb: no credentials to sign with");
  if (lmdb_sigv4_sign(&u->s, region, service, when, &req, &u->r) != 0)
    return luaL_error(L, "lunamodb: cannot sign: %s", u->r.error);
  {
    luaL_Buffer b;
    char line[32];
    memcpy(line, "X-Amz-Date: ", 12);
    memcpy(line + 12, u->r.amz_date, 16);
    lua_pushlstring(L, line, 28);
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, "Authorization: ", 15);
    luaL_addlstring(&b, u->r.authorization.data, u->r.authorization.len);
    luaL_pushresult(&b);
    if (u->s.session_token.len) {
      luaL_buffinit(L, &b);
      luaL_addlstring(&b, "X-Amz-Security-Token: ", 22);
      luaL_addlstring(&b, u->s.session_token.data, u->s.session_token.len);
      luaL_pushresult(&b);
      return 3;
    }
  }
  return 2;
}

/* ------------------------------------------------------------- retries */

static const char *const class_names[] = {
  "ok", "throttle", "transient", "timeout", "skew", "fatal", NULL
};
static const char *const net_names[] = {
  "ok", "not_sent", "timeout", "ambiguous", "too_large", "closed", "other", NULL
};

static int core_error_code(lua_State *L) {
  push_str(L, lmdb_error_code(check_str(L, 1)));
  return 1;
}

static int core_classify(lua_State *L) {
  long status = (long)luaL_optinteger(L, 1, 0);
  lmdb_str code = opt_str(L, 2), message = opt_str(L, 3);
  lmdb_net_status net = (lmdb_net_status)luaL_checkoption(L, 4, "ok", net_names);
  int crc = lua_toboolean(L, 5);
  lua_pushstring(L, class_names[lmdb_retry_classify(status, code, message, net, crc)]);
  return 1;
}

static int core_retry_policy(lua_State *L) {
  lmdb_retry_policy *p;
  int has_opts = !lua_isnoneornil(L, 1);
  if (has_opts)
    luaL_checktype(L, 1, LUA_TTABLE);
  p = (lmdb_retry_policy *)lua_newuserdatauv(L, sizeof *p, 0);
  lmdb_retry_policy_init(p);
  luaL_setmetatable(L, MT_POLICY);
  if (has_opts) {
    p->max_attempts = (int)field_num(L, 1, "max_attempts", p->max_attempts, 1, 100);
    p->base_ms = field_num(L, 1, "base_ms", p->base_ms, 0, 3600000);
    p->throttle_base_ms = field_num(L, 1, "throttle_base_ms", p->throttle_base_ms, 0, 3600000);
    p->cap_ms = field_num(L, 1, "cap_ms", p->cap_ms, 0, 3600000);
    p->quota_max = (int)field_num(L, 1, "quota", p->quota_max, 0, 1000000);
    p->quota = p->quota_max;
    p->cost_transient = (int)field_num(L, 1, "cost_transient", p->cost_transient, 0, 1000000);
    p->cost_throttle = (int)field_num(L, 1, "cost_throttle", p->cost_throttle, 0, 1000000);
    p->cost_timeout = (int)field_num(L, 1, "cost_timeout", p->cost_timeout, 0, 1000000);
  }
  return 1;
}

static int policy_decide(lua_State *L) {
  lmdb_retry_policy *p = (lmdb_retry_policy *)check_self(L, MT_POLICY);
  lmdb_retry_class c = (lmdb_retry_class)luaL_checkoption(L, 2, NULL, class_names);
  int attempt = (int)luaL_checkinteger(L, 3);
  double retry_after = luaL_optnumber(L, 4, -1);
  double rnd, delay = 0;
  const char *why = NULL;
  if (lua_isnoneornil(L, 5)) {
    uint64_t r;
    if (lmdb_random_bytes(&r, sizeof r) != 0)
      return luaL_error(L, "lunamodb: the random number generator failed");
    rnd = (double)(r >> 11) * (1.0 / 9007199254740992.0);
  } else {
    rnd = luaL_checknumber(L, 5);
    luaL_argcheck(L, rnd >= 0 && rnd <= 1, 5, "must be in [0, 1]");
  }
  if (lmdb_retry_decide(p, attempt, c, retry_after, rnd, &delay, &why)) {
    lua_pushnumber(L, delay);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, why ? why : "not_retryable");
  return 2;
}

static int policy_success(lua_State *L) {
  lmdb_retry_on_success((lmdb_retry_policy *)check_self(L, MT_POLICY));
  return 0;
}

static int policy_quota(lua_State *L) {
  lmdb_retry_policy *p = (lmdb_retry_policy *)check_self(L, MT_POLICY);
  lua_pushinteger(L, p->quota);
  return 1;
}

static int policy_max_attempts(lua_State *L) {
  lmdb_retry_policy *p = (lmdb_retry_policy *)check_self(L, MT_POLICY);
  lua_pushinteger(L, p->max_attempts);
  return 1;
}

static int policy_observe_clock(lua_State *L) {
  lmdb_retry_policy *p = (lmdb_retry_policy *)check_self(L, MT_POLICY);
  int r = lmdb_retry_observe_clock(p, check_int64(L, 2), check_int64(L, 3),
                                   check_int64(L, 4), lua_toboolean(L, 5));
  lua_pushboolean(L, r);
  return 1;
}

static int policy_clock_offset_ms(lua_State *L) {
  lmdb_retry_policy *p = (lmdb_retry_policy *)check_self(L, MT_POLICY);
  push_int64(L, p->clock_offset_ms);
  return 1;
}

/* ----------------------------------------------------------- endpoints */

/* core.parse_url(url[, request]) -> { scheme, host, port (0: the default), path, ipv6,
** host_header } or nil, why. request: a URL a transport sends to, whose query (without its
** '?', in .query) is allowed and whose fragment is dropped; else an endpoint, which has
** neither. */
static int core_parse_url(lua_State *L) {
  lmdb_url u;
  const char *why = NULL;
  lmdb_buf hh;
  lmdb_str url = check_str(L, 1);
  int rc = lua_toboolean(L, 2) ? lmdb_url_parse_request(url, &u, &why)
                               : lmdb_url_parse(url, &u, &why);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, why ? why : "malformed URL");
    return 2;
  }
  lua_createtable(L, 0, 7);
  if (u.query.ptr) {
    push_str(L, u.query);
    lua_setfield(L, -2, "query");
  }
  push_str(L, u.scheme); lua_setfield(L, -2, "scheme");
  push_str(L, u.host); lua_setfield(L, -2, "host");
  lua_pushinteger(L, u.port); lua_setfield(L, -2, "port");
  push_str(L, u.path); lua_setfield(L, -2, "path");
  lua_pushboolean(L, u.ipv6); lua_setfield(L, -2, "ipv6");
  lmdb_buf_init(&hh);
  if (lmdb_url_host_header(&u, &hh) != 0) {
    lmdb_buf_free(&hh);
    return luaL_error(L, "lunamodb: not enough memory");
  }
  lua_pushlstring(L, hh.data ? hh.data : "", hh.len);
  lmdb_buf_free(&hh);
  lua_setfield(L, -2, "host_header");
  return 1;
}

static int core_region_valid(lua_State *L) {
  lua_pushboolean(L, lmdb_region_valid(check_str(L, 1)));
  return 1;
}

static int core_header_value_safe(lua_State *L) {
  lua_pushboolean(L, lmdb_header_value_safe(check_str(L, 1)));
  return 1;
}

static int core_container_uri_allowed(lua_State *L) {
  lua_pushboolean(L, lmdb_container_uri_allowed(check_str(L, 1)));
  return 1;
}

/* --------------------------------------------------------- credentials */

typedef struct profile_ud {
  lmdb_profile p;
} profile_ud;

#define MT_PROFILE "lunamodb.profile"

static int profile_gc(lua_State *L) {
  profile_ud *u = (profile_ud *)check_self(L, MT_PROFILE);
  lmdb_profile_free(&u->p);
  return 0;
}

static int core_load_profile(lua_State *L) {
  const char *cred = luaL_optstring(L, 1, NULL);
  const char *conf = luaL_optstring(L, 2, NULL);
  const char *name = luaL_checkstring(L, 3);
  char err[256];
  profile_ud *u = (profile_ud *)lua_newuserdatauv(L, sizeof *u, 0);
  lmdb_profile_init(&u->p);
  luaL_setmetatable(L, MT_PROFILE);             /* frees the profile on any raise */
  err[0] = '\0';
  if (lmdb_profile_load(cred, conf, name, &u->p, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err[0] ? err : "cannot read the AWS shared files");
    return 2;
  }
  lua_createtable(L, 0, 8);
#define SET_FIELD(KEY, BUF) if (u->p.BUF.len) { push_buf(L, &u->p.BUF); lua_setfield(L, -2, KEY); }
  SET_FIELD("aws_access_key_id", access_key_id);
  SET_FIELD("aws_secret_access_key", secret_access_key);
  SET_FIELD("aws_session_token", session_token);
  SET_FIELD("region", region);
  SET_FIELD("endpoint_url", endpoint_url);
  SET_FIELD("ca_bundle", ca_bundle);
  SET_FIELD("max_attempts", max_attempts);
  SET_FIELD("role_arn", role_arn);
  SET_FIELD("credential_source", credential_source);
  SET_FIELD("source_profile", source_profile);
  SET_FIELD("credential_process", credential_process);
  SET_FIELD("sso_start_url", sso_start_url);
  SET_FIELD("sso_session", sso_session);
  SET_FIELD("web_identity_token_file", web_identity_token_file);
#undef SET_FIELD
  lua_pushboolean(L, u->p.found_in_credentials || u->p.found_in_config);
  lua_setfield(L, -2, "found");
  return 1;
}

/* ------------------------------------------------------ curl transport */

typedef struct http_ud {
  lmdb_http *h;                 /* NULL once closed */
} http_ud;

typedef struct request_ud {
  lmdb_http_request *r;         /* NULL once released */
  int http_ref;                 /* keeps the transport alive while in use */
} request_ud;

static http_ud *check_http(lua_State *L) {
  http_ud *u = (http_ud *)check_self(L, MT_HTTP);
  if (u->h == NULL)
    luaL_error(L, "attempt to use a closed lunamodb transport");
  return u;
}

static int core_http(lua_State *L) {
  http_ud *u = (http_ud *)lua_newuserdatauv(L, sizeof *u, 0);
  u->h = NULL;
  luaL_setmetatable(L, MT_HTTP);
  u->h = lmdb_http_new();
  if (u->h == NULL)
    return luaL_error(L, "lunamodb: cannot create a curl multi handle");
  return 1;
}

static int http_close(lua_State *L) {
  http_ud *u = (http_ud *)check_self(L, MT_HTTP);
  if (u->h) {
    lmdb_http_free(u->h);
    u->h = NULL;
  }
  return 0;
}

static int http_tostring(lua_State *L) {
  http_ud *u = (http_ud *)check_self(L, MT_HTTP);
  if (u->h)
    lua_pushfstring(L, "lunamodb.http (%d running)", lmdb_http_running(u->h));
  else
    lua_pushliteral(L, "lunamodb.http (closed)");
  return 1;
}

static long opt_ms(lua_State *L, int t, const char *field) {
  return (long)field_num(L, t, field, 0, 0, 86400000.0);
}

static int http_submit(lua_State *L) {
  http_ud *u = check_http(L);
  const char *method = luaL_checkstring(L, 2);
  const char *url = luaL_checkstring(L, 3);
  lmdb_str body = body_arg(L, 5, 1);
  lmdb_http_opts o;
  const char *few[16], **lines = few;   /* a request has a handful of headers */
  size_t n, i;
  char err[256];
  request_ud *ru;
  memset(&o, 0, sizeof o);
  luaL_checktype(L, 4, LUA_TTABLE);
  if (!lua_isnoneornil(L, 6)) {
    luaL_checktype(L, 6, LUA_TTABLE);
    o.connect_timeout_ms = opt_ms(L, 6, "connect_timeout_ms");
    o.read_timeout_ms = opt_ms(L, 6, "read_timeout_ms");
    o.total_timeout_ms = opt_ms(L, 6, "total_timeout_ms");
    o.max_response_bytes = (size_t)field_num(L, 6, "max_response_bytes", 0, 0, 4294967296.0);
    o.ca_bundle = field_str(L, 6, "ca_bundle", 0).ptr;
    o.no_proxy = field_bool(L, 6, "no_proxy", 0);
    o.forbid_reuse = field_bool(L, 6, "forbid_reuse", 0);
  }
  n = lua_rawlen(L, 4);
  if (n > sizeof few / sizeof few[0])
    lines = (const char **)lua_newuserdatauv(L, n * sizeof *lines, 0);
  for (i = 0; i < n; i++) {
    size_t len;
    lua_rawgeti(L, 4, (int)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "lunamodb: header %d must be a \"Name: value\" string", (int)i + 1);
    lines[i] = lua_tolstring(L, -1, &len);      /* held by the headers table */
    if (strlen(lines[i]) != len || strchr(lines[i], '\r') || strchr(lines[i], '\n'))
      return luaL_error(L, "lunamodb: header %d contains CR, LF or NUL", (int)i + 1);
    lua_pop(L, 1);
  }
  ru = (request_ud *)lua_newuserdatauv(L, sizeof *ru, 0);
  ru->r = NULL;
  ru->http_ref = LUA_NOREF;
  luaL_setmetatable(L, MT_REQUEST);
  err[0] = '\0';
  ru->r = lmdb_http_submit(u->h, method, url, lines, n, body.ptr, body.len, &o, err, sizeof err);
  if (ru->r == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, err[0] ? err : "cannot submit the request");
    return 2;
  }
  lua_pushvalue(L, 1);
  ru->http_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int http_poll(lua_State *L) {
  http_ud *u = check_http(L);
  int timeout = (int)luaL_optinteger(L, 2, 0);
  int running = lmdb_http_poll(u->h, timeout < 0 ? 0 : timeout);
  if (running < 0)
    return luaL_error(L, "lunamodb: curl multi handle failed");
  lua_pushinteger(L, running);
  return 1;
}

static int http_timeout(lua_State *L) {
  http_ud *u = check_http(L);
  lua_pushinteger(L, (lua_Integer)lmdb_http_timeout(u->h));
  return 1;
}

/* http:sockets(out, n) -> n': appends the sockets transfers wait on to out
** as fd, events pairs after its first n pairs (scheduler.io_wait). */
static int http_sockets(lua_State *L) {
  http_ud *u = check_http(L);
  lmdb_pollfd small[16], *fds = small;
  lua_Integer n = luaL_optinteger(L, 3, 0);
  int total, i;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_argcheck(L, n >= 0 && n < INT_MAX / 2, 3, "n must be a count of pairs already in out");
  total = lmdb_http_sockets(u->h, small, 16);
  if (total > 16) {
    fds = (lmdb_pollfd *)lua_newuserdatauv(L, (size_t)total * sizeof *fds, 0);
    total = lmdb_http_sockets(u->h, fds, total);
  }
  for (i = 0; i < total; i++) {
    lua_pushinteger(L, fds[i].fd);
    lua_rawseti(L, 2, (int)(2 * (n + i) + 1));
    lua_pushinteger(L, fds[i].events);
    lua_rawseti(L, 2, (int)(2 * (n + i) + 2));
  }
  lua_pushinteger(L, n + total);
  return 1;
}

static request_ud *check_request(lua_State *L) {
  request_ud *ru = (request_ud *)check_self(L, MT_REQUEST);
  if (ru->r == NULL)
    luaL_error(L, "attempt to use a released lunamodb request");
  return ru;
}

static void release_request(lua_State *L, request_ud *ru) {
  if (ru->r) {
    lmdb_http_release(ru->r);
    ru->r = NULL;
  }
  if (ru->http_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, ru->http_ref);
    ru->http_ref = LUA_NOREF;
  }
}

static int request_release(lua_State *L) {
  release_request(L, (request_ud *)check_self(L, MT_REQUEST));
  return 0;
}

static int request_done(lua_State *L) {
  lua_pushboolean(L, lmdb_http_done(check_request(L)->r));
  return 1;
}

#define WANT_MAX 32

/* Pushes the final response's headers as { lowercase-name = value }, the first of a
** repeated name; with want (a stack index, 0: none), an array of lowercase names, only
** those: a caller that reads a few headers spares the strings of the others. raw is the
** transport's block: "name: value\r\n" lines, the names lowercased and the values
** trimmed already (http.c's on_header). */
static void push_headers(lua_State *L, lmdb_str raw, int want) {
  const char *p = raw.ptr, *end = raw.ptr + raw.len;
  lmdb_str names[WANT_MAX];
  int nwant = 0, i;
  if (want) {
    int n = (int)lua_rawlen(L, want);
    luaL_argcheck(L, n <= WANT_MAX, 2, "at most 32 header names");
    for (i = 0; i < n; i++) {
      lua_rawgeti(L, want, i + 1);
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, 2, "header names must be strings");
      names[i].ptr = lua_tolstring(L, -1, &names[i].len);   /* held by want */
      lua_pop(L, 1);
    }
    nwant = n;
  }
  lua_createtable(L, 0, want ? nwant : 8);
  while (p && p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    const char *colon;
    if (!eol)
      eol = end;
    colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && colon > p && colon + 2 <= eol) {
      size_t nlen = (size_t)(colon - p);
      if (want) {
        for (i = 0; i < nwant; i++)
          if (names[i].len == nlen && memcmp(names[i].ptr, p, nlen) == 0)
            break;
        if (i == nwant) {
          p = eol + 2;
          continue;
        }
        lua_rawgeti(L, want, i + 1);   /* the caller's string: no new one */
      }
      else
        lua_pushlstring(L, p, nlen);
      lua_pushvalue(L, -1);
      lua_rawget(L, -3);
      if (lua_isnil(L, -1)) {   /* usual: each name once */
        lua_pop(L, 1);
        lua_pushlstring(L, colon + 2, (size_t)(eol - colon - 2));
        lua_rawset(L, -3);
      }
      else
        lua_pop(L, 2);
    }
    p = eol + 2;
  }
}

/* A finished request's outcome: status, headers (want as for push_headers), body; or nil,
** net status, message. */
static int push_result(lua_State *L, request_ud *ru, int want) {
  lmdb_net_status ns = lmdb_http_net_status(ru->r);
  if (ns != LMDB_NET_OK) {
    lua_pushnil(L);
    lua_pushstring(L, net_names[ns]);
    lua_pushstring(L, lmdb_http_net_message(ru->r));
    return 3;
  }
  lua_pushinteger(L, (lua_Integer)lmdb_http_status(ru->r));
  push_headers(L, lmdb_http_headers_raw(ru->r), want);
  push_str(L, lmdb_http_body(ru->r));
  return 3;
}

static int request_result(lua_State *L) {
  request_ud *ru = check_request(L);
  int want;
  if (!lmdb_http_done(ru->r))
    return luaL_error(L, "lunamodb: the request has not finished");
  want = lua_isnoneornil(L, 2) ? 0 : 2;
  if (want)
    luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  return push_result(L, ru, want);
}

/* http:perform(method, url, headers, body[, opts]): submit, wait and read in one call. ->
** status, headers, body (headers: those opts.response_headers names, as request:result), or
** nil, net status, message (nil, "other", message: the request could not be submitted).
** For a caller that would only block in a poll loop (transport.curl outside a task): the
** request never reaches Lua. */
static int http_perform(lua_State *L) {
  http_ud *u = check_http(L);
  request_ud *ru;
  int want = 0, n;
  lua_settop(L, 6);
  if (http_submit(L) != 1) {                            /* nil, message */
    lua_pushliteral(L, "other");
    lua_insert(L, -2);
    return 3;
  }
  ru = (request_ud *)lua_touserdata(L, -1);
  while (!lmdb_http_done(ru->r))
    if (lmdb_http_poll(u->h, 1000) < 0)
      return luaL_error(L, "lunamodb: curl multi handle failed");
  if (lua_type(L, 6) == LUA_TTABLE) {
    lua_getfield(L, 6, "response_headers");
    if (lua_type(L, -1) == LUA_TTABLE)
      want = lua_gettop(L);
    else
      lua_pop(L, 1);
  }
  n = push_result(L, ru, want);
  release_request(L, ru);
  return n;
}

static int request_header(lua_State *L) {
  request_ud *ru = check_request(L);
  lmdb_str v;
  if (lmdb_http_header(ru->r, luaL_checkstring(L, 2), &v) != 0)
    return 0;
  push_str(L, v);
  return 1;
}

/* ------------------------------------------------------------- module */

static const luaL_Reg signer_methods[] = {
  {"set_credentials", signer_set_credentials},
  {"sign", signer_sign},
  {"sign_post", signer_sign_post},
  {NULL, NULL}
};

static const luaL_Reg policy_methods[] = {
  {"decide", policy_decide},
  {"success", policy_success},
  {"quota", policy_quota},
  {"max_attempts", policy_max_attempts},
  {"observe_clock", policy_observe_clock},
  {"clock_offset_ms", policy_clock_offset_ms},
  {NULL, NULL}
};

static const luaL_Reg http_methods[] = {
  {"submit", http_submit},
  {"perform", http_perform},
  {"poll", http_poll},
  {"timeout", http_timeout},
  {"sockets", http_sockets},
  {"close", http_close},
  {NULL, NULL}
};

static const luaL_Reg request_methods[] = {
  {"done", request_done},
  {"result", request_result},
  {"header", request_header},
  {"release", request_release},
  {NULL, NULL}
};

/* Module functions; every one gets the two shared upvalues. */
static const luaL_Reg core_functions[] = {
  {"json_encode", core_json_encode},
  {"json_decode", core_json_decode},
  {"json_valid", core_json_valid},
  {"decode_items", core_decode_items},
  {"encode_item", core_encode_item},
  {"encode_plan", core_encode_plan},
  {"number_text", core_number_text},
  {"update_body", core_update_body},
  {"raw_json", core_raw_json},
  {"paginated", core_paginated},
  {"paginate_next", core_paginate_next},
  {"batch_write_bodies", core_batch_write_bodies},
  {"batch_builder", core_batch_builder},
  {"batch_saver", core_batch_saver},
  {"batch_get_bodies", core_batch_get_bodies},
  {"batch_unprocessed", core_batch_unprocessed},
  {"transact_body", core_transact_body},
  {"sha256_hex", core_sha256_hex},
  {"hmac_sha256", core_hmac_sha256},
  {"crc32", core_crc32},
  {"uuid4", core_uuid4},
  {"random", core_random},
  {"now_ms", core_now_ms},
  {"monotonic_ms", core_monotonic_ms},
  {"monotonic_us", core_monotonic_us},
  {"parse_http_date", core_parse_http_date},
  {"sleep_ms", core_sleep_ms},
  {"base64_encode", core_base64_encode},
  {"utf8_valid", core_utf8_valid},
  {"base64_decode", core_base64_decode},
  {"sigv4_sign", core_sigv4_sign},
  {"signer", core_signer},
  {"error_code", core_error_code},
  {"classify", core_classify},
  {"retry_policy", core_retry_policy},
  {"parse_url", core_parse_url},
  {"region_valid", core_region_valid},
  {"header_value_safe", core_header_value_safe},
  {"container_uri_allowed", core_container_uri_allowed},
  {"load_profile", core_load_profile},
  {"http", core_http},
  {"is_body", core_is_body},
  {NULL, NULL}
};

/* A metatable whose methods live in its own __index table. */
static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      lua_CFunction gc, lua_CFunction tostr) {
  luaL_newmetatable(L, name);
  lua_createtable(L, 0, 8);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, methods, 1);   /* each method's upvalue 1: the metatable (check_self) */
  lua_setfield(L, -2, "__index");
  if (gc) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
#endif
  }
  if (tostr) {
    lua_pushcfunction(L, tostr);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

static int request_tostring(lua_State *L) {
  request_ud *ru = (request_ud *)check_self(L, MT_REQUEST);
  if (ru->r == NULL)
    lua_pushliteral(L, "lunamodb.http_request (released)");
  else
    lua_pushfstring(L, "lunamodb.http_request (%s)", lmdb_http_done(ru->r) ? "done" : "running");
  return 1;
}

LUNAMODB_EXPORT int luaopen_lunamodb_core(lua_State *L) {
  core_state *st;
  new_class(L, MT_SIGNER, signer_methods, signer_gc, signer_tostring);
  new_class(L, MT_POLICY, policy_methods, NULL, NULL);
  new_class(L, MT_HTTP, http_methods, http_close, http_tostring);
  new_class(L, MT_REQUEST, request_methods, request_release, request_tostring);
  new_class(L, MT_BODY, body_methods, body_release, body_tostring);
  luaL_getmetatable(L, MT_BODY);
  lua_pushcfunction(L, body_len);
  lua_setfield(L, -2, "__len");
  lua_pop(L, 1);
  luaL_newmetatable(L, MT_BATCH_BUILDER);       /* its methods: below, with upvalues */
  lua_pushcfunction(L, builder_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, builder_len);
  lua_setfield(L, -2, "__len");
  lua_pushliteral(L, MT_BATCH_BUILDER);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_newmetatable(L, MT_DEC_INDEX);
  lua_pushcfunction(L, dec_index_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, MT_ENC_PLAN);
  lua_pushcfunction(L, enc_plan_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, MT_PROFILE);
  lua_pushcfunction(L, profile_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  lua_createtable(L, 0, 32);                    /* the module */
  st = (core_state *)lua_newuserdatauv(L, sizeof *st, 0);
  memset(st, 0, sizeof *st);
  lmdb_buf_init(&st->out);
  lmdb_buf_init(&st->lexer.scratch);
  lmdb_buf_init(&st->item_lexer.scratch);
  lmdb_buf_init(&st->item_out);
  lmdb_buf_init(&st->upd[0]);
  lmdb_buf_init(&st->upd[1]);
  lmdb_buf_init(&st->upd[2]);
  luaL_newmetatable(L, MT_RAW_JSON);
  lua_pushliteral(L, "lunamodb.raw_json");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_newmetatable(L, MT_STATE);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lmdb_digest_acquire();                        /* released by state_gc */
  st->holds_digest = 1;
  lua_createtable(L, 0, 1);                     /* array_mt */
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "array_mt");
  luaL_getmetatable(L, MT_ENC_PLAN);
  /* the batch builder's methods encode too: the module's upvalues (state, array_mt, plan
  ** metatable) for them as well */
  luaL_getmetatable(L, MT_BATCH_BUILDER);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, -5);
  lua_pushvalue(L, -5);
  lua_pushvalue(L, -5);
  luaL_setfuncs(L, builder_methods, 3);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, core_functions, 3);
  lua_pushlightuserdata(L, JSON_NULL);
  lua_setfield(L, -2, "null");
  lua_pushliteral(L, LUNAMODB_VERSION);
  lua_setfield(L, -2, "VERSION");
  return 1;
}

/* The host side of scheduler.io_wait (see lunamodb.h). */
LUNAMODB_EXPORT int lunamodb_io_wait(lua_State *L, lunamodb_pollfd *fds, int max, int *timeout_ms) {
  int top = lua_gettop(L), n, i;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "lunamodb.scheduler");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK)
    goto fail;
  lua_getfield(L, -1, "io_wait");
  if (lua_type(L, -1) != LUA_TFUNCTION) {
    lua_pushliteral(L, "lunamodb_io_wait: lunamodb.scheduler has no io_wait");
    goto fail;
  }
  if (lua_pcall(L, 0, 3, 0) != LUA_OK)
    goto fail;
  if (timeout_ms)
    *timeout_ms = (int)lua_tointeger(L, -3);
  n = (int)lua_tointeger(L, -2);
  for (i = 0; i < n && i < max; i++) {
    lua_rawgeti(L, -1, 2 * i + 1);
    fds[i].fd = (int)lua_tointeger(L, -1);
    lua_rawgeti(L, -2, 2 * i + 2);
    fds[i].events = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
  }
  lua_settop(L, top);
  return n;
fail:
  /* leave only the error message on the stack */
  if (lua_gettop(L) > top + 1)
    lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return -1;
}

LUNAMODB_EXPORT void lunamodb_preload(lua_State *L) {
  int top = lua_gettop(L);
  lua_getglobal(L, "package");
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_settop(L, top);
    luaL_error(L, "lunamodb_preload: the package library is not open (call luaL_openlibs first)");
    return;
  }
  lua_getfield(L, -1, "preload");
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "preload");
  }
  lua_pushcfunction(L, luaopen_lunamodb_core);
  lua_setfield(L, -2, "lunamodb.core");
  lua_settop(L, top);
}
