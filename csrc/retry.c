/*
** retry.c -- error classification, backoff with full jitter, the retry
** quota, HTTP dates and clock-skew correction.
**
** Follows the converging "retries 2026" behaviour of the AWS SDKs for
** DynamoDB (see reference/reliability.md §1): 4 attempts, 25 ms base,
** 1 s throttle base, 20 s cap, a 500-token quota (14/5/14) and
** x-amz-retry-after honoured within [t, t + 5 s].
*/
#include <string.h>

#include "lmdb_private.h"

/* ------------------------------------------------------------ helpers */

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

static char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static lmdb_str trim(lmdb_str s) {
  while (s.len > 0 && is_space(s.ptr[0])) {
    s.ptr++;
    s.len--;
  }
  while (s.len > 0 && is_space(s.ptr[s.len - 1]))
    s.len--;
  return s;
}

static int str_eq(lmdb_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

/* Case-insensitive substring search; s need not be NUL-terminated. */
static int contains_ci(lmdb_str s, const char *needle) {
  size_t n = strlen(needle), i, j;
  if (n > s.len)
    return 0;
  for (i = 0; i + n <= s.len; i++) {
    for (j = 0; j < n; j++)
      if (lower(s.ptr[i + j]) != lower(needle[j]))
        break;
    if (j == n)
      return 1;
  }
  return 0;
}

/* ------------------------------------------------------- error codes */

lmdb_str lmdb_error_code(lmdb_str type) {
  lmdb_str s = type;
  size_t i;
  if (s.ptr == NULL) {
    s.ptr = "";
    s.len = 0;
    return s;
  }
  /* Cut at the first ':' before looking for '#', as smithy's
  ** sanitizeErrorCode does, so a '#' inside the trailing URI can never
  ** be mistaken for the namespace separator. */
  for (i = 0; i < s.len; i++)
    if (s.ptr[i] == ':') {
      s.len = i;
      break;
    }
  for (i = s.len; i > 0; i--)
    if (s.ptr[i - 1] == '#') {
      s.ptr += i;
      s.len -= i;
      break;
    }
  return trim(s);
}

/* Codes are compared without an "Exception" suffix, because the wild has
** both forms (RequestTimeout and RequestTimeoutException, Throttling and
** ThrottlingException...). */
static lmdb_str code_base(lmdb_str code) {
  static const char suffix[] = "Exception";
  size_t n = sizeof suffix - 1;
  code = trim(code);
  if (code.len > n && memcmp(code.ptr + code.len - n, suffix, n) == 0)
    code.len -= n;
  return code;
}

static int code_in(lmdb_str base, const char *const *list) {
  for (; *list; list++)
    if (str_eq(base, *list))
      return 1;
  return 0;
}

/* DynamoDB's throttling codes plus the other throttle codes the SDKs share
** (aws-sdk-go-v2 DefaultThrottleErrorCodes), all without the suffix. */
static const char *const throttle_codes[] = {
  "ProvisionedThroughputExceeded", "Throttling", "RequestLimitExceeded",
  "LimitExceeded", "TransactionInProgress", "Throttled", "RequestThrottled",
  "TooManyRequests", "SlowDown", "BandwidthLimitExceeded",
  "PriorRequestNotComplete", "EC2Throttled", NULL
};

static const char *const transient_codes[] = {
  "InternalServerError", "InternalFailure", "ServiceUnavailable",
  "ReplicatedWriteConflict", "RequestTimeout", NULL
};

/* Codes that mean "the signing time is off" (the newer cross-SDK clock
** skew spec). AccessDeniedException is deliberately left out: for
** DynamoDB it is an IAM denial far more often than a skew. */
static const char *const skew_codes[] = {
  "SignatureDoesNotMatch", "AuthFailure", "RequestTimeTooSkewed", NULL
};

static int is_skew(lmdb_str base, lmdb_str message) {
  if (code_in(base, skew_codes))
    return 1;
  /* InvalidSignature is also raised for a wrong secret: only the messages
  ** about the signing window point at the clock. */
  return str_eq(base, "InvalidSignature") &&
         (contains_ci(message, "Signature expired") ||
          contains_ci(message, "Signature not yet current"));
}

lmdb_retry_class lmdb_retry_classify(long http_status, lmdb_str code, lmdb_str message,
                                     lmdb_net_status net, int crc_mismatch) {
  lmdb_str base;
  lmdb_retry_class c;

  switch (net) {
  case LMDB_NET_OK:
    break;
  case LMDB_NET_NOT_SENT:
  case LMDB_NET_AMBIGUOUS:
    return LMDB_RETRY_TRANSIENT;
  case LMDB_NET_TIMEOUT:
    return LMDB_RETRY_TIMEOUT;
  default:                       /* TOO_LARGE, CLOSED, OTHER: retrying won't help */
    return LMDB_RETRY_FATAL;
  }

  if (code.ptr == NULL)
    code.len = 0;
  if (message.ptr == NULL) {
    message.ptr = "";
    message.len = 0;
  }
  base = code.len ? code_base(code) : code;

  if (http_status >= 200 && http_status <= 299)
    c = LMDB_RETRY_OK;           /* a success carries no error code to read */
  else if (base.len && code_in(base, throttle_codes))
    c = LMDB_RETRY_THROTTLE;
  else if (http_status == 429)
    c = LMDB_RETRY_THROTTLE;
  else if (base.len && code_in(base, transient_codes))
    c = LMDB_RETRY_TRANSIENT;
  else if (http_status == 500 || http_status == 502 || http_status == 503 ||
           http_status == 504 || http_status == 509)
    c = LMDB_RETRY_TRANSIENT;
  else if (base.len && is_skew(base, message))
    c = LMDB_RETRY_SKEW;
  else
    c = LMDB_RETRY_FATAL;        /* other 4xx, 1xx/3xx, or no status at all */

  /* A body that fails its checksum cannot be trusted, so neither a success
  ** nor the error it claims to carry: retry it (botocore's crc32 policy). */
  if (crc_mismatch && (c == LMDB_RETRY_OK || c == LMDB_RETRY_FATAL))
    c = LMDB_RETRY_TRANSIENT;
  return c;
}

/* ------------------------------------------------------------ policy */

void lmdb_retry_policy_init(lmdb_retry_policy *p) {
  p->max_attempts = 4;
  p->base_ms = 25;
  p->throttle_base_ms = 1000;
  p->cap_ms = 20000;
  p->quota_max = 500;
  p->quota = 500;
  p->cost_transient = 14;
  p->cost_throttle = 5;
  p->cost_timeout = 14;
  p->last_cost = 0;
  p->clock_offset_ms = 0;
}

/* min(base * 2^(attempt-1), cap) without pow(): doubling stops at the cap,
** so a huge attempt number neither overflows nor loops long. */
static double backoff_ceiling(double base, double cap, int attempt) {
  double t = base;
  int i;
  if (!(t > 0))
    return 0;
  for (i = 1; i < attempt && t < cap; i++)
    t *= 2;
  return t < cap ? t : cap;
}

int lmdb_retry_decide(lmdb_retry_policy *p, int attempt, lmdb_retry_class c,
                      double retry_after_ms, double rand01,
                      double *delay_ms, const char **why) {
  int cost;
  double base, t;

  *delay_ms = 0;
  *why = NULL;
  if (attempt < 1)
    attempt = 1;

  if (c == LMDB_RETRY_OK || c == LMDB_RETRY_FATAL ||
      (c != LMDB_RETRY_THROTTLE && c != LMDB_RETRY_TRANSIENT &&
       c != LMDB_RETRY_TIMEOUT && c != LMDB_RETRY_SKEW)) {
    *why = "not_retryable";
    goto refuse;
  }
  if (attempt >= p->max_attempts) {
    *why = "max_attempts";
    goto refuse;
  }

  if (c == LMDB_RETRY_SKEW) {
    /* One immediate re-sign with the corrected clock; no quota is spent
    ** because a skew is not a sign of an overloaded service. */
    if (attempt != 1) {
      *why = "not_retryable";
      goto refuse;
    }
    p->last_cost = 0;
    return 1;
  }

  cost = c == LMDB_RETRY_THROTTLE ? p->cost_throttle
       : c == LMDB_RETRY_TIMEOUT  ? p->cost_timeout
       : p->cost_transient;
  if (cost < 0)
    cost = 0;
  if (p->quota_max > 0) {
    if (p->quota < cost) {
      *why = "quota";
      goto refuse;
    }
    p->quota -= cost;
    p->last_cost = cost;
  } else {
    p->last_cost = 0;
  }

  /* Full jitter. rand01 = 1 is accepted so tests can pin the ceiling. */
  if (!(rand01 >= 0))
    rand01 = 0;                  /* also catches NaN */
  if (rand01 > 1)
    rand01 = 1;
  base = c == LMDB_RETRY_THROTTLE ? p->throttle_base_ms : p->base_ms;
  t = rand01 * backoff_ceiling(base, p->cap_ms, attempt);

  /* x-amz-retry-after: the server's hint wins within [t, t + 5 s]. */
  if (retry_after_ms >= 0) {     /* false for NaN */
    double hint = retry_after_ms < t + 5000 ? retry_after_ms : t + 5000;
    if (hint > t)
      t = hint;
  }
  *delay_ms = t;
  return 1;

refuse:
  /* The call is over: its next success is a fresh first attempt. */
  p->last_cost = 0;
  return 0;
}

void lmdb_retry_on_success(lmdb_retry_policy *p) {
  if (p->quota_max <= 0) {
    p->last_cost = 0;
    return;
  }
  /* Refund the last retry's cost, or +1 for a success without retries. */
  p->quota += p->last_cost > 0 ? p->last_cost : 1;
  if (p->quota > p->quota_max)
    p->quota = p->quota_max;
  p->last_cost = 0;
}

/* --------------------------------------------------------- HTTP dates */

static const char *const wkday_short[7] = {
  "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char *const wkday_long[7] = {
  "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"
};
static const char *const month_names[12] = {
  "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* A cursor over the date text; every matcher fails on the end of input. */
typedef struct {
  const char *p, *end;
} cursor;

static int match_lit(cursor *c, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
    return 0;
  c->p += n;
  return 1;
}

static int match_word(cursor *c, const char *const *words, int nwords) {
  int i;
  for (i = 0; i < nwords; i++) {
    size_t n = strlen(words[i]);
    /* The longest names come first in no list, so require the word to end
    ** at a non-letter to keep "Sun" from matching "Sunday". */
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, words[i], n) == 0 &&
        (c->p + n == c->end || !((c->p[n] >= 'a' && c->p[n] <= 'z') ||
                                 (c->p[n] >= 'A' && c->p[n] <= 'Z')))) {
      c->p += n;
      return i;
    }
  }
  return -1;
}

