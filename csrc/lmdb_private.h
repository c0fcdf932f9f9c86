/*
** lmdb_private.h -- internal interfaces of the lunamodb C core.
**
** Every file except lmdb.c is pure C: no lua.h, so each part can be unit
** tested and reused by C hosts. Cross-file symbols carry the lmdb_ prefix;
** everything else is static. Functions return 0 on success and -1 on
** failure unless stated otherwise, never abort(), and never block except
** where a comment says so (only the curl transport's poll may wait).
*/
#ifndef LMDB_PRIVATE_H
#define LMDB_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* RFC 9110 tchar: what a header name or a method may contain (http.c checks the lines it
** sends with it, sigv4.c what it signs). */
static inline int lmdb_is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
    return 1;
  return c != 0 && strchr("!#$%&'*+.^_`|~", c) != NULL;
}

/* Byte tests eight bytes at a time (x: eight bytes read with lmdb_load8), exact as to
** whether some byte matches (not which): bytes under n (n at most 0x80; bytes of 0x80 up
** never count), bytes equal to c. Zero when none does. The header checks (http.c), the
** signer's trim (sigv4.c) and the JSON writer's scan share them. */
#define LMDB_ONES ((uint64_t)0x0101010101010101u)
static inline uint64_t lmdb_load8(const char *s) {
  uint64_t x;
  memcpy(&x, s, 8);
  return x;
}
static inline uint64_t lmdb_bytes_below(uint64_t x, unsigned n) {
  return (x - LMDB_ONES * n) & ~x & (LMDB_ONES * 0x80);
}
static inline uint64_t lmdb_bytes_equal(uint64_t x, unsigned c) {
  return lmdb_bytes_below(x ^ (LMDB_ONES * c), 1);
}

/* ---------------------------------------------------------------- buf.c */

/* A growable byte buffer. data is always NUL-terminated when non-NULL, so
** it can be handed to C string functions; len excludes that NUL. */
typedef struct lmdb_buf {
  char *data;
  size_t len;
  size_t cap;
} lmdb_buf;

void lmdb_buf_init(lmdb_buf *b);
int  lmdb_buf_reserve(lmdb_buf *b, size_t extra);       /* room for extra more */
int  lmdb_buf_append_grow(lmdb_buf *b, const void *p, size_t n);  /* append's slow path */
int  lmdb_buf_puts(lmdb_buf *b, const char *s);
/* Appends n bytes (0 or -1 on OOM), the text kept NUL-terminated. Inline: the core appends
** pieces of a few bytes at a time (JSON, signing), where a call costs as much as the copy. */
static inline int lmdb_buf_append(lmdb_buf *b, const void *p, size_t n) {
  if (n < b->cap - b->len) {   /* room for the bytes and the NUL (cap 0: never) */
    if (n)
      memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
  }
  return lmdb_buf_append_grow(b, p, n);
}
static inline int lmdb_buf_putc(lmdb_buf *b, char c) {
  if (b->len + 1 < b->cap) {
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
    return 0;
  }
  return lmdb_buf_append_grow(b, &c, 1);
}
int  lmdb_buf_printf(lmdb_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
void lmdb_buf_reset(lmdb_buf *b);                       /* len = 0, keeps memory */
/* The decimal text of v into buf (at least 21 bytes, not NUL-terminated); returns its
** length. (snprintf's formatting machinery costs more than the rest of a number.) */
int  lmdb_fmt_int64(char *buf, int64_t v);
void lmdb_buf_free(lmdb_buf *b);
void lmdb_buf_free_secure(lmdb_buf *b);                 /* wipes, then frees */

/* A borrowed string slice. */
typedef struct lmdb_str {
  const char *ptr;
  size_t len;
} lmdb_str;

/* --------------------------------------------------------- digest.c */

/* Holds (and lets go of) the SHA-256 implementation fetched from OpenSSL
** once for every user, instead of a lookup per digest. Each core Lua state
** holds it from luaopen to its __gc; without a holder digests still work. */
void lmdb_digest_acquire(void);
void lmdb_digest_release(void);
void lmdb_sha256(const void *data, size_t len, unsigned char out[32]);
void lmdb_sha256_hex(const void *data, size_t len, char out[65]);
int  lmdb_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                      unsigned char out[32]);
/* The same in a context the caller keeps for many digests (NULL: one of their own). */
typedef struct lmdb_sha256_ctx lmdb_sha256_ctx;
lmdb_sha256_ctx *lmdb_sha256_ctx_new(void);   /* NULL on OOM */
void lmdb_sha256_ctx_free(lmdb_sha256_ctx *c);
void lmdb_sha256_with(lmdb_sha256_ctx *c, const void *data, size_t len, unsigned char out[32]);
int  lmdb_hmac_sha256_with(lmdb_sha256_ctx *c, const void *key, size_t klen, const void *msg,
                           size_t mlen, unsigned char out[32]);
