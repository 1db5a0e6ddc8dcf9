/* The PNG Paeth predictor on SSE2 vectors, shared by the decoder's unfiltering and the
 * encoder's filtering: 16-bit lanes, masks instead of branches. */
#ifndef CIMAGECODECS_PNG_SIMD_H
#define CIMAGECODECS_PNG_SIMD_H

#if defined(__SSE2__)
#include <emmintrin.h>

typedef __m128i sc_v16;

static inline __attribute__((always_inline)) sc_v16 sc_abs16(sc_v16 x) {
    return _mm_max_epi16(x, _mm_sub_epi16(_mm_setzero_si128(), x));
}

static inline __attribute__((always_inline)) sc_v16 sc_select(sc_v16 mask, sc_v16 yes, sc_v16 no) {
    return _mm_or_si128(_mm_and_si128(mask, yes), _mm_andnot_si128(mask, no));
}

/* The Paeth predictor per lane, as the PNG specification defines it: a when pa is the smallest
 * distance, else b when pb is, else c. */
static inline __attribute__((always_inline)) sc_v16 sc_paeth_v(sc_v16 a, sc_v16 b, sc_v16 c) {
    const sc_v16 pa = sc_abs16(_mm_sub_epi16(b, c));
    const sc_v16 pb_signed = _mm_sub_epi16(a, c);
    const sc_v16 pc = sc_abs16(_mm_add_epi16(_mm_sub_epi16(b, c), pb_signed));
    const sc_v16 pb = sc_abs16(pb_signed);
    const sc_v16 smallest = _mm_min_epi16(pc, _mm_min_epi16(pa, pb));
    return sc_select(_mm_cmpeq_epi16(pa, smallest), a, sc_select(_mm_cmpeq_epi16(pb, smallest), b, c));
}

#endif /* __SSE2__ */
#endif /* CIMAGECODECS_PNG_SIMD_H */
