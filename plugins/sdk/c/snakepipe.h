/*
 * snakepipe.h: single-header C SDK for snakepipe Wasm plugins (ABI
 * snakepipe_v1, see docs/plugin-abi.md). Freestanding: no libc, no headers.
 *
 *   clang --target=wasm32 -O2 -mbulk-memory -nostdlib -Wl,--no-entry \
 *         -o plugin.wasm plugin.c
 *
 * A plugin includes this header once, writes a per-event callback and names
 * it with SNAKEPIPE_FILTER(fn) or SNAKEPIPE_ENRICH(fn); SNAKEPIPE_INIT(fn)
 * optionally receives the config, and SNAKEPIPE_FIELDS(groups) optionally
 * declares the field groups the plugin reads (the host then sends only
 * those). The SDK owns the input and result
 * buffers, walks the record batch, and writes verdicts or patches. Records
 * are read lazily: per event only the record frame is checked, and a field
 * lookup checks the fields it walks over (see "reading events"); a
 * malformed batch returns SNK_ERR_BAD_INPUT, and nothing read from outside
 * its record is used (a few words may be loaded past it before a length
 * check rejects them: the input buffer has SNK__SLACK spare bytes).
 * Views (snk_bytes) alias the input buffer: valid only during the
 * callback. Everything is static: include it in exactly one .c file.
 */
#ifndef SNAKEPIPE_H
#define SNAKEPIPE_H

typedef __UINT8_TYPE__ snk_u8;
typedef __UINT16_TYPE__ snk_u16;
typedef __UINT32_TYPE__ snk_u32;
typedef __UINT64_TYPE__ snk_u64;
typedef __INT32_TYPE__ snk_i32;
typedef __INT64_TYPE__ snk_i64;

#define SNK_ABI_VERSION 1

/* Field kinds. */
#define SNK_KIND_INT 1          /* measurement int64 */
#define SNK_KIND_FLOAT 2        /* measurement float64 */
#define SNK_KIND_STRING 3       /* measurement string */
#define SNK_KIND_METADATA 4     /* metadata string */
#define SNK_KIND_HOST_CONTEXT 5 /* worker_id, pool, hostname, pid (read-only) */

/* Field groups, for SNAKEPIPE_FIELDS (docs/plugin-abi.md, snk_fields): the
 * host sends each record only the fields of the groups a plugin declares. */
#define SNK_FIELDS_MEASUREMENTS 1 /* kinds 1-3 */
#define SNK_FIELDS_METADATA 2     /* kind 4 */
#define SNK_FIELDS_HOST_CONTEXT 4 /* kind 5 */
#define SNK_FIELDS_ALL 7          /* every field: also what no declaration means */

/* Batch / init error codes. */
#define SNK_ERR_GENERIC (-1)
#define SNK_ERR_BAD_INPUT (-2)
#define SNK_ERR_OOM (-3)
#define SNK_ERR_CONFIG (-4)

/* The host's limit of patch operations per event. */
#define SNK_MAX_PATCHES 64

/* Log levels. */
#define SNK_TRACE 0
#define SNK_DEBUG 1
#define SNK_INFO 2
#define SNK_WARN 3
#define SNK_ERROR 4

/* A byte string view (not NUL-terminated). */
typedef struct {
    const snk_u8 *p;
    snk_u32 len;
} snk_bytes;

typedef struct {
    snk_u8 kind;
    snk_bytes key;
    snk_bytes val;
} snk_field;

typedef struct {
    snk_i64 ts_ns;
    snk_bytes name;
    snk_bytes correlation_id;
    snk_u32 nfields;
    const snk_u8 *fields; /* field area: checked lazily, see snk_next_field */
    const snk_u8 *end;    /* end of the record */
} snk_event;

typedef struct {
    const snk_u8 *p;
    snk_u32 left;
    const snk_u8 *end;
} snk_field_iter;

typedef struct {
    const snk_u8 *frame;
    snk_u32 len;
} snk_config;

typedef struct {
    snk_u32 head; /* offset of the action header in the result buffer */
    snk_u32 nops;
    int drop;
} snk_patch;

/* ---- small helpers ---------------------------------------------------- */

