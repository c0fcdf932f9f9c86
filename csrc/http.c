/*
** http.c -- the curl transport: libcurl's multi interface, one multi handle
** per lmdb_http, pooled easy handles and request structs so keep-alive
** connections (held by the multi's connection cache) and buffers are reused.
**
** Transfers are driven through curl_multi_socket_action: libcurl tells us
** (socket and timer callbacks) which sockets it waits on and when its timer
** is due, so an embedding host can wait on those sockets in its own event
** loop (lmdb_http_sockets, lmdb_http_timeout) instead of in ours.
**
** Nothing here calls Lua, sleeps or blocks except poll(2) inside
** lmdb_http_poll. Callbacks only record state or append to buffers owned by
** the request. An lmdb_http and its requests belong to one thread at a time.
*/
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* strerror_r, pthread_once */
#endif

#include "lmdb_private.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HTTP_DEFAULT_MAX_BODY   ((size_t)64 << 20)  /* 64 MiB, reliability 7.4 */
#define HTTP_MAX_HEADER_BYTES   ((size_t)64 << 10)  /* all header blocks of one response */
#define HTTP_POOL_EASY          32   /* idle easy handles kept */
#define HTTP_POOL_REQ           32   /* idle request structs kept */
#define HTTP_KEEP_BODY_CAP      ((size_t)1 << 20)   /* larger buffers are not pooled */
#define HTTP_MAX_METHOD         16

/* Which of our caps made a callback return 0 (r->cap_hit). */
enum { CAP_NONE = 0, CAP_BODY, CAP_HEADERS };

struct lmdb_http_request {
  lmdb_http *h;                   /* NULL once the transport is freed */
  lmdb_http_request *prev, *next; /* h->live: every unreleased request */
  CURL *easy;                     /* non-NULL while in the multi */
  char *easy_cfg;                 /* its configuration key (see pooled_easy) */
  int done;
  int cap_hit;                    /* CAP_*: our size cap aborted the transfer */
  int oom;                        /* a callback could not allocate */
  lmdb_net_status net;
  long status;
  size_t max_body;
  long read_timeout_ms;           /* 0: none */
  int64_t read_deadline_ms;       /* monotonic; pushed back by every byte received */
  int active;                     /* bytes arrived since the deadline was last moved */
  size_t header_bytes;            /* raw header bytes seen, 1xx blocks included */
  lmdb_buf req_body;              /* copy of the request body (POSTFIELDS) */
  lmdb_buf req_headers;           /* header lines, each NUL-terminated */
  struct curl_slist *nodes;       /* our own list cells pointing into req_headers */
  size_t nodes_cap, nnodes;
  lmdb_buf body;                  /* response body */
  lmdb_buf headers;               /* final header block: "Name: value\r\n" lines */
  char errbuf[CURL_ERROR_SIZE];   /* CURLOPT_ERRORBUFFER */
  char msg[CURL_ERROR_SIZE + 64]; /* net message */
};

/* An idle easy handle and the configuration it was last set up with
** (submit_config's key; NULL: unknown, reset it before use). */
typedef struct pooled_easy {
  CURL *e;
  char *cfg;
} pooled_easy;

/* A socket libcurl waits on, and for what (CURL_POLL_IN/OUT/INOUT). */
typedef struct http_socket {
  curl_socket_t fd;
  int what;
} http_socket;

struct lmdb_http {
  CURLM *multi;
  int inflight;                   /* requests in the multi, not yet done */
  http_socket *socks;             /* kept current by on_socket */
  int nsocks, socks_cap;
  struct pollfd *pfds;            /* scratch for poll(2), socks_cap long */
  int64_t timer_deadline_ms;      /* libcurl's timer (monotonic); -1: none */
  lmdb_http_request *live;
  pooled_easy easy_pool[HTTP_POOL_EASY];
  int neasy;
  lmdb_http_request *req_pool;    /* singly linked through ->next */
  int nreq;
};

/* ------------------------------------------------------------ helpers */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

