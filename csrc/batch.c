/*
** batch.c -- BatchWriteItem and BatchGetItem planning.
**
** The bodies are spliced from already-encoded requests and keys, each
** copied once and never re-encoded. A body is planned first (which entries
** it takes, its exact size, checked against the limits), then written into
** a buffer reserved to that size, so building every body of a batch costs
** one pass over the entries. The unprocessed remainder of a response is
** found with the JSON pull lexer and copied byte for byte.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_private.h"

#define MAX_DEPTH 128

static const char BODY_OPEN[] = "{\"RequestItems\":{";
static const char BODY_CLOSE[] = "}}";
static const char KEYS_OPEN[] = ":{\"Keys\":[";
#define LIT_LEN(s) (sizeof(s) - 1)

/* One table of the body being planned. */
typedef struct group {
  lmdb_str table;        /* raw name, to find the group again */
  lmdb_str options;      /* get: its options */
  size_t name_off;       /* its escaped name (quotes included) in names */
  size_t name_len;
  size_t nkeys;          /* get: keys planned so far */
} group;

static int fail(char *err, size_t errlen, const char *msg) {
  if (errlen > 0)
    snprintf(err, errlen, "%s", msg);
  return -1;
}

static int str_eq(lmdb_str a, lmdb_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static size_t find_group(const group *g, size_t n, lmdb_str table) {
  size_t i;
  for (i = 0; i < n; i++)
    if (str_eq(g[i].table, table))
      break;
  return i;
}

/* Appends the escaped name of a new group to names and records where it
** is. -1 with err set ("<what> N: ...") when it is not UTF-8 or on OOM. */
static int escape_name(lmdb_buf *names, group *g, lmdb_str table, const char *what,
                       size_t index, char *err, size_t errlen) {
  size_t mark = names->len;
  int rc = lmdb_json_put_string(names, table.ptr ? table.ptr : "", table.len);
  if (rc != 0) {
    names->len = mark;
    if (names->data)
      names->data[mark] = '\0';
    if (rc == -2) {
      if (errlen > 0)
        snprintf(err, errlen, "%s %lu: the table name is not valid UTF-8", what,
                 (unsigned long)index);
      return -1;
    }
    return fail(err, errlen, "not enough memory");
  }
  g->table = table;
  g->name_off = mark;
  g->name_len = names->len - mark;
  return 0;
}

/* Drops the escaped name of a group that was not taken after all. */
static void unescape_name(lmdb_buf *names, const group *g) {
  names->len = g->name_off;
  if (names->data)
    names->data[names->len] = '\0';
}

/* *size + a + b when that stays within LMDB_BATCH_MAX_BYTES: 1, else 0. */
static int fits(size_t size, size_t a, size_t b) {
  size_t room = LMDB_BATCH_MAX_BYTES - size;    /* size <= the limit always */
  return a <= room && b <= room - a;
}

/* ------------------------------------------------------------- writes */

int lmdb_batch_write_next(const lmdb_batch_write_entry *e, size_t n, lmdb_batch_pos *pos,
                          lmdb_buf *out, char *err, size_t errlen) {
  group groups[LMDB_BATCH_WRITE_MAX];
  unsigned char which[LMDB_BATCH_WRITE_MAX];   /* group of each planned entry */
  size_t ngroups = 0, count = 0, start = pos->key, size, g, j;
  lmdb_buf names;
  lmdb_buf_reset(out);
  if (errlen > 0)
    err[0] = '\0';
  if (start >= n)
    return 0;
  lmdb_buf_init(&names);
  size = LIT_LEN(BODY_OPEN) + LIT_LEN(BODY_CLOSE);
  while (start + count < n && count < LMDB_BATCH_WRITE_MAX) {
    const lmdb_batch_write_entry *x = &e[start + count];
    size_t add;
    int is_new;
    if (x->request.len == 0) {
      lmdb_buf_free(&names);
      if (errlen > 0)
        snprintf(err, errlen, "entry %lu: the request is empty",
                 (unsigned long)(start + count + 1));
      return -1;
    }
    g = find_group(groups, ngroups, x->table);
    is_new = g == ngroups;
    if (is_new) {
      if (escape_name(&names, &groups[g], x->table, "entry", start + count + 1, err,
                      errlen) != 0) {
        lmdb_buf_free(&names);
        return -1;
      }
      /* [,]"name":[request] */
      add = (ngroups > 0) + groups[g].name_len + 3;
    } else {
      add = 1;                                   /* ,request */
    }
    if (!fits(size, add, x->request.len)) {
      if (is_new)
        unescape_name(&names, &groups[g]);
      if (count > 0)
        break;                                   /* the next body starts here */
      lmdb_buf_free(&names);
      if (errlen > 0)
        snprintf(err, errlen, "entry %lu cannot fit in a BatchWriteItem body of at most "
                 "16 MB (%lu bytes): its request alone is %lu bytes",
                 (unsigned long)(start + 1), (unsigned long)LMDB_BATCH_MAX_BYTES,
                 (unsigned long)x->request.len);
      return -1;
    }
    size += add + x->request.len;
    if (is_new)
      ngroups++;
    which[count++] = (unsigned char)g;
  }
  if (lmdb_buf_reserve(out, size) != 0) {
    lmdb_buf_free(&names);
    return fail(err, errlen, "not enough memory");
  }
  /* Reserved: the appends below cannot fail. */
  lmdb_buf_append(out, BODY_OPEN, LIT_LEN(BODY_OPEN));
  for (g = 0; g < ngroups; g++) {
    int first = 1;
    if (g > 0)
      lmdb_buf_putc(out, ',');
    lmdb_buf_append(out, names.data + groups[g].name_off, groups[g].name_len);
    lmdb_buf_append(out, ":[", 2);
    for (j = 0; j < count; j++) {
      if (which[j] != g)
        continue;
      if (!first)
        lmdb_buf_putc(out, ',');
      first = 0;
      lmdb_buf_append(out, e[start + j].request.ptr, e[start + j].request.len);
    }
    lmdb_buf_putc(out, ']');
  }
  lmdb_buf_append(out, BODY_CLOSE, LIT_LEN(BODY_CLOSE));
  lmdb_buf_free(&names);
  pos->key = start + count;
  return 1;
}

/* --------------------------------------------------------------- gets */

/* A run of consecutive keys of one input table, in one group. */
typedef struct segment {
  const lmdb_str *keys;
  size_t nkeys;
  size_t group;
} segment;

int lmdb_batch_get_next(const lmdb_batch_get_table *t, size_t n, lmdb_batch_pos *pos,
                        lmdb_buf *out, char *err, size_t errlen) {
  group groups[LMDB_BATCH_GET_MAX];
  segment segs[LMDB_BATCH_GET_MAX];
  size_t ngroups = 0, nsegs = 0, total = 0, size, g, s, k;
  size_t ti = pos->table, ki = pos->key;
  int full = 0;
  lmdb_buf names;
  lmdb_buf_reset(out);
  if (errlen > 0)
    err[0] = '\0';
  lmdb_buf_init(&names);
  size = LIT_LEN(BODY_OPEN) + LIT_LEN(BODY_CLOSE);
  while (!full && ti < n && total < LMDB_BATCH_GET_MAX) {
    const lmdb_batch_get_table *x = &t[ti];
    size_t gadd = 0;
    int is_new;
    segment *seg = NULL;
    if (ki >= x->nkeys) {                        /* done with (or no keys in) it */
      ti++;
      ki = 0;
      continue;
    }
    g = find_group(groups, ngroups, x->table);
    is_new = g == ngroups;
    if (!is_new && !str_eq(groups[g].options, x->options))
      break;                                     /* same table, other options */
    if (is_new) {
      if (escape_name(&names, &groups[g], x->table, "table", ti + 1, err, errlen) != 0) {
        lmdb_buf_free(&names);
        return -1;
      }
      groups[g].options = x->options;
      groups[g].nkeys = 0;
      /* [,]"name":{"Keys":[ ... ][,options]} */
      if (x->options.len >= LMDB_BATCH_MAX_BYTES)
        gadd = LMDB_BATCH_MAX_BYTES + 1;         /* cannot fit (and cannot overflow) */
      else
        gadd = (ngroups > 0) + groups[g].name_len + LIT_LEN(KEYS_OPEN) + 1 +
               (x->options.len > 0 ? 1 + x->options.len : 0) + 1;
    }
    while (ki < x->nkeys && total < LMDB_BATCH_GET_MAX) {
      lmdb_str key = x->keys[ki];
      size_t add = (groups[g].nkeys > 0) + key.len;
      if (key.len == 0) {
        lmdb_buf_free(&names);
        if (errlen > 0)
          snprintf(err, errlen, "table %lu: key %lu is empty", (unsigned long)(ti + 1),
                   (unsigned long)(ki + 1));
        return -1;
      }
      if (key.len >= LMDB_BATCH_MAX_BYTES || !fits(size, is_new ? gadd : 0, add)) {
        if (total > 0) {
          full = 1;                              /* the next body starts here */
          break;
        }
        lmdb_buf_free(&names);
        if (errlen > 0)
          snprintf(err, errlen, "table %lu: key %lu cannot fit in a BatchGetItem body of "
                   "at most 16 MB (%lu bytes): the key is %lu bytes, the table's options %lu",
                   (unsigned long)(ti + 1), (unsigned long)(ki + 1),
                   (unsigned long)LMDB_BATCH_MAX_BYTES, (unsigned long)key.len,
                   (unsigned long)x->options.len);
        return -1;
      }
      if (is_new) {
        size += gadd;
        ngroups++;
        is_new = 0;
      }
      if (seg == NULL) {
        seg = &segs[nsegs++];
        seg->keys = &x->keys[ki];
        seg->nkeys = 0;
        seg->group = g;
      }
      size += add;
      seg->nkeys++;
      groups[g].nkeys++;
      total++;
      ki++;
    }
    if (is_new)                                  /* not taken: its first key did not fit */
      unescape_name(&names, &groups[g]);
    if (ki >= x->nkeys) {
      ti++;
      ki = 0;
    }
  }
  pos->table = ti;
  pos->key = ki;
  if (total == 0) {                              /* only tables without keys were left */
    lmdb_buf_free(&names);
    return 0;
  }
  if (lmdb_buf_reserve(out, size) != 0) {
    lmdb_buf_free(&names);
    return fail(err, errlen, "not enough memory");
  }
  lmdb_buf_append(out, BODY_OPEN, LIT_LEN(BODY_OPEN));
  for (g = 0; g < ngroups; g++) {
    int first = 1;
    if (g > 0)
      lmdb_buf_putc(out, ',');
    lmdb_buf_append(out, names.data + groups[g].name_off, groups[g].name_len);
    lmdb_buf_append(out, KEYS_OPEN, LIT_LEN(KEYS_OPEN));
    for (s = 0; s < nsegs; s++) {
      if (segs[s].group != g)
        continue;
      for (k = 0; k < segs[s].nkeys; k++) {
        if (!first)
          lmdb_buf_putc(out, ',');
        first = 0;
        lmdb_buf_append(out, segs[s].keys[k].ptr, segs[s].keys[k].len);
      }
    }
    lmdb_buf_putc(out, ']');
    if (groups[g].options.len > 0) {
      lmdb_buf_putc(out, ',');
      lmdb_buf_append(out, groups[g].options.ptr, groups[g].options.len);
    }
    lmdb_buf_putc(out, '}');
  }
  lmdb_buf_append(out, BODY_CLOSE, LIT_LEN(BODY_CLOSE));
  lmdb_buf_free(&names);
  return 1;
}

/* -------------------------------------------------------- unprocessed */

typedef struct scan {
  lmdb_json_lexer *lx;
  char *err;
  size_t errlen;
} scan;

static int scan_fail(scan *s, const char *msg) {
  if (s->errlen > 0)
    snprintf(s->err, s->errlen, "response: %s", msg);
  return -1;
}

/* A lexer error, with the byte offset (1-based, as core.json_decode says). */
static int lex_fail(scan *s) {
  if (s->errlen > 0)
    snprintf(s->err, s->errlen, "response: invalid JSON at byte %lu: %s",
             (unsigned long)s->lx->error_offset + 1,
             s->lx->error ? s->lx->error : "unexpected token");
  return -1;
}

static int str_is(lmdb_str s, const char *z) {
  size_t n = strlen(z);
  return s.len == n && memcmp(s.ptr, z, n) == 0;
}

/* Consumes the rest of the value whose first token is t. */
static int skip_value(scan *s, lmdb_json_token t) {
  return lmdb_json_skip(s->lx, t) == 0 ? 0 : lex_fail(s);
}

/* Adds the number of elements of an array whose '[' was just read. */
static int count_elements(scan *s, int64_t *n) {
  for (;;) {
    lmdb_json_token t = lmdb_json_next(s->lx);
    if (t == LMDB_JSON_ARRAY_END)
      return 0;
    if (skip_value(s, t) != 0)
      return -1;
    (*n)++;
  }
}

/* The members of UnprocessedItems / UnprocessedKeys (its '{' just read):
** table name -> [requests] (write) or { "Keys": [keys], ... } (get). */
static int count_unprocessed(scan *s, lmdb_batch_kind kind, const char *member,
                             int64_t *n) {
  char msg[128];
  for (;;) {
    lmdb_json_token t = lmdb_json_next(s->lx);
    if (t == LMDB_JSON_OBJECT_END)
      return 0;
    if (t != LMDB_JSON_STRING)
      return lex_fail(s);
    t = lmdb_json_next(s->lx);
    if (t == LMDB_JSON_ERROR)
      return lex_fail(s);
    if (kind == LMDB_BATCH_WRITE) {
      if (t != LMDB_JSON_ARRAY_START) {
        snprintf(msg, sizeof msg, "%s maps a table to something other than a list", member);
        return scan_fail(s, msg);
      }
      if (count_elements(s, n) != 0)
        return -1;
      continue;
    }
    if (t != LMDB_JSON_OBJECT_START) {
      snprintf(msg, sizeof msg, "%s maps a table to something other than an object", member);
      return scan_fail(s, msg);
    }
    for (;;) {                                   /* { "Keys": [...], ... } */
      int is_keys;
      t = lmdb_json_next(s->lx);
      if (t == LMDB_JSON_OBJECT_END)
        break;
      if (t != LMDB_JSON_STRING)
        return lex_fail(s);
      is_keys = str_is(s->lx->tok, "Keys");
      t = lmdb_json_next(s->lx);
      if (is_keys) {
        if (t == LMDB_JSON_ERROR)
          return lex_fail(s);
        if (t != LMDB_JSON_ARRAY_START) {
          snprintf(msg, sizeof msg, "%s has a table whose Keys is not a list", member);
          return scan_fail(s, msg);
        }
        if (count_elements(s, n) != 0)
          return -1;
      } else if (skip_value(s, t) != 0) {
        return -1;
      }
    }
  }
}

int lmdb_batch_unprocessed(lmdb_batch_kind kind, lmdb_str response, lmdb_json_lexer *lx,
                           lmdb_buf *out, int64_t *count, char *err, size_t errlen) {
  const char *member = kind == LMDB_BATCH_WRITE ? "UnprocessedItems" : "UnprocessedKeys";
  lmdb_str raw = { NULL, 0 };
  int64_t n = 0;
  lmdb_json_token t;
  scan s;
  s.lx = lx;
  s.err = err;
  s.errlen = errlen;
  lmdb_buf_reset(out);
  *count = 0;
  if (errlen > 0)
    err[0] = '\0';
  if (response.ptr == NULL) {
    response.ptr = "";
    response.len = 0;
  }
  lmdb_json_lexer_init(lx, response.ptr, response.len, MAX_DEPTH);
  t = lmdb_json_next(lx);
  if (t == LMDB_JSON_ERROR)
    return lex_fail(&s);
  if (t != LMDB_JSON_OBJECT_START)
    return scan_fail(&s, "not a JSON object");
  for (;;) {
    const char *start;
    int is_member;
    t = lmdb_json_next(lx);
    if (t == LMDB_JSON_OBJECT_END)
      break;
    if (t != LMDB_JSON_STRING)
      return lex_fail(&s);
    is_member = str_is(lx->tok, member);
    start = lmdb_json_value_start(lx);
    t = lmdb_json_next(lx);
    if (!is_member) {
      if (skip_value(&s, t) != 0)
        return -1;
      continue;
    }
    /* The last occurrence counts, as when the text is decoded. */
    raw.ptr = NULL;
    raw.len = 0;
    n = 0;
    if (t == LMDB_JSON_ERROR)
      return lex_fail(&s);
    if (t == LMDB_JSON_NULL)
      continue;
    if (t != LMDB_JSON_OBJECT_START) {
      char msg[64];
      snprintf(msg, sizeof msg, "%s is not an object", member);
      if (skip_value(&s, t) != 0)
        return -1;
      return scan_fail(&s, msg);
    }
    if (count_unprocessed(&s, kind, member, &n) != 0)
      return -1;
    raw.ptr = start;
    raw.len = (size_t)(lx->p - start);
  }
  if (lmdb_json_next(lx) != LMDB_JSON_END)
    return lex_fail(&s);
  if (raw.ptr == NULL || n == 0)
    return 0;
  if (lmdb_buf_reserve(out, raw.len + LIT_LEN("{\"RequestItems\":}")) != 0)
    return scan_fail(&s, "not enough memory");
  lmdb_buf_append(out, "{\"RequestItems\":", LIT_LEN("{\"RequestItems\":"));
  lmdb_buf_append(out, raw.ptr, raw.len);
  lmdb_buf_putc(out, '}');
  *count = n;
  return 0;
}

/* ------------------------------------------------------------- keyset */

/* A word at a time (the byte-wise FNV-1a this replaced was a serial multiply per byte, and
** keys are tens of bytes), then a final mix so the low bits (the slot) see every word. */
static uint32_t key_hash(int tag, const char *key, size_t len) {
  const uint64_t k = 0x9E3779B97F4A7C15ull;              /* 2^64 / golden ratio, odd */
  uint64_t h = ((uint64_t)(unsigned)tag << 32) ^ (uint64_t)len, w;
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    memcpy(&w, key + i, 8);
    h = (h ^ w) * k;
    h ^= h >> 29;
  }
  if (i < len) {
    w = 0;
    memcpy(&w, key + i, len - i);
    h = (h ^ w) * k;
  }
  h ^= h >> 32;
  h *= k;
  return (uint32_t)(h >> 32);
}

