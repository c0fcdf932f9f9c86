/*
** paginate.c -- pagination state: the next request from the last response.
**
** DynamoDB's paginated operations carry their position in one top-level
** member of the request (the input token, e.g. ExclusiveStartKey) that the
** previous response handed back in another (the output token, e.g.
** LastEvaluatedKey). The table below follows botocore's paginators-1.json
** for DynamoDB, plus the operations it leaves out that page the same way.
**
** lmdb_paginate_next never decodes a whole text: it walks the response's
** top level with the JSON pull lexer, skipping every value it does not need,
** and copies the output token's raw JSON text byte for byte into the
** request, whose other bytes are left exactly as they were.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_private.h"

#define MAX_DEPTH 128

static const lmdb_paginator paginators[] = {
  /* operation, input token, output token, limit key, result key */
  { "ExecuteStatement", "NextToken", "NextToken", "Limit", "Items" },
  { "ListBackups", "ExclusiveStartBackupArn", "LastEvaluatedBackupArn", "Limit",
    "BackupSummaries" },
  { "ListContributorInsights", "NextToken", "NextToken", "MaxResults",
    "ContributorInsightsSummaries" },
  { "ListExports", "NextToken", "NextToken", "MaxResults", "ExportSummaries" },
  { "ListGlobalTables", "ExclusiveStartGlobalTableName", "LastEvaluatedGlobalTableName",
    "Limit", "GlobalTables" },
  { "ListImports", "NextToken", "NextToken", "PageSize", "ImportSummaryList" },
  { "ListTables", "ExclusiveStartTableName", "LastEvaluatedTableName", "Limit",
    "TableNames" },
  { "ListTagsOfResource", "NextToken", "NextToken", NULL, "Tags" },
  { "Query", "ExclusiveStartKey", "LastEvaluatedKey", "Limit", "Items" },
  { "Scan", "ExclusiveStartKey", "LastEvaluatedKey", "Limit", "Items" },
};

#define NPAGINATORS (sizeof paginators / sizeof paginators[0])

static int str_is(lmdb_str s, const char *z) {
  size_t n = strlen(z);
  return s.len == n && memcmp(s.ptr, z, n) == 0;
}

const lmdb_paginator *lmdb_paginator_find(lmdb_str operation) {
  size_t i;
  if (operation.ptr == NULL)
    return NULL;
  for (i = 0; i < NPAGINATORS; i++)
    if (str_is(operation, paginators[i].operation))
      return &paginators[i];
  return NULL;
}

const lmdb_paginator *lmdb_paginator_at(size_t i) {
  return i < NPAGINATORS ? &paginators[i] : NULL;
}

/* ------------------------------------------------------------ scanning */

typedef struct scan {
  lmdb_json_lexer *lx;
  const char *what;       /* "request" or "response", for messages */
  char *err;
  size_t errlen;
} scan;

static int scan_fail(scan *s, const char *msg) {
  if (s->errlen > 0)
    snprintf(s->err, s->errlen, "%s: %s", s->what, msg);
  return -1;
}

/* A lexer error, with the byte offset (1-based, as core.json_decode says). */
static int lex_fail(scan *s) {
  if (s->errlen > 0)
    snprintf(s->err, s->errlen, "%s: invalid JSON at byte %lu: %s", s->what,
             (unsigned long)s->lx->error_offset + 1,
             s->lx->error ? s->lx->error : "unexpected token");
  return -1;
}

/* Consumes the rest of the value whose first token is t. */
static int skip_value(scan *s, lmdb_json_token t) {
  return lmdb_json_skip(s->lx, t) == 0 ? 0 : lex_fail(s);
}

/* A JSON number token as a double (C locale digits: the lexer admits only
** JSON's grammar, so strtod sees nothing else). */
static double number_value(const lmdb_json_lexer *lx) {
  char tmp[64];
  if (lx->is_integer)
    return (double)lx->integer;
  if (lx->tok.len < sizeof tmp) {
    memcpy(tmp, lx->tok.ptr, lx->tok.len);
    tmp[lx->tok.len] = '\0';
    return strtod(tmp, NULL);
  } else {
    double v = 0;
    char *big = (char *)malloc(lx->tok.len + 1);
    if (big != NULL) {
      memcpy(big, lx->tok.ptr, lx->tok.len);
      big[lx->tok.len] = '\0';
      v = strtod(big, NULL);
      free(big);
    }
    return v;
  }
}

