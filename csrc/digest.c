/*
** digest.c -- hashing, HMAC, CRC32 and randomness for the core.
**
** SHA-256 and HMAC go through OpenSSL 3's one-shot calls only (EVP_Digest,
** HMAC with a caller buffer): no deprecated *_CTX APIs, and no static
** output arrays. CRC32 is local so the core does not need zlib.
*/
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "lmdb_private.h"

#include <pthread.h>

/* CRC32 by carry-less multiply where the compiler can target it (checked on the CPU at
** run time) */
#if defined(__x86_64__) && defined(__GNUC__)
#define CRC_CLMUL 1
#include <immintrin.h>
#endif

/* ============================================================ SHA-256 */

/* OpenSSL 3 looks the implementation up (under a lock) on every use of
** EVP_sha256() and builds a MAC object for every HMAC() call; fetched once,
** the digest costs only itself, and HMAC is two digests over it.
** The fetched digest lives while some user holds it (each Lua state of the
** core does, from luaopen to its __gc), so it is freed before the module is
** unloaded and never outlives OpenSSL. */
static EVP_MD *sha256_md;
static int sha256_users;
static pthread_mutex_t sha256_lock = PTHREAD_MUTEX_INITIALIZER;

void lmdb_digest_acquire(void) {
  pthread_mutex_lock(&sha256_lock);
  if (sha256_users++ == 0)
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
  pthread_mutex_unlock(&sha256_lock);
}

void lmdb_digest_release(void) {
  pthread_mutex_lock(&sha256_lock);
  if (sha256_users > 0 && --sha256_users == 0) {
    EVP_MD_free(sha256_md);
    sha256_md = NULL;
  }
  pthread_mutex_unlock(&sha256_lock);
}

static const EVP_MD *sha256(void) {
  const EVP_MD *md = sha256_md;
  return md ? md : EVP_sha256();   /* no user, or the fetch failed: the implicit path */
}

void lmdb_sha256(const void *data, size_t len, unsigned char out[32]) {
  unsigned int outlen = 0;
  /* EVP_Digest rejects NULL data even for len 0 on some versions */
  if (data == NULL)
    data = "";
  if (!EVP_Digest(data, len, out, &outlen, sha256(), NULL) || outlen != 32)
    memset(out, 0, 32);   /* OOM in the provider: never leave garbage */
}

void lmdb_sha256_hex(const void *data, size_t len, char out[65]) {
  unsigned char md[32];
  lmdb_sha256(data, len, md);
  lmdb_hex(md, sizeof md, out);
}

/* A context kept by a caller that hashes often (the signer, three digests a request):
** making and freeing one per digest costs as much as hashing a hundred bytes. */
lmdb_sha256_ctx *lmdb_sha256_ctx_new(void) {
  return (lmdb_sha256_ctx *)(void *)EVP_MD_CTX_new();
}

void lmdb_sha256_ctx_free(lmdb_sha256_ctx *c) {
  EVP_MD_CTX_free((EVP_MD_CTX *)(void *)c);
}

void lmdb_sha256_with(lmdb_sha256_ctx *c, const void *data, size_t len, unsigned char out[32]) {
  EVP_MD_CTX *ctx = (EVP_MD_CTX *)(void *)c;
  unsigned int outlen = 0;
  if (ctx == NULL) {
    lmdb_sha256(data, len, out);
    return;
  }
  if (!EVP_DigestInit_ex(ctx, sha256(), NULL) || !EVP_DigestUpdate(ctx, data ? data : "", len) ||
      !EVP_DigestFinal_ex(ctx, out, &outlen) || outlen != 32)
    memset(out, 0, 32);
}

/* H((K ^ x) || msg): one of HMAC's two digests (pad: scratch for the padded key). */
static int padded_digest(EVP_MD_CTX *ctx, const unsigned char k[64], unsigned char x,
                         unsigned char pad[64], const void *msg, size_t mlen,
                         unsigned char out[32]) {
  unsigned int outlen = 0;
  int i;
  for (i = 0; i < 64; i++)
    pad[i] = (unsigned char)(k[i] ^ x);
  return EVP_DigestInit_ex(ctx, sha256(), NULL) && EVP_DigestUpdate(ctx, pad, 64) &&
         EVP_DigestUpdate(ctx, msg, mlen) && EVP_DigestFinal_ex(ctx, out, &outlen) &&
         outlen == 32;
}