/* Once per process; never curl_global_cleanup: other code in the host may
** use libcurl or OpenSSL after us. */
static void global_init(void) {
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void set_err(char *err, size_t errlen, const char *msg) {
  if (err && errlen > 0)
    snprintf(err, errlen, "%s", msg);
}

static int ascii_lower(int c) {
  return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int name_eq(const char *a, size_t alen, const char *b, size_t blen) {
  size_t i;
  if (alen != blen)
    return 0;
  for (i = 0; i < alen; i++)
    if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
      return 0;
  return 1;
}

static int is_ws(char c) {
  return c == ' ' || c == '\t';
}

/* A control byte other than a tab (CR, LF, NUL, ..., DEL): refused in a request header
** line, made a space in a response's. */
static int is_control(unsigned char c) {
  return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* Whether p[0..n) holds a control byte: eight bytes a step, since every request header and
** response header line goes through it. */
static int has_control(const char *p, size_t n) {
  size_t i = 0, k;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = lmdb_load8(p + i);
    if (lmdb_bytes_below(x, 0x20) | lmdb_bytes_equal(x, 0x7f)) {   /* look closer: a tab is fine */
      for (k = i; k < i + 8; k++)
        if (is_control((unsigned char)p[k]))
          return 1;
    }
  }
  for (; i < n; i++)
    if (is_control((unsigned char)p[i]))
      return 1;
  return 0;
}

/* Length of the header name in line, or 0 when it is not "Name: value"
** (curl's "Name;" form for an empty value is accepted too); *line_len gets
** the line's length. Rejects CR, LF and other control characters so no
** caller can inject a header. */
static size_t header_name_len(const char *line, size_t *line_len) {
  const unsigned char *p = (const unsigned char *)line;
  size_t n = 0, len;
  while (lmdb_is_tchar(p[n]))
    n++;
  if (n == 0 || (p[n] != ':' && p[n] != ';'))
    return 0;
  len = n + 1 + strlen(line + n + 1);
  if (has_control(line + n + 1, len - n - 1))
    return 0;
  *line_len = len;
  return n;
}

/* ------------------------------------------------------------- pools */

/* An idle handle (its configuration key goes to *cfg), or a new one. */
static CURL *easy_get(lmdb_http *h, char **cfg) {
  *cfg = NULL;
  if (h->neasy > 0) {
    pooled_easy *p = &h->easy_pool[--h->neasy];
    *cfg = p->cfg;
    return p->e;
  }
  return curl_easy_init();
}

/* The handle was removed from the multi; it keeps its options (so the next
** request with the same configuration sets only what differs, see submit).
** The pointers it holds into the finished request are never used by libcurl
** while the handle is idle, and are set anew before its next transfer. */
static void easy_put(lmdb_http *h, CURL *e, char *cfg) {
  if (h && h->neasy < HTTP_POOL_EASY) {
    h->easy_pool[h->neasy].e = e;
    h->easy_pool[h->neasy].cfg = cfg;
    h->neasy++;
  }
  else {
    curl_easy_cleanup(e);
    free(cfg);
  }
}

/* Gives r's handle back to the pool with its configuration key. */
static void easy_put_req(lmdb_http *h, lmdb_http_request *r) {
  easy_put(h, r->easy, r->easy_cfg);
  r->easy = NULL;
  r->easy_cfg = NULL;
}

static void req_wipe(lmdb_http_request *r) {
  /* Request headers hold the signature and session token; response
  ** bodies may hold credentials (container/IMDS endpoints). */
  if (r->req_headers.data)
    lmdb_cleanse(r->req_headers.data, r->req_headers.len);
  if (r->body.data)
    lmdb_cleanse(r->body.data, r->body.len);
}

static void req_destroy(lmdb_http_request *r) {
  req_wipe(r);
  lmdb_buf_free(&r->req_body);
  lmdb_buf_free(&r->req_headers);
  lmdb_buf_free(&r->body);
  lmdb_buf_free(&r->headers);
  free(r->nodes);
  free(r->easy_cfg);
  free(r);
}

static lmdb_http_request *req_get(lmdb_http *h) {
  lmdb_http_request *r = h->req_pool;
  if (r) {
    h->req_pool = r->next;
    h->nreq--;
  }
  else {
    r = calloc(1, sizeof *r);
    if (!r)
      return NULL;
    lmdb_buf_init(&r->req_body);
    lmdb_buf_init(&r->req_headers);
    lmdb_buf_init(&r->body);
    lmdb_buf_init(&r->headers);
  }
  r->h = h;
  r->prev = r->next = NULL;
  r->easy = NULL;
  r->easy_cfg = NULL;
  r->active = 0;
  r->done = 0;
  r->cap_hit = CAP_NONE;
  r->oom = 0;
  r->net = LMDB_NET_OK;
  r->status = 0;
  r->header_bytes = 0;
  r->errbuf[0] = '\0';
  r->msg[0] = '\0';
  return r;
}

/* r is unlinked and has no easy handle. Keeps it for the next submit when
** the transport is alive and the pool has room; big buffers are dropped. */
static void req_put(lmdb_http *h, lmdb_http_request *r) {
  if (!h || h->nreq >= HTTP_POOL_REQ) {
    req_destroy(r);
    return;
  }
  req_wipe(r);
  lmdb_buf_reset(&r->req_headers);
  lmdb_buf_reset(&r->headers);
  if (r->body.cap > HTTP_KEEP_BODY_CAP)
    lmdb_buf_free(&r->body);
  else
    lmdb_buf_reset(&r->body);
  if (r->req_body.cap > HTTP_KEEP_BODY_CAP)
    lmdb_buf_free(&r->req_body);
  else
    lmdb_buf_reset(&r->req_body);
  r->h = NULL;
  r->next = h->req_pool;
  h->req_pool = r;
  h->nreq++;
}

static void live_link(lmdb_http *h, lmdb_http_request *r) {
  r->prev = NULL;
  r->next = h->live;
  if (h->live)
    h->live->prev = r;
  h->live = r;
}

static void live_unlink(lmdb_http *h, lmdb_http_request *r) {
  if (r->prev)
    r->prev->next = r->next;
  else
    h->live = r->next;
  if (r->next)
    r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

/* --------------------------------------------------------- callbacks */

static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bytes arrived: the read timeout starts over. Only noted here (a clock read
** per callback adds up); the next look at the deadlines moves it. */
static void touch(lmdb_http_request *r) {
  r->active = 1;
}

/* Moves r's read deadline past the bytes that arrived since the last look. */
static void refresh_deadline(lmdb_http_request *r, int64_t now) {
  if (r->active) {
    r->active = 0;
    if (r->read_timeout_ms > 0)
      r->read_deadline_ms = now + r->read_timeout_ms;
  }
}

/* Body bytes. libcurl 7.88's MAXFILESIZE stops a transfer only when the
** size is announced up front, never a chunked one, so the cap is ours. */
static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  lmdb_http_request *r = ud;
  size_t len = size * n;   /* size is always 1 */
  touch(r);
  if (len > r->max_body - r->body.len) {
    r->cap_hit = CAP_BODY;
    return 0;
  }
  if (lmdb_buf_append(&r->body, p, len) != 0) {
    r->oom = 1;
    return 0;
  }
  return len;
}

/* A header byte as kept: control bytes (a stray CR, NUL, ...) would break the "\r\n"
** framing of the block, so they become spaces. */
static char header_byte(unsigned char c) {
  return (char)(is_control(c) ? ' ' : c);
}

/* One header line per call, status lines and the blank line included. We
** keep only the last block (after 1xx or a proxy's CONNECT answer comes the
** real one), normalised to "name: value\r\n" lines: the name lowercased (every
** lookup is case-insensitive, and the Lua table is keyed so), both parts
** trimmed, control bytes made spaces. */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  lmdb_http_request *r = ud;
  size_t len = size * n, total = len, i;
  lmdb_buf *b = &r->headers;

  touch(r);
  r->header_bytes += len;
  if (r->header_bytes > HTTP_MAX_HEADER_BYTES) {
    r->cap_hit = CAP_HEADERS;
    return 0;
  }
  while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n'))
    len--;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    lmdb_buf_reset(b);   /* a new response begins */
    return total;
  }
  if (len == 0)
    return total;
  if (is_ws(p[0])) {
    /* obsolete line folding: continues the previous value */
    size_t start;
    while (len > 0 && is_ws(p[0])) {
      p++;
      len--;
    }
    while (len > 0 && is_ws(p[len - 1]))
      len--;
    if (b->len < 2 || len == 0)
      return total;
    b->len -= 2;   /* drop the previous line's CRLF */
    start = b->len;
    if (lmdb_buf_putc(b, ' ') || lmdb_buf_append(b, p, len) || lmdb_buf_append(b, "\r\n", 2))
      goto oom;
    for (i = start; i + 2 < b->len; i++)
      b->data[i] = header_byte((unsigned char)b->data[i]);
  }
  else {
    /* one reservation, one pass over the bytes: this runs for every line of every response */
    size_t nlen, vlen;
    const char *v, *colon = memchr(p, ':', len);
    char *out;
    if (!colon || colon == p)
      return total;   /* not a header line: ignore it */
    nlen = (size_t)(colon - p);
    while (nlen > 0 && is_ws(p[nlen - 1]))
      nlen--;
    v = colon + 1;
    vlen = len - (size_t)(v - p);
    while (vlen > 0 && is_ws(v[0])) {
      v++;
      vlen--;
    }
    while (vlen > 0 && is_ws(v[vlen - 1]))
      vlen--;
    if (lmdb_buf_reserve(b, nlen + vlen + 4) != 0)
      goto oom;
    out = b->data + b->len;
    for (i = 0; i < nlen; i++)
      out[i] = (char)ascii_lower((unsigned char)header_byte((unsigned char)p[i]));
    out += nlen;
    *out++ = ':';
    *out++ = ' ';
    if (has_control(v, vlen)) {
      for (i = 0; i < vlen; i++)
        out[i] = header_byte((unsigned char)v[i]);
    }
    else
      memcpy(out, v, vlen);
    out += vlen;
    *out++ = '\r';
    *out++ = '\n';
    *out = '\0';
    b->len = (size_t)(out - b->data);
  }
  return total;
oom:
  r->oom = 1;
  return 0;
}