/* The members of one ConsumedCapacity object (its '{' already read): adds
** its CapacityUnits to info. */
static int read_capacity(scan *s, lmdb_page_info *info) {
  for (;;) {
    lmdb_json_token t = lmdb_json_next(s->lx);
    int units;
    if (t == LMDB_JSON_OBJECT_END)
      return 0;
    if (t != LMDB_JSON_STRING)
      return lex_fail(s);
    units = str_is(s->lx->tok, "CapacityUnits");
    t = lmdb_json_next(s->lx);
    if (units && t == LMDB_JSON_NUMBER) {
      info->capacity += number_value(s->lx);
      info->has_capacity = 1;
    } else if (skip_value(s, t) != 0) {
      return -1;
    }
  }
}

/* ConsumedCapacity: one object (Query, Scan, ExecuteStatement) or an array
** of them (summed). */
static int read_consumed(scan *s, lmdb_json_token t, lmdb_page_info *info) {
  if (t == LMDB_JSON_OBJECT_START)
    return read_capacity(s, info);
  if (t != LMDB_JSON_ARRAY_START)
    return skip_value(s, t);
  for (;;) {
    t = lmdb_json_next(s->lx);
    if (t == LMDB_JSON_ARRAY_END)
      return 0;
    if (t == LMDB_JSON_OBJECT_START) {
      if (read_capacity(s, info) != 0)
        return -1;
    } else if (skip_value(s, t) != 0) {
      return -1;
    }
  }
}

/* The number of elements of an array whose '[' was just read. */
static int count_elements(scan *s, int64_t *n) {
  *n = 0;
  for (;;) {
    lmdb_json_token t = lmdb_json_next(s->lx);
    if (t == LMDB_JSON_ARRAY_END)
      return 0;
    if (skip_value(s, t) != 0)
      return -1;
    (*n)++;
  }
}

static int read_count(scan *s, lmdb_json_token t, const char *name, int64_t *out) {
  char msg[64];
  if (t == LMDB_JSON_ERROR)
    return lex_fail(s);
  if (t != LMDB_JSON_NUMBER || !s->lx->is_integer || s->lx->integer < 0) {
    if (t == LMDB_JSON_OBJECT_START || t == LMDB_JSON_ARRAY_START) {
      if (skip_value(s, t) != 0)
        return -1;
    }
    snprintf(msg, sizeof msg, "%s is not a non-negative integer", name);
    return scan_fail(s, msg);
  }
  *out = s->lx->integer;
  return 0;
}

/* The top level of the response: the output token's raw text (ptr NULL
** when absent or null) and the page's counts. */
static int scan_response(scan *s, const lmdb_paginator *pg, lmdb_str text,
                         lmdb_str *token, lmdb_page_info *info) {
  lmdb_json_lexer *lx = s->lx;
  lmdb_json_token t;
  int has_count = 0, has_results = 0;
  int64_t results = 0;
  token->ptr = NULL;
  token->len = 0;
  lmdb_json_lexer_init(lx, text.ptr, text.len, MAX_DEPTH);
  t = lmdb_json_next(lx);
  if (t == LMDB_JSON_ERROR)
    return lex_fail(s);
  if (t != LMDB_JSON_OBJECT_START)
    return scan_fail(s, "not a JSON object");
  for (;;) {
    enum { OTHER, OUTPUT, COUNT, SCANNED, RESULTS, CONSUMED } which = OTHER;
    lmdb_str key;
    const char *start;
    t = lmdb_json_next(lx);
    if (t == LMDB_JSON_OBJECT_END)
      break;
    if (t != LMDB_JSON_STRING)
      return lex_fail(s);
    key = lx->tok;                       /* compared before the next token */
    if (str_is(key, pg->output_token)) which = OUTPUT;
    else if (str_is(key, "Count")) which = COUNT;
    else if (str_is(key, "ScannedCount")) which = SCANNED;
    else if (str_is(key, pg->result_key)) which = RESULTS;
    else if (str_is(key, "ConsumedCapacity")) which = CONSUMED;
    start = lmdb_json_value_start(lx);
    t = lmdb_json_next(lx);
    switch (which) {
      case OUTPUT:
        if (skip_value(s, t) != 0)
          return -1;
        if (t == LMDB_JSON_NULL) {       /* null: no more pages, as botocore's None */
          token->ptr = NULL;
          token->len = 0;
        } else {
          token->ptr = start;
          token->len = (size_t)(lx->p - start);
        }
        break;
      case COUNT:
        if (read_count(s, t, "Count", &info->count) != 0)
          return -1;
        has_count = 1;
        break;
      case SCANNED:
        if (read_count(s, t, "ScannedCount", &info->scanned) != 0)
          return -1;
        info->has_scanned = 1;
        break;
      case RESULTS:
        if (t == LMDB_JSON_ARRAY_START) {
          if (count_elements(s, &results) != 0)
            return -1;
          has_results = 1;
        } else if (skip_value(s, t) != 0) {
          return -1;
        }
        break;
      case CONSUMED:
        if (read_consumed(s, t, info) != 0)
          return -1;
        break;
      default:
        if (skip_value(s, t) != 0)
          return -1;
    }
  }
  if (lmdb_json_next(lx) != LMDB_JSON_END)
    return lex_fail(s);
  if (!has_count)
    info->count = has_results ? results : 0;
  return 0;
}

