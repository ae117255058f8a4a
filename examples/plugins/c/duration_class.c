/* duration_class: the example enrich plugin in C. An event with a
 * measurement duration (int or float) gets metadata duration_class = fast
 * (duration < fast_ns, default 1000000), slow (duration >= slow_ns, default
 * 100000000) or normal. Events without duration are unchanged. */
#include "snakepipe.h"

static snk_i64 fast_ns = 1000000, slow_ns = 100000000;

static int init(const snk_config *cfg) {
    static const char *const known[] = {"fast_ns", "slow_ns"};
    if (snk_config_only(cfg, known, 2)) return SNK_ERR_CONFIG;
    if (SNK_CONFIG_I64(cfg, "fast_ns", 1000000, &fast_ns)) return SNK_ERR_CONFIG;
    return SNK_CONFIG_I64(cfg, "slow_ns", 100000000, &slow_ns);
}

static void enrich(const snk_event *ev, snk_patch *p) {
    snk_i64 i;
    double d;
    int fast, slow;
    switch (SNK_NUMBER(ev, "duration", &i, &d)) {
    case SNK_KIND_INT:
        fast = i < fast_ns;
        slow = i >= slow_ns;
        break;
    case SNK_KIND_FLOAT:
        fast = d < (double)fast_ns;
        slow = d >= (double)slow_ns;
        break;
    default:
        return;
    }
    if (fast) SNK_SET_METADATA(p, "duration_class", "fast");
    else if (slow) SNK_SET_METADATA(p, "duration_class", "slow");
    else SNK_SET_METADATA(p, "duration_class", "normal");
}

SNAKEPIPE_INIT(init)
/* Only the duration measurement is read: the host sends no metadata and
 * no host context. */
SNAKEPIPE_FIELDS(SNK_FIELDS_MEASUREMENTS)
SNAKEPIPE_ENRICH(enrich)