static inline snk_u16 snk__u16(const snk_u8 *p) { return (snk_u16)(p[0] | (p[1] << 8)); }
static inline snk_u32 snk__u32(const snk_u8 *p) {
    snk_u32 v;
    __builtin_memcpy(&v, p, 4);
    return v;
}
static inline snk_u64 snk__u64(const snk_u8 *p) {
    snk_u64 v;
    __builtin_memcpy(&v, p, 8);
    return v;
}

/* snk__eq_bytes compares n bytes. Up to 16 bytes it uses no Wasm loop:
 * with a deadline, wazero instruments every loop iteration with a call,
 * so the hot paths of this header avoid loops where they can. */
static inline int snk__eq_bytes(const snk_u8 *a, const snk_u8 *b, snk_u32 n) {
    while (n > 16) {
        if (snk__u64(a) != snk__u64(b)) return 0;
        a += 8;
        b += 8;
        n -= 8;
    }
    if (n >= 8) {
        /* 8..16 bytes: the first and the last 8 (they may overlap) */
        return snk__u64(a) == snk__u64(b) && snk__u64(a + n - 8) == snk__u64(b + n - 8);
    }
    if (n >= 4) return snk__u32(a) == snk__u32(b) && snk__u32(a + n - 4) == snk__u32(b + n - 4);
    if (n == 0) return 1;
    /* 1..3 bytes: first, middle and last */
    return a[0] == b[0] && a[n >> 1] == b[n >> 1] && a[n - 1] == b[n - 1];
}

/* snk__key_eq: the keylen bytes at p equal key; k8 holds the 8 bytes at p
 * (already loaded, see snk_find). With a constant keylen (the macros pass
 * sizeof a literal) a key up to 8 bytes is one masked compare of k8 and a
 * key up to 16 bytes adds one load. */
static inline __attribute__((always_inline)) int snk__key_eq(const snk_u8 *p, snk_u64 k8, const char *key, snk_u32 keylen) {
    if (__builtin_constant_p(keylen) && keylen <= 16) {
        if (keylen == 0) return 1;
        snk_u64 lit = 0;
        __builtin_memcpy(&lit, key, keylen < 8 ? keylen : 8);
        if (keylen < 8) return ((k8 ^ lit) & ((1ULL << (8 * (keylen & 7))) - 1)) == 0;
        if (keylen == 8) return k8 == lit;
        return k8 == lit && snk__u64(p + keylen - 8) == snk__u64((const snk_u8 *)key + keylen - 8);
    }
    return snk__eq_bytes(p, (const snk_u8 *)key, keylen);
}

/* snk_eq compares a view with len bytes at s. SNK_EQ takes a string literal. */
static inline int snk_eq(snk_bytes b, const char *s, snk_u32 len) {
    return b.len == len && snk__eq_bytes(b.p, (const snk_u8 *)s, len);
}
#define SNK_EQ(b, lit) snk_eq((b), (lit), (snk_u32)(sizeof(lit) - 1))

static inline snk_i64 snk_field_i64(const snk_field *f) { return (snk_i64)snk__u64(f->val.p); }
static inline double snk_field_f64(const snk_field *f) {
    double d;
    __builtin_memcpy(&d, f->val.p, 8);
    return d;
}

/* ---- log -------------------------------------------------------------- */

__attribute__((import_module("snakepipe_v1"), import_name("log")))
void snk__host_log(snk_i32 level, const void *ptr, snk_i32 len);

/* snk_log sends len bytes at msg to snakepipe's logger (rate-limited). */
static inline void snk_log(int level, const char *msg, snk_u32 len) { snk__host_log(level, msg, (snk_i32)len); }
#define SNK_LOG(level, lit) snk_log((level), (lit), (snk_u32)(sizeof(lit) - 1))

/* ---- reading events ---------------------------------------------------- */

/* Record access is lazy. Per event the SDK checks only the record frame
 * (length, name, correlation id and field count fit in the record). A
 * lookup (snk_find and the macros on it) checks that each field it walks
 * over lies inside the record, and fully checks the field it returns (a
 * known kind, an 8-byte value for int and float); an iterator
 * (snk_next_field) fully checks every field it returns. A walk that meets
 * a malformed field stops there, reports "not found" / "no more fields",
 * and marks the batch bad: the SDK then answers the whole batch with
 * SNK_ERR_BAD_INPUT whatever the callback did. Fields no walk reaches are
 * never looked at: the host never sends malformed records, and the checks
 * only keep a bad batch from reading outside its record. */
