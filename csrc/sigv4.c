/*
** sigv4.c -- AWS Signature Version 4, header (Authorization) signing.
**
** Pure C, no I/O. lmdb_sigv4_sign builds the canonical request, the string
** to sign and the signature for one request, and leaves the headers the
** caller must add in the result; the request itself is never modified.
** The signing key (an HMAC chain over date, region and service) is cached
** in the signer, so it is derived once per day and scope, not per request.
** Checked stage by stage against the AWS SigV4 test suite and botocore
** (spec/unit/sigv4_spec.lua, spec/unit/sigv4_botocore_spec.lua).
*/
#include <stdlib.h>
#include <string.h>

#include "lmdb_private.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"

/* Typical requests stay on the stack: DynamoDB sends about five headers
** and no query. Larger requests fall back to the heap. */
#define STACK_HEADERS 32
#define STACK_PARAMS 16
#define STACK_SECRET 128

/* A header taking part in the signature. order keeps repeated names in
** the order they are sent once sorted (qsort is not stable). */
typedef struct sig_header {
  const char *name;
  size_t nlen;
  const char *value;
  size_t vlen;
  size_t order;
} sig_header;

/* One query parameter, re-encoded into a scratch buffer. The offsets are
** turned into pointers once the scratch buffer stops growing. */
typedef struct sig_param {
  size_t koff, klen, voff, vlen;
  const char *k, *v;
} sig_param;

/* {============================================================ characters */

/* RFC 3986 unreserved: the only bytes SigV4 leaves unencoded. */
static int is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

/* The whitespace Trimall removes (Python's str.split() for ASCII, which
** botocore uses). No locale: isspace() could differ per host. */
static int is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static unsigned char to_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Case-insensitive equality of a header name with a lowercase literal. */
static int name_is(const char *name, size_t nlen, const char *lit) {
  size_t i;
  for (i = 0; i < nlen; i++)
    if (lit[i] == '\0' || to_lower((unsigned char)name[i]) != (unsigned char)lit[i])
      return 0;
  return lit[nlen] == '\0';
}

/* Region and service go into the scope, the cache and the Authorization
** header: one label of [A-Za-z0-9._-], short enough for the cache slots. */
static int scope_part_valid(lmdb_str s, size_t max) {
  size_t i;
  if (s.ptr == NULL || s.len == 0 || s.len >= max)
    return 0;
  for (i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char)s.ptr[i];
    if (!(is_unreserved(c) && c != '~'))
      return 0;
  }
  return 1;
}

/* }{========================================================== encoding */

/* Appends s percent-encoded: unreserved bytes kept, and '/' when
** keep_slash (paths); everything else as %XX with uppercase hex. */
static int put_encoded(lmdb_buf *b, const char *s, size_t n, int keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  char *o;
  size_t i;
  if (n > ((size_t)-1) / 4 || lmdb_buf_reserve(b, 3 * n) != 0)
    return -1;
  o = b->data + b->len;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      *o++ = (char)c;
    } else {
      *o++ = '%';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 0x0f];
    }
  }
  b->len = (size_t)(o - b->data);
  b->data[b->len] = '\0';
  return 0;
}

/* Query keys and values may arrive encoded or not; decoding %XX first and
** encoding once more gives one canonical spelling for both. A '%' that
** does not start a valid escape stands for itself. '+' is not a space. */
static int put_reencoded(lmdb_buf *b, const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t start = i;
    char c;
    /* copy runs without escapes in one go */
    while (i < n && s[i] != '%')
      i++;
    if (i > start && put_encoded(b, s + start, i - start, 0) != 0)
      return -1;
    if (i >= n)
      break;
    if (i + 2 < n && hex_value((unsigned char)s[i + 1]) >= 0 &&
        hex_value((unsigned char)s[i + 2]) >= 0) {
      c = (char)(hex_value((unsigned char)s[i + 1]) * 16 +
                 hex_value((unsigned char)s[i + 2]));
      i += 3;
    } else {
      c = '%';
      i += 1;
    }
    if (put_encoded(b, &c, 1, 0) != 0)
      return -1;
  }
  return 0;
}

/* }{===================================================== canonical URI */