/* -------------------------------------------------------- completion */

/* Copies curl's text into r->msg, replacing control bytes so the message
** is one printable line. */
static void set_msg(lmdb_http_request *r, const char *text) {
  size_t i;
  snprintf(r->msg, sizeof r->msg, "%s", text);
  for (i = 0; r->msg[i]; i++)
    if ((unsigned char)r->msg[i] < 0x20 || (unsigned char)r->msg[i] == 0x7f)
      r->msg[i] = ' ';
}

/* strerror_r comes in two flavours; glibc gives the GNU one under _GNU_SOURCE. */
static const char *errno_text(int e, char *buf, size_t n) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(e, buf, n);
#else
  return strerror_r(e, buf, n) == 0 ? buf : "unknown error";
#endif
}

/* "connect to 127.0.0.1:1234 failed: Connection refused". The host comes
** from the URL, never from a header. */
static void connect_msg(lmdb_http_request *r, CURL *e, CURLcode rc) {
  char text[sizeof r->msg];
  char why[128];
  const char *what = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
  char *host = NULL, *port = NULL, *eff = NULL;
  long oserr = 0;
  CURLU *u = curl_url();

  if (curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &oserr) == CURLE_OK && oserr > 0)
    what = errno_text((int)oserr, why, sizeof why);
  if (u && curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff &&
      curl_url_set(u, CURLUPART_URL, eff, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
    snprintf(text, sizeof text, "connect to %s:%s failed: %s", host, port, what);
    set_msg(r, text);
  }
  else
    set_msg(r, r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
}

/*
** CURLcode -> lmdb_net_status. The question the retry layer needs answered
** is "could the server have acted on this request?". libcurl counts every
** request byte it wrote in CURLINFO_REQUEST_SIZE (the first send of headers
** and inline body) and CURLINFO_SIZE_UPLOAD_T (the rest), and request_size
** is NOT reset when libcurl silently re-sends on a fresh connection after a
** reused one died (Curl_retry_request; checked in 7.88.1's transfer.c and
** getinfo.c: only Curl_pretransfer zeroes it). So:
**   sent = request_size > 0 || size_upload > 0
**   - resolve/connect/TLS-handshake/CA failures: NOT_SENT, unless sent (that
**     only happens after libcurl's hidden retry: then AMBIGUOUS);
**   - OPERATION_TIMEDOUT: TIMEOUT if sent, else NOT_SENT (a connect, DNS or
**     TLS-handshake timeout: no request byte left this host);
**   - SEND_ERROR, RECV_ERROR, GOT_NOTHING, PARTIAL_FILE: AMBIGUOUS if sent
**     (the server may have applied it), else NOT_SENT;
**   - WRITE_ERROR from our body/header cap, FILESIZE_EXCEEDED: TOO_LARGE;
**   - anything else (bad URL, protocol, OOM, ...): OTHER.
*/
static lmdb_net_status map_code(lmdb_http_request *r, CURL *e, CURLcode rc) {
  curl_off_t up = 0;
  long reqsize = 0;
  int sent;

  if (rc == CURLE_OK)
    return LMDB_NET_OK;
  if (curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &reqsize) != CURLE_OK)
    reqsize = 1;   /* unknown: assume the worst */
  if (curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &up) != CURLE_OK)
    up = 1;
  sent = reqsize > 0 || up > 0;
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:   /* == CURLE_SSL_CACERT */
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
    return sent ? LMDB_NET_AMBIGUOUS : LMDB_NET_NOT_SENT;
  case CURLE_OPERATION_TIMEDOUT:
    return sent ? LMDB_NET_TIMEOUT : LMDB_NET_NOT_SENT;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
    return sent ? LMDB_NET_AMBIGUOUS : LMDB_NET_NOT_SENT;
  case CURLE_FILESIZE_EXCEEDED:
    return LMDB_NET_TOO_LARGE;
  case CURLE_WRITE_ERROR:
    return r->cap_hit ? LMDB_NET_TOO_LARGE : LMDB_NET_OTHER;
  default:
    return LMDB_NET_OTHER;
  }
}

