/* tp_leaky -- creates a timer and an fd watcher and never frees them. */
#include <unistd.h>

#include "ri_plugin.h"

struct st {
    ri_timer *t;
    ri_io *io;
    int fds[2];
};

static void tick(void *arg) {}
static void ready(void *arg, int fd, int ev) {}

static int create(const struct ri_core_api *api, ri_inst *self, void *state, char *err,
                  size_t errlen)
{
    struct st *s = state;
    if (pipe(s->fds) < 0)
        return -1;
    s->t = api->timer_new(self, tick, s);
    s->io = api->io_new(self, s->fds[0], RI_IO_READ, ready, s);
    api->timer_start(s->t, 3600, 0);
    api->io_start(s->io);
    return 0;
}

static void destroy(void *state)
{
    struct st *s = state;
    close(s->fds[0]);
    close(s->fds[1]);
}


static int build(void *inst, const struct ri_conn_info *ci, uint8_t *buf, size_t cap,
                 size_t *len, char *err, size_t errlen)
{
    *len = 0;
    return 0;
}

static const struct ri_header_ops ops2 = {.size = sizeof ops2, .build = build};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_HEADER,
    .name = "tp_leaky",
    .description = "test: leaves a timer and a watcher behind",
    .ops = &ops2,
    .inst_size = sizeof(struct st),
    .create = create,
    .destroy = destroy,
};