/* Appends the canonical URI: the raw path encoded once. With normalize,
** '.' and '..' segments and empty segments (repeated slashes) go first,
** as botocore's remove_dot_segments does; a trailing slash survives when
** any segment is left. Segments are encoded straight into b, so '..'
** pops by cutting b back to the previous '/' (encoded segments have none). */
static int put_canonical_uri(lmdb_buf *b, lmdb_str path, int normalize) {
  size_t base = b->len, root = 0, i = 0, nseg = 0;
  if (path.len == 0)
    return lmdb_buf_putc(b, '/');
  if (!normalize)
    return put_encoded(b, path.ptr, path.len, 1);
  if (path.ptr[0] == '/' && lmdb_buf_putc(b, '/') != 0)
    return -1;
  root = b->len;
  i = 0;
  while (i <= path.len) {
    size_t start = i, len;
    while (i < path.len && path.ptr[i] != '/')
      i++;
    len = i - start;
    i++;                                  /* past the '/' (or the end) */
    if (len == 0 || (len == 1 && path.ptr[start] == '.'))
      continue;
    if (len == 2 && path.ptr[start] == '.' && path.ptr[start + 1] == '.') {
      if (nseg > 0) {
        size_t cut = root;
        if (--nseg > 0) {
          /* back to the separator before the last segment, dropping it */
          for (cut = b->len; cut > root && b->data[cut - 1] != '/'; cut--)
            ;
          cut--;
        }
        b->len = cut;
        b->data[cut] = '\0';
      }
      continue;
    }
    if (nseg > 0 && lmdb_buf_putc(b, '/') != 0)
      return -1;
    if (put_encoded(b, path.ptr + start, len, 0) != 0)
      return -1;
    nseg++;
  }
  if (nseg > 0 && path.ptr[path.len - 1] == '/' && lmdb_buf_putc(b, '/') != 0)
    return -1;
  if (b->len == base)                     /* a relative path of only dots */
    return lmdb_buf_putc(b, '/');
  return 0;
}

/* }{=================================================== canonical query */

static int param_cmp(const void *pa, const void *pb) {
  const sig_param *a = (const sig_param *)pa, *b = (const sig_param *)pb;
  size_t n = a->klen < b->klen ? a->klen : b->klen;
  int c = memcmp(a->k, b->k, n);
  if (c != 0) return c;
  if (a->klen != b->klen) return a->klen < b->klen ? -1 : 1;
  n = a->vlen < b->vlen ? a->vlen : b->vlen;
  c = memcmp(a->v, b->v, n);
  if (c != 0) return c;
  if (a->vlen != b->vlen) return a->vlen < b->vlen ? -1 : 1;
  return 0;
}

/* Appends the canonical query: every key and value re-encoded, sorted by
** encoded key, then encoded value (byte order), "key=" when the value is
** empty. Empty "&&" segments are dropped. */
static int put_canonical_query(lmdb_buf *b, lmdb_str query) {
  sig_param stack_params[STACK_PARAMS];
  sig_param *params = stack_params;
  lmdb_buf scratch;
  size_t n = 0, cap = STACK_PARAMS, i = 0;
  int rc = -1;
  lmdb_buf_init(&scratch);
  if (query.len == 0)
    return 0;
  i = 0;
  while (i <= query.len) {
    size_t start = i, eq, end;
    sig_param *p;
    while (i < query.len && query.ptr[i] != '&')
      i++;
    end = i++;
    if (end == start)
      continue;
    if (n == cap) {                       /* many parameters: to the heap */
      sig_param *np;
      if (cap > ((size_t)-1) / (2 * sizeof *np))
        goto cleanup;
      np = (sig_param *)malloc(2 * cap * sizeof *np);
      if (np == NULL)
        goto cleanup;
      memcpy(np, params, n * sizeof *np);
      if (params != stack_params)
        free(params);
      params = np;
      cap *= 2;
    }
    for (eq = start; eq < end && query.ptr[eq] != '='; eq++)
      ;
    p = &params[n++];
    p->koff = scratch.len;
    if (put_reencoded(&scratch, query.ptr + start, eq - start) != 0)
      goto cleanup;
    p->klen = scratch.len - p->koff;
    p->voff = scratch.len;
    if (eq < end && put_reencoded(&scratch, query.ptr + eq + 1, end - eq - 1) != 0)
      goto cleanup;
    p->vlen = scratch.len - p->voff;
  }
  if (n == 0) {
    rc = 0;
    goto cleanup;
  }
  for (i = 0; i < n; i++) {               /* scratch is final: pointers now */
    const char *base = scratch.data ? scratch.data : "";  /* all empty: "=" */
    params[i].k = base + params[i].koff;
    params[i].v = base + params[i].voff;
  }
  qsort(params, n, sizeof *params, param_cmp);
  if (lmdb_buf_reserve(b, scratch.len + 2 * n) != 0)
    goto cleanup;
  for (i = 0; i < n; i++) {
    if ((i > 0 && lmdb_buf_putc(b, '&') != 0) ||
        lmdb_buf_append(b, params[i].k, params[i].klen) != 0 ||
        lmdb_buf_putc(b, '=') != 0 ||
        lmdb_buf_append(b, params[i].v, params[i].vlen) != 0)
      goto cleanup;
  }
  rc = 0;
cleanup:
  if (params != stack_params)
    free(params);
  lmdb_buf_free(&scratch);
  return rc;
}

