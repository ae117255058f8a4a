/* lookups: a C SDK test filter (TestCLookups), not an example. It keeps an
 * event when every lookup below finds an int measurement whose value is
 * its key's length: literal keys of 1 to 17 bytes (the SDK's one-word,
 * two-word and byte-loop key compares) and the key in config "key" (a
 * length only known at run time). */
#include "snakepipe.h"

static char rt_key[64];
static snk_u32 rt_len;

static int init(const snk_config *cfg) {
    snk_bytes v;
    if (!SNK_CONFIG_GET(cfg, "key", &v) || v.len > sizeof rt_key) return SNK_ERR_CONFIG;
    __builtin_memcpy(rt_key, v.p, v.len);
    rt_len = v.len;
    return 0;
}

#define HAS(lit) (SNK_MEASUREMENT(ev, lit, &f) && f.kind == SNK_KIND_INT && snk_field_i64(&f) == sizeof(lit) - 1)

static int keep(const snk_event *ev) {
    snk_field f;
    snk_i64 i;
    double d;
    if (!HAS("a") || !HAS("cpu") || !HAS("cpu_tim") || !HAS("duration") || !HAS("duration1") ||
        !HAS("durations_ms_ab") || !HAS("durations_ms_abc") || !HAS("durations_ms_abcd"))
        return 0;
    if (SNK_NUMBER(ev, "duration", &i, &d) != SNK_KIND_INT || i != 8) return 0;
    return snk_find(ev, SNK_KIND_INT, SNK_KIND_STRING, rt_key, rt_len, &f) && f.kind == SNK_KIND_INT &&
           snk_field_i64(&f) == (snk_i64)rt_len;
}

SNAKEPIPE_INIT(init)
SNAKEPIPE_FILTER(keep)