static int snk__bad; /* a walk met a malformed field in this batch */

static inline snk_field_iter snk_fields(const snk_event *ev) {
    snk_field_iter it = {ev->fields, ev->nfields, ev->end};
    return it;
}

/* snk__field_size is the size of the field with header word h. */
static inline snk_u64 snk__field_size(snk_u64 h) { return 8 + ((h >> 16) & 0xFFFF) + (h >> 32); }

/* snk__field_fits: the field with header h at p lies inside the record
 * (before end). The header may have been read past end: the input buffer
 * has SNK__SLACK bytes after it, and a header that does not fit fails this
 * check (a field is at least 8 bytes). */
static inline int snk__field_fits(snk_u64 h, const snk_u8 *p, const snk_u8 *end) {
    return snk__field_size(h) <= (snk_u64)(snk_u32)(end - p);
}

/* snk__field_ok: a known kind, and an 8-byte value for int and float. */
static inline int snk__field_ok(snk_u64 h) {
    snk_u32 kind = (snk_u32)h & 0xFF;
    return kind - 1 <= SNK_KIND_HOST_CONTEXT - 1 && (kind > SNK_KIND_FLOAT || (h >> 32) == 8);
}

static inline void snk__field_fill(const snk_u8 *p, snk_u64 h, snk_field *f) {
    snk_u32 kl = (snk_u32)(h >> 16) & 0xFFFF;
    f->kind = (snk_u8)h;
    f->key.p = p + 8;
    f->key.len = kl;
    f->val.p = p + 8 + kl;
    f->val.len = (snk_u32)(h >> 32);
}

/* snk_next_field stores the next field in *f; returns 0 after the last (or
 * at a malformed field, which fails the batch). */
static inline int snk_next_field(snk_field_iter *it, snk_field *f) {
    if (it->left == 0) return 0;
    const snk_u8 *p = it->p;
    snk_u64 h = snk__u64(p);
    if (!snk__field_fits(h, p, it->end) || !snk__field_ok(h)) {
        snk__bad = 1;
        it->left = 0;
        return 0;
    }
    snk__field_fill(p, h, f);
    it->p = p + (snk_u32)snk__field_size(h);
    it->left--;
    return 1;
}

/* snk__found_ok: the field with header h, whose kind is in [lo, hi], is
 * well formed. With constant bounds this folds to one compare or none. */
static inline int snk__found_ok(snk_u64 h, int lo, int hi) {
    if (lo >= SNK_KIND_INT && hi <= SNK_KIND_FLOAT) return (h >> 32) == 8;
    if (lo > SNK_KIND_FLOAT && hi <= SNK_KIND_HOST_CONTEXT) return 1;
    return snk__field_ok(h);
}

/* snk__find is snk_find that also stores in *word the first 8 bytes of
 * the value of the field found (for snk_number: an int or float value).
 * With a constant key of up to 16 bytes (the macros pass sizeof a literal)
 * the 8 bytes after the header and the 8 bytes where the value would be
 * are read as words (a key up to 8 bytes is then one masked compare, see
 * snk__key_eq); clang may load them before the field is known to fit in
 * its record, so the input buffer has SNK__SLACK bytes after the batch.
 * Their values are used only for a field that fits. */