void lmdb_hex(const unsigned char *in, size_t n, char *out);   /* out: 2n+1 */
uint32_t lmdb_crc32(uint32_t crc, const void *data, size_t len); /* IEEE, crc=0 to start */
/* the same without the CPU's carry-less multiply, to check one path against the other */
uint32_t lmdb_crc32_portable(uint32_t crc, const void *data, size_t len);
int  lmdb_random_bytes(void *out, size_t n);                    /* CSPRNG */
int  lmdb_uuid4(char out[37]);
void lmdb_cleanse(void *p, size_t n);                           /* a memset kept */

/* --------------------------------------------------------- base64.c */

/* Appends the base64 of data. -1 on OOM. */
int  lmdb_base64_encode(lmdb_buf *out, const void *data, size_t len);
/* Appends the bytes of a strict base64 text (padded, no whitespace,
** canonical). -1 on OOM, -2 on malformed input. */
int  lmdb_base64_decode(lmdb_buf *out, const char *text, size_t len);

/* ---------------------------------------------------------- sigv4.c */

typedef struct lmdb_header {
  lmdb_str name;
  lmdb_str value;
} lmdb_header;

typedef struct lmdb_sigv4_request {
  lmdb_str method;
  lmdb_str path;             /* raw: not yet percent-encoded */
  lmdb_str query;            /* raw query string without '?', may be percent-encoded */
  const lmdb_header *headers;/* as they will be sent; any case; repeats allowed */
  size_t nheaders;
  lmdb_str body;
  int normalize_path;        /* remove . and .. segments and repeated slashes */
  int sign_body;             /* add and sign x-amz-content-sha256 */
  int omit_session_token;    /* add X-Amz-Security-Token after signing */
} lmdb_sigv4_request;

/* Holds one set of credentials and the signing key derived for the last
** scope (date/region/service), so one HMAC chain serves a whole day. */
typedef struct lmdb_sigv4_signer {
  lmdb_buf access_key_id;
  lmdb_buf secret_access_key;    /* wiped on change and free */
  lmdb_buf session_token;        /* len 0: none */
  char key_date[9];              /* scope of the cached key */
  char key_region[64];
  char key_service[64];
  unsigned char key[32];         /* wiped on change and free */
  int key_valid;
  lmdb_sha256_ctx *md;           /* every signature's digests; made by the first */
} lmdb_sigv4_signer;

typedef struct lmdb_sigv4_result {
  char amz_date[17];             /* 20150830T123600Z */
  char signature[65];
  lmdb_buf canonical_request;
  lmdb_buf string_to_sign;
  lmdb_buf signed_headers;       /* content-type;host;x-amz-date */
  lmdb_buf authorization;        /* full Authorization header value */
  lmdb_buf payload_hash;         /* hex sha256 of the body */
  const char *error;             /* static text when lmdb_sigv4_sign fails */
} lmdb_sigv4_result;

void lmdb_sigv4_signer_init(lmdb_sigv4_signer *s);
int  lmdb_sigv4_set_credentials(lmdb_sigv4_signer *s, lmdb_str access_key_id,
                                lmdb_str secret_access_key, lmdb_str session_token);
