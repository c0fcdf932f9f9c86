/*
** transact.c -- TransactWriteItems and TransactGetItems bodies.
**
** Every limit DynamoDB enforces on a transaction's shape is checked here,
** before anything is sent: the number of actions, their total size, one
** action per item, and the idempotency token. The actions are copied byte
** for byte (never re-encoded) into a buffer reserved to the body's size.
*/
#include <stdio.h>
#include <string.h>

#include "lmdb_private.h"

#define LIT_LEN(s) (sizeof(s) - 1)

static const char BODY_OPEN[] = "{\"TransactItems\":[";
static const char TOKEN_MEMBER[] = ",\"ClientRequestToken\":";

static const char *const write_actions[] = { "Put", "Update", "Delete", "ConditionCheck" };
static const char *const get_actions[] = { "Get" };

static int fail(char *err, size_t errlen, const char *msg) {
  if (errlen > 0)
    snprintf(err, errlen, "%s", msg);
  return -1;
}

static int is_blank(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* 1 when the action is an object whose first member's name is one of the
** allowed names (spelled without escapes, as every encoder writes them). */
static int action_kind_ok(lmdb_str a, const char *const *names, size_t nnames) {
  const char *p = a.ptr, *end = a.ptr + a.len, *name;
  size_t i;
  while (p < end && is_blank(*p)) p++;
  if (p == end || *p++ != '{')
    return 0;
  while (p < end && is_blank(*p)) p++;
  if (p == end || *p++ != '"')
    return 0;
  name = p;
  while (p < end && *p != '"' && *p != '\\') p++;
  if (p == end || *p != '"')
    return 0;
  for (i = 0; i < nnames; i++) {
    size_t n = strlen(names[i]);
    if ((size_t)(p - name) == n && memcmp(name, names[i], n) == 0)
      return 1;
  }
  return 0;
}

/* FNV-1a over the item's identity; lengths go first so ("ab","c") and
** ("a","bc") differ. Equal hashes are confirmed byte for byte. */
static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p;
  size_t i;
  for (i = 0; i < n; i++) {
    h ^= s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static uint64_t item_hash(const lmdb_transact_action *a) {
  uint64_t h = 14695981039346656037ULL;
  h = (h ^ (uint64_t)a->table.len) * 1099511628211ULL;
  h = (h ^ (uint64_t)a->key_id.len) * 1099511628211ULL;
  h = fnv_bytes(h, a->table.ptr, a->table.len);
  return fnv_bytes(h, a->key_id.ptr, a->key_id.len);
}

static int same_bytes(lmdb_str a, lmdb_str b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int lmdb_transact_build(lmdb_transact_kind kind, const lmdb_transact_action *a, size_t n,
                        lmdb_str token, lmdb_buf *out, char *err, size_t errlen) {
  uint64_t hash[LMDB_TRANSACT_MAX];
  size_t total = 0, crossed = 0, size, i, j;
  const char *const *names = kind == LMDB_TRANSACT_WRITE ? write_actions : get_actions;
  size_t nnames = kind == LMDB_TRANSACT_WRITE ? 4 : 1;
  lmdb_buf_reset(out);
  if (errlen > 0)
    err[0] = '\0';
  if (n == 0)
    return fail(err, errlen, "a transaction needs at least one action (got none)");
  if (n > LMDB_TRANSACT_MAX) {
    if (errlen > 0)
      snprintf(err, errlen, "a transaction takes at most %d actions (got %lu)",
               LMDB_TRANSACT_MAX, (unsigned long)n);
    return -1;
  }
  if (token.ptr != NULL) {
    if (kind != LMDB_TRANSACT_WRITE)
      return fail(err, errlen, "a client request token is for write transactions only "
                  "(TransactGetItems takes none)");
    if (token.len < 1 || token.len > LMDB_TOKEN_MAX) {
      if (errlen > 0)
        snprintf(err, errlen, "the client request token must be 1 to %d characters (got %lu)",
                 LMDB_TOKEN_MAX, (unsigned long)token.len);
      return -1;
    }
    for (i = 0; i < token.len; i++) {
      unsigned char c = (unsigned char)token.ptr[i];
      if (c < 0x20 || c > 0x7e) {
        if (errlen > 0)
          snprintf(err, errlen, "the client request token must be printable ASCII "
                   "(character %lu is byte 0x%02x)", (unsigned long)(i + 1), c);
        return -1;
      }
    }
  }
  for (i = 0; i < n; i++) {
    if (!action_kind_ok(a[i].action, names, nnames)) {
      if (errlen > 0)
        snprintf(err, errlen, kind == LMDB_TRANSACT_WRITE
                 ? "action %lu is not a Put, Update, Delete or ConditionCheck action "
                   "('{\"Put\":{...}}', ...)"
                 : "action %lu is not a Get action ('{\"Get\":{...}}')",
                 (unsigned long)(i + 1));
      return -1;
    }
    /* Saturating: the message reports the total, which may pass SIZE_MAX
    ** only in theory. */
    total = a[i].action.len > (size_t)-1 - total ? (size_t)-1 : total + a[i].action.len;
    if (crossed == 0 && total > LMDB_TRANSACT_MAX_BYTES)
      crossed = i + 1;
  }
  if (crossed != 0) {
    if (errlen > 0)
      snprintf(err, errlen, "the transaction is too large: its actions total %lu bytes, "
               "over DynamoDB's 4 MB limit (%lu bytes of encoded actions; passed at action %lu)",
               (unsigned long)total, (unsigned long)LMDB_TRANSACT_MAX_BYTES,
               (unsigned long)crossed);
    return -1;
  }
  for (i = 0; i < n; i++) {
    hash[i] = item_hash(&a[i]);
    for (j = 0; j < i; j++) {
      if (hash[j] == hash[i] && same_bytes(a[j].table, a[i].table) &&
          same_bytes(a[j].key_id, a[i].key_id)) {
        if (errlen > 0) {
          int shown = a[i].table.len > 255 ? 255 : (int)a[i].table.len;
          snprintf(err, errlen, "actions %lu and %lu both touch the same item of table "
                   "'%.*s' (a transaction takes one action per item)", (unsigned long)(j + 1),
                   (unsigned long)(i + 1), shown, a[i].table.ptr ? a[i].table.ptr : "");
        }
        return -1;
      }
    }
  }
  /* total <= 4 MB and n <= 100: nothing below can overflow. */
  size = LIT_LEN(BODY_OPEN) + total + (n - 1) + 2;          /* actions, commas, ]} */
  if (token.ptr != NULL)
    size += LIT_LEN(TOKEN_MEMBER) + 2 * token.len + 2;      /* worst case: all escaped */
  if (lmdb_buf_reserve(out, size) != 0)
    return fail(err, errlen, "not enough memory");
  lmdb_buf_append(out, BODY_OPEN, LIT_LEN(BODY_OPEN));
  for (i = 0; i < n; i++) {
    if (i > 0)
      lmdb_buf_putc(out, ',');
    lmdb_buf_append(out, a[i].action.ptr, a[i].action.len);
  }
  lmdb_buf_putc(out, ']');
  if (token.ptr != NULL) {
    lmdb_buf_append(out, TOKEN_MEMBER, LIT_LEN(TOKEN_MEMBER));
    if (lmdb_json_put_string(out, token.ptr, token.len) != 0) {
      lmdb_buf_reset(out);
      return fail(err, errlen, "not enough memory");
    }
  }
  lmdb_buf_putc(out, '}');
  return 0;
}