/* }{================================================= canonical headers */

static int header_cmp(const void *pa, const void *pb) {
  const sig_header *a = (const sig_header *)pa, *b = (const sig_header *)pb;
  size_t i, n = a->nlen < b->nlen ? a->nlen : b->nlen;
  for (i = 0; i < n; i++) {
    unsigned char x = to_lower((unsigned char)a->name[i]);
    unsigned char y = to_lower((unsigned char)b->name[i]);
    if (x != y)
      return x < y ? -1 : 1;
  }
  if (a->nlen != b->nlen)
    return a->nlen < b->nlen ? -1 : 1;
  return a->order < b->order ? -1 : (a->order > b->order);
}

static int same_name(const sig_header *a, const sig_header *b) {
  size_t i;
  if (a->nlen != b->nlen)
    return 0;
  for (i = 0; i < a->nlen; i++)
    if (to_lower((unsigned char)a->name[i]) != to_lower((unsigned char)b->name[i]))
      return 0;
  return 1;
}

/* Appends the lowercase name. */
static int put_lower(lmdb_buf *b, const char *s, size_t n) {
  size_t i;
  if (lmdb_buf_reserve(b, n) != 0)
    return -1;
  for (i = 0; i < n; i++)
    b->data[b->len + i] = (char)to_lower((unsigned char)s[i]);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

/* Whether s[0..n) has no byte under 0x21 (no space, tab, CR, LF, NUL or other control
** byte): then it is its own Trimall. Eight bytes a step. */
static int all_visible(const char *s, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    if (lmdb_bytes_below(lmdb_load8(s + i), 0x21))
      return 0;
  for (; i < n; i++)
    if ((unsigned char)s[i] < 0x21)
      return 0;
  return 1;
}

/* Appends Trimall(value): trimmed, whitespace runs (folded continuation
** lines included) as one space. A CR or LF is accepted only as part of a
** fold (CR LF, or LF, then SP/HT), and NUL never: either could end the
** header early on the wire, so such a value is refused, not signed. */
static int put_trimmed(lmdb_buf *b, const char *s, size_t n) {
  size_t i;
  char *o;
  int pending = 0, any = 0;
  if (all_visible(s, n))   /* the usual value: no whitespace or control byte at all */
    return lmdb_buf_append(b, s, n);
  if (lmdb_buf_reserve(b, n) != 0)
    return -1;
  o = b->data + b->len;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\0' ||
        (c == '\r' && (i + 1 >= n || s[i + 1] != '\n')) ||
        (c == '\n' && (i + 1 >= n || (s[i + 1] != ' ' && s[i + 1] != '\t'))))
      return -1;
    if (is_space(c)) {
      pending = 1;
      continue;
    }
    if (pending && any)
      *o++ = ' ';
    *o++ = (char)c;
    pending = 0;
    any = 1;
  }
  b->len = (size_t)(o - b->data);
  b->data[b->len] = '\0';
  return 0;
}

