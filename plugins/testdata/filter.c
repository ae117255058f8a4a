/* Reference filter: for python.call.stop, keep iff measurement duration
 * (int or float) >= config min_duration_ns (default 0); keep the rest. */
#include "fixture.h"
static int64_t min_ns;
static int on_cfg(const uint8_t *k, uint32_t kl, const uint8_t *v, uint32_t vl) {
	if (eq(k, kl, "min_duration_ns")) return parse_i64(v, vl, &min_ns);
	return 0;
}
EXPORT("snk_init") int32_t snk_init(uint32_t len) { return cfg_each(len, on_cfg); }
EXPORT("snk_filter") int64_t snk_filter(uint32_t n, uint32_t len) {
	const uint8_t *p = inbuf;
	for (uint32_t i = 0; i < n; i++) {
		rec_t r; p = rec_parse(p, &r);
		uint8_t keep = 1;
		if (eq(r.name, r.name_len, "python.call.stop")) {
			int kind; uint32_t vl;
			const uint8_t *v = rec_find(&r, "duration", 1, 2, &kind, &vl);
			if (v && kind == 1) keep = rd64(v) >= min_ns;
			else if (v) { int64_t bits = rd64(v); double d; __builtin_memcpy(&d, &bits, 8); keep = d >= (double)min_ns; }
		}
		outbuf[i] = keep;
	}
	return ret(outbuf, n);
}
