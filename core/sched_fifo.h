/* sched_fifo.h -- the built-in scheduler used when no scheduler plugin is
 * enabled: ready streams take turns in arrival order (round robin, one
 * chunk each). Control frames go first regardless: that is the core's job. */
#ifndef RI_SCHED_FIFO_H
#define RI_SCHED_FIFO_H

#include "plugin.h"

extern const struct ri_module ri_sched_fifo_builtin;

#endif
