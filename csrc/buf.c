/*
** buf.c -- a growable byte buffer, the one way the core owns bytes.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_private.h"

void lmdb_buf_init(lmdb_buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

int lmdb_buf_reserve(lmdb_buf *b, size_t extra) {
  size_t need, cap;
  char *p;
  if (extra > (size_t)-1 - b->len - 1)
    return -1;                                  /* size_t overflow */
  need = b->len + extra + 1;                    /* + the terminating NUL */
  if (need <= b->cap)
    return 0;
  cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = (cap > (size_t)-1 / 2) ? need : cap * 2;
  p = (char *)realloc(b->data, cap);
  if (p == NULL)
    return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

int lmdb_buf_append_grow(lmdb_buf *b, const void *p, size_t n) {
  if (lmdb_buf_reserve(b, n) != 0)
    return -1;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int lmdb_buf_puts(lmdb_buf *b, const char *s) {
  return lmdb_buf_append(b, s, strlen(s));
}

int lmdb_buf_printf(lmdb_buf *b, const char *fmt, ...) {
  va_list ap;
  int n;
  char small[128];
  va_start(ap, fmt);
  n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0)
    return -1;
  if ((size_t)n < sizeof small)
    return lmdb_buf_append(b, small, (size_t)n);
  if (lmdb_buf_reserve(b, (size_t)n) != 0)
    return -1;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

int lmdb_fmt_int64(char *buf, int64_t v) {
  static const char pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, t = u;
  int neg = v < 0, digits = 1;
  char *p;
  while (t >= 10) {                 /* the length first: the digits go straight to buf */
    t /= 10;
    digits++;
  }
  if (neg) buf[0] = '-';
  p = buf + neg + digits;
  while (u >= 100) {                /* two digits a step: half the divisions */
    unsigned r = (unsigned)(u % 100);
    u /= 100;
    p -= 2;
    p[0] = pairs[2 * r];
    p[1] = pairs[2 * r + 1];
  }
  if (u >= 10) {
    p[-2] = pairs[2 * u];
    p[-1] = pairs[2 * u + 1];
  } else {
    p[-1] = (char)('0' + (int)u);
  }
  return neg + digits;
}

void lmdb_buf_reset(lmdb_buf *b) {
  b->len = 0;
  if (b->data)
    b->data[0] = '\0';
}

void lmdb_buf_free(lmdb_buf *b) {
  free(b->data);
  lmdb_buf_init(b);
}

void lmdb_buf_free_secure(lmdb_buf *b) {
  if (b->data)
    lmdb_cleanse(b->data, b->cap);
  lmdb_buf_free(b);
}
