/* The inner loop of the horizontal resample where a downscale halves the row: outputs two
 * inputs apart have windows two inputs apart, so eight outputs' inputs at one tap are the even
 * samples of sixteen consecutive ones. */
#include "CImageCodecs.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* One group: per tap, the even samples of src[t...t+15] (a shuffle of two loads, in lane order
 * 0 1 4 5 2 3 6 7, which the weights share) times the tap's eight weights, added up in one
 * register; one permute puts the sums in order at the end. */
static inline __attribute__((always_inline)) void sc_stride2_group(const float *s, const float *w, size_t taps,
                                                                   float *dst) {
    __m256 acc = _mm256_setzero_ps();
    for (size_t t = 0; t < taps; t++) {
        const __m256 even = _mm256_shuffle_ps(_mm256_loadu_ps(s + t), _mm256_loadu_ps(s + t + 8), _MM_SHUFFLE(2, 0, 2, 0));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(w + 8 * t), even, acc);
    }
    const __m256d ordered = _mm256_permute4x64_pd(_mm256_castps_pd(acc), _MM_SHUFFLE(3, 1, 2, 0));
    _mm256_storeu_ps(dst, _mm256_castpd_ps(ordered));
}
#endif

void sc_resample_stride2_groups(const float *src, const ptrdiff_t *starts, const float *weights, size_t taps,
                                size_t groups, float *dst) {
#if defined(__AVX2__) && defined(__FMA__)
    if (taps == 8) { /* bicubic halving: a constant count, so the tap loop unrolls */
        for (size_t g = 0; g < groups; g++) sc_stride2_group(src + starts[8 * g], weights + 64 * g, 8, dst + 8 * g);
        return;
    }
    for (size_t g = 0; g < groups; g++) sc_stride2_group(src + starts[8 * g], weights + 8 * taps * g, taps, dst + 8 * g);
#else
    /* The same products added in the same order, one output at a time. */
    static const int lane_of_output[8] = {0, 1, 4, 5, 2, 3, 6, 7};
    for (size_t g = 0; g < groups; g++) {
        const float *s = src + starts[8 * g], *w = weights + 8 * taps * g;
        for (int j = 0; j < 8; j++) {
            float acc = 0;
            for (size_t t = 0; t < taps; t++) acc += w[8 * t + lane_of_output[j]] * s[2 * j + t];
            dst[8 * g + j] = acc;
        }
    }
#endif
}
