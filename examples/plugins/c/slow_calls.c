/* slow_calls: the example filter plugin in C. Events named python.call.stop
 * are kept iff their measurement duration (int or float) is >= config
 * min_duration_ns (default 0); every other event is kept. */
#include "snakepipe.h"

static snk_i64 min_duration = 0;

static int init(const snk_config *cfg) {
    static const char *const known[] = {"min_duration_ns"};
    if (snk_config_only(cfg, known, 1)) return SNK_ERR_CONFIG;
    return SNK_CONFIG_I64(cfg, "min_duration_ns", 0, &min_duration);
}

static int keep(const snk_event *ev) {
    if (!SNK_EQ(ev->name, "python.call.stop")) return 1;
    snk_i64 i;
    double d;
    switch (SNK_NUMBER(ev, "duration", &i, &d)) {
    case SNK_KIND_INT: return i >= min_duration;
    case SNK_KIND_FLOAT: return d >= (double)min_duration;
    default: return 0;
    }
}

SNAKEPIPE_INIT(init)
SNAKEPIPE_FILTER(keep)
