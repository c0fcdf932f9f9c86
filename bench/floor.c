/* The floor: the least CPU a DynamoDB client can spend per call.
 *
 *   floor WORKLOAD CALLS ENDPOINT DATADIR [WARMUP]
 *
 * One libcurl easy handle reused for every call (keep-alive), the request body read from
 * DATADIR/requests/WORKLOAD.json before timing, a fixed Authorization header (no signing),
 * and one cJSON parse of each response (no native values). Prints one line:
 *   RESULT {"workload":..,"items":..,"requests":..,"cpu_us_per_item":..,"wall_us_per_item":..}
 * Items are counted from the responses (Items / Responses arrays), so a short page shows.
 */
#define _POSIX_C_SOURCE 200809L
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define TABLE "bench_items"

static void die(const char *msg, const char *detail) {
  fprintf(stderr, "floor: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

typedef struct {
  char *p;
  size_t len, cap;
} buf_t;

static size_t on_data(char *data, size_t size, size_t n, void *ud) {
  buf_t *b = ud;
  size_t add = size * n;
  if (b->len + add + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + add + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, data, add);
  b->len += add;
  return add;
}

static char *read_file(const char *path, long *len) {
  FILE *f = fopen(path, "rb");
  if (!f) die("cannot open", path);
  fseek(f, 0, SEEK_END);
  *len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)*len + 1);
  if (!s || fread(s, 1, (size_t)*len, f) != (size_t)*len) die("cannot read", path);
  s[*len] = 0;
  fclose(f);
  return s;
}

static double cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static double wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Items a response stands for; dies on anything but the expected shape. */
static int count_items(const char *workload, const cJSON *doc) {
  if (!cJSON_IsObject(doc)) die("response is not a JSON object", workload);
  if (!strcmp(workload, "put")) return 1;
  if (!strcmp(workload, "get")) {
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "Item"))) die("no Item", workload);
    return 1;
  }
  if (!strcmp(workload, "update")) {
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(doc, "Attributes"))) die("no Attributes", workload);
    return 1;
  }
  if (!strcmp(workload, "query") || !strcmp(workload, "scan")) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(doc, "Items");
    if (!cJSON_IsArray(items)) die("no Items", workload);
    return cJSON_GetArraySize(items);
  }
  if (!strcmp(workload, "batch_write")) {
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(doc, "UnprocessedItems");
    if (!cJSON_IsObject(u) || u->child) die("UnprocessedItems is not empty", workload);
    return 25;
  }
  if (!strcmp(workload, "batch_get")) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(doc, "Responses");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(r, TABLE);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(doc, "UnprocessedKeys");
    if (!cJSON_IsArray(items)) die("no Responses." TABLE, workload);
    if (u && u->child) die("UnprocessedKeys is not empty", workload);
    return cJSON_GetArraySize(items);
  }
  die("unknown workload", workload);
  return 0;
}

static const char *target_of(const char *w) {
  static const char *map[][2] = {
    {"put", "PutItem"}, {"get", "GetItem"}, {"update", "UpdateItem"}, {"query", "Query"},
    {"scan", "Scan"}, {"batch_write", "BatchWriteItem"}, {"batch_get", "BatchGetItem"},
  };
  for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
    if (!strcmp(map[i][0], w)) return map[i][1];
  die("unknown workload", w);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 5) die("usage: floor WORKLOAD CALLS ENDPOINT DATADIR [WARMUP]", NULL);
  const char *workload = argv[1], *endpoint = argv[3], *datadir = argv[4];
  long calls = atol(argv[2]);
  long warmup = argc > 5 ? atol(argv[5]) : (calls / 10 > 3 ? calls / 10 : 3);
  char path[4096], target[128];
  snprintf(path, sizeof path, "%s/requests/%s.json", datadir, workload);
  long body_len;
  char *body = read_file(path, &body_len);
  snprintf(target, sizeof target, "X-Amz-Target: DynamoDB_20120810.%s", target_of(workload));

  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *h = curl_easy_init();
  struct curl_slist *hdr = NULL;
  hdr = curl_slist_append(hdr, "Content-Type: application/x-amz-json-1.0");
  hdr = curl_slist_append(hdr, target);
  hdr = curl_slist_append(hdr, "X-Amz-Date: 20240101T000000Z");
  /* DynamoDB Local checks only the shape (alphanumeric key, the same one the other runners
   * use: it keeps tables per access key and region). */
  hdr = curl_slist_append(hdr, "Authorization: AWS4-HMAC-SHA256 Credential=bench/20240101/us-east-1/"
                               "dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;"
                               "x-amz-target, Signature=0000000000000000000000000000000000000000000000"
                               "000000000000000000");
  hdr = curl_slist_append(hdr, "Expect:"); /* never wait for 100-continue */
  buf_t resp = {0};
  curl_easy_setopt(h, CURLOPT_URL, endpoint);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, body_len);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
  curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* as lunamodb: no signal handlers per call */

  long items = 0, requests = 0;
  double c0 = 0, w0 = 0;
  for (long i = 0; i < warmup + calls; i++) {
    if (i == warmup) {
      items = 0;
      c0 = cpu_us();
      w0 = wall_us();
    }
    resp.len = 0;
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) die("curl", curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (resp.p) resp.p[resp.len] = 0;
    if (status != 200) die("HTTP status is not 200", resp.p ? resp.p : "");
    cJSON *doc = cJSON_ParseWithLength(resp.p, resp.len);
    if (!doc) die("unparsable response", workload);
    items += count_items(workload, doc);
    cJSON_Delete(doc);
    requests++;
  }
  double cpu = cpu_us() - c0, wall = wall_us() - w0;
  if (items <= 0) die("no items", workload);
  printf("RESULT {\"workload\":\"%s\",\"items\":%ld,\"requests\":%ld,\"cpu_us_per_item\":%.4f,"
         "\"wall_us_per_item\":%.4f}\n", workload, items, requests, cpu / items, wall / items);
  curl_slist_free_all(hdr);
  curl_easy_cleanup(h);
  curl_global_cleanup();
  free(resp.p);
  free(body);
  return 0;
}
