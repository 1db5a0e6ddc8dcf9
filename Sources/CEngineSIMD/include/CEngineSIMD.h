// What the engine's Swift kernels need from C: lane interleaves and de-interleaves of eight-float
// vectors, and a cache prefetch hint (Swift has neither).
// Swift has no two-input vector shuffle: built lane by lane, LLVM merges a whole transpose into one
// four-input shuffle and lowers it to twice the instructions. Written here as two-input shuffles,
// they compile to unpck/shuf/perm2f128 with AVX2 and to SSE shuffles in portable builds. Every
// function is static inline, so Swift inlines it into the calling kernel.
#ifndef CENGINESHUFFLES_H
#define CENGINESHUFFLES_H

/// Eight floats (imported into Swift as SIMD8<Float>).
typedef float sx_f8 __attribute__((vector_size(32)));
/// Eight floats at any 4-byte aligned address.
typedef float sx_f8_unaligned __attribute__((vector_size(32), aligned(4)));

static inline sx_f8 sx_load(const float *p) { return *(const sx_f8_unaligned *)p; }
static inline void sx_store(float *p, sx_f8 v) { *(sx_f8_unaligned *)p = v; }

/// p[4t + k] = (a, b, c, d)[k][t] for t in 0..<8: four vectors interleaved into 32 floats.
static inline void sx_store_interleaved4(float *p, sx_f8 a, sx_f8 b, sx_f8 c, sx_f8 d) {
    sx_f8 ab_lo = __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13);   /* unpcklps */
    sx_f8 ab_hi = __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15);  /* unpckhps */
    sx_f8 cd_lo = __builtin_shufflevector(c, d, 0, 8, 1, 9, 4, 12, 5, 13);
    sx_f8 cd_hi = __builtin_shufflevector(c, d, 2, 10, 3, 11, 6, 14, 7, 15);
    sx_f8 t0 = __builtin_shufflevector(ab_lo, cd_lo, 0, 1, 8, 9, 4, 5, 12, 13);   /* lanes 0 | 4 */
    sx_f8 t1 = __builtin_shufflevector(ab_lo, cd_lo, 2, 3, 10, 11, 6, 7, 14, 15); /* lanes 1 | 5 */
    sx_f8 t2 = __builtin_shufflevector(ab_hi, cd_hi, 0, 1, 8, 9, 4, 5, 12, 13);   /* lanes 2 | 6 */
    sx_f8 t3 = __builtin_shufflevector(ab_hi, cd_hi, 2, 3, 10, 11, 6, 7, 14, 15); /* lanes 3 | 7 */
    sx_store(p, __builtin_shufflevector(t0, t1, 0, 1, 2, 3, 8, 9, 10, 11));
    sx_store(p + 8, __builtin_shufflevector(t2, t3, 0, 1, 2, 3, 8, 9, 10, 11));
    sx_store(p + 16, __builtin_shufflevector(t0, t1, 4, 5, 6, 7, 12, 13, 14, 15));
    sx_store(p + 24, __builtin_shufflevector(t2, t3, 4, 5, 6, 7, 12, 13, 14, 15));
}

/// p[2t + k] = (a, b)[k][t] for t in 0..<8: two vectors interleaved into 16 floats.
static inline void sx_store_interleaved2(float *p, sx_f8 a, sx_f8 b) {
    sx_f8 lo = __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13);
    sx_f8 hi = __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15);
    sx_store(p, __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 8, 9, 10, 11));
    sx_store(p + 8, __builtin_shufflevector(lo, hi, 4, 5, 6, 7, 12, 13, 14, 15));
}

/// dk[t] = src[4t + k] for t in 0..<8, k in 0..<4: 32 floats split into four phases of eight.
static inline void sx_deinterleave4(const float *src, float *d0, float *d1, float *d2, float *d3) {
    sx_f8 v0 = sx_load(src), v1 = sx_load(src + 8), v2 = sx_load(src + 16), v3 = sx_load(src + 24);
    sx_f8 a = __builtin_shufflevector(v0, v2, 0, 1, 2, 3, 8, 9, 10, 11);     /* x0..3   | x16..19 */
    sx_f8 b = __builtin_shufflevector(v0, v2, 4, 5, 6, 7, 12, 13, 14, 15);   /* x4..7   | x20..23 */
    sx_f8 c = __builtin_shufflevector(v1, v3, 0, 1, 2, 3, 8, 9, 10, 11);     /* x8..11  | x24..27 */
    sx_f8 d = __builtin_shufflevector(v1, v3, 4, 5, 6, 7, 12, 13, 14, 15);   /* x12..15 | x28..31 */
    sx_f8 ab_lo = __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13);
    sx_f8 ab_hi = __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15);
    sx_f8 cd_lo = __builtin_shufflevector(c, d, 0, 8, 1, 9, 4, 12, 5, 13);
    sx_f8 cd_hi = __builtin_shufflevector(c, d, 2, 10, 3, 11, 6, 14, 7, 15);
    sx_store(d0, __builtin_shufflevector(ab_lo, cd_lo, 0, 1, 8, 9, 4, 5, 12, 13));
    sx_store(d1, __builtin_shufflevector(ab_lo, cd_lo, 2, 3, 10, 11, 6, 7, 14, 15));
    sx_store(d2, __builtin_shufflevector(ab_hi, cd_hi, 0, 1, 8, 9, 4, 5, 12, 13));
    sx_store(d3, __builtin_shufflevector(ab_hi, cd_hi, 2, 3, 10, 11, 6, 7, 14, 15));
}

/// dk[t] = src[2t + k] for t in 0..<8, k in 0..<2: 16 floats split into two phases of eight.
static inline void sx_deinterleave2(const float *src, float *d0, float *d1) {
    sx_f8 v0 = sx_load(src), v1 = sx_load(src + 8);
    sx_f8 a = __builtin_shufflevector(v0, v1, 0, 1, 2, 3, 8, 9, 10, 11);     /* x0..3 | x8..11 */
    sx_f8 b = __builtin_shufflevector(v0, v1, 4, 5, 6, 7, 12, 13, 14, 15);   /* x4..7 | x12..15 */
    sx_store(d0, __builtin_shufflevector(a, b, 0, 2, 8, 10, 4, 6, 12, 14));  /* shufps 0x88 */
    sx_store(d1, __builtin_shufflevector(a, b, 1, 3, 9, 11, 5, 7, 13, 15));  /* shufps 0xDD */
}

/// Hints the CPU to bring the cache line holding `p` into cache for reading; never faults.
static inline void sx_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

#endif
