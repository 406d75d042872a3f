/* accesslog.h -- one line per stream at its close (access_log = "..."), the
 * record nginx and HAProxy operators expect: a subscriber to the event bus.
 *
 *   2026-11-25T17:02:03.123+01:00 edge=nyc-1 stream=7 client=198.18.0.5:51234
 *   port=443 target=10.0.0.5:443 up=512 down=18034 duration=0.214 class=normal
 *   end=ok
 *
 * (one line; `end=reset reason="..."` when the stream was reset; the edge
 * writes target=- since only the hub knows it). The file is opened with
 * O_APPEND, written with one write() per line, and reopened on every reload,
 * so logrotate's "move, then SIGHUP" works. "-" writes the lines into the
 * main log at info level instead. */
#ifndef RI_ACCESSLOG_H
#define RI_ACCESSLOG_H

#include <stddef.h>

struct ri_event;
struct ri_event_bus;
struct ri_accesslog;

/* Pure: the line for a STREAM_CLOSED event, without the timestamp and the
 * newline; returns its length (truncated to cap-1). */
size_t ri_accesslog_format(char *buf, size_t cap, const struct ri_event *ev);

/* Makes *a follow path (NULL: off): opens, reopens (same path, for log
 * rotation) or closes, and (un)subscribes it on bus. On failure *a stays as
 * it was and err says why; 0 or -1. */
int ri_accesslog_apply(struct ri_accesslog **a, struct ri_event_bus *bus, const char *path,
                       char *err, size_t errlen);
/* 0 when path can be opened for appending (-t), else -1 and why. */
int ri_accesslog_check(const char *path, char *err, size_t errlen);

#endif
