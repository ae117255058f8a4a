/* Minimal ABI v1 helpers for the host's test fixtures (not the C SDK:
 * that is plugins/sdk/c). docs/plugin-abi.md is the contract. */
#include <stdint.h>
#define EXPORT(n) __attribute__((export_name(n)))
#define INBUF_SIZE (256 * 1024 + 64)
static uint8_t inbuf[INBUF_SIZE];
static uint8_t outbuf[1 << 20];

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static inline int64_t rd64(const uint8_t *p) { return (int64_t)((uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32); }
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)v); wr16(p + 2, (uint16_t)(v >> 16)); }
static inline void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }
static inline int eq(const uint8_t *a, uint32_t alen, const char *b) {
	uint32_t i = 0;
	for (; b[i]; i++) if (i >= alen || a[i] != (uint8_t)b[i]) return 0;
	return i == alen;
}

/* A parsed record: name and the field area. */
typedef struct { const uint8_t *name; uint32_t name_len; const uint8_t *fields; uint16_t nfields; const uint8_t *end; } rec_t;
static inline const uint8_t *rec_parse(const uint8_t *p, rec_t *r) {
	uint32_t len = rd32(p);
	r->end = p + 4 + len;
	p += 12;
	r->name_len = rd16(p); r->name = p + 2; p += 2 + r->name_len;
	p += 2 + rd16(p); /* correlation id */
	r->nfields = rd16(p); r->fields = p + 2;
	return r->end;
}
/* Finds field key of a kind in [lo, hi]; returns pointer to the value or 0. */
static inline const uint8_t *rec_find(const rec_t *r, const char *key, int lo, int hi, int *kind, uint32_t *vlen) {
	const uint8_t *p = r->fields;
	for (uint16_t i = 0; i < r->nfields; i++) {
		uint16_t kl = rd16(p + 2); uint32_t vl = rd32(p + 4);
		if (p[0] >= lo && p[0] <= hi && eq(p + 8, kl, key)) { *kind = p[0]; *vlen = vl; return p + 8 + kl; }
		p += 8 + kl + vl;
	}
	return 0;
}
static inline int64_t ret(const uint8_t *ptr, uint32_t len) { return (int64_t)((uint64_t)(uintptr_t)ptr << 32 | len); }

EXPORT("snk_abi_version") int32_t snk_abi_version(void) { return 1; }
EXPORT("snk_in_buf") uint32_t snk_in_buf(uint32_t min) { return min <= INBUF_SIZE ? (uint32_t)(uintptr_t)inbuf : 0; }

/* Parses the config frame; calls cb(key, klen, val, vlen) per field. */
static inline int cfg_each(uint32_t len, int (*cb)(const uint8_t *, uint32_t, const uint8_t *, uint32_t)) {
	if (len < 2) return -4;
	const uint8_t *p = inbuf;
	uint16_t n = rd16(p); p += 2;
	for (uint16_t i = 0; i < n; i++) {
		uint16_t kl = rd16(p + 2); uint32_t vl = rd32(p + 4);
		int rc = cb(p + 8, kl, p + 8 + kl, vl);
		if (rc) return rc;
		p += 8 + kl + vl;
	}
	return 0;
}
static inline int parse_i64(const uint8_t *s, uint32_t n, int64_t *out) {
	if (n == 0) return -4;
	int64_t v = 0;
	for (uint32_t i = 0; i < n; i++) { if (s[i] < '0' || s[i] > '9') return -4; v = v * 10 + (s[i] - '0'); }
	*out = v;
	return 0;
}
