/*
** json.c -- a strict pull lexer for JSON texts and a string escaper.
**
** lunamodb does not route DynamoDB JSON through a general codec: integers
** must stay integers, arrays must be told from objects, and decoding is on
** the hot path. lmdb.c drives this lexer to build Lua values directly.
** Strings without escapes are returned in place (no copy).
*/
#include <string.h>

#include "lmdb_private.h"

enum {
  EXP_VALUE, EXP_VALUE_OR_END, EXP_KEY, EXP_KEY_OR_END, EXP_COMMA_OR_END, EXP_EOF
};
enum { IN_OBJECT = 'o', IN_ARRAY = 'a' };

/* 1 for the bytes a JSON string holds as they are: printable ASCII but '"' and '\\'. */
const unsigned char lmdb_json_plain[256] = {
#define P16 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,     /* 0x00: control characters */
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,     /* 0x20: '"' */
  P16, P16,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,     /* 0x50: '\\' */
  P16, P16                                      /* 0x80 up (0 here): UTF-8, checked below */
#undef P16
};

void lmdb_json_lexer_init(lmdb_json_lexer *lx, const char *text, size_t len, int max_depth) {
  lmdb_buf keep = lx->scratch;                  /* reused across texts */
  memset(lx, 0, sizeof *lx);
  lx->scratch = keep;
  lx->p = lx->start = text;
  lx->end = text + len;
  if (max_depth <= 0 || max_depth > (int)sizeof lx->stack - 2)
    max_depth = (int)sizeof lx->stack - 2;
  lx->max_depth = max_depth;
  lx->expect = EXP_VALUE;
}

void lmdb_json_lexer_free(lmdb_json_lexer *lx) {
  lmdb_buf_free(&lx->scratch);
}

static lmdb_json_token fail(lmdb_json_lexer *lx, const char *msg) {
  if (lx->error == NULL) {
    lx->error = msg;
    lx->error_offset = (size_t)(lx->p - lx->start);
  }
  return LMDB_JSON_ERROR;
}

static void skip_ws(lmdb_json_lexer *lx) {
  const char *p = lx->p;
  while (p < lx->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    p++;
  lx->p = p;
}

/* Length of the valid UTF-8 sequence starting at p (lead byte >= 0x80), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0];
  size_t n, i;
  unsigned cp;
  if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
  else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
  else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
  else return 0;
  if ((size_t)(end - p) < n)
    return 0;
  for (i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;                                   /* overlong or surrogate */
  return n;
}

static int hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

static int put_utf8(lmdb_buf *b, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) { u[0] = (char)cp; n = 1; }
  else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
  else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
  }
  return lmdb_buf_append(b, u, n);
}

/* lx->p is just past the opening quote. */
static lmdb_json_token lex_string(lmdb_json_lexer *lx) {
  const unsigned char *p = (const unsigned char *)lx->p;
  const unsigned char *end = (const unsigned char *)lx->end;
  const unsigned char *run = p;
  int copied = 0;
  for (;;) {
    unsigned c;
    while (p < end && lmdb_json_plain[*p])        /* the bulk of a string: plain ASCII (a */
      p++;                                        /* byte at a time: most are a few bytes) */
    if (p >= end) { lx->p = (const char *)p; return fail(lx, "unterminated string"); }
    c = *p;
    if (c == '"') {
      if (!copied) {
        lx->tok.ptr = (const char *)run;
        lx->tok.len = (size_t)(p - run);
      } else {
        if (lmdb_buf_append(&lx->scratch, run, (size_t)(p - run)) != 0)
          return fail(lx, "not enough memory");
        lx->tok.ptr = lx->scratch.data;
        lx->tok.len = lx->scratch.len;
      }
      lx->p = (const char *)p + 1;
      return LMDB_JSON_STRING;
    }
    /* not plain: a control character, a backslash, or a UTF-8 sequence */
    if (c < 0x20) { lx->p = (const char *)p; return fail(lx, "control character in string"); }
    if (c >= 0x80) {
      size_t n = utf8_seq(p, end);
      if (n == 0) { lx->p = (const char *)p; return fail(lx, "invalid UTF-8 in string"); }
      p += n;
      continue;
    }
    /* an escape: switch to the scratch buffer */
    if (!copied) { lmdb_buf_reset(&lx->scratch); copied = 1; }
    if (lmdb_buf_append(&lx->scratch, run, (size_t)(p - run)) != 0)
      return fail(lx, "not enough memory");
    if (end - p < 2) { lx->p = (const char *)p; return fail(lx, "unterminated string"); }
    {
      char out = 0;
      unsigned cp;
      switch (p[1]) {
        case '"': out = '"'; break;
        case '\\': out = '\\'; break;
        case '/': out = '/'; break;
        case 'b': out = '\b'; break;
        case 'f': out = '\f'; break;
        case 'n': out = '\n'; break;
        case 'r': out = '\r'; break;
        case 't': out = '\t'; break;
        case 'u':
          if (end - p < 6 || hex4((const char *)p + 2, &cp) != 0) {
            lx->p = (const char *)p;
            return fail(lx, "bad \\u escape");
          }
          p += 6;
          if (cp >= 0xD800 && cp <= 0xDBFF) {          /* needs a low surrogate */
            unsigned lo;
            if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
                hex4((const char *)p + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF) {
              lx->p = (const char *)p;
              return fail(lx, "lone surrogate in \\u escape");
            }
            p += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            lx->p = (const char *)p;
            return fail(lx, "lone surrogate in \\u escape");
          }
          if (put_utf8(&lx->scratch, cp) != 0)
            return fail(lx, "not enough memory");
          run = p;
          continue;
        default:
          lx->p = (const char *)p;
          return fail(lx, "bad escape in string");
      }
      if (lmdb_buf_putc(&lx->scratch, out) != 0)
        return fail(lx, "not enough memory");
      p += 2;
      run = p;
    }
  }
}