/* Appends the canonical header lines ("name:v1,v2\n" per distinct name,
** sorted) to cr and the signed-headers list to sh. h must be sorted. */
static int put_canonical_headers(lmdb_buf *cr, lmdb_buf *sh,
                                 const sig_header *h, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    if ((sh->len > 0 && lmdb_buf_putc(sh, ';') != 0) ||
        put_lower(sh, h[i].name, h[i].nlen) != 0 ||
        lmdb_buf_append(cr, sh->data + sh->len - h[i].nlen, h[i].nlen) != 0 ||   /* lowered once */
        lmdb_buf_putc(cr, ':') != 0)
      return -1;
    /* repeated names: values joined with ',' in the order sent */
    for (; j < n && same_name(&h[i], &h[j]); j++) {
      if ((j > i && lmdb_buf_putc(cr, ',') != 0) ||
          put_trimmed(cr, h[j].value, h[j].vlen) != 0)
        return -1;
    }
    if (lmdb_buf_putc(cr, '\n') != 0)
      return -1;
    i = j;
  }
  return 0;
}

/* }{======================================================= signing key */

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region),
** service), "aws4_request"), stored in the signer with its scope. Every
** intermediate key and the "AWS4" + secret copy are wiped on return. */
static int derive_key(lmdb_sigv4_signer *s, const char *date, lmdb_str region,
                      lmdb_str service) {
  unsigned char stack_secret[STACK_SECRET];
  unsigned char *k0 = stack_secret;
  unsigned char k1[32], k2[32], k3[32];
  size_t klen = 4 + s->secret_access_key.len;
  int rc = -1;
  memset(k1, 0, sizeof k1);
  memset(k2, 0, sizeof k2);
  memset(k3, 0, sizeof k3);
  s->key_valid = 0;
  if (klen > sizeof stack_secret) {
    k0 = (unsigned char *)malloc(klen);
    if (k0 == NULL)
      goto cleanup;
  }
  memcpy(k0, "AWS4", 4);
  memcpy(k0 + 4, s->secret_access_key.data, s->secret_access_key.len);
  if (lmdb_hmac_sha256(k0, klen, date, 8, k1) != 0 ||
      lmdb_hmac_sha256(k1, sizeof k1, region.ptr, region.len, k2) != 0 ||
      lmdb_hmac_sha256(k2, sizeof k2, service.ptr, service.len, k3) != 0 ||
      lmdb_hmac_sha256(k3, sizeof k3, TERMINATOR, sizeof TERMINATOR - 1, s->key) != 0)
    goto cleanup;
  memcpy(s->key_date, date, 8);
  s->key_date[8] = '\0';
  memcpy(s->key_region, region.ptr, region.len);    /* lengths checked */
  s->key_region[region.len] = '\0';
  memcpy(s->key_service, service.ptr, service.len);
  s->key_service[service.len] = '\0';
  s->key_valid = 1;
  rc = 0;
cleanup:
  if (k0 != NULL)
    lmdb_cleanse(k0, klen);
  if (k0 != stack_secret)
    free(k0);
  lmdb_cleanse(k1, sizeof k1);
  lmdb_cleanse(k2, sizeof k2);
  lmdb_cleanse(k3, sizeof k3);
  if (rc != 0)
    lmdb_cleanse(s->key, sizeof s->key);
  return rc;
}

static int key_matches(const lmdb_sigv4_signer *s, const char *date,
                       lmdb_str region, lmdb_str service) {
  return s->key_valid && memcmp(s->key_date, date, 9) == 0 &&
         strlen(s->key_region) == region.len &&
         memcmp(s->key_region, region.ptr, region.len) == 0 &&
         strlen(s->key_service) == service.len &&
         memcmp(s->key_service, service.ptr, service.len) == 0;
}

/* }{=========================================================== signer */

void lmdb_sigv4_signer_init(lmdb_sigv4_signer *s) {
  memset(s, 0, sizeof *s);
  lmdb_buf_init(&s->access_key_id);
  lmdb_buf_init(&s->secret_access_key);
  lmdb_buf_init(&s->session_token);
}

static void forget_key(lmdb_sigv4_signer *s) {
  lmdb_cleanse(s->key, sizeof s->key);
  s->key_valid = 0;
  s->key_date[0] = s->key_region[0] = s->key_service[0] = '\0';
}

