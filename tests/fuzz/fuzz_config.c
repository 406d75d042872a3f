/* fuzz_config -- libFuzzer target for the config loader (core/config.c):
 * the libconfig parse, every setting's checks, the 32-bit literal scan,
 * token decoding in an edge config. The input is written to a file (a
 * memfd) and loaded; it must be refused with at least one FILE:LINE error
 * or accepted, never crash or leak. `@include` is turned into a comment
 * character: an include names files of the machine running the fuzzer.
 *
 *   make fuzz && build/fuzz/fuzz_config -max_total_time=60 tests/fuzz/seeds/config
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ri_log_level = -1;
    int fd = memfd_create("ri-fuzz-config", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) {
        close(fd);
        return 0;
    }
    for (size_t i = 0; i < size; i++)
        copy[i] = data[i] == '@' ? '#' : data[i];
    if (write(fd, copy, size) != (ssize_t)size) {
        free(copy);
        close(fd);
        return 0;
    }
    free(copy);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    struct ri_errs errs = {0};
    struct ri_config *c = ri_config_load(path, &errs);
    if (!c && errs.n == 0)
        __builtin_trap(); /* refused without saying why */
    if (c) {
        if (c->role != RI_ROLE_HUB && c->role != RI_ROLE_EDGE)
            __builtin_trap();
        for (size_t i = 0; i < c->n_edges; i++)
            for (size_t k = 1; k < c->edges[i].n_ports; k++)
                if (c->edges[i].ports[k] <= c->edges[i].ports[k - 1])
                    __builtin_trap();
    }
    ri_config_free(c);
    ri_errs_free(&errs);
    close(fd);
    return 0;
}
