/* log.c -- leveled logging to stderr with wall-clock timestamps. */
#include "log.h"

#include "clock.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

_Atomic int ri_log_level = RI_LOG_INFO;
_Atomic int ri_log_json;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int ri_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

const char *ri_log_stamp(char *buf, size_t cap)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    /* RFC 3339 with the zone offset, so logs of edges in several time zones
     * line up */
    long off = tm.tm_gmtoff / 60;
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03d%c%02ld:%02ld", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(tv.tv_usec / 1000), sign, off / 60, off % 60);
    return buf;
}

/* {"time":"<RFC 3339>","level":"info","msg":"..."} and a newline, in one
 * write. Text that is not UTF-8 (a path, say) has its bytes above 0x7f
 * replaced by '?', so the line is always valid JSON. */
static void log_json_line(int level, const char *stamp, char *msg)
{
    json_t *s = json_string(msg);
    if (!s) {
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        s = json_string(msg);
    }
    json_t *o = json_object();
    json_object_set_new(o, "time", json_string(stamp));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "msg", s ? s : json_string(""));
    /* into our own buffer: no allocation to free (jansson's allocator is
     * the secret-wiping one, see token.c), one write per line */
    char text[8192]; /* a 1 KiB message escaped at worst 6x, with time and level */
    size_t len = json_dumpb(o, text, sizeof text - 1, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (len == 0 || len > sizeof text - 1)
        return; /* cannot happen: ri_logv caps a message at 1 KiB */
    text[len] = '\n';
    fwrite(text, 1, len + 1, stderr);
}

void ri_logv(int level, const char *prefix, const char *fmt, va_list ap)
{
    if (level > ri_log_level)
        return;
    char line[1024], stamp[40];
    if (ri_log_json) {
        int n = snprintf(line, sizeof line, "%s%s", prefix ? prefix : "", prefix ? ": " : "");
        if (n < 0 || (size_t)n >= sizeof line)
            n = 0;
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        log_json_line(level, ri_log_stamp(stamp, sizeof stamp), line);
        return;
    }
    int n = snprintf(line, sizeof line, "%s %-5s %s%s", ri_log_stamp(stamp, sizeof stamp),
                     level_names[level], prefix ? prefix : "", prefix ? ": " : "");
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    /* one write per line so concurrent processes do not interleave */
    size_t len = strlen(line);
    if (len < sizeof line - 1)
        line[len++] = '\n';
    else
        line[sizeof line - 2] = '\n', len = sizeof line - 1;
    fwrite(line, 1, len, stderr);
}

void ri_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ri_logv(level, NULL, fmt, ap);
    va_end(ap);
}

int ri_log_rl(struct ri_ratelimit *rl, int level, const char *fmt, ...)
{
    if (level > ri_log_level)
        return 0;
    uint64_t held;
    if (!ri_ratelimit_pass(rl, ri_now_ns(), &held))
        return 0;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (held)
        ri_log(level, "%s (%llu similar line%s suppressed)", msg, (unsigned long long)held,
               held == 1 ? "" : "s");
    else
        ri_log(level, "%s", msg);
    return 1;
}