/* Copies v into a fresh buffer of exactly the right size, so a secret is
** never left behind in a block realloc() gave up. */
static int copy_exact(lmdb_buf *b, lmdb_str v) {
  if (v.len == 0)
    return 0;
  if (lmdb_buf_reserve(b, v.len) != 0)
    return -1;
  return lmdb_buf_append(b, v.ptr, v.len);
}

int lmdb_sigv4_set_credentials(lmdb_sigv4_signer *s, lmdb_str access_key_id,
                               lmdb_str secret_access_key, lmdb_str session_token) {
  lmdb_buf akid, secret, token;
  size_t i;
  int rc = -1;
  lmdb_buf_init(&akid);
  lmdb_buf_init(&secret);
  lmdb_buf_init(&token);
  if (access_key_id.len == 0 || access_key_id.ptr == NULL ||
      secret_access_key.len == 0 || secret_access_key.ptr == NULL ||
      (session_token.len > 0 && session_token.ptr == NULL))
    goto cleanup;
  /* the key id is printed into Credential=AKID/scope: no space, ',', '/' */
  for (i = 0; i < access_key_id.len; i++) {
    unsigned char c = (unsigned char)access_key_id.ptr[i];
    if (c <= ' ' || c >= 0x7f || c == ',' || c == '/')
      goto cleanup;
  }
  /* the token is sent as a header value as it is */
  for (i = 0; i < session_token.len; i++) {
    unsigned char c = (unsigned char)session_token.ptr[i];
    if (c == '\0' || c == '\r' || c == '\n')
      goto cleanup;
  }
  if (copy_exact(&akid, access_key_id) != 0 ||
      copy_exact(&secret, secret_access_key) != 0 ||
      copy_exact(&token, session_token) != 0)
    goto cleanup;
  lmdb_buf_free_secure(&s->access_key_id);
  lmdb_buf_free_secure(&s->secret_access_key);
  lmdb_buf_free_secure(&s->session_token);
  s->access_key_id = akid;
  s->secret_access_key = secret;
  s->session_token = token;
  lmdb_buf_init(&akid);                   /* now owned by s */
  lmdb_buf_init(&secret);
  lmdb_buf_init(&token);
  rc = 0;
cleanup:
  /* a new secret, or a failed update, never reuses the old derived key */
  forget_key(s);
  lmdb_buf_free_secure(&akid);
  lmdb_buf_free_secure(&secret);
  lmdb_buf_free_secure(&token);
  return rc;
}

void lmdb_sigv4_signer_free(lmdb_sigv4_signer *s) {
  lmdb_sha256_ctx_free(s->md);
  s->md = NULL;
  lmdb_buf_free_secure(&s->access_key_id);
  lmdb_buf_free_secure(&s->secret_access_key);
  lmdb_buf_free_secure(&s->session_token);
  forget_key(s);
}

/* }{=========================================================== result */

void lmdb_sigv4_result_init(lmdb_sigv4_result *r) {
  memset(r, 0, sizeof *r);
  lmdb_buf_init(&r->canonical_request);
  lmdb_buf_init(&r->string_to_sign);
  lmdb_buf_init(&r->signed_headers);
  lmdb_buf_init(&r->authorization);
  lmdb_buf_init(&r->payload_hash);
}

/* The canonical request carries the session token: wipe everything. */
void lmdb_sigv4_result_free(lmdb_sigv4_result *r) {
  lmdb_buf_free_secure(&r->canonical_request);
  lmdb_buf_free_secure(&r->string_to_sign);
  lmdb_buf_free_secure(&r->signed_headers);
  lmdb_buf_free_secure(&r->authorization);
  lmdb_buf_free_secure(&r->payload_hash);
  lmdb_cleanse(r->signature, sizeof r->signature);
  r->amz_date[0] = '\0';
}

static void result_reset(lmdb_sigv4_result *r) {
  lmdb_buf_reset(&r->canonical_request);
  lmdb_buf_reset(&r->string_to_sign);
  lmdb_buf_reset(&r->signed_headers);
  lmdb_buf_reset(&r->authorization);
  lmdb_buf_reset(&r->payload_hash);
  r->amz_date[0] = '\0';
  r->signature[0] = '\0';
}

/* }{========================================================== signing */