static inline __attribute__((always_inline)) int snk__find(const snk_event *ev, int lo, int hi, const char *key, snk_u32 keylen, snk_field *f,
                                                            snk_u64 *word) {
    if (hi < lo || keylen > 0xFFFF) return 0;
    const snk_u8 *p = ev->fields, *end = ev->end;
    snk_u32 left = ev->nfields;
    snk_u32 want = keylen << 16 | (snk_u32)lo, span = (snk_u32)(hi - lo);
    const int probe = __builtin_constant_p(keylen) && keylen <= 16;
    /* room: bytes from p to the record end; a field fits when its size is
     * at most room (one compare, no end - p per field) */
    snk_u64 h, k8, v = 0, sz, room = (snk_u32)(end - p);
#define SNK__FIND_STEP                                                                 \
    if (left == 0) return 0;                                                          \
    if (probe) v = snk__u64(p + 8 + keylen);                                          \
    k8 = snk__u64(p + 8);                                                             \
    h = snk__u64(p);                                                                  \
    sz = snk__field_size(h);                                                          \
    if (__builtin_expect(sz > room, 0)) goto bad;                                     \
    if (((snk_u32)h & 0xFFFF00FFu) - want <= span && snk__key_eq(p + 8, k8, key, keylen)) \
        goto found;                                                                   \
    p += (snk_u32)sz;                                                                 \
    room -= sz;                                                                       \
    left--;
    SNK__FIND_STEP SNK__FIND_STEP SNK__FIND_STEP SNK__FIND_STEP
    SNK__FIND_STEP SNK__FIND_STEP SNK__FIND_STEP SNK__FIND_STEP
    for (;;) {
        SNK__FIND_STEP
    }
#undef SNK__FIND_STEP
found:
    if (__builtin_expect(!snk__found_ok(h, lo, hi), 0)) goto bad;
    /* the key length is keylen here: a constant for the macros, so the
     * value's address is p plus a constant */
    f->kind = (snk_u8)h;
    f->key.p = p + 8;
    f->key.len = keylen;
    f->val.p = p + 8 + keylen;
    f->val.len = (snk_u32)(h >> 32);
    /* v is the value's first 8 bytes when the value has 8 (int, float) */
    *word = probe ? v : (f->val.len >= 8 ? snk__u64(f->val.p) : 0);
    return 1;
bad:
    snk__bad = 1;
    return 0;
}

/* snk_find finds the first field with kind in [lo, hi] and the given key.
 * Per field it walks over: the header (and the next 8 bytes, see
 * snk__find) loaded, a bounds check, and one compare of kind and key
 * length together (flags, byte 1, are ignored); the key bytes are compared
 * only when the lengths match. The first 8 fields are visited without a
 * Wasm loop (see snk__eq_bytes). */
static inline __attribute__((always_inline)) int snk_find(const snk_event *ev, int lo, int hi, const char *key, snk_u32 keylen, snk_field *f) {
    snk_u64 word;
    return snk__find(ev, lo, hi, key, keylen, f, &word);
}
#define SNK_MEASUREMENT(ev, lit, f) snk_find((ev), SNK_KIND_INT, SNK_KIND_STRING, (lit), sizeof(lit) - 1, (f))
#define SNK_METADATA(ev, lit, f) snk_find((ev), SNK_KIND_METADATA, SNK_KIND_METADATA, (lit), sizeof(lit) - 1, (f))
#define SNK_HOST_CONTEXT(ev, lit, f) snk_find((ev), SNK_KIND_HOST_CONTEXT, SNK_KIND_HOST_CONTEXT, (lit), sizeof(lit) - 1, (f))

/* snk_number finds an int or float measurement: returns SNK_KIND_INT with
 * *i set, SNK_KIND_FLOAT with *d set, or 0 when absent (or a string). */
static inline __attribute__((always_inline)) int snk_number(const snk_event *ev, const char *key, snk_u32 keylen, snk_i64 *i, double *d) {
    snk_field f;
    snk_u64 w;
    if (!snk__find(ev, SNK_KIND_INT, SNK_KIND_FLOAT, key, keylen, &f, &w)) return 0;
    if (f.kind == SNK_KIND_INT) {
        *i = (snk_i64)w;
        return SNK_KIND_INT;
    }
    *d = __builtin_bit_cast(double, w);
    return SNK_KIND_FLOAT;
}
#define SNK_NUMBER(ev, lit, i, d) snk_number((ev), (lit), sizeof(lit) - 1, (i), (d))

/* snk__parse_record checks the frame of the record at p (avail bytes): the
 * length, and that the name, the correlation id and the field count fit in
 * it (no loop; the fields are checked lazily, see above). It fills *ev and
 * *size (the record's total size) and returns 0 when the frame is
 * malformed. Three compares: rec_len against the batch, then name_len and
 * name_len + corr_len against rec_len (the second also rules out
 * rec_len < 14). rec_len and name_len are loaded before any check: the
 * input buffer has SNK__SLACK bytes after the batch. */
