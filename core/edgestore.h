/* edgestore.h -- where the hub keeps the edges changed at runtime (over
 * the control socket), behind a small interface so that a shared store
 * can take the file's place later: load once at start, save the whole
 * runtime set after every change. Applying a change to the live hub is
 * the registry's one path (ri_registry_apply), not the store's job. */
#ifndef RI_EDGESTORE_H
#define RI_EDGESTORE_H

#include <stddef.h>

#include "registry.h"

struct ri_edge_store;

struct ri_edge_store_ops {
    const char *name; /* "file" */
    /* The stored edges (a set; empty when nothing is stored yet), or NULL
     * with err. */
    struct ri_edge_set *(*load)(struct ri_edge_store *st, char *err, size_t errlen);
    /* Replaces what is stored with s; 0, or -1 with err. */
    int (*save)(struct ri_edge_store *st, const struct ri_edge_set *s, char *err, size_t errlen);
    void (*free)(struct ri_edge_store *st);
};

struct ri_edge_store {
    const struct ri_edge_store_ops *ops;
    char *where; /* for messages: the file's path */
};

/* A JSON file {"edges": [{id, secret, listen_ports, stun_interval_secs}]},
 * written atomically (temporary file in the same folder, fsync, rename,
 * fsync of the folder) with mode 0600. NULL on out of memory. */
struct ri_edge_store *ri_edge_store_file(const char *path);

static inline struct ri_edge_set *ri_edge_store_load(struct ri_edge_store *st, char *err,
                                                     size_t errlen)
{
    return st->ops->load(st, err, errlen);
}
static inline int ri_edge_store_save(struct ri_edge_store *st, const struct ri_edge_set *s,
                                     char *err, size_t errlen)
{
    return st->ops->save(st, s, err, errlen);
}
static inline void ri_edge_store_free(struct ri_edge_store *st)
{
    if (st)
        st->ops->free(st);
}

#endif