/* HMAC-SHA256 (RFC 2104): H((K ^ opad) || H((K ^ ipad) || msg)), with K the
** key padded to the 64-byte block (hashed first when longer), in c (a context
** of its own when NULL). */
int lmdb_hmac_sha256_with(lmdb_sha256_ctx *c, const void *key, size_t klen, const void *msg,
                          size_t mlen, unsigned char out[32]) {
  unsigned char k[64], pad[64], inner[32];
  EVP_MD_CTX *ctx = c ? (EVP_MD_CTX *)(void *)c : EVP_MD_CTX_new();
  int ok;
  if (key == NULL)
    key = "";
  if (msg == NULL)
    msg = "";
  memset(k, 0, sizeof k);
  if (klen > sizeof k)
    lmdb_sha256(key, klen, k);
  else
    memcpy(k, key, klen);
  ok = ctx != NULL && padded_digest(ctx, k, 0x36, pad, msg, mlen, inner) &&
       padded_digest(ctx, k, 0x5c, pad, inner, sizeof inner, out);
  if (c == NULL)
    EVP_MD_CTX_free(ctx);
  /* key material: never left on the stack */
  lmdb_cleanse(k, sizeof k);
  lmdb_cleanse(pad, sizeof pad);
  lmdb_cleanse(inner, sizeof inner);
  if (!ok) {
    lmdb_cleanse(out, 32);
    return -1;
  }
  return 0;
}

int lmdb_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
                     unsigned char out[32]) {
  return lmdb_hmac_sha256_with(NULL, key, klen, msg, mlen, out);
}

void lmdb_hex(const unsigned char *in, size_t n, char *out) {
  /* sixteen digits, not a 512-byte table of pairs: a request's first hex after its wait for
  ** the network would fetch that table's eight cache lines for 96 bytes */
  static const char digits[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 0x0f];
  }
  out[2 * n] = '\0';
}

/* ============================================================== CRC32 */

/* The reflected IEEE 802.3 polynomial 0xEDB88320, one entry per byte value
** (the table zlib and x-amz-crc32 use). Generated once, checked by the
** specs against known values ("{}" -> 2745614147). */
static const uint32_t crc_table[256] = {
  0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau,
  0x076dc419u, 0x706af48fu, 0xe963a535u, 0x9e6495a3u,
  0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
  0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u,
  0x1db71064u, 0x6ab020f2u, 0xf3b97148u, 0x84be41deu,
  0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
  0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu,
  0x14015c4fu, 0x63066cd9u, 0xfa0f3d63u, 0x8d080df5u,
  0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
  0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu,
  0x35b5a8fau, 0x42b2986cu, 0xdbbbc9d6u, 0xacbcf940u,
  0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
  0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u,
  0x21b4f4b5u, 0x56b3c423u, 0xcfba9599u, 0xb8bda50fu,
  0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
  0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du,
  0x76dc4190u, 0x01db7106u, 0x98d220bcu, 0xefd5102au,
  0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
  0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u,
  0x7f6a0dbbu, 0x086d3d2du, 0x91646c97u, 0xe6635c01u,
  0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
  0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u,
  0x65b0d9c6u, 0x12b7e950u, 0x8bbeb8eau, 0xfcb9887cu,
  0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
  0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u,
  0x4adfa541u, 0x3dd895d7u, 0xa4d1c46du, 0xd3d6f4fbu,
  0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
  0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u,
  0x5005713cu, 0x270241aau, 0xbe0b1010u, 0xc90c2086u,
  0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
  0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u,
  0x59b33d17u, 0x2eb40d81u, 0xb7bd5c3bu, 0xc0ba6cadu,
  0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
  0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u,
  0xe3630b12u, 0x94643b84u, 0x0d6d6a3eu, 0x7a6a5aa8u,
  0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
  0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu,
  0xf762575du, 0x806567cbu, 0x196c3671u, 0x6e6b06e7u,
  0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
  0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u,
  0xd6d6a3e8u, 0xa1d1937eu, 0x38d8c2c4u, 0x4fdff252u,
  0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
  0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u,
  0xdf60efc3u, 0xa867df55u, 0x316e8eefu, 0x4669be79u,
  0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
  0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu,
  0xc5ba3bbeu, 0xb2bd0b28u, 0x2bb45a92u, 0x5cb36a04u,
  0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
  0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au,
  0x9c0906a9u, 0xeb0e363fu, 0x72076785u, 0x05005713u,
  0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
  0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u,
  0x86d3d2d4u, 0xf1d4e242u, 0x68ddb3f8u, 0x1fda836eu,
  0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
  0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu,
  0x8f659effu, 0xf862ae69u, 0x616bffd3u, 0x166ccf45u,
  0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
  0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu,
  0xaed16a4au, 0xd9d65adcu, 0x40df0b66u, 0x37d83bf0u,
  0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
  0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u,
  0xbad03605u, 0xcdd70693u, 0x54de5729u, 0x23d967bfu,
  0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
  0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du
};

