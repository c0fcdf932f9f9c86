/*
** endpoint.c -- strict endpoint URL parsing, region names, header values
** and the container-credentials allow-list.
**
** The parser accepts less than curl does on purpose: whatever it accepts,
** curl must read the same way (same host, same port), so that the host we
** sign and allow-list is the host curl connects to.
*/
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "lmdb_private.h"

#define MAX_URL_LEN   4096
#define MAX_HOST_LEN  253

static int is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

static int is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int eq_ci(const char *p, size_t n, const char *lit) {
  size_t i;
  if (strlen(lit) != n)
    return 0;
  for (i = 0; i < n; i++)
    if (lower(p[i]) != lower(lit[i]))
      return 0;
  return 1;
}

/* Parses a canonical dotted quad (four decimal parts 0..255, no leading
** zeros) into out[4]. Returns 1 on success. */
static int parse_dotted_quad(const char *p, size_t n, unsigned char out[4]) {
  size_t i = 0;
  int part;
  for (part = 0; part < 4; part++) {
    unsigned v = 0;
    size_t start = i;
    if (part > 0) {
      if (i >= n || p[i] != '.')
        return 0;
      start = ++i;
    }
    while (i < n && is_digit(p[i]) && i - start < 3)
      v = v * 10 + (unsigned)(p[i++] - '0');
    if (i == start || v > 255 || (p[start] == '0' && i - start > 1))
      return 0;
    out[part] = (unsigned char)v;
  }
  return i == n;
}

/* True when the host's last label is a number (decimal, or 0x hex), as
** in the WHATWG "ends in a number" rule. curl reads such hosts as IPv4 in
** any of its forms ("127.1", "0x7f.1", "0177.0.0.1", "2130706433") and
** rewrites them; we accept only the canonical dotted quad, where curl's
** reading and ours cannot differ. */
static int ends_in_number(const char *p, size_t n) {
  size_t start, i;
  if (n > 0 && p[n - 1] == '.')
    n--;                         /* "127.0.0.1." is no safer a name */
  start = n;
  while (start > 0 && p[start - 1] != '.')
    start--;
  if (start == n)
    return 0;
  i = start;
  if (n - i >= 2 && p[i] == '0' && (p[i + 1] == 'x' || p[i + 1] == 'X')) {
    for (i += 2; i < n; i++)
      if (!is_hex(p[i]))
        return 0;
    return 1;
  }
  for (; i < n; i++)
    if (!is_digit(p[i]))
      return 0;
  return 1;
}

/* Host name characters: letters, digits, '-', '_' (docker service names)
** and '.', with no empty label except an optional trailing dot. */
static int valid_hostname(const char *p, size_t n) {
  size_t i, label = 0;
  if (n == 0 || n > MAX_HOST_LEN + 1)
    return 0;
  for (i = 0; i < n; i++) {
    char c = p[i];
    if (c == '.') {
      if (label == 0)
        return 0;
      label = 0;
    } else if (is_alpha(c) || is_digit(c) || c == '-' || c == '_') {
      if (++label > 63)
        return 0;
    } else {
      return 0;
    }
  }
  return 1;
}

/* inet_pton needs a NUL-terminated copy; IPv6 text is at most 45 bytes. */
static int parse_ipv6(const char *p, size_t n, unsigned char out[16]) {
  char tmp[64];
  size_t i;
  if (n == 0 || n >= sizeof tmp)
    return 0;
  for (i = 0; i < n; i++)          /* no zone ids ("%eth0"): not for endpoints */
    if (!(is_hex(p[i]) || p[i] == ':' || p[i] == '.'))
      return 0;
  memcpy(tmp, p, n);
  tmp[n] = '\0';
  return inet_pton(AF_INET6, tmp, out) == 1;
}

