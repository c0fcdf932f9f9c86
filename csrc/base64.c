/*
** base64.c -- standard base64 (RFC 4648, with padding), the encoding of
** DynamoDB's B and BS values on the wire.
*/
#include "lmdb_private.h"

static const char alphabet[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int lmdb_base64_encode(lmdb_buf *out, const void *data, size_t len) {
  const unsigned char *p = (const unsigned char *)data;
  size_t i, n;
  char *o;
  if (len > ((size_t)-1 - 3) / 4 * 3)
    return -1;
  n = (len + 2) / 3 * 4;
  if (lmdb_buf_reserve(out, n) != 0)
    return -1;
  o = out->data + out->len;
  for (i = 0; i + 2 < len; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
    *o++ = alphabet[v >> 18];
    *o++ = alphabet[(v >> 12) & 63];
    *o++ = alphabet[(v >> 6) & 63];
    *o++ = alphabet[v & 63];
  }
  if (i < len) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0);
    *o++ = alphabet[v >> 18];
    *o++ = alphabet[(v >> 12) & 63];
    *o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  out->len += n;
  out->data[out->len] = '\0';
  return 0;
}

static int decode_char(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Strict: length a multiple of 4, padding only at the end, no whitespace,
** and unused bits zero, so every binary value has exactly one encoding. */
int lmdb_base64_decode(lmdb_buf *out, const char *text, size_t len) {
  const unsigned char *p = (const unsigned char *)text;
  size_t i, pad = 0;
  char *o;
  if (len % 4 != 0)
    return -2;
  if (len > 0 && p[len - 1] == '=') pad++;
  if (len > 1 && p[len - 2] == '=') pad++;
  if (lmdb_buf_reserve(out, len / 4 * 3) != 0)
    return -1;
  o = out->data + out->len;
  for (i = 0; i < len; i += 4) {
    int a = decode_char(p[i]), b = decode_char(p[i + 1]);
    int last = i + 4 == len;
    int c = (last && pad >= 2) ? 0 : decode_char(p[i + 2]);
    int d = (last && pad >= 1) ? 0 : decode_char(p[i + 3]);
    unsigned v;
    if (a < 0 || b < 0 || c < 0 || d < 0)
      return -2;
    v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
    *o++ = (char)(v >> 16);
    if (!(last && pad >= 2)) *o++ = (char)((v >> 8) & 255);
    else if ((v >> 8) & 255) return -2;
    if (!(last && pad >= 1)) *o++ = (char)(v & 255);
    else if (v & 255) return -2;
  }
  out->len = (size_t)(o - out->data);
  out->data[out->len] = '\0';
  return 0;
}
