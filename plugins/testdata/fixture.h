/* Minimal ABI v1 helpers for the host's test fixtures (not the C SDK:
 * that is plugins/sdk/c). docs/plugin-abi.md is the contract. */
#include <stdint.h>
#define EXPORT(n) __attribute__((export_name(n)))
#define INBUF_SIZE (256 * 1024 + 64)
static uint8_t inbuf[INBUF_SIZE];
static uint8_t outbuf[1 << 20];

#define INLINE static inline __attribute__((always_inline))
INLINE uint16_t rd16(const uint8_t *p) { uint16_t v; __builtin_memcpy(&v, p, 2); return v; }
INLINE uint32_t rd32(const uint8_t *p) { uint32_t v; __builtin_memcpy(&v, p, 4); return v; }
INLINE int64_t rd64(const uint8_t *p) { int64_t v; __builtin_memcpy(&v, p, 8); return v; }
INLINE void wr16(uint8_t *p, uint16_t v) { __builtin_memcpy(p, &v, 2); }
INLINE void wr32(uint8_t *p, uint32_t v) { __builtin_memcpy(p, &v, 4); }
INLINE void wr64(uint8_t *p, uint64_t v) { __builtin_memcpy(p, &v, 8); }
/* eq(a, alen, "literal") compares alen bytes at a with a string literal:
 * the length first, then 8 (or 4) bytes at a time, the last word
 * overlapping the one before. The length is sizeof(literal) - 1, a
 * constant from the start, so clang folds the words into constants and
 * emits straight-line code with no Wasm loop up to 16 bytes (a loop costs
 * an exit to Go per iteration when the host runs with a deadline). */
INLINE int eq_n(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t n) {
	if (alen != n) return 0;
	while (n > 16) {
		if (rd64(a) != rd64(b)) return 0;
		a += 8; b += 8; n -= 8;
	}
	if (n >= 8) return rd64(a) == rd64(b) && rd64(a + n - 8) == rd64(b + n - 8);
	if (n >= 4) return rd32(a) == rd32(b) && rd32(a + n - 4) == rd32(b + n - 4);
	if (n == 0) return 1;
	return a[0] == b[0] && a[n >> 1] == b[n >> 1] && a[n - 1] == b[n - 1];
}
#define eq(a, alen, lit) eq_n((a), (alen), (const uint8_t *)(lit), sizeof(lit) - 1)

/* A parsed record: name and the field area. The host's fixtures trust
 * their input (the SDKs under plugins/sdk check it). */
typedef struct { const uint8_t *name; uint32_t name_len; const uint8_t *fields; uint16_t nfields; const uint8_t *end; } rec_t;
INLINE const uint8_t *rec_parse(const uint8_t *p, rec_t *r) {
	uint32_t len = rd32(p);
	r->end = p + 4 + len;
	p += 12;
	r->name_len = rd16(p); r->name = p + 2; p += 2 + r->name_len;
	p += 2 + rd16(p); /* correlation id */
	r->nfields = rd16(p); r->fields = p + 2;
	return r->end;
}
/* rec_find(r, "key", lo, hi, &kind, &vlen) finds field key (a literal) of
 * a kind in [lo, hi]; returns a pointer to the value or 0. Each field's
 * 8-byte header is one load; the key bytes are compared only when the key
 * length matches. */
#define rec_find(r, lit, lo, hi, kind, vlen) rec_find_n((r), (const uint8_t *)(lit), sizeof(lit) - 1, (lo), (hi), (kind), (vlen))
INLINE const uint8_t *rec_find_n(const rec_t *r, const uint8_t *key, uint32_t keylen, int lo, int hi, int *kind, uint32_t *vlen) {
	const uint8_t *p = r->fields;
	uint32_t left = r->nfields;
	/* the first 4 fields unrolled: no Wasm loop iteration for them */
#define FIND_STEP { \
		if (left == 0) return 0; \
		uint64_t h = (uint64_t)rd64(p); \
		uint32_t kl = (uint32_t)(h >> 16) & 0xFFFF, vl = (uint32_t)(h >> 32); \
		int k = (int)(h & 0xFF); \
		if (kl == keylen && k >= lo && k <= hi && eq_n(p + 8, kl, key, keylen)) { *kind = k; *vlen = vl; return p + 8 + kl; } \
		p += 8 + kl + vl; \
		left--; \
	}
	FIND_STEP FIND_STEP FIND_STEP FIND_STEP
	for (;;) FIND_STEP
#undef FIND_STEP
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
