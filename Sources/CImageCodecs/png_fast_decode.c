/* The common PNG, decoded without libpng: 8-bit RGB or RGBA, not interlaced, which is what
 * cameras, browsers and image libraries write for photos and what uploads mostly are.
 *
 * libpng inflates with zlib and undoes the row filters in portable C; libdeflate's whole-buffer
 * inflate and the loops below do the same in well under its time (BENCHMARKS.md, "End-to-end job
 * time"). Anything this path does not accept exactly as libpng would — another colour type or bit
 * depth, interlacing, an unknown critical chunk, a CRC or Adler-32 mismatch, truncation, data
 * after the image, a bad filter type, a size over the pixel limit — is handed back untouched, and
 * the caller decodes with libpng, which gives its own verdict and message. So this path only ever
 * accepts files libpng accepts too, with the same pixels (alpha dropped, samples as stored). */
#include "internal.h"

#include <stdlib.h>

#include <libdeflate.h>

#define SC_PNG_TYPE(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

static uint32_t sc_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline uint8_t sc_paeth_predict(int a, int b, int c) {
    int pa = b - c, pb = a - c, pc = pa + pb;
    pa = pa < 0 ? -pa : pa;
    pb = pb < 0 ? -pb : pb;
    pc = pc < 0 ? -pc : pc;
    return (uint8_t)((pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c));
}

#if defined(__SSE2__)
/* The filters of 3- and 4-byte pixels on SSE2 (every x86-64 CPU): one pixel's channels per
 * vector, as 16-bit lanes, with masks instead of branches. A pixel depends on the one just
 * written to its left, so a row is one long dependency chain; Paeth, the slowest, also runs two
 * rows at once, or four with AVX2 (below). Loads and stores move exactly `bpp` bytes: nothing is read or written
 * outside the rows. */
#include <emmintrin.h>
#define SC_PNG_SIMD_FILTERS 1

typedef __m128i sc_v16;

static inline __attribute__((always_inline)) sc_v16 sc_abs16(sc_v16 x) {
    return _mm_max_epi16(x, _mm_sub_epi16(_mm_setzero_si128(), x));
}

static inline __attribute__((always_inline)) sc_v16 sc_select(sc_v16 mask, sc_v16 yes, sc_v16 no) {
    return _mm_or_si128(_mm_and_si128(mask, yes), _mm_andnot_si128(mask, no));
}

/* The Paeth predictor per lane, as the PNG specification defines it: a when pa <= pb and
 * pa <= pc, else b when pb <= pc, else c. `a` is the sample just unfiltered, so everything from
 * it to the result is the row's dependency chain: the choice between b and c is made from pb and
 * pc alone, beside the test of pa, which needs only the row above. */
static inline __attribute__((always_inline)) sc_v16 sc_paeth_v(sc_v16 a, sc_v16 b, sc_v16 c) {
    const sc_v16 pa = sc_abs16(_mm_sub_epi16(b, c));
    const sc_v16 pb_signed = _mm_sub_epi16(a, c);
    const sc_v16 pc = sc_abs16(_mm_add_epi16(_mm_sub_epi16(b, c), pb_signed));
    const sc_v16 pb = sc_abs16(pb_signed);
    const sc_v16 b_or_c = sc_select(_mm_cmpgt_epi16(pb, pc), c, b);
    return sc_select(_mm_cmpgt_epi16(pa, _mm_min_epi16(pb, pc)), b_or_c, a);
}

/* The `bpp` (3 or 4) bytes at `p`, little-endian, the rest zero. Put together in a register:
 * a 3-byte memcpy into a zeroed word goes through the stack, and reading the word back stalls. */