/* Copies the request into next with every top-level input-token member's
** value replaced by token, or the member added after the last one. */
static int build_request(scan *s, const lmdb_paginator *pg, lmdb_str text,
                         lmdb_str token, lmdb_buf *next) {
  lmdb_json_lexer *lx = s->lx;
  lmdb_json_token t;
  const char *copied = text.ptr;         /* request bytes before this are in next */
  const char *insert_at;                 /* after the last member's value, or '{' */
  int replaced = 0, members = 0;
  lmdb_json_lexer_init(lx, text.ptr, text.len, MAX_DEPTH);
  t = lmdb_json_next(lx);
  if (t == LMDB_JSON_ERROR)
    return lex_fail(s);
  if (t != LMDB_JSON_OBJECT_START)
    return scan_fail(s, "not a JSON object");
  insert_at = lx->p;
  for (;;) {
    int is_input;
    const char *start;
    t = lmdb_json_next(lx);
    if (t == LMDB_JSON_OBJECT_END)
      break;
    if (t != LMDB_JSON_STRING)
      return lex_fail(s);
    is_input = str_is(lx->tok, pg->input_token);
    start = lmdb_json_value_start(lx);
    if (skip_value(s, lmdb_json_next(lx)) != 0)
      return -1;
    members++;
    insert_at = lx->p;
    if (is_input) {
      if (token.len == (size_t)(lx->p - start) && memcmp(token.ptr, start, token.len) == 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "the same %s was received twice", pg->output_token);
        s->what = "response";
        return scan_fail(s, msg);
      }
      if (lmdb_buf_append(next, copied, (size_t)(start - copied)) != 0 ||
          lmdb_buf_append(next, token.ptr, token.len) != 0)
        return scan_fail(s, "not enough memory");
      copied = lx->p;
      replaced = 1;
    }
  }
  if (lmdb_json_next(lx) != LMDB_JSON_END)
    return lex_fail(s);
  if (!replaced) {
    if (lmdb_buf_append(next, copied, (size_t)(insert_at - copied)) != 0 ||
        (members > 0 && lmdb_buf_putc(next, ',') != 0) ||
        lmdb_buf_putc(next, '"') != 0 || lmdb_buf_puts(next, pg->input_token) != 0 ||
        lmdb_buf_puts(next, "\":") != 0 || lmdb_buf_append(next, token.ptr, token.len) != 0)
      return scan_fail(s, "not enough memory");
    copied = insert_at;
  }
  if (lmdb_buf_append(next, copied, (size_t)(text.ptr + text.len - copied)) != 0)
    return scan_fail(s, "not enough memory");
  return 0;
}

int lmdb_paginate_next(const lmdb_paginator *pg, lmdb_str request, lmdb_str response,
                       lmdb_json_lexer *lx, lmdb_buf *next, lmdb_page_info *info,
                       char *err, size_t errlen) {
  scan s;
  lmdb_str token;
  memset(info, 0, sizeof *info);
  lmdb_buf_reset(next);
  if (errlen > 0)
    err[0] = '\0';
  s.lx = lx;
  s.err = err;
  s.errlen = errlen;
  s.what = "response";
  if (response.ptr == NULL) {
    response.ptr = "";
    response.len = 0;
  }
  if (request.ptr == NULL) {
    request.ptr = "";
    request.len = 0;
  }
  if (scan_response(&s, pg, response, &token, info) != 0)
    return -1;
  if (token.ptr == NULL)
    return 0;                            /* the last page */
  s.what = "request";
  if (build_request(&s, pg, request, token, next) != 0) {
    lmdb_buf_reset(next);
    return -1;
  }
  info->more = 1;
  return 0;
}
