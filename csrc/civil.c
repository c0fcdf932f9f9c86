/*
** civil.c -- calendar arithmetic on the proleptic Gregorian calendar (Howard Hinnant's
** algorithms), without timegm() or gmtime(): HTTP dates (retry.c), DynamoDB's UTC
** datetimes (lmdb.c's item codecs) and SigV4's X-Amz-Date (sigv4.c) all count days from
** 1970-01-01 this way.
*/
#include "lmdb_private.h"

static int is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int lmdb_days_in_month(int64_t y, int m) {
  static const unsigned char mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  if (m < 1 || m > 12)
    return 0;
  return mdays[m - 1] + (m == 2 && is_leap(y));
}

int64_t lmdb_days_from_civil(int64_t y, int m, int d) {
  int64_t era, yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void lmdb_civil_from_days(int64_t z, int *y, int *m, int *d) {
  int64_t era, yy;
  unsigned doe, yoe, doy, mp;
  z += 719468;
  era = (z >= 0 ? z : z - 146096) / 146097;
  doe = (unsigned)(z - era * 146097);
  yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  yy = (int64_t)yoe + era * 400;
  doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yy + (*m <= 2));
}

int64_t lmdb_days_from_epoch(int64_t epoch_s, int64_t *sec_of_day) {
  int64_t days = (epoch_s >= 0 ? epoch_s : epoch_s - 86399) / 86400;   /* floor */
  *sec_of_day = epoch_s - days * 86400;
  return days;
}
