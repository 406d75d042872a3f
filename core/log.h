/* log.h -- leveled logging to stderr, one line per event. */
#ifndef RI_LOG_H
#define RI_LOG_H

#include <stdarg.h>
#include "ri_plugin.h"
#include "ratelimit.h"

extern _Atomic int ri_log_level; /* enum ri_log_level; messages above it are dropped */
/* 1: each line is a JSON object {"time","level","msg"} (log_format = "json") */
extern _Atomic int ri_log_json; /* both set on the main thread (a reload), read by every worker */

int ri_log_parse_level(const char *s); /* -1 if unknown */
/* Now as RFC 3339 local time with milliseconds and the zone offset
 * ("2026-11-25T17:02:03.123+01:00"); returns buf (32 bytes are enough). */
const char *ri_log_stamp(char *buf, size_t cap);
void ri_log(int level, const char *fmt, ...) RI_PRINTF(2, 3);
void ri_logv(int level, const char *prefix, const char *fmt, va_list ap) RI_PRINTF(3, 0);
/* Logs through a limiter: lines it holds back are counted, and the next
 * line it lets through ends with "(N similar lines suppressed)". Every line
 * a peer can trigger goes through one of these. Returns 1 if logged. */
int ri_log_rl(struct ri_ratelimit *rl, int level, const char *fmt, ...) RI_PRINTF(3, 4);

#define log_err(...)   ri_log(RI_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  ri_log(RI_LOG_WARN, __VA_ARGS__)
#define log_info(...)  ri_log(RI_LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (ri_log_level >= RI_LOG_DEBUG) ri_log(RI_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