void lmdb_sigv4_signer_free(lmdb_sigv4_signer *s);
void lmdb_sigv4_result_init(lmdb_sigv4_result *r);
void lmdb_sigv4_result_free(lmdb_sigv4_result *r);
/* Signs req for region/service at epoch_s (UTC seconds). The headers the
** caller must add are X-Amz-Date (r->amz_date), X-Amz-Security-Token when
** the signer has a token, x-amz-content-sha256 when sign_body, and
** Authorization (r->authorization). -1 with r->error set on input that
** cannot be signed safely (see sigv4.c), no credentials, or OOM. */
int  lmdb_sigv4_sign(lmdb_sigv4_signer *s, lmdb_str region, lmdb_str service,
                     int64_t epoch_s, const lmdb_sigv4_request *req,
                     lmdb_sigv4_result *r);

/* ----------------------------------------------------------- json.c */

/* A pull lexer over a JSON text. Strings are unescaped into lex->scratch. */
typedef enum {
  LMDB_JSON_ERROR = 0, LMDB_JSON_END,
  LMDB_JSON_OBJECT_START, LMDB_JSON_OBJECT_END,
  LMDB_JSON_ARRAY_START, LMDB_JSON_ARRAY_END,
  LMDB_JSON_STRING,   /* value or key: see lex->is_key */
  LMDB_JSON_NUMBER,   /* raw text in tok; lex->is_integer, lex->integer */
  LMDB_JSON_TRUE, LMDB_JSON_FALSE, LMDB_JSON_NULL
} lmdb_json_token;

typedef struct lmdb_json_lexer {
  const char *p, *end, *start;
  int depth, max_depth;
  unsigned char stack[130];      /* container kinds, max_depth <= 128 */
  int expect;                    /* internal grammar state */
  int is_key;
  int is_integer;                /* NUMBER fits in int64 exactly */
  int64_t integer;
  lmdb_str tok;                  /* STRING: unescaped text; NUMBER: raw text */
  lmdb_buf scratch;
  const char *error;             /* static message on ERROR */
  size_t error_offset;
} lmdb_json_lexer;

/* lx->scratch must have been set up once with lmdb_buf_init; init keeps it
** so one lexer can decode many texts without reallocating. */
void lmdb_json_lexer_init(lmdb_json_lexer *lx, const char *text, size_t len, int max_depth);
lmdb_json_token lmdb_json_next(lmdb_json_lexer *lx);
void lmdb_json_lexer_free(lmdb_json_lexer *lx);
/* Where the value after a key starts (the first non-blank byte at or after
** the lexer's position): raw JSON is copied from there. */
const char *lmdb_json_value_start(const lmdb_json_lexer *lx);
/* The caller read the object just opened (OBJECT_START returned) itself, up to its '}' at
** close: the lexer goes on past it, as if OBJECT_END had been returned. */
void lmdb_json_close_object(lmdb_json_lexer *lx, const char *close);
/* Consumes the rest of the value whose first token is t. 0, or -1 on a
** lexer error or a token no value starts with. */
int  lmdb_json_skip(lmdb_json_lexer *lx, lmdb_json_token t);
/* 1 if s is valid UTF-8 (no overlongs, surrogates or code points past
** U+10FFFF), else 0. */
int  lmdb_utf8_valid(const char *s, size_t len);
/* Appends s as a JSON string literal (quotes included). -1 on OOM, -2 on
** invalid UTF-8 (JSON text must be valid UTF-8). */
int  lmdb_json_put_string(lmdb_buf *b, const char *s, size_t len);
/* 1 for the bytes a JSON string holds as they are (printable ASCII but '"' and '\\') */
extern const unsigned char lmdb_json_plain[256];
/* How many of the n bytes at s are plain (lmdb_json_plain) before the first that is not,
** eight at a time: for the writers, whose strings (names, values) run to tens of bytes. The
** lexer reads a byte at a time, as most strings it meets are one or two ("S", "N"), where
** setting up the word test would cost more than it saves. */
static inline int lmdb_json_word_plain(const char *s) {
  uint64_t x = lmdb_load8(s);
  /* no byte of 0x80 up, under 0x20, '"' or '\\' */
  return !((x & (LMDB_ONES * 0x80)) | lmdb_bytes_below(x, 0x20) | lmdb_bytes_equal(x, '"') |
           lmdb_bytes_equal(x, '\\'));
}
static inline size_t lmdb_json_plain_len(const char *s, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    if (!lmdb_json_word_plain(s + i))
      break;
  /* the last bytes as one word overlapping the one before, when that one was plain */
  if (i < n && n >= 8 && i + 8 > n && lmdb_json_word_plain(s + n - 8))
    return n;
  while (i < n && lmdb_json_plain[(unsigned char)s[i]])
    i++;
  return i;
}