/* request: a URL a transport sends to (its query kept apart, its fragment dropped), else an
** endpoint (neither allowed). */
static int url_parse(lmdb_str url, lmdb_url *out, const char **why, int request) {
  const char *p, *end, *auth, *auth_end, *host, *host_end, *hash;
  size_t i;
  int port = 0, ipv6 = 0;
  unsigned char addr[16];

  memset(out, 0, sizeof *out);
  *why = NULL;
  if (url.ptr == NULL || url.len == 0) {
    *why = "empty URL";
    return -1;
  }
  if (url.len > MAX_URL_LEN) {
    *why = "URL too long";
    return -1;
  }
  if (request && (hash = memchr(url.ptr, '#', url.len)) != NULL)
    url.len = (size_t)(hash - url.ptr);          /* a fragment never goes on the wire */
  /* Reject anything that could split a header or confuse a parser before
  ** looking at the structure: controls, space, DEL, non-ASCII, backslash
  ** (some parsers read it as '/'), query and fragment. */
  for (i = 0; i < url.len; i++) {
    unsigned char c = (unsigned char)url.ptr[i];
    if (c == '\r' || c == '\n' || c == '\0') {
      *why = "URL contains CR, LF or NUL";
      return -1;
    }
    if (c <= 0x20 || c >= 0x7f) {
      *why = "URL contains a space, control or non-ASCII character";
      return -1;
    }
    if (c == '\\') {
      *why = "URL contains a backslash";
      return -1;
    }
    if (c == '?' && !request) {
      *why = "URL has a query string";
      return -1;
    }
    if (c == '#') {
      *why = "URL has a fragment";
      return -1;
    }
  }

  p = url.ptr;
  end = url.ptr + url.len;
  if (request) {
    const char *q = memchr(url.ptr, '?', url.len);
    if (q != NULL) {
      out->query.ptr = q + 1;
      out->query.len = (size_t)(end - q - 1);
      end = q;
    }
  }
  if (url.len >= 8 && eq_ci(p, 8, "https://")) {
    out->scheme.ptr = "https";
    out->scheme.len = 5;
    p += 8;
  } else if (url.len >= 7 && eq_ci(p, 7, "http://")) {
    out->scheme.ptr = "http";
    out->scheme.len = 4;
    p += 7;
  } else {
    *why = "URL scheme must be http or https";
    return -1;
  }

  auth = p;
  while (p < end && *p != '/')
    p++;
  auth_end = p;
  if (memchr(auth, '@', (size_t)(auth_end - auth)) != NULL) {
    *why = "URL must not contain user information";
    return -1;
  }

  /* Host. */
  if (auth < auth_end && *auth == '[') {
    host = auth + 1;
    host_end = memchr(host, ']', (size_t)(auth_end - host));
    if (host_end == NULL) {
      *why = "unterminated IPv6 address";
      return -1;
    }
    if (!parse_ipv6(host, (size_t)(host_end - host), addr)) {
      *why = "invalid IPv6 address";
      return -1;
    }
    ipv6 = 1;
    p = host_end + 1;
  } else {
    host = auth;
    host_end = auth;
    while (host_end < auth_end && *host_end != ':')
      host_end++;
    if (host_end == host) {
      *why = "URL has an empty host";
      return -1;
    }
    if (!valid_hostname(host, (size_t)(host_end - host))) {
      *why = "invalid host name";
      return -1;
    }
    if (ends_in_number(host, (size_t)(host_end - host)) &&
        !parse_dotted_quad(host, (size_t)(host_end - host), addr)) {
      *why = "numeric host is not a canonical IPv4 address";
      return -1;
    }
    p = host_end;
  }

  /* Port. */
  if (p < auth_end) {
    const char *d;
    long v = 0;
    if (*p != ':') {
      *why = "junk after the host";
      return -1;
    }
    d = ++p;
    if (d == auth_end) {
      *why = "empty port";
      return -1;
    }
    for (; p < auth_end; p++) {
      if (!is_digit(*p) || p - d >= 5) {
        *why = "invalid port";
        return -1;
      }
      v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535) {
      *why = "port out of range";
      return -1;
    }
    port = (int)v;
  }

  /* Path: percent escapes must be complete. */
  for (p = auth_end; p < end; p++)
    if (*p == '%' && (end - p < 3 || !is_hex(p[1]) || !is_hex(p[2]))) {
      *why = "invalid percent escape in the path";
      return -1;
    }

  out->host.ptr = host;
  out->host.len = (size_t)(host_end - host);
  out->port = port;
  out->ipv6 = ipv6;
  if (auth_end < end) {
    out->path.ptr = auth_end;
    out->path.len = (size_t)(end - auth_end);
  } else {
    out->path.ptr = "/";
    out->path.len = 1;
  }
  return 0;
}

