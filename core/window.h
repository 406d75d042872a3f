/* window.h -- per-stream flow-control window policy, pure.
 *
 * Each direction of each stream has send credit granted by its consumer.
 * The consumer aims at a window of clamp(budget / active_streams, min, max)
 * bytes (200 MiB, 1 MiB, 4 MiB: 4 MiB up to 50 streams, 2 MiB at 100, the
 * 1 MiB floor from 200 on); a stream classified as sustained is held at
 * the floor. Every direction starts with RI_WINDOW_INITIAL bytes of credit. */
#ifndef RI_WINDOW_H
#define RI_WINDOW_H

#include <stdint.h>

#define RI_WINDOW_BUDGET (200u << 20)
#define RI_WINDOW_MIN (1u << 20)
#define RI_WINDOW_MAX (4u << 20)
#define RI_WINDOW_INITIAL RI_WINDOW_MIN

uint32_t ri_window_target(uint32_t active_streams, int sustained);

/* Credit the consumer should grant now, or 0 to wait. `granted` is all
 * credit ever given (initial included), `consumed` all bytes written onward.
 * Grants are batched: nothing below a quarter of the target is sent. */
uint32_t ri_window_grant(uint64_t granted, uint64_t consumed, uint32_t target);

#endif