static void finish(lmdb_http_request *r, CURL *e, CURLcode rc) {
  char text[sizeof r->msg];
  long status = 0;

  r->done = 1;
  r->net = map_code(r, e, rc);
  if (r->net == LMDB_NET_OK) {
    if (curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
      status = 0;
    r->status = status;
    r->msg[0] = '\0';
    return;
  }
  r->status = 0;   /* a failed transfer never looks like a response */
  if (r->net == LMDB_NET_TOO_LARGE) {
    if (r->cap_hit == CAP_HEADERS)
      snprintf(text, sizeof text, "response headers over %zu bytes", HTTP_MAX_HEADER_BYTES);
    else
      snprintf(text, sizeof text, "response body over %zu bytes", r->max_body);
    set_msg(r, text);
  }
  else if (rc == CURLE_WRITE_ERROR && r->oom)
    set_msg(r, "out of memory reading the response");
  else if (rc == CURLE_COULDNT_CONNECT)
    connect_msg(r, e, rc);
  else
    set_msg(r, r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
}

/* Drains finished transfers. Returns how many finished. */
static int drain(lmdb_http *h) {
  CURLMsg *m;
  int left, n = 0;
  while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
    lmdb_http_request *r;
    char *priv = NULL;
    CURL *e = m->easy_handle;
    CURLcode rc = m->data.result;
    if (m->msg != CURLMSG_DONE)
      continue;
    if (curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv) != CURLE_OK || !priv)
      continue;   /* cannot happen: every handle we add carries its request */
    r = (lmdb_http_request *)(void *)priv;
    finish(r, e, rc);
    curl_multi_remove_handle(h->multi, e);
    h->inflight--;
    easy_put_req(h, r);   /* m is invalid from here on */
    n++;
  }
  return n;
}

/* ------------------------------------------------- sockets and timer */

static int socket_index(const lmdb_http *h, curl_socket_t fd) {
  int i;
  for (i = 0; i < h->nsocks; i++)
    if (h->socks[i].fd == fd)
      return i;
  return -1;
}

/* CURLMOPT_SOCKETFUNCTION: libcurl starts, changes or stops waiting on fd.
** Returning -1 on OOM makes libcurl fail the transfers on that socket. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp) {
  lmdb_http *h = ud;
  int i = socket_index(h, fd);
  (void)e;
  (void)sockp;
  if (what == CURL_POLL_REMOVE) {
    if (i >= 0)
      h->socks[i] = h->socks[--h->nsocks];
    return 0;
  }
  if (i < 0) {
    if (h->nsocks == h->socks_cap) {
      int cap = h->socks_cap ? h->socks_cap * 2 : 8;
      http_socket *ns = realloc(h->socks, (size_t)cap * sizeof *ns);
      struct pollfd *np;
      if (!ns)
        return -1;
      h->socks = ns;
      np = realloc(h->pfds, (size_t)cap * sizeof *np);
      if (!np)
        return -1;
      h->pfds = np;
      h->socks_cap = cap;
    }
    i = h->nsocks++;
    h->socks[i].fd = fd;
  }
  h->socks[i].what = what;
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer, 0 means "act now". */
static int on_timer(CURLM *m, long timeout_ms, void *ud) {
  lmdb_http *h = ud;
  (void)m;
  h->timer_deadline_ms = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
  return 0;
}

/* Runs libcurl's timeout handling when its timer is due at now. */
static int run_timer(lmdb_http *h, int64_t now) {
  int running;
  if (h->timer_deadline_ms < 0 || now < h->timer_deadline_ms)
    return 0;
  h->timer_deadline_ms = -1;   /* on_timer sets the next one */
  return curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running) == CURLM_OK
             ? 0 : -1;
}