static lmdb_json_token lex_number(lmdb_json_lexer *lx) {
  const char *p = lx->p, *end = lx->end, *s = p;
  int neg = 0, integral = 1, overflow = 0;
  uint64_t mag = 0;
  if (*p == '-') { neg = 1; p++; }
  if (p >= end || *p < '0' || *p > '9') return fail(lx, "bad number");
  if (*p == '0') {
    p++;
  } else {
    while (p < end && *p >= '0' && *p <= '9') {
      unsigned d = (unsigned)(*p - '0');
      if (mag > (UINT64_MAX - d) / 10) overflow = 1;
      else mag = mag * 10 + d;
      p++;
    }
  }
  if (p < end && *p == '.') {
    integral = 0;
    p++;
    if (p >= end || *p < '0' || *p > '9') { lx->p = p; return fail(lx, "bad number"); }
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    integral = 0;
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || *p < '0' || *p > '9') { lx->p = p; return fail(lx, "bad number"); }
    while (p < end && *p >= '0' && *p <= '9') p++;
  }
  lx->tok.ptr = s;
  lx->tok.len = (size_t)(p - s);
  lx->is_integer = 0;
  if (integral && !overflow) {
    if (!neg && mag <= (uint64_t)INT64_MAX) {
      lx->is_integer = 1;
      lx->integer = (int64_t)mag;
    } else if (neg && mag <= (uint64_t)INT64_MAX + 1) {
      lx->is_integer = 1;
      lx->integer = (mag == (uint64_t)INT64_MAX + 1) ? INT64_MIN : -(int64_t)mag;
    }
  }
  lx->p = p;
  return LMDB_JSON_NUMBER;
}

static lmdb_json_token lex_literal(lmdb_json_lexer *lx, const char *word, size_t n,
                                   lmdb_json_token tok) {
  if ((size_t)(lx->end - lx->p) < n || memcmp(lx->p, word, n) != 0)
    return fail(lx, "unexpected character");
  lx->p += n;
  return tok;
}

static void after_value(lmdb_json_lexer *lx) {
  lx->expect = lx->depth == 0 ? EXP_EOF : EXP_COMMA_OR_END;
}

static lmdb_json_token push(lmdb_json_lexer *lx, unsigned char kind, lmdb_json_token tok) {
  if (lx->depth >= lx->max_depth)
    return fail(lx, "nesting too deep");
  lx->stack[lx->depth++] = kind;
  lx->p++;
  lx->expect = kind == IN_OBJECT ? EXP_KEY_OR_END : EXP_VALUE_OR_END;
  return tok;
}

static lmdb_json_token pop(lmdb_json_lexer *lx, lmdb_json_token tok) {
  lx->depth--;
  lx->p++;
  after_value(lx);
  return tok;
}

static lmdb_json_token lex_value(lmdb_json_lexer *lx) {
  lmdb_json_token t;
  lx->is_key = 0;
  switch (*lx->p) {
    case '{': return push(lx, IN_OBJECT, LMDB_JSON_OBJECT_START);
    case '[': return push(lx, IN_ARRAY, LMDB_JSON_ARRAY_START);
    case '"': lx->p++; t = lex_string(lx); break;
    case 't': t = lex_literal(lx, "true", 4, LMDB_JSON_TRUE); break;
    case 'f': t = lex_literal(lx, "false", 5, LMDB_JSON_FALSE); break;
    case 'n': t = lex_literal(lx, "null", 4, LMDB_JSON_NULL); break;
    default:
      if (*lx->p == '-' || (*lx->p >= '0' && *lx->p <= '9'))
        t = lex_number(lx);
      else
        return fail(lx, "unexpected character");
  }
  if (t != LMDB_JSON_ERROR)
    after_value(lx);
  return t;
}

static lmdb_json_token lex_key(lmdb_json_lexer *lx) {
  lmdb_json_token t;
  if (*lx->p != '"')
    return fail(lx, "expected a string key");
  lx->p++;
  t = lex_string(lx);
  if (t == LMDB_JSON_ERROR)
    return t;
  skip_ws(lx);
  if (lx->p >= lx->end || *lx->p != ':')
    return fail(lx, "expected ':'");
  lx->p++;
  lx->is_key = 1;
  lx->expect = EXP_VALUE;
  return LMDB_JSON_STRING;
}