/* Exactly n digits. */
static int match_digits(cursor *c, int n, int *out) {
  int v = 0, i;
  if (c->end - c->p < n)
    return 0;
  for (i = 0; i < n; i++) {
    char d = c->p[i];
    if (d < '0' || d > '9')
      return 0;
    v = v * 10 + (d - '0');
  }
  c->p += n;
  *out = v;
  return 1;
}

static int match_time(cursor *c, int *h, int *m, int *s) {
  return match_digits(c, 2, h) && match_lit(c, ":") &&
         match_digits(c, 2, m) && match_lit(c, ":") && match_digits(c, 2, s);
}

static int valid_fields(int year, int mon, int day, int h, int mi, int s) {
  if (mon < 0 || mon > 11 || day < 1)
    return 0;
  /* 60 s is a leap second: valid in an HTTP date, counted as the next minute. */
  return day <= lmdb_days_in_month(year, mon + 1) && h <= 23 && mi <= 59 && s <= 60;
}

int lmdb_parse_http_date(lmdb_str str, int64_t *epoch_s) {
  cursor c;
  int year = 0, mon = -1, day = 0, h = 0, mi = 0, s = 0;
  lmdb_str t;

  if (str.ptr == NULL)
    return -1;
  t = trim(str);
  c.p = t.ptr;
  c.end = t.ptr + t.len;

  if (match_word(&c, wkday_short, 7) >= 0) {
    if (match_lit(&c, ", ")) {
      /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
      if (!(match_digits(&c, 2, &day) && match_lit(&c, " ") &&
            (mon = match_word(&c, month_names, 12)) >= 0 && match_lit(&c, " ") &&
            match_digits(&c, 4, &year) && match_lit(&c, " ") &&
            match_time(&c, &h, &mi, &s) && match_lit(&c, " GMT")))
        return -1;
    } else if (match_lit(&c, " ")) {
      /* asctime: Sun Nov  6 08:49:37 1994 (day padded with a space) */
      if ((mon = match_word(&c, month_names, 12)) < 0 || !match_lit(&c, " "))
        return -1;
      if (match_lit(&c, " ")) {
        if (!match_digits(&c, 1, &day))
          return -1;
      } else if (!match_digits(&c, 2, &day)) {
        return -1;
      }
      if (!(match_lit(&c, " ") && match_time(&c, &h, &mi, &s) &&
            match_lit(&c, " ") && match_digits(&c, 4, &year)))
        return -1;
    } else {
      return -1;
    }
  } else if (match_word(&c, wkday_long, 7) >= 0) {
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT. Two-digit years below 70
    ** are read as 20xx: a pure function has no "now" for RFC 7231's
    ** 50-year rule, and servers stopped sending this form long ago. */
    if (!(match_lit(&c, ", ") && match_digits(&c, 2, &day) && match_lit(&c, "-") &&
          (mon = match_word(&c, month_names, 12)) >= 0 && match_lit(&c, "-") &&
          match_digits(&c, 2, &year) && match_lit(&c, " ") &&
          match_time(&c, &h, &mi, &s) && match_lit(&c, " GMT")))
      return -1;
    year += year < 70 ? 2000 : 1900;
  } else {
    return -1;
  }
  if (c.p != c.end || !valid_fields(year, mon, day, h, mi, s))
    return -1;
  *epoch_s = lmdb_days_from_civil(year, mon + 1, day) * 86400 +
             (int64_t)h * 3600 + (int64_t)mi * 60 + s;
  return 0;
}