static inline int snk__parse_record(const snk_u8 *p, snk_u32 avail, snk_event *ev, snk_u32 *size) {
    snk_u32 rl = snk__u32(p);
    snk_u32 nl = snk__u16(p + 12);
    /* 14 = ts (8) + name_len (2) + corr_len (2) + nfields (2) */
    if (__builtin_expect((snk_u64)rl + 4 > avail, 0)) return 0;
    if (__builtin_expect(nl + 14 > rl, 0)) return 0;
    const snk_u8 *r = p + 4;
    snk_u32 cl = snk__u16(r + 10 + nl);
    if (__builtin_expect(nl + cl + 14 > rl, 0)) return 0;
    ev->ts_ns = (snk_i64)snk__u64(r);
    ev->name.p = r + 10;
    ev->name.len = nl;
    ev->correlation_id.p = r + 12 + nl;
    ev->correlation_id.len = cl;
    ev->nfields = snk__u16(r + 12 + nl + cl);
    ev->fields = r + 14 + nl + cl;
    ev->end = r + rl; /* bytes after the last field are skipped */
    *size = 4 + rl;
    return 1;
}

/* ---- config ------------------------------------------------------------ */

/* snk_parse_i64 parses -?[0-9]+ without overflow; returns 1 on success. */
static inline int snk_parse_i64(snk_bytes s, snk_i64 *out) {
    snk_u32 i = 0;
    int neg = s.len > 0 && s.p[0] == '-';
    if (neg) i = 1;
    if (i == s.len) return 0;
    snk_u64 u = 0;
    for (; i < s.len; i++) {
        snk_u32 d = (snk_u32)s.p[i] - '0';
        if (d > 9) return 0;
        if (u > (1ULL << 63) / 10) return 0;
        u = u * 10 + d;
        if (u > (1ULL << 63)) return 0;
    }
    if (!neg && u > (1ULL << 63) - 1) return 0;
    *out = neg ? (snk_i64)(0 - u) : (snk_i64)u;
    return 1;
}

/* snk_config_entry reads entry i (sorted by key); returns 0 past the end. */
static inline int snk_config_entry(const snk_config *c, snk_u32 i, snk_bytes *key, snk_bytes *val) {
    if (c->len < 2) return 0;
    snk_u32 n = snk__u16(c->frame), o = 2;
    for (snk_u32 j = 0; j < n; j++) {
        snk_u32 kl = snk__u16(c->frame + o + 2), vl = snk__u32(c->frame + o + 4);
        if (j == i) {
            key->p = c->frame + o + 8;
            key->len = kl;
            val->p = key->p + kl;
            val->len = vl;
            return 1;
        }
        o += 8 + kl + vl;
    }
    return 0;
}

/* snk_config_get finds key; returns 1 and sets *val when present. */
static inline int snk_config_get(const snk_config *c, const char *key, snk_u32 keylen, snk_bytes *val) {
    snk_bytes k;
    for (snk_u32 i = 0; snk_config_entry(c, i, &k, val); i++)
        if (snk_eq(k, key, keylen)) return 1;
    return 0;
}

#define SNK_CONFIG_GET(c, lit, val) snk_config_get((c), (lit), sizeof(lit) - 1, (val))

/* snk_config_i64 sets *out to key as a decimal int64, or def when absent.
 * Returns 0, or SNK_ERR_CONFIG (and logs why) when the value is malformed. */
static inline int snk_config_i64(const snk_config *c, const char *key, snk_u32 keylen, snk_i64 def, snk_i64 *out) {
    snk_bytes v;
    if (!snk_config_get(c, key, keylen, &v)) {
        *out = def;
        return 0;
    }
    if (!snk_parse_i64(v, out)) {
        snk_log(SNK_ERROR, key, keylen);
        SNK_LOG(SNK_ERROR, "config value above is not a decimal int64");
        return SNK_ERR_CONFIG;
    }
    return 0;
}
#define SNK_CONFIG_I64(c, lit, def, out) snk_config_i64((c), (lit), sizeof(lit) - 1, (def), (out))

/* snk_config_only returns 0 when every key is one of the n names in known,
 * else logs the first unknown key and returns SNK_ERR_CONFIG. */