/* ------------------------------------------------------- paginate.c */

/* One paginated operation, as botocore's paginators define it: the request
** member that carries the position (input token) comes from the response
** member output_token; limit_key (NULL: none) sizes a page; result_key is
** the array of results. */
typedef struct lmdb_paginator {
  const char *operation;
  const char *input_token;
  const char *output_token;
  const char *limit_key;
  const char *result_key;
} lmdb_paginator;

/* What one response page says about itself. */
typedef struct lmdb_page_info {
  int more;            /* 1: next holds the next request; 0: the last page */
  int64_t count;       /* top-level Count, else the result key's array length, else 0 */
  int has_scanned;
  int64_t scanned;     /* top-level ScannedCount, when has_scanned */
  int has_capacity;
  double capacity;     /* ConsumedCapacity.CapacityUnits (an array of them: summed) */
} lmdb_page_info;

/* The paginator of an operation (exact name), or NULL when it does not
** paginate. */
const lmdb_paginator *lmdb_paginator_find(lmdb_str operation);
/* The i-th paginator (0-based) of the table, NULL past its end. */
const lmdb_paginator *lmdb_paginator_at(size_t i);
/* Reads the top level of response (a JSON object) with the lexer, skipping
** what it does not need, and fills info. When the response has an output
** token (not null), next receives the request text with every top-level
** input-token member's value replaced by the token's raw JSON text, copied
** byte for byte (or that member added after the last one when absent);
** every other byte of the request is kept. next is reset first and left
** empty on the last page. lx is a lexer whose scratch was lmdb_buf_init'ed
** (reused as lmdb_json_lexer_init allows). Returns 0, or -1 with err set
** to "response: ..." or "request: ..." on malformed JSON, nesting deeper
** than 128, a Count/ScannedCount that is not a non-negative integer, the
** same token received twice, or OOM. The request is read only when there
** is a next page. */
int  lmdb_paginate_next(const lmdb_paginator *pg, lmdb_str request, lmdb_str response,
                        lmdb_json_lexer *lx, lmdb_buf *next, lmdb_page_info *info,
                        char *err, size_t errlen);

/* ---------------------------------------------------------- batch.c */

/* BatchWriteItem and BatchGetItem planning: request bodies packed from
** already-encoded requests and keys, copied byte for byte, and the next
** body from a response's unprocessed remainder. */

#define LMDB_BATCH_WRITE_MAX 25                 /* requests per BatchWriteItem */
#define LMDB_BATCH_GET_MAX 100                  /* keys per BatchGetItem */
#define LMDB_BATCH_MAX_BYTES ((size_t)16 << 20) /* 16 MB per request body */

/* One put or delete: table is the raw table name (escaped here), request
** the encoded '{"PutRequest":...}' or '{"DeleteRequest":...}'. */
typedef struct lmdb_batch_write_entry {
  lmdb_str table;
  lmdb_str request;
} lmdb_batch_write_entry;

/* One table of a BatchGetItem: its raw name, the encoded keys and options
** ("" or the text of extra members such as '"ConsistentRead":true'). */
typedef struct lmdb_batch_get_table {
  lmdb_str table;
  lmdb_str options;
  const lmdb_str *keys;
  size_t nkeys;
} lmdb_batch_get_table;

/* Where the next body starts: table index and key index (get) or entry
** index (write, in .key). Start from { 0, 0 }. */
typedef struct lmdb_batch_pos {
  size_t table;
  size_t key;
} lmdb_batch_pos;