/* Waits at most wait_ms for activity on libcurl's sockets and hands what
** happened to libcurl. Returns -1 on a multi error or a failed poll(2). */
static int wait_sockets(lmdb_http *h, int wait_ms) {
  int i, n = h->nsocks, ready, running;
  for (i = 0; i < n; i++) {
    h->pfds[i].fd = (int)h->socks[i].fd;
    h->pfds[i].events = (short)(((h->socks[i].what & CURL_POLL_IN) ? POLLIN : 0) |
                                ((h->socks[i].what & CURL_POLL_OUT) ? POLLOUT : 0));
    h->pfds[i].revents = 0;
  }
  ready = poll(n ? h->pfds : NULL, (nfds_t)n, wait_ms);
  if (ready < 0)
    return errno == EINTR ? 0 : -1;
  /* socket_action may change h->socks (on_socket): pfds is our snapshot */
  for (i = 0; i < n && ready > 0; i++) {
    short re = h->pfds[i].revents;
    int mask = 0;
    if (!re)
      continue;
    ready--;
    if (re & POLLIN)
      mask |= CURL_CSELECT_IN;
    if (re & POLLOUT)
      mask |= CURL_CSELECT_OUT;
    if (re & (POLLERR | POLLHUP | POLLNVAL))
      mask |= CURL_CSELECT_ERR;
    if (curl_multi_socket_action(h->multi, (curl_socket_t)h->pfds[i].fd, mask, &running) !=
        CURLM_OK)
      return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- API */

lmdb_http *lmdb_http_new(void) {
  lmdb_http *h;
  if (pthread_once(&global_once, global_init) != 0 || global_rc != CURLE_OK)
    return NULL;
  h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->timer_deadline_ms = -1;
  h->multi = curl_multi_init();
  if (!h->multi) {
    free(h);
    return NULL;
  }
  if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
      curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, (void *)h) != CURLM_OK ||
      curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
      curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, (void *)h) != CURLM_OK) {
    curl_multi_cleanup(h->multi);
    free(h);
    return NULL;
  }
  return h;
}

void lmdb_http_free(lmdb_http *h) {
  lmdb_http_request *r, *next;
  if (!h)
    return;
  for (r = h->live; r; r = next) {
    next = r->next;
    if (r->easy) {
      curl_multi_remove_handle(h->multi, r->easy);
      curl_easy_cleanup(r->easy);
      r->easy = NULL;
      r->done = 1;
      r->net = LMDB_NET_CLOSED;
      r->status = 0;
      set_msg(r, "transport closed");
    }
    r->h = NULL;   /* lmdb_http_release will just free it */
    r->prev = r->next = NULL;
  }
  h->live = NULL;
  h->inflight = 0;
  while (h->neasy > 0) {
    h->neasy--;
    curl_easy_cleanup(h->easy_pool[h->neasy].e);
    free(h->easy_pool[h->neasy].cfg);
  }
  while ((r = h->req_pool) != NULL) {
    h->req_pool = r->next;
    req_destroy(r);
  }
  curl_multi_cleanup(h->multi);
  free(h->socks);
  free(h->pfds);
  free(h);
}

/* Copies headers into r as NUL-terminated lines plus our own curl_slist
** cells pointing at them: one buffer and one array, reused by pooled
** requests, instead of two mallocs per header with curl_slist_append.
** libcurl only reads the list (it never frees or changes it). */
static int copy_headers(lmdb_http_request *r, const char *const *headers, size_t nheaders,
                        int posts_body, char *err, size_t errlen) {
  static const char expect[] = "Expect:";       /* never wait for 100-continue */
  static const char no_ctype[] = "Content-Type:"; /* no form-urlencoded default */
  size_t i, n = 0, off, need = nheaders + 2;
  int have_expect = 0, have_ctype = 0;
  char msg[96];

  r->nnodes = 0;
  if (nheaders > ((size_t)-1) / sizeof *r->nodes - 2)
    goto oom;
  for (i = 0; i < nheaders; i++) {
    size_t nl, len = 0;
    if (!headers[i] || (nl = header_name_len(headers[i], &len)) == 0) {
      /* never echo the line: it may be Authorization or a token */
      snprintf(msg, sizeof msg, "header %zu is not a valid \"Name: value\" line", i + 1);
      set_err(err, errlen, msg);
      return -1;
    }
    if (name_eq(headers[i], nl, "expect", 6))
      have_expect = 1;
    else if (name_eq(headers[i], nl, "content-type", 12))
      have_ctype = 1;
    if (lmdb_buf_append(&r->req_headers, headers[i], len + 1))
      goto oom;
  }
  if (!have_expect && lmdb_buf_append(&r->req_headers, expect, sizeof expect))
    goto oom;
  if (posts_body && !have_ctype && lmdb_buf_append(&r->req_headers, no_ctype, sizeof no_ctype))
    goto oom;
  if (need > r->nodes_cap) {
    struct curl_slist *nn = realloc(r->nodes, need * sizeof *nn);
    if (!nn)
      goto oom;
    r->nodes = nn;
    r->nodes_cap = need;
  }
  /* pointers are taken only now: the appends above may move the buffer */
  for (off = 0; off < r->req_headers.len; n++) {
    r->nodes[n].data = r->req_headers.data + off;
    r->nodes[n].next = NULL;
    if (n > 0)
      r->nodes[n - 1].next = &r->nodes[n];
    off += strlen(r->req_headers.data + off) + 1;
  }
  r->nnodes = n;
  return 0;
oom:
  set_err(err, errlen, "out of memory");
  return -1;
}

static int check_opts(const lmdb_http_opts *o, char *err, size_t errlen) {
  if (o->connect_timeout_ms < 0 || o->read_timeout_ms < 0 || o->total_timeout_ms < 0) {
    set_err(err, errlen, "timeouts must be >= 0");
    return -1;
  }
  if (o->ca_bundle && (!o->ca_bundle[0] || strpbrk(o->ca_bundle, "\r\n"))) {
    set_err(err, errlen, "invalid ca_bundle path");
    return -1;
  }
  return 0;
}