static inline int snk_config_only(const snk_config *c, const char *const *known, snk_u32 n) {
    snk_bytes k, v;
    for (snk_u32 i = 0; snk_config_entry(c, i, &k, &v); i++) {
        int ok = 0;
        for (snk_u32 j = 0; j < n && !ok; j++) {
            snk_u32 l = 0;
            while (known[j][l]) l++;
            ok = snk_eq(k, known[j], l);
        }
        if (!ok) {
            SNK_LOG(SNK_ERROR, "config: unknown key:");
            snk_log(SNK_ERROR, (const char *)k.p, k.len);
            return SNK_ERR_CONFIG;
        }
    }
    return 0;
}

/* snk__config_valid checks the frame's layout before the plugin sees it. */
static inline int snk__config_valid(const snk_u8 *p, snk_u32 len) {
    if (len == 0) return 1;
    if (len < 2) return 0;
    snk_u32 n = snk__u16(p), o = 2;
    for (snk_u32 j = 0; j < n; j++) {
        if (len - o < 8 || p[o] != SNK_KIND_METADATA) return 0;
        snk_u64 kl = snk__u16(p + o + 2), vl = snk__u32(p + o + 4);
        if (8 + kl + vl > (snk_u64)(len - o)) return 0;
        o += 8 + (snk_u32)kl + (snk_u32)vl;
    }
    return o == len;
}

/* ---- buffers ----------------------------------------------------------- */

#ifndef SNK_STATIC_IN
#define SNK_STATIC_IN (64u << 10)
#endif
#ifndef SNK_STATIC_OUT
#define SNK_STATIC_OUT (16u << 10)
#endif

/* The input buffer is followed by SNK__SLACK readable bytes, so a fixed-size
 * header, and the words snk__find reads after a field's header, can be
 * loaded before a length check (see snk__field_fits, snk__find). */
#define SNK__SLACK 32u
/* On a cache line: the host writes every record here (see snk_in_buf). */
static snk_u8 snk__in_static[SNK_STATIC_IN + SNK__SLACK] __attribute__((aligned(64)));
static snk_u8 snk__out_static[SNK_STATIC_OUT];
static snk_u8 *snk__in = snk__in_static;
static snk_u32 snk__in_cap = SNK_STATIC_IN;
static snk_u8 *snk__out = snk__out_static;
static snk_u32 snk__out_cap = SNK_STATIC_OUT;
static snk_u32 snk__out_len;
static int snk__out_err;

/* snk__grow returns a fresh region of at least need bytes from memory.grow
 * (no allocator is linked, so nothing else uses grown pages), or 0. */
static inline snk_u8 *snk__grow(snk_u32 need, snk_u32 *cap) {
    snk_u32 pages = (need + 0xFFFFu) >> 16;
    if (need > (64u << 20)) return 0;
    __SIZE_TYPE__ old = __builtin_wasm_memory_grow(0, pages);
    if (old == (__SIZE_TYPE__)-1) return 0;
    *cap = pages << 16;
    return (snk_u8 *)(old << 16);
}

/* snk__reserve makes room for n more result bytes; 0 when out of memory. */
static inline int snk__reserve(snk_u32 n) {
    if (snk__out_err) return 0;
    if (n <= snk__out_cap - snk__out_len) return 1;
    snk_u32 cap;
    snk_u64 need = (snk_u64)snk__out_len + n;
    snk_u8 *p = need > (64u << 20) ? 0 : snk__grow((snk_u32)(need * 2 > (64u << 20) ? need : need * 2), &cap);
    if (!p) {
        snk__out_err = SNK_ERR_OOM;
        return 0;
    }
    __builtin_memcpy(p, snk__out, snk__out_len);
    snk__out = p;
    snk__out_cap = cap;
    return 1;
}

static inline snk_i64 snk__result(void) {
    if (snk__out_err) return snk__out_err;
    return ((snk_i64)(snk_u32)(__SIZE_TYPE__)snk__out << 32) | snk__out_len;
}

/* ---- patches ----------------------------------------------------------- */