/* Builds into out (reset first) the next BatchWriteItem body from e[pos..]:
** as many entries as fit in LMDB_BATCH_WRITE_MAX requests and
** LMDB_BATCH_MAX_BYTES bytes, in order, grouped by table in the order the
** tables first appear ('{"RequestItems":{"t1":[r1,r3],"t2":[r2]}}').
** Returns 1 with pos advanced, 0 when every entry was packed (out empty),
** or -1 with err set: an empty request, a table name that is not UTF-8, an
** entry too big for a body on its own ("entry N: ..."), or OOM. Makes
** one pass over the entries; each is copied once. */
int  lmdb_batch_write_next(const lmdb_batch_write_entry *e, size_t n, lmdb_batch_pos *pos,
                           lmdb_buf *out, char *err, size_t errlen);
/* The same for BatchGetItem: at most LMDB_BATCH_GET_MAX keys in total and
** LMDB_BATCH_MAX_BYTES bytes per body, tables in order, each table's keys
** in order ('{"RequestItems":{"t":{"Keys":[k1,k2],<options>}}}'); a table
** split across bodies repeats its options in each; tables without keys are
** skipped. A table named twice in one body is merged when its options are
** the same bytes, and starts a new body otherwise (a JSON object cannot
** name a member twice). Errors as above ("table N: ..."). */
int  lmdb_batch_get_next(const lmdb_batch_get_table *t, size_t n, lmdb_batch_pos *pos,
                         lmdb_buf *out, char *err, size_t errlen);

typedef enum { LMDB_BATCH_WRITE, LMDB_BATCH_GET } lmdb_batch_kind;

/* Reads the top level of a BatchWriteItem (UnprocessedItems) or
** BatchGetItem (UnprocessedKeys) response with the lexer. When that member
** holds at least one request or key, out (reset first) receives
** '{"RequestItems":' + the member's raw JSON text, byte for byte, + '}'
** and *count the number of requests (write: the elements of every table's
** array) or keys (get: the elements of every table's Keys); otherwise out
** is left empty and *count is 0 (absent, null, {}, or only empty lists).
** Returns 0, or -1 with err set to "response: ..." for malformed JSON, a
** member of the wrong shape, nesting deeper than 128, or OOM. */
int  lmdb_batch_unprocessed(lmdb_batch_kind kind, lmdb_str response, lmdb_json_lexer *lx,
                            lmdb_buf *out, int64_t *count, char *err, size_t errlen);

/* A set of (tag, key text) pairs numbered in the order added. The batch builder refuses a
** second write of one item with it (DynamoDB refuses a body that writes an item twice) and
** finds the write an unprocessed request stands for; the item decoder finds a level's
** attributes by their wire names with it. */
typedef struct lmdb_keyset_entry {
  size_t off, len;               /* the key's text in the set's buffer */
  uint32_t hash;
  int tag;                       /* the builder: its table's slot */
} lmdb_keyset_entry;

typedef struct lmdb_keyset {
  lmdb_buf text;
  lmdb_keyset_entry *ent;
  size_t n, cap;
  uint32_t *slots;               /* entry index + 1, 0 empty; mask + 1 of them */
  size_t mask;
} lmdb_keyset;

void lmdb_keyset_init(lmdb_keyset *ks);
void lmdb_keyset_free(lmdb_keyset *ks);
/* Empties the set, keeping its memory for the next batch. */
void lmdb_keyset_clear(lmdb_keyset *ks);
/* Adds (tag, key) as entry number ks->n. Returns that number, -1 when the pair is in the
** set already (nothing added), -2 when memory runs out (nothing added). */
long lmdb_keyset_add(lmdb_keyset *ks, int tag, const char *key, size_t len);
/* The number of the entry (tag, key), or -1. */
long lmdb_keyset_find(const lmdb_keyset *ks, int tag, const char *key, size_t len);

/* ------------------------------------------------------- transact.c */

