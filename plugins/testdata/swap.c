/* Hot-swap fixture. Built twice: -DPARITY=0 (swap_even.wasm) keeps events
 * whose int measurement n is even, -DPARITY=1 (swap_odd.wasm) keeps odd.
 * As an enricher (snk_enrich) it tags every event with metadata
 * version = "even" / "odd". kind: selects which one a stage uses. */
#include "fixture.h"
#if PARITY
#define TAG "odd"
#else
#define TAG "even"
#endif
static int64_t nval(const uint8_t **p) {
	rec_t r; *p = rec_parse(*p, &r);
	int kind; uint32_t vl;
	const uint8_t *v = rec_find(&r, "n", 1, 1, &kind, &vl);
	return v ? rd64(v) : -1;
}
EXPORT("snk_filter") int64_t snk_filter(uint32_t n, uint32_t len) {
	const uint8_t *p = inbuf;
	for (uint32_t i = 0; i < n; i++) outbuf[i] = (uint8_t)((nval(&p) & 1) == PARITY);
	return ret(outbuf, n);
}
EXPORT("snk_enrich") int64_t snk_enrich(uint32_t n, uint32_t len) {
	const uint8_t *p = inbuf;
	uint8_t *o = outbuf;
	for (uint32_t i = 0; i < n; i++) {
		nval(&p);
		o[0] = 2; o[1] = 0; wr16(o + 2, 1);
		o[4] = 4; o[5] = 1; wr16(o + 6, 7); wr32(o + 8, sizeof(TAG) - 1);
		__builtin_memcpy(o + 12, "version", 7);
		__builtin_memcpy(o + 19, TAG, sizeof(TAG) - 1);
		o += 19 + sizeof(TAG) - 1;
	}
	return ret(outbuf, (uint32_t)(o - outbuf));
}
