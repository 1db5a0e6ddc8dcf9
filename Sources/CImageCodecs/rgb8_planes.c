/* Interleaved 8-bit RGB to float planes: the decoders' output becoming a PlanarImage. */
#include "internal.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

/* Eight samples v (32-bit lanes, 0...255) as v/255 correctly rounded, the value of the scalar
 * division: q = v * fl(1/255) can be one unit in the last place off, and one Newton step on the
 * exact remainder v - q*255 (an FMA) rounds it correctly for every v in 0...255 (the test checks
 * all 256). A division instruction gives the same at several times the cost. */
static inline __attribute__((always_inline)) __m256 sc_levels8(__m128i bytes) {
    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
    const __m256 reciprocal = _mm256_set1_ps(1.0f / 255.0f);
    const __m256 q = _mm256_mul_ps(v, reciprocal);
    const __m256 remainder = _mm256_fnmadd_ps(q, _mm256_set1_ps(255.0f), v);
    return _mm256_fmadd_ps(remainder, reciprocal, q);
}

/* The sixteen samples of one channel of 16 pixels (48 bytes in a, b, c), in order. */
static inline __attribute__((always_inline)) __m128i sc_channel16(__m128i a, __m128i b, __m128i c, int channel) {
    /* Byte k of the result is byte 3k + channel of a:b:c; -1 (0x80) selects zero. */
    static const int8_t masks[3][3][16] = {
        {{0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 1, 4, 7, 10, 13}},
        {{1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 2, 5, 8, 11, 14}},
        {{2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, 1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1},
         {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 3, 6, 9, 12, 15}},
    };
    const __m128i *m = (const __m128i *)masks[channel];
    return _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, _mm_loadu_si128(m)), _mm_shuffle_epi8(b, _mm_loadu_si128(m + 1))),
                        _mm_shuffle_epi8(c, _mm_loadu_si128(m + 2)));
}

static inline __attribute__((always_inline)) void sc_store_levels16(__m128i bytes, float *out) {
    _mm256_storeu_ps(out, sc_levels8(bytes));
    _mm256_storeu_ps(out + 8, sc_levels8(_mm_srli_si128(bytes, 8)));
}
#endif

void sc_rgb8_to_planes(const uint8_t *src, size_t n, float *r, float *g, float *b) {
    size_t x = 0;
#if defined(__AVX2__) && defined(__FMA__)
    /* Sixteen pixels at a time: three 16-byte loads split into channels by byte shuffles. */
    for (; x + 16 <= n; x += 16) {
        const uint8_t *s = src + 3 * x;
        const __m128i a = _mm_loadu_si128((const __m128i *)s);
        const __m128i bb = _mm_loadu_si128((const __m128i *)(s + 16));
        const __m128i c = _mm_loadu_si128((const __m128i *)(s + 32));
        sc_store_levels16(sc_channel16(a, bb, c, 0), r + x);
        sc_store_levels16(sc_channel16(a, bb, c, 1), g + x);
        sc_store_levels16(sc_channel16(a, bb, c, 2), b + x);
    }
#endif
    for (; x < n; x++) {
        r[x] = (float)src[3 * x] / 255.0f;
        g[x] = (float)src[3 * x + 1] / 255.0f;
        b[x] = (float)src[3 * x + 2] / 255.0f;
    }
}