#define LMDB_TRANSACT_MAX 100                      /* actions per transaction */
#define LMDB_TRANSACT_MAX_BYTES ((size_t)4 << 20)  /* 4 MB of encoded actions */
#define LMDB_TOKEN_MAX 36                          /* ClientRequestToken length */

typedef enum { LMDB_TRANSACT_WRITE, LMDB_TRANSACT_GET } lmdb_transact_kind;

/* One action: the raw table name and item identity (any bytes that tell
** items of that table apart, e.g. the encoded key) and the encoded action
** ('{"Put":{...}}', '{"Update":...}', '{"Delete":...}',
** '{"ConditionCheck":...}' for writes, '{"Get":...}' for gets). */
typedef struct lmdb_transact_action {
  lmdb_str table;
  lmdb_str key_id;
  lmdb_str action;
} lmdb_transact_action;

/* Checks the transaction and builds into out (reset first) its body:
** '{"TransactItems":[a1,...]}', with ',"ClientRequestToken":"<token>"'
** before the last '}' when token.ptr is not NULL (writes only). Returns 0,
** or -1 with err set (out empty) when: there is no action, more than
** LMDB_TRANSACT_MAX, a token on a get or a token that is not 1-36 bytes of
** printable ASCII, an action whose first member is not one its kind
** allows, actions over LMDB_TRANSACT_MAX_BYTES in total, two actions with
** the same table and key_id ("actions 2 and 5 both touch the same item of
** table 'acct'"), or OOM. Numbers in messages are 1-based. a is not read
** when n is 0 or over LMDB_TRANSACT_MAX (it may then be NULL). */
int  lmdb_transact_build(lmdb_transact_kind kind, const lmdb_transact_action *a, size_t n,
                         lmdb_str token, lmdb_buf *out, char *err, size_t errlen);

/* ---------------------------------------------------------- civil.c */

/* Days in month m (1-12) of year y; 0 for another m. */
int     lmdb_days_in_month(int64_t y, int m);
/* Days from 1970-01-01 to y-m-d (m 1-12), and back. */
int64_t lmdb_days_from_civil(int64_t y, int m, int d);
void    lmdb_civil_from_days(int64_t days, int *y, int *m, int *d);
/* The day of epoch_s (days since 1970-01-01, rounded down) and its second of that day. */
int64_t lmdb_days_from_epoch(int64_t epoch_s, int64_t *sec_of_day);

/* ---------------------------------------------------------- retry.c */

typedef enum {
  LMDB_RETRY_OK = 0,     /* success, nothing to retry */
  LMDB_RETRY_THROTTLE,   /* throttling: retry with the throttle base */
  LMDB_RETRY_TRANSIENT,  /* 5xx, connection, CRC32: retry with the base */
  LMDB_RETRY_TIMEOUT,    /* transport timeout: transient, timeout cost */
  LMDB_RETRY_SKEW,       /* clock-skew coded: retry once if skew seen */
  LMDB_RETRY_FATAL       /* never retried */
} lmdb_retry_class;

/* Transport outcomes of one attempt (http.c reports these). */
typedef enum {
  LMDB_NET_OK = 0,
  LMDB_NET_NOT_SENT,     /* DNS, refused, TLS handshake: request never left */
  LMDB_NET_TIMEOUT,      /* timed out after (part of) the request was sent */
  LMDB_NET_AMBIGUOUS,    /* reset or broken after sending: may have applied */
  LMDB_NET_TOO_LARGE,    /* response over the cap */
  LMDB_NET_CLOSED,       /* the transport was closed under the request */
  LMDB_NET_OTHER
} lmdb_net_status;

/* Error code from __type / X-Amzn-Errortype: the text after the last '#',
** cut at the first ':' after it. */
lmdb_str lmdb_error_code(lmdb_str type);

lmdb_retry_class lmdb_retry_classify(long http_status, lmdb_str code, lmdb_str message,
                                     lmdb_net_status net, int crc_mismatch);