/* Slicing-by-8 (Intel's method): eight bytes per step with eight tables
** derived from crc_table. Built once; crc_table stays the reference. This is
** the portable path (x86-64 CPUs with carry-less multiply take crc_clmul from
** 64 bytes on), and it is worth its 8 KB of tables even on a short text: a
** 466-byte answer took 290 ns against the byte loop's 1,340 ns, and 1,130 ns
** against 1,780 ns with the cache emptied before each call. */
#define CRC_SLICING_MIN 16
static uint32_t crc_slices[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

#ifdef CRC_CLMUL
static int crc_has_clmul;    /* the CPU has PCLMULQDQ and SSE4.1 (crc_build checks) */
#endif

static void crc_build(void) {
  int i, k;
  for (i = 0; i < 256; i++)
    crc_slices[0][i] = crc_table[i];
  for (i = 0; i < 256; i++)
    for (k = 1; k < 8; k++)
      crc_slices[k][i] = (crc_slices[k - 1][i] >> 8) ^ crc_table[crc_slices[k - 1][i] & 0xffu];
#ifdef CRC_CLMUL
  crc_has_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#endif
}

/* A byte at a time: one table load per byte, each waiting for the last (about 7 cycles a
** byte). crc: the running (complemented) value. */
static uint32_t crc_bytes(uint32_t crc, const unsigned char *p, size_t len) {
  while (len--)
    crc = crc_table[(crc ^ *p++) & 0xffu] ^ (crc >> 8);
  return crc;
}

static uint32_t crc_slicing(uint32_t crc, const unsigned char *p, size_t len) {
  while (len >= 8) {
    uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24);
    uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                  (uint32_t)p[7] << 24;
    crc = crc_slices[7][lo & 0xffu] ^ crc_slices[6][(lo >> 8) & 0xffu] ^
          crc_slices[5][(lo >> 16) & 0xffu] ^ crc_slices[4][lo >> 24] ^
          crc_slices[3][hi & 0xffu] ^ crc_slices[2][(hi >> 8) & 0xffu] ^
          crc_slices[1][(hi >> 16) & 0xffu] ^ crc_slices[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  return crc_bytes(crc, p, len);
}

#ifdef CRC_CLMUL
/* Folding by carry-less multiplication (Intel, "Fast CRC Computation for Generic
** Polynomials Using PCLMULQDQ", 2009, with its constants for the bit-reflected
** 0xEDB88320): four 16-byte lanes fold 64 bytes a step, then fold into one, which is
** reduced to 64 and 32 bits and, by Barrett reduction, to the CRC. A 450-byte answer
** takes about a tenth of the byte loop's time (whose table loads chain), and no table is
** read. crc: the running (complemented) value; len: a multiple of 16, at least 64. */
#define CRC_CLMUL_TARGET __attribute__((target("pclmul,sse4.1")))

CRC_CLMUL_TARGET
static inline __m128i crc_fold(__m128i x, __m128i k, __m128i data) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00),
                                     _mm_clmulepi64_si128(x, k, 0x11)), data);
}