static inline __attribute__((always_inline)) uint32_t sc_load_pixel(const uint8_t *p, size_t bpp) {
    if (bpp == 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    uint16_t low;
    memcpy(&low, p, 2);
    return (uint32_t)low | (uint32_t)p[2] << 16;
}

/* Writes the low `bpp` (3 or 4) bytes of `v` to `p`. */
static inline __attribute__((always_inline)) void sc_store_pixel(uint8_t *p, uint32_t v, size_t bpp) {
    if (bpp == 4) {
        memcpy(p, &v, 4);
        return;
    }
    const uint16_t low = (uint16_t)v;
    memcpy(p, &low, 2);
    p[2] = (uint8_t)(v >> 16);
}

static inline __attribute__((always_inline)) sc_v16 sc_widen(uint64_t bytes) {
    return _mm_unpacklo_epi8(_mm_cvtsi64_si128((long long)bytes), _mm_setzero_si128());
}

/* The low 8 lanes (values 0...255) as bytes: pixel 0 in bits 0-31, pixel 1 in bits 32-63. */
static inline __attribute__((always_inline)) uint64_t sc_narrow(sc_v16 v) {
    return (uint64_t)_mm_cvtsi128_si64(_mm_packus_epi16(v, v));
}

/* x + p modulo 256 in each 16-bit lane, for lanes holding 0...255: a byte add, so the low byte
 * wraps and the high byte stays 0 (0 + 0, no carry between bytes) in one instruction. */
static inline __attribute__((always_inline)) sc_v16 sc_add_mod256(sc_v16 x, sc_v16 p) {
    return _mm_add_epi8(x, p);
}

static inline __attribute__((always_inline)) void sc_unsub_v(uint8_t *restrict row, size_t n, size_t bpp) {
    sc_v16 a = _mm_setzero_si128();
    for (size_t i = 0; i < n; i += bpp) {
        a = sc_add_mod256(sc_widen(sc_load_pixel(row + i, bpp)), a);
        sc_store_pixel(row + i, (uint32_t)sc_narrow(a), bpp);
    }
}

static inline __attribute__((always_inline)) void sc_unavg_v(uint8_t *restrict row, const uint8_t *restrict prev,
                                                             size_t n, size_t bpp) {
    sc_v16 a = _mm_setzero_si128();
    for (size_t i = 0; i < n; i += bpp) {
        const sc_v16 b = sc_widen(sc_load_pixel(prev + i, bpp));
        const sc_v16 x = sc_widen(sc_load_pixel(row + i, bpp));
        a = sc_add_mod256(x, _mm_srli_epi16(_mm_add_epi16(a, b), 1));
        sc_store_pixel(row + i, (uint32_t)sc_narrow(a), bpp);
    }
}

static inline __attribute__((always_inline)) void sc_unpaeth_v(uint8_t *restrict row, const uint8_t *restrict prev,
                                                               size_t n, size_t bpp) {
    sc_v16 a = _mm_setzero_si128(), c = _mm_setzero_si128();
    for (size_t i = 0; i < n; i += bpp) {
        const sc_v16 b = sc_widen(sc_load_pixel(prev + i, bpp));
        const sc_v16 x = sc_widen(sc_load_pixel(row + i, bpp));
        a = sc_add_mod256(x, sc_paeth_v(a, b, c));
        sc_store_pixel(row + i, (uint32_t)sc_narrow(a), bpp);
        c = b;
    }
}

/* Two consecutive Paeth rows at once: `row1` follows `row0`, whose previous row is `prev`.
 * Pixel k of row 1 needs pixels k-1 and k of row 0 above it, so row 1 runs one pixel behind:
 * each step unfilters row 0's pixel k (low lanes) and row 1's pixel k-1 (high lanes), two
 * independent chains in one vector. Row 1's "above" samples are row 0's outputs of the
 * previous steps, kept in registers: b = [prev(k) | out0(k-1)], c = the b of the step before. */
static inline __attribute__((always_inline)) void sc_unpaeth_pair_v(uint8_t *restrict row0, uint8_t *restrict row1,
                                                                    const uint8_t *restrict prev, size_t n, size_t bpp) {
    /* Step 0: row 0's pixel 0 alone (a = c = 0, so the prediction is b); row 1 has no pixel -1. */
    const uint32_t first = (uint32_t)sc_narrow(sc_add_mod256(sc_widen(sc_load_pixel(row0, bpp)), sc_widen(sc_load_pixel(prev, bpp))));
    sc_store_pixel(row0, first, bpp);
    sc_v16 d = sc_widen(first);                          /* [out0(0) | out1(-1) = 0] */
    sc_v16 c = sc_widen(sc_load_pixel(prev, bpp));       /* [prev(0) | out0(-1) = 0] */
    for (size_t i = bpp; i < n; i += bpp) {
        const sc_v16 b = _mm_unpacklo_epi64(sc_widen(sc_load_pixel(prev + i, bpp)), d);
        const uint64_t filtered = (uint64_t)sc_load_pixel(row0 + i, bpp) | ((uint64_t)sc_load_pixel(row1 + i - bpp, bpp) << 32);
        d = sc_add_mod256(sc_widen(filtered), sc_paeth_v(d, b, c));
        const uint64_t out = sc_narrow(d);
        sc_store_pixel(row0 + i, (uint32_t)out, bpp);
        sc_store_pixel(row1 + i - bpp, (uint32_t)(out >> 32), bpp);
        c = b;
    }
    /* Last step: row 1's last pixel alone. */
    const sc_v16 b = _mm_unpacklo_epi64(_mm_setzero_si128(), d);
    const uint64_t filtered = (uint64_t)sc_load_pixel(row1 + n - bpp, bpp) << 32;
    const uint32_t last = (uint32_t)(sc_narrow(sc_add_mod256(sc_widen(filtered), sc_paeth_v(d, b, c))) >> 32);
    sc_store_pixel(row1 + n - bpp, last, bpp);
}

#if defined(__AVX2__)
#include <immintrin.h>
#define SC_PNG_PAETH_QUAD 1

/* sc_paeth_v on 256-bit vectors (sixteen 16-bit lanes). */
static inline __attribute__((always_inline)) __m256i sc_paeth_v256(__m256i a, __m256i b, __m256i c) {
    const __m256i pa = _mm256_abs_epi16(_mm256_sub_epi16(b, c));
    const __m256i pb_signed = _mm256_sub_epi16(a, c);
    const __m256i pc = _mm256_abs_epi16(_mm256_add_epi16(_mm256_sub_epi16(b, c), pb_signed));
    const __m256i pb = _mm256_abs_epi16(pb_signed);
    const __m256i b_or_c = _mm256_blendv_epi8(b, c, _mm256_cmpgt_epi16(pb, pc));
    return _mm256_blendv_epi8(a, b_or_c, _mm256_cmpgt_epi16(pa, _mm256_min_epi16(pb, pc)));
}

/* One step of sc_unpaeth_quad_v: row q (0...3) unfilters its pixel k - q, in the vector's
 * quarter q. `all` says that every row has such a pixel (0 <= k - q < npix), so no test is
 * needed; otherwise rows without one read and store nothing. A row that has not started sees
 * only zeros (its filtered byte, its own previous result, and the row above's, which has not
 * started either), so its quarter holds 0, its pixel -1, when it starts. */
static inline __attribute__((always_inline)) void sc_unpaeth_quad_step(uint8_t *const rows[4], const uint8_t *restrict prev,
                                                                       size_t k, size_t npix, size_t bpp, int all,
                                                                       __m256i *d, __m256i *c) {
    uint32_t filtered[4], above = 0;
    for (int q = 0; q < 4; q++) {
        const int has = all || (k >= (size_t)q && k - (size_t)q < npix);
        filtered[q] = has ? sc_load_pixel(rows[q] + (k - (size_t)q) * bpp, bpp) : 0;
    }
    if (all || k < npix) above = sc_load_pixel(prev + k * bpp, bpp);
    /* b: the row above each row's pixel, that is prev's pixel k for row 0 and the pixel row
     * q - 1 unfiltered in the previous step for the others. */
    const __m256i shifted = _mm256_permute4x64_epi64(*d, _MM_SHUFFLE(2, 1, 0, 0));
    const __m256i b = _mm256_blend_epi32(shifted, _mm256_cvtepu8_epi16(_mm_cvtsi32_si128((int)above)), 0x03);
    const __m128i x8 = _mm_set_epi64x((long long)((uint64_t)filtered[2] | (uint64_t)filtered[3] << 32),
                                      (long long)((uint64_t)filtered[0] | (uint64_t)filtered[1] << 32));
    const __m256i out = _mm256_add_epi8(_mm256_cvtepu8_epi16(x8), sc_paeth_v256(*d, b, *c));
    const __m256i packed = _mm256_packus_epi16(out, out);
    const uint64_t out01 = (uint64_t)_mm_cvtsi128_si64(_mm256_castsi256_si128(packed));
    const uint64_t out23 = (uint64_t)_mm_cvtsi128_si64(_mm256_extracti128_si256(packed, 1));
    const uint32_t pixels[4] = {(uint32_t)out01, (uint32_t)(out01 >> 32), (uint32_t)out23, (uint32_t)(out23 >> 32)};
    for (int q = 0; q < 4; q++) {
        if (all || (k >= (size_t)q && k - (size_t)q < npix)) sc_store_pixel(rows[q] + (k - (size_t)q) * bpp, pixels[q], bpp);
    }
    *d = out;
    *c = b;
}

/* Four consecutive Paeth rows at once, as sc_unpaeth_pair_v does two: row q runs q pixels
 * behind row 0, in the vector's quarter q, so each step advances four independent chains. The
 * row above row q's pixel is the one row q - 1 wrote in the step before, kept in the register.
 * `npix` (>= 4) pixels of `bpp` bytes per row; rows[0]'s previous row is `prev`. */
static inline __attribute__((always_inline)) void sc_unpaeth_quad_v(uint8_t *const rows[4], const uint8_t *restrict prev,
                                                                    size_t npix, size_t bpp) {
    __m256i d = _mm256_setzero_si256(), c = _mm256_setzero_si256();
    size_t k = 0;
    for (; k < 3; k++) sc_unpaeth_quad_step(rows, prev, k, npix, bpp, 0, &d, &c);
    for (; k < npix; k++) sc_unpaeth_quad_step(rows, prev, k, npix, bpp, 1, &d, &c);
    for (; k < npix + 3; k++) sc_unpaeth_quad_step(rows, prev, k, npix, bpp, 0, &d, &c);
}
#endif
#endif

/* Paeth for RGB, the usual photo filter: each channel's left and upper-left samples stay in
 * registers, so the three channels' dependency chains run side by side instead of waiting on
 * the store of the byte just written. */
static void sc_unpaeth3(uint8_t *restrict row, const uint8_t *restrict prev, size_t n) {
    int a0 = 0, a1 = 0, a2 = 0, c0 = 0, c1 = 0, c2 = 0;
    for (size_t i = 0; i + 3 <= n; i += 3) {
        const int b0 = prev[i], b1 = prev[i + 1], b2 = prev[i + 2];
        a0 = (uint8_t)(row[i] + sc_paeth_predict(a0, b0, c0));
        a1 = (uint8_t)(row[i + 1] + sc_paeth_predict(a1, b1, c1));
        a2 = (uint8_t)(row[i + 2] + sc_paeth_predict(a2, b2, c2));
        row[i] = (uint8_t)a0;
        row[i + 1] = (uint8_t)a1;
        row[i + 2] = (uint8_t)a2;
        c0 = b0;
        c1 = b1;
        c2 = b2;
    }
}

/* Undoes one row's filter in place with portable C: `row` holds the filtered bytes, `prev` the
 * previous row already unfiltered (all zero above the first row). Returns 0 for an unknown
 * filter type. */
static int sc_unfilter_row_portable(int type, uint8_t *restrict row, const uint8_t *restrict prev, size_t n, size_t bpp) {
    switch (type) {
    case 0:
        return 1;
    case 1:
        for (size_t i = bpp; i < n; i++) row[i] = (uint8_t)(row[i] + row[i - bpp]);
        return 1;
    case 2:
        for (size_t i = 0; i < n; i++) row[i] = (uint8_t)(row[i] + prev[i]);
        return 1;
    case 3:
        for (size_t i = 0; i < bpp; i++) row[i] = (uint8_t)(row[i] + (prev[i] >> 1));
        for (size_t i = bpp; i < n; i++) row[i] = (uint8_t)(row[i] + ((row[i - bpp] + prev[i]) >> 1));
        return 1;
    case 4:
        if (bpp == 3) {
            sc_unpaeth3(row, prev, n);
            return 1;
        }
        for (size_t i = 0; i < bpp; i++) row[i] = (uint8_t)(row[i] + prev[i]); /* a = c = 0 */
        for (size_t i = bpp; i < n; i++) {
            row[i] = (uint8_t)(row[i] + sc_paeth_predict(row[i - bpp], prev[i], prev[i - bpp]));
        }
        return 1;
    default:
        return 0;
    }
}

/* One row's filter undone, with the SIMD loops where there are some (same bytes as the
 * portable loops). `n` is a whole number of `bpp`-byte pixels. */
static int sc_unfilter_row(int type, uint8_t *restrict row, const uint8_t *restrict prev, size_t n, size_t bpp) {
#if SC_PNG_SIMD_FILTERS
    if (bpp == 3 || bpp == 4) {
        switch (type) {
        case 1:
            if (bpp == 3) sc_unsub_v(row, n, 3); else sc_unsub_v(row, n, 4);
            return 1;
        case 3:
            if (bpp == 3) sc_unavg_v(row, prev, n, 3); else sc_unavg_v(row, prev, n, 4);
            return 1;
        case 4:
            if (bpp == 3) sc_unpaeth_v(row, prev, n, 3); else sc_unpaeth_v(row, prev, n, 4);
            return 1;
        default:
            break;
        }
    }
#endif
    return sc_unfilter_row_portable(type, row, prev, n, bpp);
}

/* Undoes the filters of row `y` and, when they are Paeth-filtered too, of the rows after it
 * (independent chains side by side): four rows at once with AVX2, else two. `stride` separates
 * rows (filter type byte, then `n` bytes); `rows_left` counts row y and those after it. Returns
 * the number of rows done (1, 2 or 4), 0 for an unknown filter type. */
static int sc_unfilter_rows(uint8_t *restrict row, const uint8_t *restrict prev, size_t n, size_t bpp,
                            size_t stride, size_t rows_left) {
#if SC_PNG_SIMD_FILTERS
    if (row[-1] == 4 && (bpp == 3 || bpp == 4)) {
#if SC_PNG_PAETH_QUAD
        if (rows_left >= 4 && n >= 4 * bpp && row[stride - 1] == 4 && row[2 * stride - 1] == 4 && row[3 * stride - 1] == 4) {
            uint8_t *const rows[4] = {row, row + stride, row + 2 * stride, row + 3 * stride};
            if (bpp == 3) sc_unpaeth_quad_v(rows, prev, n / 3, 3); else sc_unpaeth_quad_v(rows, prev, n / 4, 4);
            return 4;
        }
#endif
        if (rows_left >= 2 && row[stride - 1] == 4) {
            if (bpp == 3) sc_unpaeth_pair_v(row, row + stride, prev, n, 3); else sc_unpaeth_pair_v(row, row + stride, prev, n, 4);
            return 2;
        }
    }
#else
    (void)stride;
    (void)rows_left;
#endif
    return sc_unfilter_row(row[-1], row, prev, n, bpp);
}

/* Moves one unfiltered row of `width` pixels from `src` down to `dst` (dst <= src) as RGB,
 * dropping alpha. Copying forward never reads a byte already overwritten, since dst <= src. */
static void sc_pack_row(uint8_t *dst, const uint8_t *src, uint32_t width, size_t bpp) {
    if (bpp == 3) {
        memmove(dst, src, (size_t)width * 3);
        return;
    }
    for (size_t x = 0; x < width; x++) {
        dst[3 * x] = src[4 * x];
        dst[3 * x + 1] = src[4 * x + 1];
        dst[3 * x + 2] = src[4 * x + 2];
    }
}

/* The IDAT data of a PNG, found by walking its chunks as libpng would accept them. */
typedef struct {
    uint32_t width, height;
    int channels;        /* 3 (RGB) or 4 (RGBA) */
    const uint8_t *idat; /* the only IDAT's data, or NULL when there are several */
    size_t idat_len;     /* all IDAT data bytes */
    size_t idat_count;
} sc_png_layout;

/* Returns 1 when the file is a PNG this path decodes (layout filled), 0 otherwise. */
static int sc_png_fast_layout(const uint8_t *data, size_t len, sc_png_layout *out) {
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len < 8 + 25 || memcmp(data, signature, 8) != 0) return 0;
    memset(out, 0, sizeof *out);
    size_t pos = 8;
    int idat_state = 0; /* 0: none yet, 1: in the IDAT run, 2: after it */
    int first = 1, seen_plte = 0;
    while (1) {
        if (len - pos < 12) return 0; /* truncated */
        const uint32_t length = sc_be32(data + pos);
        const uint32_t type = sc_be32(data + pos + 4);
        if (length > 0x7fffffffU || length > len - pos - 12) return 0;
        const uint8_t *payload = data + pos + 8;
        const int critical = !(data[pos + 4] & 0x20);
        if (critical && sc_be32(payload + length) != libdeflate_crc32(0, data + pos + 4, (size_t)length + 4)) return 0;
        if (first != (type == SC_PNG_TYPE('I', 'H', 'D', 'R'))) return 0;
        if (type != SC_PNG_TYPE('I', 'D', 'A', 'T') && idat_state == 1) idat_state = 2;
        if (type == SC_PNG_TYPE('I', 'H', 'D', 'R')) {
            if (length != 13) return 0;
            out->width = sc_be32(payload);
            out->height = sc_be32(payload + 4);
            const int depth = payload[8], colour = payload[9];
            if (out->width == 0 || out->height == 0 || out->width > 0x7fffffffU || out->height > 0x7fffffffU) return 0;
            if (depth != 8 || (colour != 2 && colour != 6)) return 0;
            if (payload[10] != 0 || payload[11] != 0 || payload[12] != 0) return 0; /* methods; no interlace */
            out->channels = colour == 2 ? 3 : 4;
        } else if (type == SC_PNG_TYPE('I', 'D', 'A', 'T')) {
            if (idat_state == 2) return 0; /* IDATs must be consecutive */
            idat_state = 1;
            out->idat = out->idat_count == 0 ? payload : NULL;
            out->idat_len += length;
            out->idat_count++;
        } else if (type == SC_PNG_TYPE('I', 'E', 'N', 'D')) {
            return out->idat_count > 0 && length == 0;
        } else if (type == SC_PNG_TYPE('P', 'L', 'T', 'E')) {
            if (idat_state != 0 || seen_plte) return 0; /* a suggested palette, once, before the image */
            seen_plte = 1;
        } else if (critical) {
            return 0; /* an unknown critical chunk: libpng refuses it */
        }
        first = 0;
        pos += 12 + (size_t)length;
    }
}

