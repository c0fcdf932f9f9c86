/*
** credentials.c -- the AWS shared credentials and config files.
**
** An INI dialect read the way botocore reads it (configparser plus
** build_profile_map): "[section]" headers, "key = value" lines, full-line
** '#'/';' comments, no inline comments, and lines indented deeper than
** the property before them continue it (the nested "s3 =" style). The
** files may come from a less trusted party (AWS_CONFIG_FILE), so sizes are
** capped, NUL bytes refused, and errors never quote the text: a line can
** hold a secret.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_private.h"

#define MAX_FILE_BYTES ((size_t)1 << 20)

enum { KIND_CREDENTIALS, KIND_CONFIG };

static const char *kind_name(int kind) {
  return kind == KIND_CONFIG ? "config" : "credentials";
}

static int is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\f' || c == '\v';
}

static lmdb_str trim(const char *p, size_t n) {
  lmdb_str s;
  while (n > 0 && is_blank(*p)) {
    p++;
    n--;
  }
  while (n > 0 && is_blank(p[n - 1]))
    n--;
  s.ptr = p;
  s.len = n;
  return s;
}

static int str_eq(lmdb_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

/* ----------------------------------------------------------- reading */

/* Grows a buffer that may hold secrets without realloc, which would leave
** an unwiped copy behind in freed memory. */
static int secure_grow(lmdb_buf *b, size_t need) {
  size_t cap;
  char *p;
  if (need <= b->cap)
    return 0;
  cap = b->cap ? b->cap : 4096;
  while (cap < need)
    cap *= 2;
  p = (char *)malloc(cap);
  if (p == NULL)
    return -1;
  if (b->len)
    memcpy(p, b->data, b->len);
  p[b->len] = '\0';
  if (b->data) {
    lmdb_cleanse(b->data, b->cap);
    free(b->data);
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

/* Reads the whole file into b. Returns 1 when read, 0 when the file does
** not exist (not an error), -1 with err set otherwise. */
static int read_file(const char *path, int kind, lmdb_buf *b, char *err, size_t errlen) {
  FILE *f;
  int rc = -1;

  f = fopen(path, "rb");
  if (f == NULL) {
    if (errno == ENOENT || errno == ENOTDIR)
      return 0;
    snprintf(err, errlen, "%s: cannot open %s: %s", kind_name(kind), path, strerror(errno));
    return -1;
  }
  for (;;) {
    size_t got, want;
    /* One byte past the cap tells "exactly 1 MiB" from "larger". */
    if (secure_grow(b, b->len + 4096 + 1) != 0) {
      snprintf(err, errlen, "%s: out of memory", kind_name(kind));
      goto done;
    }
    want = b->cap - b->len - 1;
    if (want > MAX_FILE_BYTES + 1 - b->len)
      want = MAX_FILE_BYTES + 1 - b->len;
    got = fread(b->data + b->len, 1, want, f);
    b->len += got;
    b->data[b->len] = '\0';
    if (b->len > MAX_FILE_BYTES) {
      snprintf(err, errlen, "%s: %s is larger than 1 MiB", kind_name(kind), path);
      goto done;
    }
    if (got == 0) {
      if (ferror(f)) {     /* e.g. EISDIR: fopen succeeds on a directory */
        snprintf(err, errlen, "%s: cannot read %s: %s", kind_name(kind), path,
                 strerror(errno));
        goto done;
      }
      break;
    }
  }
  rc = 1;
done:
  fclose(f);
  return rc;
}

/* ----------------------------------------------------------- parsing */

typedef struct parse_state {
  lmdb_profile *p;
  int kind;
  lmdb_str name;         /* the profile wanted */
  int in_section;        /* a header has been seen */
  int selected;          /* the current section is the wanted profile */
  int have_property;     /* the current section has a property: indents continue it */
  size_t prop_indent;    /* indentation of that property's line */
  int primary_token;     /* aws_session_token was set in this file */
} parse_state;

/* Which profile a section header names, per file kind. In the config file
** "[profile x]" (any run of blanks after "profile") names x and "[default]"
** names default; other sections (sso-session, services...) name none. */
static int section_selects(const parse_state *st, lmdb_str sec) {
  if (st->kind == KIND_CREDENTIALS)
    return sec.len == st->name.len && memcmp(sec.ptr, st->name.ptr, sec.len) == 0;
  if (str_eq(sec, "default"))
    return str_eq(st->name, "default");
  if (sec.len > 7 && memcmp(sec.ptr, "profile", 7) == 0 && is_blank(sec.ptr[7])) {
    lmdb_str n = trim(sec.ptr + 7, sec.len - 7);
    return n.len == st->name.len && memcmp(n.ptr, st->name.ptr, n.len) == 0;
  }
  return 0;
}

/* Replaces a field's value. The old one is wiped first: it may be a
** secret, and the new value may not cover it. */
static int set_field(lmdb_buf *f, lmdb_str v) {
  lmdb_buf_free_secure(f);
  return lmdb_buf_append(f, v.ptr, v.len);
}

/* Every field of lmdb_profile and the key that sets it. */
static const struct {
  const char *key;
  size_t off;
} fields[] = {
  { "aws_access_key_id", offsetof(lmdb_profile, access_key_id) },
  { "aws_secret_access_key", offsetof(lmdb_profile, secret_access_key) },
  { "aws_session_token", offsetof(lmdb_profile, session_token) },
  { "region", offsetof(lmdb_profile, region) },
  { "endpoint_url", offsetof(lmdb_profile, endpoint_url) },
  { "ca_bundle", offsetof(lmdb_profile, ca_bundle) },
  { "max_attempts", offsetof(lmdb_profile, max_attempts) },
  { "role_arn", offsetof(lmdb_profile, role_arn) },
  { "credential_source", offsetof(lmdb_profile, credential_source) },
  { "source_profile", offsetof(lmdb_profile, source_profile) },
  { "credential_process", offsetof(lmdb_profile, credential_process) },
  { "sso_start_url", offsetof(lmdb_profile, sso_start_url) },
  { "sso_session", offsetof(lmdb_profile, sso_session) },
  { "web_identity_token_file", offsetof(lmdb_profile, web_identity_token_file) },
};
#define NFIELDS (sizeof fields / sizeof fields[0])

static lmdb_buf *field_at(lmdb_profile *p, size_t i) {
  return (lmdb_buf *)(void *)((char *)p + fields[i].off);
}

static lmdb_buf *field_for(lmdb_profile *p, lmdb_str key) {
  size_t i;
  for (i = 0; i < NFIELDS; i++)
    if (str_eq(key, fields[i].key))
      return field_at(p, i);
  return NULL;
}

static int store(parse_state *st, lmdb_str key, lmdb_str value) {
  lmdb_buf *f;
  /* aws_security_token is the legacy name; aws_session_token wins over it
  ** in the same file whatever the order, as in botocore. */
  if (str_eq(key, "aws_security_token")) {
    if (st->primary_token)
      return 0;
    return set_field(&st->p->session_token, value);
  }
  if (str_eq(key, "aws_session_token"))
    st->primary_token = 1;
  f = field_for(st->p, key);
  return f ? set_field(f, value) : 0;
}

/* Parses one line (without its terminator). Returns 0, or -1 with *msg
** set to a static description (never the line's text). */
static int parse_line(parse_state *st, char *line, size_t n, const char **msg) {
  size_t indent = 0, i;
  lmdb_str t;

  for (i = 0; i < n; i++)
    if (line[i] == '\0' || line[i] == '\r') {
      *msg = line[i] ? "stray carriage return" : "NUL byte";
      return -1;
    }
  while (indent < n && is_blank(line[indent]))
    indent++;
  t = trim(line, n);
  if (t.len == 0 || t.ptr[0] == '#' || t.ptr[0] == ';')
    return 0;

  /* Deeper than the last property: its continuation or a nested
  ** sub-property ("s3 =" then indented keys). Not a setting we read. */
  if (st->have_property && indent > st->prop_indent && t.ptr[0] != '[')
    return 0;

  if (t.ptr[0] == '[') {
    const char *close = memchr(t.ptr, ']', t.len);
    lmdb_str sec, rest;
    if (close == NULL) {
      *msg = "section header has no closing ']'";
      return -1;
    }
    rest = trim(close + 1, t.len - (size_t)(close + 1 - t.ptr));
    if (rest.len && rest.ptr[0] != '#' && rest.ptr[0] != ';') {
      *msg = "text after a section header";
      return -1;
    }
    sec = trim(t.ptr + 1, (size_t)(close - t.ptr - 1));
    if (sec.len == 0) {
      *msg = "empty section name";
      return -1;
    }
    st->in_section = 1;
    st->have_property = 0;
    st->selected = section_selects(st, sec);
    if (st->selected) {
      if (st->kind == KIND_CONFIG)
        st->p->found_in_config = 1;
      else
        st->p->found_in_credentials = 1;
    }
    return 0;
  }

  {
    const char *eq = memchr(t.ptr, '=', t.len);
    lmdb_str key, value;
    if (eq == NULL) {
      *msg = "line is not 'key = value'";
      return -1;
    }
    key = trim(t.ptr, (size_t)(eq - t.ptr));
    value = trim(eq + 1, t.len - (size_t)(eq + 1 - t.ptr));
    if (key.len == 0) {
      *msg = "property has an empty name";
      return -1;
    }
    if (!st->in_section) {
      *msg = "property outside a section";
      return -1;
    }
    /* Keys are case-insensitive; lowercase them in place. */
    {
      char *k = line + (key.ptr - line);
      for (i = 0; i < key.len; i++)
        if (k[i] >= 'A' && k[i] <= 'Z')
          k[i] = (char)(k[i] - 'A' + 'a');
    }
    st->have_property = 1;
    st->prop_indent = indent;
    if (st->selected && store(st, key, value) != 0) {
      *msg = "out of memory";
      return -1;
    }
  }
  return 0;
}

static int parse_file(lmdb_buf *text, int kind, lmdb_str name, lmdb_profile *p,
                      char *err, size_t errlen) {
  parse_state st;
  char *s = text->data, *end = text->data + text->len;
  size_t lineno = 0;
  const char *msg = NULL;

  memset(&st, 0, sizeof st);
  st.p = p;
  st.kind = kind;
  st.name = name;
  if (text->len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
    s += 3;                      /* UTF-8 byte order mark */
  while (s < end) {
    char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
    lineno++;
    if (n > 0 && s[n - 1] == '\r')
      n--;                       /* CRLF */
    if (parse_line(&st, s, n, &msg) != 0) {
      snprintf(err, errlen, "%s:%lu: %s", kind_name(kind), (unsigned long)lineno, msg);
      return -1;
    }
    if (nl == NULL)
      break;
    s = nl + 1;
  }
  return 0;
}

/* ------------------------------------------------------------ public */

void lmdb_profile_init(lmdb_profile *p) {
  size_t i;
  for (i = 0; i < NFIELDS; i++)
    lmdb_buf_init(field_at(p, i));
  p->found_in_credentials = 0;
  p->found_in_config = 0;
}

void lmdb_profile_free(lmdb_profile *p) {
  size_t i;
  /* Every field is wiped, not only the secrets: cheap, and a misplaced
  ** secret (a key pasted on the wrong line) is covered too. */
  for (i = 0; i < NFIELDS; i++)
    lmdb_buf_free_secure(field_at(p, i));
  p->found_in_credentials = 0;
  p->found_in_config = 0;
}

int lmdb_profile_load(const char *credentials_path, const char *config_path,
                      const char *name, lmdb_profile *p, char *err, size_t errlen) {
  lmdb_buf text;
  lmdb_str pname;
  char dummy[1];
  int rc = -1, r;

  if (err == NULL || errlen == 0) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = '\0';
  lmdb_buf_init(&text);
  pname.ptr = (name && *name) ? name : "default";
  pname.len = strlen(pname.ptr);

  /* Config first, then credentials over it: the credentials file wins
  ** key by key, as botocore merges them. */
  if (config_path && *config_path) {
    r = read_file(config_path, KIND_CONFIG, &text, err, errlen);
    if (r < 0 || (r > 0 && parse_file(&text, KIND_CONFIG, pname, p, err, errlen) != 0))
      goto done;
  }
  lmdb_buf_free_secure(&text);
  if (credentials_path && *credentials_path) {
    r = read_file(credentials_path, KIND_CREDENTIALS, &text, err, errlen);
    if (r < 0 ||
        (r > 0 && parse_file(&text, KIND_CREDENTIALS, pname, p, err, errlen) != 0))
      goto done;
  }
  rc = 0;
done:
  lmdb_buf_free_secure(&text);
  if (rc != 0) {
    /* Leave no half-read profile behind. */
    lmdb_profile_free(p);
    lmdb_profile_init(p);
  }
  return rc;
}