void lmdb_keyset_init(lmdb_keyset *ks) {
  memset(ks, 0, sizeof *ks);
  lmdb_buf_init(&ks->text);
}

void lmdb_keyset_clear(lmdb_keyset *ks) {
  if (ks->slots)
    memset(ks->slots, 0, (ks->mask + 1) * sizeof *ks->slots);
  ks->n = 0;
  lmdb_buf_reset(&ks->text);
}

void lmdb_keyset_free(lmdb_keyset *ks) {
  lmdb_buf_free(&ks->text);
  free(ks->ent);
  free(ks->slots);
  lmdb_keyset_init(ks);
}

/* The slot holding (tag, key), or the empty slot where it would go. */
static size_t keyset_slot(const lmdb_keyset *ks, uint32_t hash, int tag, const char *key,
                          size_t len) {
  size_t i = hash & ks->mask;
  for (;;) {
    uint32_t s = ks->slots[i];
    const lmdb_keyset_entry *e;
    if (s == 0)
      return i;
    e = &ks->ent[s - 1];
    if (e->hash == hash && e->tag == tag && e->len == len &&
        memcmp(ks->text.data + e->off, key, len) == 0)
      return i;
    i = (i + 1) & ks->mask;
  }
}

/* Doubles the slots (at most half of them used), placing every entry again. */
static int keyset_grow(lmdb_keyset *ks) {
  size_t size = ks->slots ? (ks->mask + 1) * 2 : 64, i;
  uint32_t *slots;
  if (size > (size_t)UINT32_MAX || size > (size_t)-1 / sizeof *slots)
    return -1;
  slots = (uint32_t *)calloc(size, sizeof *slots);
  if (slots == NULL)
    return -1;
  free(ks->slots);
  ks->slots = slots;
  ks->mask = size - 1;
  for (i = 0; i < ks->n; i++) {
    size_t j = ks->ent[i].hash & ks->mask;
    while (slots[j] != 0)
      j = (j + 1) & ks->mask;
    slots[j] = (uint32_t)(i + 1);
  }
  return 0;
}