typedef struct lmdb_retry_policy {
  int max_attempts;          /* default 4 */
  double base_ms;            /* default 25 */
  double throttle_base_ms;   /* default 1000 */
  double cap_ms;             /* default 20000 */
  int quota_max;             /* default 500; 0 disables the quota */
  int quota;                 /* tokens left */
  int cost_transient;        /* 14 */
  int cost_throttle;         /* 5 */
  int cost_timeout;          /* 14 */
  int last_cost;             /* cost of the last retry, refunded on success */
  int64_t clock_offset_ms;   /* server - local, applied when signing */
} lmdb_retry_policy;

void lmdb_retry_policy_init(lmdb_retry_policy *p);
/* After attempt number `attempt` (1-based) ended in class c: returns 1 and
** sets *delay_ms when another attempt should follow, else 0 and *why
** ("not_retryable", "max_attempts", "quota"). retry_after_ms < 0: none.
** rand01 in [0,1) is the jitter draw (injected for tests). */
int  lmdb_retry_decide(lmdb_retry_policy *p, int attempt, lmdb_retry_class c,
                       double retry_after_ms, double rand01,
                       double *delay_ms, const char **why);
void lmdb_retry_on_success(lmdb_retry_policy *p);
/* Parses an HTTP date (IMF-fixdate, RFC 850, asctime). -1 if malformed. */
int  lmdb_parse_http_date(lmdb_str s, int64_t *epoch_s);
/* Feeds one server Date observation. Returns 1 when the skew exceeded the
** 4-minute threshold and the offset was updated, else 0. */
int  lmdb_retry_observe_clock(lmdb_retry_policy *p, int64_t server_epoch_s,
                              int64_t sent_ms, int64_t received_ms, int has_age);

/* ------------------------------------------------------ endpoint.c */

typedef struct lmdb_url {
  lmdb_str scheme;   /* "http" or "https" */
  lmdb_str host;     /* without brackets for IPv6 */
  int port;          /* explicit port, or 0 */
  lmdb_str path;     /* "/" when empty */
  lmdb_str query;    /* after '?' (lmdb_url_parse_request only); empty when none */
  int ipv6;
} lmdb_url;

/* Parses and validates an endpoint URL: http/https only, no userinfo,
** no CR/LF/NUL/space, a port in 1..65535, no query or fragment. On error
** returns -1 and sets *why to a static message. */
int  lmdb_url_parse(lmdb_str url, lmdb_url *out, const char **why);
/* The same for a URL a transport sends a request to: a query is kept (out->query), a
** fragment dropped. */
int  lmdb_url_parse_request(lmdb_str url, lmdb_url *out, const char **why);
/* The Host header value as curl will send it ("h", "h:port", "[v6]:port"). */
int  lmdb_url_host_header(const lmdb_url *u, lmdb_buf *out);
/* 1 if region is a valid host label per botocore's rule. */
int  lmdb_region_valid(lmdb_str region);
/* 1 if the string holds no CR, LF or NUL (safe as a header value). */
int  lmdb_header_value_safe(lmdb_str v);
/* 1 if url may serve container credentials: https, or an http host that is
** loopback (127.0.0.0/8, ::1, localhost), 169.254.170.2, 169.254.170.23 or
** fd00:ec2::23. */
int  lmdb_container_uri_allowed(lmdb_str url);

/* --------------------------------------------------- credentials.c */

/* Values from the shared credentials and config files for one profile. */
typedef struct lmdb_profile {
  lmdb_buf access_key_id;
  lmdb_buf secret_access_key;  /* wiped on free */
  lmdb_buf session_token;      /* wiped on free */
  lmdb_buf region;
  lmdb_buf endpoint_url;
  lmdb_buf ca_bundle;
  lmdb_buf max_attempts;
  lmdb_buf role_arn;           /* recognised so an unsupported profile errs clearly */
  lmdb_buf credential_source;
  lmdb_buf source_profile;
  lmdb_buf credential_process;
  lmdb_buf sso_start_url;
  lmdb_buf sso_session;
  lmdb_buf web_identity_token_file;
  int found_in_credentials;    /* the profile has a section in that file */
  int found_in_config;
} lmdb_profile;