static inline void snk__patch_op(snk_patch *p, snk_u8 kind, snk_u8 opcode, const void *key, snk_u32 kl,
                                 const void *val, snk_u32 vl) {
    if (kl > 0xFFFFu || p->nops == SNK_MAX_PATCHES) {
        SNK_LOG(SNK_ERROR, "patch: key longer than 65535 bytes or more than 64 patches for one event");
        snk__out_err = SNK_ERR_GENERIC;
        return;
    }
    if (!snk__reserve(8 + kl + vl)) return;
    snk_u8 *o = snk__out + snk__out_len;
    o[0] = kind;
    o[1] = opcode;
    o[2] = (snk_u8)kl;
    o[3] = (snk_u8)(kl >> 8);
    __builtin_memcpy(o + 4, &vl, 4);
    __builtin_memcpy(o + 8, key, kl);
    __builtin_memcpy(o + 8 + kl, val, vl);
    snk__out_len += 8 + kl + vl;
    p->nops++;
}

static inline void snk_set_metadata(snk_patch *p, const char *k, snk_u32 kl, const char *v, snk_u32 vl) {
    snk__patch_op(p, SNK_KIND_METADATA, 1, k, kl, v, vl);
}
static inline void snk_set_string(snk_patch *p, const char *k, snk_u32 kl, const char *v, snk_u32 vl) {
    snk__patch_op(p, SNK_KIND_STRING, 1, k, kl, v, vl);
}
static inline void snk_set_i64(snk_patch *p, const char *k, snk_u32 kl, snk_i64 v) {
    snk__patch_op(p, SNK_KIND_INT, 1, k, kl, &v, 8);
}
static inline void snk_set_f64(snk_patch *p, const char *k, snk_u32 kl, double v) {
    snk__patch_op(p, SNK_KIND_FLOAT, 1, k, kl, &v, 8);
}
static inline void snk_delete_metadata(snk_patch *p, const char *k, snk_u32 kl) {
    snk__patch_op(p, SNK_KIND_METADATA, 2, k, kl, 0, 0);
}
static inline void snk_delete_measurement(snk_patch *p, const char *k, snk_u32 kl) {
    snk__patch_op(p, SNK_KIND_INT, 2, k, kl, 0, 0);
}
/* snk_drop drops the event; its patches are discarded. */
static inline void snk_drop(snk_patch *p) { p->drop = 1; }
#define SNK_SET_METADATA(p, klit, vlit) snk_set_metadata((p), (klit), sizeof(klit) - 1, (vlit), sizeof(vlit) - 1)

/* ---- batch drivers ----------------------------------------------------- */

static inline snk_i64 snk__filter(snk_u32 n, snk_u32 len, int (*keep)(const snk_event *)) {
    if (len > snk__in_cap) return SNK_ERR_BAD_INPUT;
    snk__out_len = 0;
    snk__out_err = 0;
    if (!snk__reserve(n)) return snk__out_err;
    const snk_u8 *p = snk__in;
    snk_u8 *out = snk__out;
    snk_u32 left = len;
    snk_event ev;
    snk__bad = 0;
    for (snk_u32 i = 0; i < n; i++) {
        snk_u32 sz;
        if (!snk__parse_record(p, left, &ev, &sz)) return SNK_ERR_BAD_INPUT;
        out[i] = keep(&ev) ? 1 : 0;
        p += sz;
        left -= sz;
    }
    if (left || snk__bad) return SNK_ERR_BAD_INPUT;
    snk__out_len = n;
    return snk__result();
}

static inline snk_i64 snk__enrich(snk_u32 n, snk_u32 len, void (*fn)(const snk_event *, snk_patch *)) {
    if (len > snk__in_cap) return SNK_ERR_BAD_INPUT;
    snk__out_len = 0;
    snk__out_err = 0;
    const snk_u8 *p = snk__in;
    snk_u32 left = len;
    snk_event ev;
    snk__bad = 0;
    for (snk_u32 i = 0; i < n; i++) {
        snk_u32 sz;
        if (!snk__parse_record(p, left, &ev, &sz)) return SNK_ERR_BAD_INPUT;
        if (!snk__reserve(4)) return snk__out_err;
        snk_patch pt = {snk__out_len, 0, 0};
        snk__out_len += 4;
        fn(&ev, &pt);
        if (snk__out_err) return snk__out_err;
        snk_u8 *h = snk__out + pt.head;
        h[1] = 0;
        if (pt.drop) {
            snk__out_len = pt.head + 4;
            h[0] = 1;
            h[2] = h[3] = 0;
        } else {
            h[0] = pt.nops ? 2 : 0;
            h[2] = (snk_u8)pt.nops;
            h[3] = (snk_u8)(pt.nops >> 8);
        }
        p += sz;
        left -= sz;
    }
    if (left || snk__bad) return SNK_ERR_BAD_INPUT;
    return snk__result();
}