/* -------------------------------------------------------- clock skew */

#define SKEW_THRESHOLD_MS  (4 * 60 * 1000)
#define MAX_RTT_MS         (15 * 60 * 1000)
/* Bounds that keep the millisecond arithmetic far from int64 overflow
** (about 292 000 years either way). */
#define MAX_EPOCH_S        ((int64_t)1 << 42)
#define MAX_EPOCH_MS       ((int64_t)1 << 52)

int lmdb_retry_observe_clock(lmdb_retry_policy *p, int64_t server_epoch_s,
                             int64_t sent_ms, int64_t received_ms, int has_age) {
  int64_t server_ms, mid, skew;

  /* A cached response (Age) carries an old Date; a slow round trip leaves
  ** too wide a window to place the server's clock. */
  if (has_age)
    return 0;
  if (server_epoch_s < 0 || server_epoch_s > MAX_EPOCH_S ||
      sent_ms < 0 || sent_ms > MAX_EPOCH_MS ||
      received_ms < sent_ms || received_ms > MAX_EPOCH_MS)
    return 0;
  if (received_ms - sent_ms > MAX_RTT_MS)
    return 0;
  if (p->clock_offset_ms > MAX_EPOCH_MS || p->clock_offset_ms < -MAX_EPOCH_MS)
    p->clock_offset_ms = 0;      /* never trust an absurd stored offset */

  server_ms = server_epoch_s * 1000;
  mid = sent_ms + (received_ms - sent_ms) / 2;
  skew = server_ms - (mid + p->clock_offset_ms);
  if (skew <= SKEW_THRESHOLD_MS && skew >= -SKEW_THRESHOLD_MS)
    return 0;
  p->clock_offset_ms = server_ms - mid;
  return 1;
}