int sc_png_decode_fast(const uint8_t *data, size_t len, uint64_t max_pixels, sc_image *out) {
    sc_png_layout layout;
    if (data == NULL || out == NULL || !sc_png_fast_layout(data, len, &layout)) return SC_PNG_NOT_FAST;
    const uint64_t pixel_count = (uint64_t)layout.width * layout.height;
    const size_t bpp = (size_t)layout.channels;
    if (pixel_count > max_pixels || pixel_count > (SIZE_MAX / 8) / (bpp + 1)) return SC_PNG_NOT_FAST;
    const size_t rowbytes = (size_t)layout.width * bpp, stride = rowbytes + 1;
    const size_t filtered_len = stride * layout.height;
    const size_t out_rowbytes = (size_t)layout.width * 3;

    uint8_t *joined = NULL;
    const uint8_t *idat = layout.idat;
    if (idat == NULL) { /* several IDATs: their data, joined */
        joined = (uint8_t *)malloc(layout.idat_len ? layout.idat_len : 1);
        if (joined == NULL) return SC_PNG_NOT_FAST;
        size_t pos = 8, at = 0;
        while (at < layout.idat_len) {
            const uint32_t length = sc_be32(data + pos);
            if (sc_be32(data + pos + 4) == SC_PNG_TYPE('I', 'D', 'A', 'T')) {
                memcpy(joined + at, data + pos + 8, length);
                at += length;
            }
            pos += 12 + (size_t)length;
        }
        idat = joined;
    }
    uint8_t *filtered = (uint8_t *)malloc(filtered_len);
    struct libdeflate_decompressor *inflater = libdeflate_alloc_decompressor();
    int status = SC_PNG_NOT_FAST;
    size_t used_in = 0, produced = 0;
    if (filtered != NULL && inflater != NULL &&
        libdeflate_zlib_decompress_ex(inflater, idat, layout.idat_len, filtered, filtered_len, &used_in, &produced) ==
            LIBDEFLATE_SUCCESS &&
        used_in == layout.idat_len && produced == filtered_len) {
        status = SC_OK;
    }
    libdeflate_free_decompressor(inflater);
    free(joined);

    /* The pixels end up in the inflated buffer itself: each unfiltered row moves down over the
     * filter type bytes (and alpha) before it, once the row after it no longer needs it as its
     * previous row. Row r's packed place ends before row r + 1's data starts, so nothing still
     * to be read is overwritten, and no second image-sized buffer is touched. */
    uint8_t *zero = status == SC_OK ? (uint8_t *)calloc(1, rowbytes) : NULL;
    if (zero == NULL) status = SC_PNG_NOT_FAST;
    uint32_t packed = 0; /* rows [0, packed) are in their final place */
    for (uint32_t y = 0; y < layout.height && status == SC_OK;) {
        uint8_t *row = filtered + (size_t)y * stride + 1;
        const uint8_t *prev = y == 0 ? zero : row - stride;
        const int done = sc_unfilter_rows(row, prev, rowbytes, bpp, stride, layout.height - y);
        if (done == 0) {
            status = SC_PNG_NOT_FAST;
            break;
        }
        y += (uint32_t)done;
        for (; packed + 1 < y; packed++) {
            sc_pack_row(filtered + (size_t)packed * out_rowbytes, filtered + (size_t)packed * stride + 1, layout.width, bpp);
        }
    }
    free(zero);
    if (status != SC_OK) {
        free(filtered);
        return status;
    }
    sc_pack_row(filtered + (size_t)packed * out_rowbytes, filtered + (size_t)packed * stride + 1, layout.width, bpp);
    uint8_t *pixels = (uint8_t *)realloc(filtered, out_rowbytes * layout.height);
    if (pixels == NULL) pixels = filtered; /* shrinking failed: the larger block holds the same pixels */
    memset(out, 0, sizeof *out);
    out->info.width = out->width = layout.width;
    out->info.height = out->height = layout.height;
    out->info.bit_depth = 8;
    out->info.orientation = 1;
    out->pixels = pixels;
    out->size = out_rowbytes * layout.height;
    return SC_OK;
}