static int check_method(const char *m) {
  size_t i;
  for (i = 0; m[i]; i++)
    if (i >= HTTP_MAX_METHOD || !lmdb_is_tchar((unsigned char)m[i]))
      return -1;
  return i > 0 ? 0 : -1;
}

static int check_url(const char *url) {
  const unsigned char *p = (const unsigned char *)url;
  if (!*p)
    return -1;
  for (; *p; p++)
    if (*p <= 0x20 || *p == 0x7f)
      return -1;
  return 0;
}

#define SETOPT(opt, val) \
  do { if (curl_easy_setopt(e, opt, val) != CURLE_OK) goto setopt_failed; } while (0)

static int configure(CURL *e, lmdb_http_request *r, const char *method, const char *url,
                     const lmdb_http_opts *o, int is_get, int is_head, int posts_body);

/* Appends s (n bytes) at *at when it fits below end; 0 when it does not. */
static int key_put(char **at, const char *end, const char *s, size_t n) {
  if ((size_t)(end - *at) <= n)
    return 0;
  memcpy(*at, s, n);
  *at += n;
  return 1;
}

/* Appends v in decimal, then a newline. */
static int key_num(char **at, const char *end, int64_t v) {
  char digits[24];
  int n = lmdb_fmt_int64(digits, v);
  digits[n++] = '\n';
  return key_put(at, end, digits, (size_t)n);
}

/* A request's configuration key (what the shared options of an easy handle depend on), as
** text in buf: its length, or 0 when it does not fit (the handle is then set up afresh).
** Written by hand: it is built for every request, and snprintf costs more than the rest. */
static size_t config_key(char *buf, size_t cap, const char *method, const char *url,
                         const lmdb_http_opts *o, int is_head, int posts_body,
                         size_t max_body) {
  char *at = buf, *end = buf + cap;
  const char *ca = o->ca_bundle ? o->ca_bundle : "";
  char flags[5];
  flags[0] = (char)('0' + (o->no_proxy != 0));
  flags[1] = (char)('0' + (o->forbid_reuse != 0));
  flags[2] = (char)('0' + (is_head != 0));
  flags[3] = (char)('0' + (posts_body != 0));
  flags[4] = '\n';
  if (!key_put(&at, end, method, strlen(method)) || !key_put(&at, end, "\n", 1) ||
      !key_put(&at, end, url, strlen(url)) || !key_put(&at, end, "\n", 1) ||
      !key_put(&at, end, ca, strlen(ca)) || !key_put(&at, end, "\n", 1) ||
      !key_num(&at, end, (int64_t)o->connect_timeout_ms) ||
      !key_num(&at, end, (int64_t)o->total_timeout_ms) ||
      !key_put(&at, end, flags, sizeof flags) ||
      !key_num(&at, end, (int64_t)max_body))
    return 0;
  *at = '\0';
  return (size_t)(at - buf);
}

lmdb_http_request *lmdb_http_submit(lmdb_http *h, const char *method, const char *url,
                                    const char *const *headers, size_t nheaders,
                                    const char *body, size_t body_len,
                                    const lmdb_http_opts *o, char *err, size_t errlen) {
  lmdb_http_opts zero;
  lmdb_http_request *r = NULL;
  CURL *e = NULL;
  int is_get, is_head, posts_body;

  if (!h || !h->multi) {
    set_err(err, errlen, "transport closed");
    return NULL;
  }
  if (!o) {
    memset(&zero, 0, sizeof zero);
    o = &zero;
  }
  if (!method || check_method(method) != 0) {
    set_err(err, errlen, "invalid HTTP method");
    return NULL;
  }
  if (!url || check_url(url) != 0) {
    set_err(err, errlen, "invalid URL (empty, or contains spaces or control characters)");
    return NULL;
  }
  if (body_len > 0 && !body) {
    set_err(err, errlen, "body is NULL");
    return NULL;
  }
  if (check_opts(o, err, errlen) != 0)
    return NULL;
  is_get = strcmp(method, "GET") == 0;
  is_head = strcmp(method, "HEAD") == 0;
  if (is_head && body_len > 0) {
    set_err(err, errlen, "HEAD request with a body");
    return NULL;
  }
  /* POST/PUT/PATCH always send Content-Length (0 when empty); others only
  ** when there is a body. */
  posts_body = body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
               strcmp(method, "PATCH") == 0;

  r = req_get(h);
  if (!r) {
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  r->max_body = o->max_response_bytes ? o->max_response_bytes : HTTP_DEFAULT_MAX_BODY;
  r->read_timeout_ms = o->read_timeout_ms;
  if (copy_headers(r, headers, nheaders, posts_body, err, errlen) != 0)
    goto fail;
  /* lmdb_buf keeps data NUL-terminated, so an empty body still has a
  ** valid pointer once reserved. */
  if (lmdb_buf_reserve(&r->req_body, body_len + 1) != 0 ||
      lmdb_buf_append(&r->req_body, body ? body : "", body_len) != 0) {
    set_err(err, errlen, "out of memory");
    goto fail;
  }
  e = easy_get(h, &r->easy_cfg);
  if (!e) {
    set_err(err, errlen, "curl_easy_init failed");
    goto fail;
  }
  /* The options shared by requests of one configuration are set only when the handle's last
  ** configuration differs (resetting and setting ~25 options costs more than the rest of a
  ** request's client-side work in libcurl); what varies per request is set after. */
  {
    char key[1024];
    size_t kn = config_key(key, sizeof key, method, url, o, is_head, posts_body, r->max_body);
    int same = kn > 0 && r->easy_cfg && strcmp(r->easy_cfg, key) == 0;
    if (!same) {
      free(r->easy_cfg);
      r->easy_cfg = NULL;
      curl_easy_reset(e);
      if (configure(e, r, method, url, o, is_get, is_head, posts_body) != 0) {
        set_err(err, errlen, "curl_easy_setopt failed (out of memory?)");
        goto fail;
      }
      if (kn > 0)
        r->easy_cfg = strdup(key);   /* NULL on OOM: just set up again next time */
    }
  }
  SETOPT(CURLOPT_PRIVATE, (void *)r);
  SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
  SETOPT(CURLOPT_HTTPHEADER, r->nnodes ? r->nodes : NULL);
  SETOPT(CURLOPT_WRITEDATA, (void *)r);
  SETOPT(CURLOPT_HEADERDATA, (void *)r);
  if (posts_body && !is_head) {
    /* POSTFIELDS, not the READFUNCTION upload path, for every method: the body is in
    ** memory and its size known, and libcurl can rewind it itself if it re-sends. */
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    SETOPT(CURLOPT_POSTFIELDS, r->req_body.data);
  }
  /* The read timeout is ours (see expire_reads): libcurl's LOW_SPEED
  ** check averages over a window of seconds and fires seconds late. */
  r->read_deadline_ms = o->read_timeout_ms > 0 ? monotonic_ms() + o->read_timeout_ms : 0;
  if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
    set_err(err, errlen, "curl_multi_add_handle failed");
    goto fail;
  }
  r->easy = e;
  live_link(h, r);
  h->inflight++;
  return r;

setopt_failed:
  set_err(err, errlen, "curl_easy_setopt failed (out of memory?)");
fail:
  if (e) {
    easy_put(h, e, NULL);   /* its options are unknown now: reset before use */
    free(r->easy_cfg);
    r->easy_cfg = NULL;
  }
  req_put(h, r);
  return NULL;
}