CRC_CLMUL_TARGET
static uint32_t crc_clmul(uint32_t crc, const unsigned char *p, size_t len) {
  const __m128i k1k2 = _mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL);
  const __m128i k3k4 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL);
  const __m128i k5 = _mm_set_epi64x(0, 0x163cd6124LL);
  const __m128i poly = _mm_set_epi64x(0x1f7011641LL, 0x1db710641LL);  /* u', P' */
  const __m128i low32 = _mm_setr_epi32(-1, 0, -1, 0);
  __m128i x1, x2, x3, x4, t;
  x1 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)crc));
  x2 = _mm_loadu_si128((const __m128i *)(p + 16));
  x3 = _mm_loadu_si128((const __m128i *)(p + 32));
  x4 = _mm_loadu_si128((const __m128i *)(p + 48));
  for (p += 64, len -= 64; len >= 64; p += 64, len -= 64) {
    x1 = crc_fold(x1, k1k2, _mm_loadu_si128((const __m128i *)p));
    x2 = crc_fold(x2, k1k2, _mm_loadu_si128((const __m128i *)(p + 16)));
    x3 = crc_fold(x3, k1k2, _mm_loadu_si128((const __m128i *)(p + 32)));
    x4 = crc_fold(x4, k1k2, _mm_loadu_si128((const __m128i *)(p + 48)));
  }
  x1 = crc_fold(x1, k3k4, x2);
  x1 = crc_fold(x1, k3k4, x3);
  x1 = crc_fold(x1, k3k4, x4);
  for (; len >= 16; p += 16, len -= 16)
    x1 = crc_fold(x1, k3k4, _mm_loadu_si128((const __m128i *)p));
  /* 128 bits to 64, then to 32 + 32 */
  t = _mm_clmulepi64_si128(x1, k3k4, 0x10);
  x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), t);
  t = _mm_srli_si128(x1, 4);
  x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k5, 0x00), t);
  /* Barrett reduction to the 32-bit remainder */
  t = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), poly, 0x10);
  t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), poly, 0x00);
  return (uint32_t)_mm_extract_epi32(_mm_xor_si128(x1, t), 1);
}
#endif

static uint32_t crc_any(uint32_t crc, const void *data, size_t len, int may_clmul) {
  const unsigned char *p = (const unsigned char *)data;
  /* zlib convention: the running value is kept complemented, so
  ** crc32(crc32(0, a), b) == crc32(0, a .. b) */
  crc = ~crc;
  if (len >= CRC_SLICING_MIN && pthread_once(&crc_once, crc_build) == 0) {
#ifdef CRC_CLMUL
    if (may_clmul && crc_has_clmul && len >= 64) {
      size_t n = len & ~(size_t)15;
      return ~crc_bytes(crc_clmul(crc, p, n), p + n, len - n);
    }
#endif
    return ~crc_slicing(crc, p, len);
  }
  (void)may_clmul;
  return ~crc_bytes(crc, p, len);
}

uint32_t lmdb_crc32(uint32_t crc, const void *data, size_t len) {
  return crc_any(crc, data, len, 1);
}

uint32_t lmdb_crc32_portable(uint32_t crc, const void *data, size_t len) {
  return crc_any(crc, data, len, 0);
}

/* ========================================================= randomness */

int lmdb_random_bytes(void *out, size_t n) {
  unsigned char *p = (unsigned char *)out;
  /* RAND_bytes takes an int count */
  while (n > 0) {
    int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
    if (RAND_bytes(p, chunk) != 1)
      return -1;
    p += chunk;
    n -= (size_t)chunk;
  }
  return 0;
}

int lmdb_uuid4(char out[37]) {
  unsigned char b[16];
  char hex[33];
  if (lmdb_random_bytes(b, sizeof b) != 0)
    return -1;
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);   /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);   /* RFC 4122 variant */
  lmdb_hex(b, sizeof b, hex);
  memcpy(out, hex, 8);
  out[8] = '-';
  memcpy(out + 9, hex + 8, 4);
  out[13] = '-';
  memcpy(out + 14, hex + 12, 4);
  out[18] = '-';
  memcpy(out + 19, hex + 16, 4);
  out[23] = '-';
  memcpy(out + 24, hex + 20, 12);
  out[36] = '\0';
  return 0;
}

/* A memset the compiler cannot drop as a dead store: it calls through a volatile pointer,
** whose target it cannot know. OPENSSL_cleanse does the same job eight bytes a step, and every
** request wipes its signing buffers and its sent headers. */
static void *(*const volatile wipe)(void *, int, size_t) = memset;

void lmdb_cleanse(void *p, size_t n) {
  if (p != NULL && n > 0)
    wipe(p, 0, n);
}
