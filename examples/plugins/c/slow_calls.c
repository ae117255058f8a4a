/* slow_calls: the example filter plugin in C. An event named
 * python.call.stop whose measurement duration (int or float) is below config
 * min_duration_ns (default 0) is dropped; every other event is kept (also a
 * python.call.stop without a numeric duration: it cannot be judged). */
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
    default: return 1;
    }
}

SNAKEPIPE_INIT(init)
/* Only the duration measurement is read: the host sends no metadata and
 * no host context. */
SNAKEPIPE_FIELDS(SNK_FIELDS_MEASUREMENTS)
SNAKEPIPE_FILTER(keep)