/* An environment variable's value, NULL when unset or empty (as libcurl's curl_getenv). */
static const char *env_value(const char *name) {
  const char *v = getenv(name);
  return v && v[0] ? v : NULL;
}

/* The proxy libcurl itself would take from the environment for url (detect_proxy): the
** scheme's lowercase <scheme>_proxy, then its uppercase form, except HTTP_PROXY (a CGI
** request can set it: "httpoxy"), then all_proxy and ALL_PROXY. */
static const char *env_proxy(const char *url) {
  const char *v;
  if (strlen(url) >= 8 && name_eq(url, 8, "https://", 8)) {
    v = env_value("https_proxy");
    if (!v)
      v = env_value("HTTPS_PROXY");
  }
  else
    v = env_value("http_proxy");
  if (!v)
    v = env_value("all_proxy");
  if (!v)
    v = env_value("ALL_PROXY");
  return v;
}

/* The options a request's handle shares with every request of its configuration (after
** curl_easy_reset; submit sets the per-request ones). 0, or -1 when libcurl refused one. */
static int configure(CURL *e, lmdb_http_request *r, const char *method, const char *url,
                     const lmdb_http_opts *o, int is_get, int is_head, int posts_body) {
  SETOPT(CURLOPT_URL, url);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500   /* 7.85: the bitmask form is deprecated */
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L);   /* a signed request never goes elsewhere */
  SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_HTTP_CONTENT_DECODING, 0L);   /* x-amz-crc32 covers wire bytes */
  SETOPT(CURLOPT_HEADEROPT, (long)CURLHEADER_SEPARATE);   /* proxies never see our headers */
  SETOPT(CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);   /* early stop on Content-Length */
  if (o->ca_bundle)
    SETOPT(CURLOPT_CAINFO, o->ca_bundle);
  if (o->connect_timeout_ms > 0)
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  if (o->total_timeout_ms > 0)
    SETOPT(CURLOPT_TIMEOUT_MS, o->total_timeout_ms);
  if (o->no_proxy)
    SETOPT(CURLOPT_NOPROXY, "*");
  else {
    /* The environment's proxy, read here (once per handle configuration), not by libcurl:
    ** with neither option set it calls getenv up to six times per transfer, each a walk
    ** over the whole environment. "" is "no proxy" / "no exceptions", as an unset variable. */
    const char *proxy = env_proxy(url), *noproxy = env_value("no_proxy");
    if (!noproxy)
      noproxy = env_value("NO_PROXY");
    SETOPT(CURLOPT_PROXY, proxy ? proxy : "");
    SETOPT(CURLOPT_NOPROXY, noproxy ? noproxy : "");
  }
  if (o->forbid_reuse)
    SETOPT(CURLOPT_FORBID_REUSE, 1L);
  if (is_head)
    SETOPT(CURLOPT_NOBODY, 1L);
  else if (posts_body) {
    /* the body is set per request (POSTFIELDS makes it a POST); CUSTOMREQUEST renames it */
    if (strcmp(method, "POST") != 0)
      SETOPT(CURLOPT_CUSTOMREQUEST, method);
  }
  else if (!is_get)
    SETOPT(CURLOPT_CUSTOMREQUEST, method);
  return 0;
setopt_failed:
  return -1;
}
#undef SETOPT