long lmdb_keyset_add(lmdb_keyset *ks, int tag, const char *key, size_t len) {
  uint32_t hash = key_hash(tag, key, len);
  lmdb_keyset_entry *e;
  size_t slot;
  if ((ks->n + 1) * 2 > (ks->slots ? ks->mask + 1 : 0) && keyset_grow(ks) != 0)
    return -2;
  slot = keyset_slot(ks, hash, tag, key, len);
  if (ks->slots[slot] != 0)
    return -1;
  if (ks->n == ks->cap) {
    size_t cap = ks->cap ? ks->cap * 2 : 32;
    lmdb_keyset_entry *ent = (lmdb_keyset_entry *)realloc(ks->ent, cap * sizeof *ent);
    if (ent == NULL)
      return -2;
    ks->ent = ent;
    ks->cap = cap;
  }
  e = &ks->ent[ks->n];
  e->off = ks->text.len;
  e->len = len;
  e->hash = hash;
  e->tag = tag;
  /* room for a batch's worth of keys at once: tens of bytes each */
  if ((ks->text.cap == 0 && lmdb_buf_reserve(&ks->text, 32 * (len + 8)) != 0) ||
      lmdb_buf_append(&ks->text, key, len) != 0)
    return -2;
  ks->slots[slot] = (uint32_t)(ks->n + 1);
  return (long)ks->n++;
}

long lmdb_keyset_find(const lmdb_keyset *ks, int tag, const char *key, size_t len) {
  uint32_t s;
  if (ks->n == 0)
    return -1;
  s = ks->slots[keyset_slot(ks, key_hash(tag, key, len), tag, key, len)];
  return s ? (long)s - 1 : -1;
}
