/* tp_settings -- a header plugin whose create() reads one setting of each
 * type through the core API and reports what it got:
 *   answer (int, required), label (string), verbose (bool), ratio (float).
 * It refuses with "got answer=.. label=.. verbose=.. ratio=.." unless
 * answer is 42, and names the setting and the API's code when a lookup
 * fails ("answer: missing (-ENOENT)", "label: wrong type (-EINVAL)").
 * The last values seen are kept in the exported tp_settings_seen. */
#include <errno.h>
#include <stdio.h>

#include "ri_plugin.h"

RI_EXPORT char tp_settings_seen[256];

static int lookup_err(int rc, const char *key, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s", key,
             rc == -ENOENT ? "missing (-ENOENT)" : rc == -EINVAL ? "wrong type (-EINVAL)"
                                                                 : "lookup failed");
    return -1;
}

static int create(const struct ri_core_api *api, ri_inst *self, void *state, char *err,
                  size_t errlen)
{
    int64_t answer = 0;
    const char *label = "-";
    int verbose = 0;
    double ratio = 0;
    int rc;
    if ((rc = api->cfg_int(self, "answer", &answer)) != 0)
        return lookup_err(rc, "answer", err, errlen);
    if ((rc = api->cfg_str(self, "label", &label)) != 0 && rc != -ENOENT)
        return lookup_err(rc, "label", err, errlen);
    if ((rc = api->cfg_bool(self, "verbose", &verbose)) != 0 && rc != -ENOENT)
        return lookup_err(rc, "verbose", err, errlen);
    if ((rc = api->cfg_float(self, "ratio", &ratio)) != 0 && rc != -ENOENT)
        return lookup_err(rc, "ratio", err, errlen);
    snprintf(tp_settings_seen, sizeof tp_settings_seen, "answer=%lld label=%s verbose=%d ratio=%g",
             (long long)answer, label, verbose, ratio);
    if (answer != 42)
        return snprintf(err, errlen, "got %s", tp_settings_seen), -1;
    return 0;
}

static int build(void *inst, const struct ri_conn_info *ci, uint8_t *buf, size_t cap,
                 size_t *len, char *err, size_t errlen)
{
    *len = 0;
    return 0;
}

static const struct ri_header_ops ops = {.size = sizeof ops, .build = build};
static const char *const keys[] = {"answer", "label", "verbose", "ratio", NULL};

RI_EXPORT const struct ri_plugin ri_plugin = {
    RI_PLUGIN_HEADER,
    .kind = RI_KIND_HEADER,
    .name = "tp_settings",
    .description = "test: reports the settings it receives",
    .ops = &ops,
    .create = create,
    .keys = keys,
};
