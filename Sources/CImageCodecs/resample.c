/* The inner loops of the separable resample (Resize.swift): the vertical pass, and the
 * horizontal one where a downscale halves the row. In C for AVX2 and FMA, which Swift's SIMD
 * types do not reach: their eight floats are two SSE registers. */
#include "CImageCodecs.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* The even samples of s[0...15], in lane order 0 1 4 5 2 3 6 7 (a shuffle within each half). */
static inline __attribute__((always_inline)) __m256 sc_even16(const float *s) {
    return _mm256_shuffle_ps(_mm256_loadu_ps(s), _mm256_loadu_ps(s + 8), _MM_SHUFFLE(2, 0, 2, 0));
}

/* The sums back in output order, as eight consecutive floats at dst. */
static inline __attribute__((always_inline)) void sc_store_ordered(__m256 sums, float *dst) {
    _mm256_storeu_ps(dst, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(sums), _MM_SHUFFLE(3, 1, 2, 0))));
}

/* One group: per tap, the even samples of s[t...t+15] times the tap's eight weights (in the
 * same lane order), added up in one register; one permute puts the sums in order at the end. */
static inline __attribute__((always_inline)) void sc_stride2_group(const float *s, const float *w, size_t taps,
                                                                   float *dst) {
    __m256 acc = _mm256_mul_ps(_mm256_loadu_ps(w), sc_even16(s));
    for (size_t t = 1; t < taps; t++) acc = _mm256_fmadd_ps(_mm256_loadu_ps(w + 8 * t), sc_even16(s + t), acc);
    sc_store_ordered(acc, dst);
}
#endif

void sc_resample_stride2_groups(const float *src, const ptrdiff_t *starts, const float *weights, size_t weights_step,
                                size_t taps, size_t groups, float *dst) {
#if defined(__AVX2__) && defined(__FMA__)
    if (taps == 8 && weights_step == 0) {
        /* An exact halving by bicubic: every group has the same weights, held in registers. */
        __m256 w[8];
        for (int t = 0; t < 8; t++) w[t] = _mm256_loadu_ps(weights + 8 * t);
        for (size_t g = 0; g < groups; g++) {
            const float *s = src + starts[8 * g];
            __m256 acc = _mm256_mul_ps(w[0], sc_even16(s));
            for (int t = 1; t < 8; t++) acc = _mm256_fmadd_ps(w[t], sc_even16(s + t), acc);
            sc_store_ordered(acc, dst + 8 * g);
        }
        return;
    }
    for (size_t g = 0; g < groups; g++) sc_stride2_group(src + starts[8 * g], weights + weights_step * g, taps, dst + 8 * g);
#else
    /* The same products added in the same order, one output at a time. */
    static const int lane_of_output[8] = {0, 1, 4, 5, 2, 3, 6, 7};
    for (size_t g = 0; g < groups; g++) {
        const float *s = src + starts[8 * g], *w = weights + weights_step * g;
        for (int j = 0; j < 8; j++) {
            float acc = w[lane_of_output[j]] * s[2 * j];
            for (size_t t = 1; t < taps; t++) acc += w[8 * t + lane_of_output[j]] * s[2 * j + t];
            dst[8 * g + j] = acc;
        }
    }
#endif
}

void sc_resample_columns(const float *const *rows, const float *weights, size_t taps, size_t n, float *out) {
    size_t x = 0;
#if defined(__AVX2__) && defined(__FMA__)
    /* Thirty-two columns at a time, in four registers: four independent chains of FMAs. */
    for (; x + 32 <= n; x += 32) {
        __m256 w = _mm256_broadcast_ss(weights);
        __m256 a0 = _mm256_mul_ps(w, _mm256_loadu_ps(rows[0] + x));
        __m256 a1 = _mm256_mul_ps(w, _mm256_loadu_ps(rows[0] + x + 8));
        __m256 a2 = _mm256_mul_ps(w, _mm256_loadu_ps(rows[0] + x + 16));
        __m256 a3 = _mm256_mul_ps(w, _mm256_loadu_ps(rows[0] + x + 24));
        for (size_t t = 1; t < taps; t++) {
            const float *r = rows[t] + x;
            w = _mm256_broadcast_ss(weights + t);
            a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r), a0);
            a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r + 8), a1);
            a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r + 16), a2);
            a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(r + 24), a3);
        }
        _mm256_storeu_ps(out + x, a0);
        _mm256_storeu_ps(out + x + 8, a1);
        _mm256_storeu_ps(out + x + 16, a2);
        _mm256_storeu_ps(out + x + 24, a3);
    }
    for (; x + 16 <= n; x += 16) {
        __m256 w = _mm256_broadcast_ss(weights);
        __m256 lo = _mm256_mul_ps(w, _mm256_loadu_ps(rows[0] + x));
        __m256 hi = _mm256_mul_ps(w, _mm256_loadu_ps(rows[0] + x + 8));
        for (size_t t = 1; t < taps; t++) {
            w = _mm256_broadcast_ss(weights + t);
            lo = _mm256_fmadd_ps(w, _mm256_loadu_ps(rows[t] + x), lo);
            hi = _mm256_fmadd_ps(w, _mm256_loadu_ps(rows[t] + x + 8), hi);
        }
        _mm256_storeu_ps(out + x, lo);
        _mm256_storeu_ps(out + x + 8, hi);
    }
    for (; x + 8 <= n; x += 8) {
        __m256 acc = _mm256_mul_ps(_mm256_broadcast_ss(weights), _mm256_loadu_ps(rows[0] + x));
        for (size_t t = 1; t < taps; t++) acc = _mm256_fmadd_ps(_mm256_broadcast_ss(weights + t), _mm256_loadu_ps(rows[t] + x), acc);
        _mm256_storeu_ps(out + x, acc);
    }
#endif
    for (; x < n; x++) {
        float acc = weights[0] * rows[0][x];
        for (size_t t = 1; t < taps; t++) acc += weights[t] * rows[t][x];
        out[x] = acc;
    }
}
