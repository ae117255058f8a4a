/* fields: a C SDK test filter (TestFieldsDeclaredFromConfig), not an
 * example. It declares the field groups named by config "fields" (a
 * decimal, default SNK_FIELDS_ALL): SNAKEPIPE_FIELDS takes an expression,
 * evaluated when the host asks, after snk_init. It keeps every event. */
#include "snakepipe.h"

static snk_i64 groups = SNK_FIELDS_ALL;

static int init(const snk_config *cfg) { return SNK_CONFIG_I64(cfg, "fields", SNK_FIELDS_ALL, &groups); }

static int keep(const snk_event *ev) {
    (void)ev;
    return 1;
}

SNAKEPIPE_INIT(init)
SNAKEPIPE_FIELDS(groups)
SNAKEPIPE_FILTER(keep)