void lmdb_profile_init(lmdb_profile *p);
void lmdb_profile_free(lmdb_profile *p);
/* Reads the files (either path may be NULL or missing: not an error) and
** fills p for profile `name`. The credentials file names sections [name];
** the config file [profile name], or [default] for the default profile.
** Keys in the credentials file win over the config file. Returns 0 (even
** when the profile is absent; see found_*), or -1 when a file exists but
** cannot be read or parsed, or on OOM, with err set to a message such as
** "config:12: line is not 'key = value'" (never the line's content). */
int  lmdb_profile_load(const char *credentials_path, const char *config_path,
                       const char *name, lmdb_profile *p, char *err, size_t errlen);

/* -------------------------------------------------------------- http.c */

typedef struct lmdb_http lmdb_http;
typedef struct lmdb_http_request lmdb_http_request;

typedef struct lmdb_http_opts {
  long connect_timeout_ms;      /* 0: libcurl default */
  long read_timeout_ms;         /* no byte received for this long: timeout
                                ** (ms-precise, checked by lmdb_http_poll) */
  long total_timeout_ms;        /* whole attempt; 0: none */
  size_t max_response_bytes;    /* body cap; 0: 64 MiB */
  const char *ca_bundle;        /* NULL: system default; verification always on */
  int no_proxy;                 /* never use a proxy (credential endpoints) */
  int forbid_reuse;             /* close the connection after this request */
} lmdb_http_opts;

lmdb_http *lmdb_http_new(void);
/* Aborts every unfinished request (they finish as LMDB_NET_CLOSED) and
** frees the multi handle; requests stay valid until released. */
void lmdb_http_free(lmdb_http *h);
/* Copies everything it is given. headers are complete "Name: value" lines
** (checked: a token name, no control characters); an empty "Expect:" is
** added, and an empty "Content-Type:" unless one is given. Returns NULL and
** fills err on failure. Does no I/O itself. */
lmdb_http_request *lmdb_http_submit(lmdb_http *h, const char *method, const char *url,
                                    const char *const *headers, size_t nheaders,
                                    const char *body, size_t body_len,
                                    const lmdb_http_opts *o, char *err, size_t errlen);
/* Moves transfers forward and ends those past their read timeout. Returns
** at once when anything finished; otherwise waits at most timeout_ms for
** socket activity (0: does not wait; the only call in the core that may
** block). Returns the number of transfers still running, or -1. */
int  lmdb_http_poll(lmdb_http *h, int timeout_ms);
/* Milliseconds until poll must run again: curl's timer or the nearest read
** deadline (-1: none). */
long lmdb_http_timeout(lmdb_http *h);
/* The sockets transfers wait on, for a host's own event loop: fills up to
** max entries of out and returns how many there are (may be more than max).
** When one is ready, or lmdb_http_timeout elapses, call lmdb_http_poll(h, 0). */
#define LMDB_POLLIN  1
#define LMDB_POLLOUT 2
typedef struct lmdb_pollfd { int fd; int events; } lmdb_pollfd;
int  lmdb_http_sockets(lmdb_http *h, lmdb_pollfd *out, int max);
int  lmdb_http_running(lmdb_http *h);
int  lmdb_http_done(const lmdb_http_request *r);
lmdb_net_status lmdb_http_net_status(const lmdb_http_request *r);
const char *lmdb_http_net_message(const lmdb_http_request *r);   /* "" when OK */
long lmdb_http_status(const lmdb_http_request *r);      /* 0 on a transport failure */
lmdb_str lmdb_http_body(const lmdb_http_request *r);
/* Final response's header, name case-insensitive; first occurrence.
** 0 when found, -1 when absent. */
int  lmdb_http_header(const lmdb_http_request *r, const char *name, lmdb_str *value);
/* Raw header block of the final response: "Name: value\r\n" lines. */
lmdb_str lmdb_http_headers_raw(const lmdb_http_request *r);
/* Frees r; an unfinished request is removed from its transfer first. The
** easy handle goes back to a pool so its connection is reused. */
void lmdb_http_release(lmdb_http_request *r);

#endif