static void put_digits(char *o, int v, int width) {
  while (width-- > 0) {
    o[width] = (char)('0' + v % 10);
    v /= 10;
  }
}

/* "YYYYMMDDTHHMMSSZ" in UTC, by civil.c's arithmetic: never the local zone, and no libc
** time zone code on a request's path. Years outside 0..9999 do not fit the format. */
static int format_amz_date(int64_t epoch_s, char out[17]) {
  int64_t secs, days = lmdb_days_from_epoch(epoch_s, &secs);
  int y, mo, d;
  if (epoch_s < -62167219200LL || epoch_s > 253402300799LL)   /* years 0 to 9999 */
    return -1;
  lmdb_civil_from_days(days, &y, &mo, &d);
  put_digits(out, y, 4);
  put_digits(out + 4, mo, 2);
  put_digits(out + 6, d, 2);
  out[8] = 'T';
  put_digits(out + 9, (int)(secs / 3600), 2);
  put_digits(out + 11, (int)(secs / 60 % 60), 2);
  put_digits(out + 13, (int)(secs % 60), 2);
  out[15] = 'Z';
  out[16] = '\0';
  return 0;
}

/* Saturating addition for buffer size estimates. */
static size_t add_size(size_t a, size_t b) {
  return (a > (size_t)-1 - b) ? (size_t)-1 : a + b;
}