int lmdb_url_parse(lmdb_str url, lmdb_url *out, const char **why) {
  return url_parse(url, out, why, 0);
}

int lmdb_url_parse_request(lmdb_str url, lmdb_url *out, const char **why) {
  return url_parse(url, out, why, 1);
}

int lmdb_url_host_header(const lmdb_url *u, lmdb_buf *out) {
  int default_port;
  if (u->ipv6) {
    /* curl rewrites IPv6 hosts to inet_ntop's compressed lowercase form. */
    unsigned char addr[16];
    char text[INET6_ADDRSTRLEN];
    if (!parse_ipv6(u->host.ptr, u->host.len, addr) ||
        inet_ntop(AF_INET6, addr, text, sizeof text) == NULL)
      return -1;
    if (lmdb_buf_putc(out, '[') != 0 || lmdb_buf_puts(out, text) != 0 ||
        lmdb_buf_putc(out, ']') != 0)
      return -1;
  } else if (lmdb_buf_append(out, u->host.ptr, u->host.len) != 0) {
    return -1;
  }
  /* Like curl, leave out the port when it is the scheme's default. */
  default_port = (u->scheme.len == 5) ? 443 : 80;
  if (u->port != 0 && u->port != default_port)
    return lmdb_buf_printf(out, ":%d", u->port);
  return 0;
}

int lmdb_region_valid(lmdb_str region) {
  size_t i;
  int all_digits = 1;
  /* ^(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$ */
  if (region.ptr == NULL || region.len < 1 || region.len > 63)
    return 0;
  if (region.ptr[0] == '-' || region.ptr[region.len - 1] == '-')
    return 0;
  for (i = 0; i < region.len; i++) {
    char c = region.ptr[i];
    if (!(is_alpha(c) || is_digit(c) || c == '-'))
      return 0;
    if (!is_digit(c))
      all_digits = 0;
  }
  return !all_digits;
}

int lmdb_header_value_safe(lmdb_str v) {
  size_t i;
  if (v.ptr == NULL)
    return v.len == 0;
  for (i = 0; i < v.len; i++)
    if (v.ptr[i] == '\r' || v.ptr[i] == '\n' || v.ptr[i] == '\0')
      return 0;
  return 1;
}

int lmdb_container_uri_allowed(lmdb_str url) {
  lmdb_url u;
  const char *why;
  unsigned char a[16];
  static const unsigned char v6_loopback[16] = { 0,0,0,0, 0,0,0,0, 0,0,0,0, 0,0,0,1 };
  static const unsigned char v6_eks[16] = {
    0xfd,0x00, 0x0e,0xc2, 0,0, 0,0, 0,0, 0,0, 0,0, 0x00,0x23
  };

  if (lmdb_url_parse(url, &u, &why) != 0)
    return 0;
  if (u.scheme.len == 5)         /* https: TLS authenticates the host */
    return 1;
  /* Plain http only to hosts that cannot be reached off the machine or
  ** the task's link-local network. The literal host is checked (no DNS),
  ** so a name that merely resolves to loopback is refused. */
  if (u.ipv6) {
    if (!parse_ipv6(u.host.ptr, u.host.len, a))
      return 0;
    return memcmp(a, v6_loopback, 16) == 0 || memcmp(a, v6_eks, 16) == 0;
  }
  if (eq_ci(u.host.ptr, u.host.len, "localhost"))
    return 1;
  if (!parse_dotted_quad(u.host.ptr, u.host.len, a))
    return 0;
  return a[0] == 127 ||
         (a[0] == 169 && a[1] == 254 && a[2] == 170 && (a[3] == 2 || a[3] == 23));
}
