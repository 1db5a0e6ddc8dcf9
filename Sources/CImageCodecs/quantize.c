/* Planar float RGB to packed 8-bit RGB: the encoders' input. */
#include "internal.h"

/* The multiply and the add are rounded separately, exactly as the Swift quantize does them. */
#pragma STDC FP_CONTRACT OFF

static inline uint8_t sc_quantize(float x) {
    const float c = x > 0 ? (x < 1 ? x : 1) : 0; /* `x > 0` is false for NaN */
    const float scaled = c * 255.0f;
    return (uint8_t)(int32_t)(scaled + 0.5f); /* in [0.5, 255.5]: truncation is floor */
}

void sc_quantize_rgb8(const float *r, const float *g, const float *b, size_t n, uint8_t *out) {
    for (size_t i = 0; i < n; i++) {
        out[3 * i] = sc_quantize(r[i]);
        out[3 * i + 1] = sc_quantize(g[i]);
        out[3 * i + 2] = sc_quantize(b[i]);
    }
}