lmdb_json_token lmdb_json_next(lmdb_json_lexer *lx) {
  if (lx->error)
    return LMDB_JSON_ERROR;
  skip_ws(lx);
  if (lx->expect == EXP_EOF)
    return lx->p == lx->end ? LMDB_JSON_END : fail(lx, "trailing characters after JSON value");
  if (lx->p >= lx->end)
    return fail(lx, "unexpected end of JSON text");
  switch (lx->expect) {
    case EXP_COMMA_OR_END: {
      unsigned char top = lx->stack[lx->depth - 1];
      char c = *lx->p;
      if (c == ',') {
        lx->p++;
        skip_ws(lx);
        if (lx->p >= lx->end)
          return fail(lx, "unexpected end of JSON text");
        return top == IN_OBJECT ? lex_key(lx) : lex_value(lx);
      }
      if (c == '}' && top == IN_OBJECT) return pop(lx, LMDB_JSON_OBJECT_END);
      if (c == ']' && top == IN_ARRAY) return pop(lx, LMDB_JSON_ARRAY_END);
      return fail(lx, top == IN_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'");
    }
    case EXP_KEY_OR_END:
      if (*lx->p == '}') return pop(lx, LMDB_JSON_OBJECT_END);
      return lex_key(lx);
    case EXP_KEY:
      return lex_key(lx);
    case EXP_VALUE_OR_END:
      if (*lx->p == ']') return pop(lx, LMDB_JSON_ARRAY_END);
      return lex_value(lx);
    default:
      return lex_value(lx);
  }
}

void lmdb_json_close_object(lmdb_json_lexer *lx, const char *close) {
  lx->p = close;
  pop(lx, LMDB_JSON_OBJECT_END);
}

const char *lmdb_json_value_start(const lmdb_json_lexer *lx) {
  const char *p = lx->p;
  while (p < lx->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
    p++;
  return p;
}

int lmdb_json_skip(lmdb_json_lexer *lx, lmdb_json_token t) {
  int depth;
  if (t == LMDB_JSON_ERROR || t == LMDB_JSON_OBJECT_END || t == LMDB_JSON_ARRAY_END ||
      t == LMDB_JSON_END)
    return -1;                                   /* no value starts with these */
  if (t != LMDB_JSON_OBJECT_START && t != LMDB_JSON_ARRAY_START)
    return 0;
  depth = lx->depth - 1;
  do {
    if (lmdb_json_next(lx) == LMDB_JSON_ERROR)
      return -1;
  } while (lx->depth > depth);
  return 0;
}

int lmdb_utf8_valid(const char *s, size_t len) {
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  while (p < end) {
    if (*p < 0x80) {
      p++;
    } else {
      size_t n = utf8_seq(p, end);
      if (n == 0)
        return 0;
      p += n;
    }
  }
  return 1;
}

int lmdb_json_put_string(lmdb_buf *b, const char *s, size_t len) {
  static const char hexd[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s, *end = p + len, *run;
  /* worst case every byte becomes \u00XX; reserve the common case up front */
  if (b->cap - b->len <= len + 2 && lmdb_buf_reserve(b, len + 2) != 0)
    return -1;
  /* the common case, nothing to escape: one copy into the room reserved */
  p += lmdb_json_plain_len(s, len);
  if (p == end) {
    char *d = b->data + b->len;
    d[0] = '"';
    memcpy(d + 1, s, len);
    d[len + 1] = '"';
    d[len + 2] = '\0';
    b->len += len + 2;
    return 0;
  }
  b->data[b->len++] = '"';
  run = (const unsigned char *)s;
  while (p < end) {
    unsigned c = *p;
    const char *esc = NULL;
    char ubuf[6];
    if (lmdb_json_plain[c]) { p++; continue; }
    if (c >= 0x80) {
      size_t n = utf8_seq(p, end);
      if (n == 0)
        return -2;
      p += n;
      continue;
    }
    if (lmdb_buf_append(b, run, (size_t)(p - run)) != 0)
      return -1;
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      case '\b': esc = "\\b"; break;
      case '\f': esc = "\\f"; break;
      default:
        ubuf[0] = '\\'; ubuf[1] = 'u'; ubuf[2] = '0'; ubuf[3] = '0';
        ubuf[4] = hexd[c >> 4]; ubuf[5] = hexd[c & 15];
        if (lmdb_buf_append(b, ubuf, 6) != 0)
          return -1;
    }
    if (esc && lmdb_buf_append(b, esc, 2) != 0)
      return -1;
    p++;
    run = p;
  }
  if (lmdb_buf_append(b, run, (size_t)(p - run)) != 0 || lmdb_buf_putc(b, '"') != 0)
    return -1;
  return 0;
}