/* Besides OOM and missing credentials, -1 also means input that cannot be
** signed safely: region or service not a [A-Za-z0-9._-] label under 64
** bytes, a method or header name that is not an RFC 7230 token, a value
** with NUL or a CR/LF that is not a fold, a time outside years 0..9999,
** or a header that signing adds itself (Authorization, X-Amz-Date, and
** X-Amz-Security-Token / x-amz-content-sha256 when signing adds them).
** User-Agent, Expect and X-Amzn-Trace-Id are sent but not signed, as in
** botocore, since proxies rewrite them. On -1 the result is left empty. */
int lmdb_sigv4_sign(lmdb_sigv4_signer *s, lmdb_str region, lmdb_str service,
                    int64_t epoch_s, const lmdb_sigv4_request *req,
                    lmdb_sigv4_result *r) {
  sig_header stack_headers[STACK_HEADERS];
  sig_header *h = stack_headers;
  size_t n = 0, i = 0, estimate = 0;
  char date[9];
  unsigned char digest[32];
  char digest_hex[65];
  int with_token = 0, rc = -1;

  memset(date, 0, sizeof date);
  memset(digest, 0, sizeof digest);
  memset(digest_hex, 0, sizeof digest_hex);
  if (s == NULL || req == NULL || r == NULL)
    return -1;
  result_reset(r);
  r->error = NULL;
  if (s->access_key_id.len == 0 || s->secret_access_key.len == 0) {
    r->error = "no credentials to sign with";
    goto cleanup;
  }
  if (!scope_part_valid(region, sizeof s->key_region) ||
      !scope_part_valid(service, sizeof s->key_service) ||
      req->method.len == 0 || req->method.ptr == NULL ||
      (req->nheaders > 0 && req->headers == NULL) ||
      (req->path.len > 0 && req->path.ptr == NULL) ||
      (req->query.len > 0 && req->query.ptr == NULL) ||
      (req->body.len > 0 && req->body.ptr == NULL)) {
    r->error = "region and service must be labels of [A-Za-z0-9._-] under 64 bytes, "
               "and a method is required";
    goto cleanup;
  }
  for (i = 0; i < req->method.len; i++)
    if (!lmdb_is_tchar((unsigned char)req->method.ptr[i])) {
      r->error = "the method is not an HTTP token";
      goto cleanup;
    }
  if (format_amz_date(epoch_s, r->amz_date) != 0) {
    r->error = "the signing time is outside the years 0 to 9999";
    goto cleanup;
  }
  memcpy(date, r->amz_date, 8);
  with_token = s->session_token.len > 0;

  /* the payload hash is always the body's, even when not sent as a header */
  if (lmdb_buf_reserve(&r->payload_hash, 64) != 0)
    goto cleanup;
  if (s->md == NULL)
    s->md = lmdb_sha256_ctx_new();   /* NULL on OOM: each digest makes its own */
  lmdb_sha256_with(s->md, req->body.ptr, req->body.len, digest);
  lmdb_hex(digest, sizeof digest, r->payload_hash.data);
  r->payload_hash.len = 64;

  /* the headers to sign: the request's, minus those botocore never signs
  ** (proxies rewrite them), plus the ones signing adds */
  if (req->nheaders > STACK_HEADERS - 3) {
    if (req->nheaders > ((size_t)-1) / sizeof *h - 3)
      goto cleanup;
    h = (sig_header *)malloc((req->nheaders + 3) * sizeof *h);
    if (h == NULL)
      goto cleanup;
  }
  for (i = 0; i < req->nheaders; i++) {
    const lmdb_header *in = &req->headers[i];
    size_t k;
    if (in->name.len == 0 || in->name.ptr == NULL ||
        (in->value.len > 0 && in->value.ptr == NULL)) {
      r->error = "a header has an empty name";
      goto cleanup;
    }
    for (k = 0; k < in->name.len; k++)
      if (!lmdb_is_tchar((unsigned char)in->name.ptr[k])) {
        r->error = "a header name is not an HTTP token";
        goto cleanup;
      }
    /* a header signing sets itself must not be sent twice */
    if (name_is(in->name.ptr, in->name.len, "authorization") ||
        name_is(in->name.ptr, in->name.len, "x-amz-date") ||
        (with_token && name_is(in->name.ptr, in->name.len, "x-amz-security-token")) ||
        (req->sign_body && name_is(in->name.ptr, in->name.len, "x-amz-content-sha256"))) {
      r->error = "a header that signing adds itself was given (Authorization, X-Amz-Date, "
                 "X-Amz-Security-Token or x-amz-content-sha256)";
      goto cleanup;
    }
    if (name_is(in->name.ptr, in->name.len, "user-agent") ||
        name_is(in->name.ptr, in->name.len, "expect") ||
        name_is(in->name.ptr, in->name.len, "x-amzn-trace-id"))
      continue;
    h[n].name = in->name.ptr;
    h[n].nlen = in->name.len;
    h[n].value = in->value.len ? in->value.ptr : "";
    h[n].vlen = in->value.len;
    h[n].order = n;
    estimate = add_size(estimate, add_size(in->name.len, in->value.len + 3));
    n++;
  }
  h[n].name = "x-amz-date";
  h[n].nlen = sizeof "x-amz-date" - 1;
  h[n].value = r->amz_date;
  h[n].vlen = 16;
  h[n].order = n;
  n++;
  if (with_token && !req->omit_session_token) {
    h[n].name = "x-amz-security-token";
    h[n].nlen = sizeof "x-amz-security-token" - 1;
    h[n].value = s->session_token.data;
    h[n].vlen = s->session_token.len;
    h[n].order = n;
    estimate = add_size(estimate, s->session_token.len);
    n++;
  }
  if (req->sign_body) {
    h[n].name = "x-amz-content-sha256";
    h[n].nlen = sizeof "x-amz-content-sha256" - 1;
    h[n].value = r->payload_hash.data;
    h[n].vlen = 64;
    h[n].order = n;
    n++;
  }
  if (n <= 16) {   /* the usual handful: no qsort callbacks */
    size_t k;
    for (i = 1; i < n; i++) {
      sig_header x = h[i];
      for (k = i; k > 0 && header_cmp(&x, &h[k - 1]) < 0; k--)
        h[k] = h[k - 1];
      h[k] = x;
    }
  }
  else
    qsort(h, n, sizeof *h, header_cmp);

  /* canonical request: one reservation covers the usual case */
  estimate = add_size(estimate, req->method.len);
  estimate = add_size(estimate, req->path.len > ((size_t)-1) / 4 ? (size_t)-1 : 3 * req->path.len);
  estimate = add_size(estimate, req->query.len > ((size_t)-1) / 4 ? (size_t)-1 : 3 * req->query.len);
  estimate = add_size(estimate, 256);
  if (estimate != (size_t)-1 && lmdb_buf_reserve(&r->canonical_request, estimate) != 0)
    goto cleanup;
  if (lmdb_buf_append(&r->canonical_request, req->method.ptr, req->method.len) != 0 ||
      lmdb_buf_putc(&r->canonical_request, '\n') != 0 ||
      put_canonical_uri(&r->canonical_request, req->path, req->normalize_path) != 0 ||
      lmdb_buf_putc(&r->canonical_request, '\n') != 0 ||
      put_canonical_query(&r->canonical_request, req->query) != 0 ||
      lmdb_buf_putc(&r->canonical_request, '\n') != 0 ||
      put_canonical_headers(&r->canonical_request, &r->signed_headers, h, n) != 0 ||
      lmdb_buf_putc(&r->canonical_request, '\n') != 0 ||
      lmdb_buf_append(&r->canonical_request, r->signed_headers.data,
                      r->signed_headers.len) != 0 ||
      lmdb_buf_putc(&r->canonical_request, '\n') != 0 ||
      lmdb_buf_append(&r->canonical_request, r->payload_hash.data, 64) != 0)
    goto cleanup;

  /* string to sign: algorithm, time, scope, hash of the canonical request */
  lmdb_sha256_with(s->md, r->canonical_request.data, r->canonical_request.len, digest);
  lmdb_hex(digest, sizeof digest, digest_hex);
  if (lmdb_buf_reserve(&r->string_to_sign, 64 + 16 + 8 + region.len + service.len + 64) != 0 ||
      lmdb_buf_puts(&r->string_to_sign, ALGORITHM "\n") != 0 ||
      lmdb_buf_append(&r->string_to_sign, r->amz_date, 16) != 0 ||
      lmdb_buf_putc(&r->string_to_sign, '\n') != 0 ||
      lmdb_buf_append(&r->string_to_sign, date, 8) != 0 ||
      lmdb_buf_putc(&r->string_to_sign, '/') != 0 ||
      lmdb_buf_append(&r->string_to_sign, region.ptr, region.len) != 0 ||
      lmdb_buf_putc(&r->string_to_sign, '/') != 0 ||
      lmdb_buf_append(&r->string_to_sign, service.ptr, service.len) != 0 ||
      lmdb_buf_puts(&r->string_to_sign, "/" TERMINATOR "\n") != 0 ||
      lmdb_buf_append(&r->string_to_sign, digest_hex, 64) != 0)
    goto cleanup;

  /* signature, with the key cached per scope */
  if (!key_matches(s, date, region, service) &&
      derive_key(s, date, region, service) != 0)
    goto cleanup;
  if (lmdb_hmac_sha256_with(s->md, s->key, sizeof s->key, r->string_to_sign.data,
                            r->string_to_sign.len, digest) != 0)
    goto cleanup;
  lmdb_hex(digest, sizeof digest, r->signature);

  if (lmdb_buf_reserve(&r->authorization, 128 + s->access_key_id.len + region.len +
                       service.len + r->signed_headers.len) != 0 ||
      lmdb_buf_puts(&r->authorization, ALGORITHM " Credential=") != 0 ||
      lmdb_buf_append(&r->authorization, s->access_key_id.data, s->access_key_id.len) != 0 ||
      lmdb_buf_putc(&r->authorization, '/') != 0 ||
      lmdb_buf_append(&r->authorization, date, 8) != 0 ||
      lmdb_buf_putc(&r->authorization, '/') != 0 ||
      lmdb_buf_append(&r->authorization, region.ptr, region.len) != 0 ||
      lmdb_buf_putc(&r->authorization, '/') != 0 ||
      lmdb_buf_append(&r->authorization, service.ptr, service.len) != 0 ||
      lmdb_buf_puts(&r->authorization, "/" TERMINATOR ", SignedHeaders=") != 0 ||
      lmdb_buf_append(&r->authorization, r->signed_headers.data, r->signed_headers.len) != 0 ||
      lmdb_buf_puts(&r->authorization, ", Signature=") != 0 ||
      lmdb_buf_append(&r->authorization, r->signature, 64) != 0)
    goto cleanup;
  rc = 0;

cleanup:
  if (h != stack_headers)
    free(h);
  lmdb_cleanse(digest, sizeof digest);
  if (rc != 0) {
    result_reset(r);                      /* no half-built output */
    if (r->error == NULL)
      r->error = "a header value holds NUL or a line break that is not a fold "
                 "(or memory ran out)";
  }
  return rc;
}

/* }============================================================ */