/* Ends every transfer that has received nothing for its read timeout by now, as
** LMDB_NET_TIMEOUT (NOT_SENT if no request byte left). Returns how many. */
static int expire_reads(lmdb_http *h, int64_t now) {
  lmdb_http_request *r;
  int n = 0;
  for (r = h->live; r; r = r->next) {
    CURL *e = r->easy;
    char text[96];
    if (!e || r->done || r->read_deadline_ms == 0)
      continue;
    refresh_deadline(r, now);
    /* strictly past: the clock counts whole ms, so "now == deadline" may
    ** still be up to 1 ms short of the timeout */
    if (now <= r->read_deadline_ms)
      continue;
    finish(r, e, CURLE_OPERATION_TIMEDOUT);
    snprintf(text, sizeof text, "read timeout: no data received for over %ld ms",
             r->read_timeout_ms);
    set_msg(r, text);
    curl_multi_remove_handle(h->multi, e);
    h->inflight--;
    easy_put_req(h, r);
    n++;
  }
  return n;
}

/* Milliseconds from now until the earliest read deadline (-1: none). */
static long next_read_deadline(lmdb_http *h, int64_t now) {
  lmdb_http_request *r;
  int64_t best = -1;
  for (r = h->live; r; r = r->next) {
    if (r->easy && !r->done && r->read_deadline_ms > 0) {
      int64_t left;
      refresh_deadline(r, now);
      left = r->read_deadline_ms >= now ? r->read_deadline_ms - now + 1 : 0;
      if (best < 0 || left < best)
        best = left;
    }
  }
  return (long)best;
}

/* Milliseconds from now until poll must run (-1: nothing pending). */
static long timeout_at(lmdb_http *h, int64_t now) {
  long t = -1, r;
  if (h->timer_deadline_ms >= 0)
    t = h->timer_deadline_ms > now ? (long)(h->timer_deadline_ms - now) : 0;
  r = next_read_deadline(h, now);
  if (r >= 0 && (t < 0 || r < t))
    t = r;
  return t;
}

int lmdb_http_poll(lmdb_http *h, int timeout_ms) {
  int64_t now;   /* read again only after a wait: a clock read per step adds up */
  if (!h || !h->multi)
    return -1;
  now = monotonic_ms();
  /* First what is ready now, without waiting. */
  if (run_timer(h, now) != 0 || wait_sockets(h, 0) != 0)
    return -1;
  /* Wait only when nothing finished yet: the caller wants completions as
  ** soon as they happen. */
  if (drain(h) + expire_reads(h, now) == 0 && timeout_ms > 0 && h->inflight > 0) {
    long t = timeout_at(h, now);
    int wait = timeout_ms;
    if (t >= 0 && t < wait)
      wait = (int)t;
    if (wait > 0 && wait_sockets(h, wait) != 0)
      return -1;
    now = monotonic_ms();
    if (run_timer(h, now) != 0)
      return -1;
    drain(h);
    expire_reads(h, now);
  }
  return h->inflight;
}

long lmdb_http_timeout(lmdb_http *h) {
  if (!h || !h->multi || h->inflight == 0)
    return -1;
  return timeout_at(h, monotonic_ms());
}

int lmdb_http_sockets(lmdb_http *h, lmdb_pollfd *out, int max) {
  int i;
  if (!h || !h->multi)
    return 0;
  for (i = 0; i < h->nsocks && i < max; i++) {
    out[i].fd = (int)h->socks[i].fd;
    out[i].events = ((h->socks[i].what & CURL_POLL_IN) ? LMDB_POLLIN : 0) |
                    ((h->socks[i].what & CURL_POLL_OUT) ? LMDB_POLLOUT : 0);
  }
  return h->nsocks;
}

int lmdb_http_running(lmdb_http *h) {
  return h ? h->inflight : 0;
}

int lmdb_http_done(const lmdb_http_request *r) {
  return r->done;
}

lmdb_net_status lmdb_http_net_status(const lmdb_http_request *r) {
  return r->net;
}

const char *lmdb_http_net_message(const lmdb_http_request *r) {
  return r->done && r->net != LMDB_NET_OK ? r->msg : "";
}

long lmdb_http_status(const lmdb_http_request *r) {
  return r->status;
}

lmdb_str lmdb_http_body(const lmdb_http_request *r) {
  lmdb_str s;
  s.ptr = r->body.data ? r->body.data : "";
  s.len = r->body.len;
  return s;
}

int lmdb_http_header(const lmdb_http_request *r, const char *name, lmdb_str *value) {
  const char *p = r->headers.data, *end = p ? p + r->headers.len : NULL;
  size_t nlen = strlen(name);
  while (p && p < end) {
    const char *eol = memchr(p, '\r', (size_t)(end - p));
    const char *colon;
    if (!eol)
      eol = end;   /* cannot happen: every stored line ends in CRLF */
    colon = memchr(p, ':', (size_t)(eol - p));
    if (colon && name_eq(p, (size_t)(colon - p), name, nlen)) {
      const char *v = colon + 1, *ve = eol;
      while (v < ve && is_ws(*v))
        v++;
      while (ve > v && is_ws(ve[-1]))
        ve--;
      value->ptr = v;
      value->len = (size_t)(ve - v);
      return 0;
    }
    if (end - eol < 2)
      break;
    p = eol + 2;
  }
  value->ptr = "";
  value->len = 0;
  return -1;
}

lmdb_str lmdb_http_headers_raw(const lmdb_http_request *r) {
  lmdb_str s;
  s.ptr = r->headers.data ? r->headers.data : "";
  s.len = r->headers.len;
  return s;
}

void lmdb_http_release(lmdb_http_request *r) {
  lmdb_http *h;
  if (!r)
    return;
  h = r->h;
  if (!h) {   /* transport already freed, or never attached */
    req_destroy(r);
    return;
  }
  if (r->easy) {
    curl_multi_remove_handle(h->multi, r->easy);
    easy_put_req(h, r);
    h->inflight--;
  }
  live_unlink(h, r);
  req_put(h, r);
}
