/* Reference enricher. For every event:
 *   name "debug.noise"            -> drop
 *   has int measurement duration  -> set metadata speed = "slow" if duration >= config slow_ns
 *                                    (default 1000000) else "fast"; set int measurement
 *                                    duration_us = duration / 1000; delete metadata "secret"
 *   otherwise                     -> unchanged
 * With config bad_key=1 it instead sets metadata "worker_id" (a host key: rejected). */
#include "fixture.h"
static int64_t slow_ns = 1000000;
static int bad_key;
static int on_cfg(const uint8_t *k, uint32_t kl, const uint8_t *v, uint32_t vl) {
	if (eq(k, kl, "slow_ns")) return parse_i64(v, vl, &slow_ns);
	if (eq(k, kl, "bad_key")) { bad_key = vl == 1 && v[0] == '1'; return 0; }
	return 0;
}
EXPORT("snk_init") int32_t snk_init(uint32_t len) { return cfg_each(len, on_cfg); }
/* key is a literal: its length folds to a constant, the copies to stores. */
#define put_patch(o, kind, opcode, lit, val, vl) put_patch_n((o), (kind), (opcode), (lit), sizeof(lit) - 1, (val), (vl))
INLINE uint8_t *put_patch_n(uint8_t *o, uint8_t kind, uint8_t opcode, const char *key, uint16_t kl, const void *val, uint32_t vl) {
	o[0] = kind; o[1] = opcode; wr16(o + 2, kl); wr32(o + 4, vl); o += 8;
	__builtin_memcpy(o, key, kl);
	__builtin_memcpy(o + kl, val, vl);
	return o + kl + vl;
}
EXPORT("snk_enrich") int64_t snk_enrich(uint32_t n, uint32_t len) {
	const uint8_t *p = inbuf;
	uint8_t *o = outbuf;
	for (uint32_t i = 0; i < n; i++) {
		rec_t r; p = rec_parse(p, &r);
		int kind; uint32_t vl;
		const uint8_t *v = rec_find(&r, "duration", 1, 1, &kind, &vl);
		if (eq(r.name, r.name_len, "debug.noise")) { o[0] = 1; o[1] = 0; wr16(o + 2, 0); o += 4; continue; }
		if (!v) { o[0] = 0; o[1] = 0; wr16(o + 2, 0); o += 4; continue; }
		int64_t d = rd64(v);
		o[0] = 2; o[1] = 0; wr16(o + 2, bad_key ? 1 : 3); o += 4;
		if (bad_key) { o = put_patch(o, 4, 1, "worker_id", "evil", 4); continue; }
		const char *speed = d >= slow_ns ? "slow" : "fast";
		o = put_patch(o, 4, 1, "speed", speed, 4);
		uint8_t us[8]; wr64(us, (uint64_t)(d / 1000));
		o = put_patch(o, 1, 1, "duration_us", us, 8);
		o = put_patch(o, 4, 2, "secret", 0, 0);
	}
	return ret(outbuf, (uint32_t)(o - outbuf));
}
