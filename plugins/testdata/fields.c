/* snk_fields fixture: an enricher that reports what it was sent.
 * snk_fields returns the config value `fields` (a decimal, default 7; any
 * value, so that the host's check of the bits can be tested), or traps with
 * config trap_fields=1. For every record it walks the fields by their
 * headers, checks that the walk ends exactly at rec_len (else returns -2,
 * bad input), fails the batch with -1 if a field's kind is of a group its
 * snk_fields did not declare (so a batch encoded with the wrong groups
 * fails, the self-test's included), and sets metadata
 * seen = "n=<nfields> kinds=<kind digits>", e.g. "n=3 kinds=144", followed
 * by config `pad` (default 0) bytes of 'x' (a large result from small
 * records, for the enrich result limit). */
#include "fixture.h"
static int64_t fields = 7;
static int trap_fields;
static int64_t pad;
static int on_cfg(const uint8_t *k, uint32_t kl, const uint8_t *v, uint32_t vl) {
	if (eq(k, kl, "fields")) return parse_i64(v, vl, &fields);
	if (eq(k, kl, "pad")) return parse_i64(v, vl, &pad);
	if (eq(k, kl, "trap_fields")) { trap_fields = vl == 1 && v[0] == '1'; return 0; }
	return -4;
}
EXPORT("snk_init") int32_t snk_init(uint32_t len) { return cfg_each(len, on_cfg); }
EXPORT("snk_fields") int32_t snk_fields(void) {
	if (trap_fields) __builtin_trap();
	return (int32_t)fields;
}
static uint8_t *put_dec(uint8_t *o, uint32_t v) {
	uint8_t tmp[10]; int n = 0;
	do { tmp[n++] = (uint8_t)('0' + v % 10); v /= 10; } while (v);
	while (n) *o++ = tmp[--n];
	return o;
}
EXPORT("snk_enrich") int64_t snk_enrich(uint32_t n, uint32_t len) {
	const uint8_t *p = inbuf;
	uint8_t *o = outbuf;
	for (uint32_t i = 0; i < n; i++) {
		rec_t r; p = rec_parse(p, &r);
		o[0] = 2; o[1] = 0; wr16(o + 2, 1);
		uint8_t *h = o + 4; /* patch header: kind 4, set, key "seen" */
		h[0] = 4; h[1] = 1; wr16(h + 2, 4);
		__builtin_memcpy(h + 8, "seen", 4);
		uint8_t *v = h + 12, *w = v;
		__builtin_memcpy(w, "n=", 2); w = put_dec(w + 2, r.nfields);
		__builtin_memcpy(w, " kinds=", 7); w += 7;
		const uint8_t *f = r.fields;
		for (uint32_t j = 0; j < r.nfields; j++) {
			if (f + 8 > r.end) return -2;
			/* kinds 1-3 need bit 1, kind 4 bit 2, kind 5 bit 4 */
			uint32_t bit = f[0] <= 3 ? 1 : f[0] == 4 ? 2 : 4;
			if (!(fields & bit)) return -1;
			*w++ = (uint8_t)('0' + f[0]);
			f += 8 + rd16(f + 2) + rd32(f + 4);
		}
		if (f != r.end) return -2;
		for (int64_t j = 0; j < pad; j++) *w++ = 'x';
		wr32(h + 4, (uint32_t)(w - v));
		o = w;
	}
	return ret(outbuf, (uint32_t)(o - outbuf));
}