/* ---- exports ----------------------------------------------------------- */

#define SNK__EXPORT(name) __attribute__((export_name(name)))

#define SNK__COMMON_EXPORTS                                                         \
    SNK__EXPORT("snk_abi_version") snk_i32 snk_abi_version(void) { return SNK_ABI_VERSION; } \
    SNK__EXPORT("snk_in_buf") snk_u32 snk_in_buf(snk_u32 min) {                     \
        if (min > snk__in_cap) {                                                    \
            snk_u32 cap;                                                            \
            snk_u8 *p = min > (64u << 20) ? 0 : snk__grow(min + SNK__SLACK, &cap);  \
            if (!p) return 0;                                                       \
            snk__in = p;                                                            \
            snk__in_cap = cap - SNK__SLACK;                                         \
        }                                                                           \
        return (snk_u32)(__SIZE_TYPE__)snk__in;                                     \
    }

/* SNAKEPIPE_FILTER(fn): fn(const snk_event *) returns nonzero to keep. */
#define SNAKEPIPE_FILTER(fn)                                                        \
    SNK__COMMON_EXPORTS                                                             \
    SNK__EXPORT("snk_filter") snk_i64 snk_filter(snk_u32 n, snk_u32 len) { return snk__filter(n, len, fn); }

/* SNAKEPIPE_ENRICH(fn): fn(const snk_event *, snk_patch *) records changes. */
#define SNAKEPIPE_ENRICH(fn)                                                        \
    SNK__COMMON_EXPORTS                                                             \
    SNK__EXPORT("snk_enrich") snk_i64 snk_enrich(snk_u32 n, snk_u32 len) { return snk__enrich(n, len, fn); }

/* SNAKEPIPE_INIT(fn): fn(const snk_config *) returns 0 or SNK_ERR_CONFIG.
 * The config view is valid only during fn: copy or parse what you need. */
#define SNAKEPIPE_INIT(fn)                                                          \
    SNK__EXPORT("snk_init") snk_i32 snk_init(snk_u32 cfg_len) {                     \
        if (cfg_len > snk__in_cap || !snk__config_valid(snk__in, cfg_len)) {        \
            SNK_LOG(SNK_ERROR, "snk_init: malformed config frame");                 \
            return SNK_ERR_CONFIG;                                                  \
        }                                                                           \
        snk_config c = {snk__in, cfg_len};                                          \
        return fn(&c);                                                              \
    }

/* SNAKEPIPE_FIELDS(groups) declares the field groups the plugin reads
 * (SNK_FIELDS_* or'ed together; 0: name, timestamp and correlation id
 * only), exported as snk_fields. The host then leaves every other field out
 * of the records it sends: less to encode and copy per event. A lookup or
 * iterator never sees a field of a group not declared. groups is evaluated
 * when the host asks, once per instance after snk_init, so it may depend on
 * the config. Without SNAKEPIPE_FIELDS there is no export and the host
 * sends every field. (The C name is not snk_fields: that is the iterator.) */
#define SNAKEPIPE_FIELDS(groups)                                                    \
    SNK__EXPORT("snk_fields") snk_i32 snk__fields(void) {                           \
        /* a constant with another bit fails here, not at load */                  \
        _Static_assert((__builtin_choose_expr(__builtin_constant_p(groups), (groups), 0) & ~SNK_FIELDS_ALL) == 0, \
                       "SNAKEPIPE_FIELDS: not a set of SNK_FIELDS_MEASUREMENTS, SNK_FIELDS_METADATA, SNK_FIELDS_HOST_CONTEXT"); \
        return (snk_i32)(groups);                                                   \
    }

#endif /* SNAKEPIPE_H */
