/* CImageCodecs: libpng + libjpeg-turbo (and our own deflate for PNG output) behind setjmp-safe C functions.
 *
 * Every libpng/libjpeg call happens inside these functions, each of which owns its own
 * setjmp, so a longjmp raised by either library never crosses a Swift frame. All decoding
 * reads from memory; all encoding writes to a malloc'd buffer the caller frees with sc_free.
 * Error messages are copied (NUL-terminated, truncated) into the caller's `err` buffer.
 */
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by every sc_* function. */
#define SC_OK 0
#define SC_ERR_CORRUPT 1     /* invalid or truncated data */
#define SC_ERR_UNSUPPORTED 2 /* a PNG/JPEG variant we do not decode (e.g. 12-bit JPEG) */
#define SC_ERR_TOO_LARGE 3   /* over the pixel limit; info.width/height hold the header's size */
#define SC_ERR_NOMEM 4       /* an allocation failed */
#define SC_ERR_ARGUMENT 5    /* invalid arguments (NULL pointers, zero sizes) */

/* What a header says. Sizes are the stored size, before any EXIF orientation. */
typedef struct sc_info {
    uint32_t width;
    uint32_t height;
    int32_t bit_depth;   /* of the decoded samples: 8 or 16 */
    int32_t orientation; /* EXIF orientation 1...8 (JPEG APP1); 1 when absent or invalid */
} sc_info;

/* A decoded image: interleaved RGB, 3 samples per pixel, rows packed (stride width*3 samples),
 * in stored orientation. width x height is the header's size, or smaller after a scaled JPEG
 * decode. Samples are uint8_t when info.bit_depth == 8, host-order uint16_t when 16.
 * `pixels` is malloc'd: release it with sc_free. */
typedef struct sc_image {
    sc_info info;   /* the header */
    uint32_t width; /* of the pixels */
    uint32_t height;
    void *pixels;
    size_t size; /* bytes in pixels */
} sc_image;

/* Read the header only (PNG: up to the first IDAT; JPEG: up to the first SOS).
 * Both probing and decoding skip what is never used without decompressing or storing it:
 * every PNG chunk but IHDR, PLTE, tRNS, IDAT and IEND (text, iCCP, eXIf, unknown ancillary
 * chunks), every JPEG marker segment but APP1, whose EXIF orientation is read in place. */
int sc_png_probe(const uint8_t *data, size_t len, sc_info *info, char *err, size_t errlen);
int sc_jpeg_probe(const uint8_t *data, size_t len, sc_info *info, char *err, size_t errlen);

/* Decode to interleaved RGB. The header is read first and width*height is checked against
 * max_pixels before any pixel buffer is allocated (SC_ERR_TOO_LARGE, with out->info filled).
 * PNG: palette/grey/tRNS expanded, grey -> RGB, alpha stripped (not composited), 16-bit kept,
 * interlacing handled, no gamma correction. JPEG: always 8-bit; grey/YCbCr converted by
 * libjpeg, CMYK/YCCK converted here (Adobe-inverted data recognised); the EXIF orientation
 * is reported in out->info.orientation but NOT applied. Truncated data is an error, and so are
 * more than 64 KiB of compressed PNG data after the last row, more than 500 progressive JPEG
 * scans, and a JPEG whose coefficient buffer needs over 9 bytes per allowed pixel. */
int sc_png_decode(const uint8_t *data, size_t len, uint64_t max_pixels, sc_image *out,
                  char *err, size_t errlen);
int sc_jpeg_decode(const uint8_t *data, size_t len, uint64_t max_pixels, sc_image *out,
                   char *err, size_t errlen);

/* The path sc_png_decode takes first: an 8-bit RGB/RGBA non-interlaced PNG decoded without
 * libpng (png_fast_decode.c). Returns SC_OK, or SC_PNG_NOT_FAST, with `out` untouched, for any
 * file it does not take: sc_png_decode then decodes with libpng. Public so tests can tell which
 * path a file took. */
#define SC_PNG_NOT_FAST (-1)
int sc_png_decode_fast(const uint8_t *data, size_t len, uint64_t max_pixels, sc_image *out);

/* sc_png_decode without the fast path: libpng alone. Public so tests can check a file against
 * libpng's verdict and pixels. */
int sc_png_decode_libpng(const uint8_t *data, size_t len, uint64_t max_pixels, sc_image *out,
                         char *err, size_t errlen);

/* sc_jpeg_decode at the smallest of libjpeg-turbo's IDCT scales 1/8, 1/4, 1/2 and 1 whose output,
 * ceil(side * scale) a side, is still at least min_width x min_height (display orientation: the
 * EXIF orientation is taken into account). The pixel limit applies to the header's size. */
int sc_jpeg_decode_scaled(const uint8_t *data, size_t len, uint64_t max_pixels, uint32_t min_width,
                          uint32_t min_height, sc_image *out, char *err, size_t errlen);

/* Encode as 8-bit RGB. On success *out is malloc'd (free with sc_free) and holds *outlen bytes.
 * PNG: float planes (row y of a plane starts y * row_stride values in), each value quantised as
 * sc_quantize_rgb8 does; Paeth filter on every row, Huffman-coded literals and byte runs,
 * horizontal bands quantised and deflated on up to `threads` threads into one standard zlib stream.
 * JPEG: packed 8-bit RGB (stride width*3), `quality` 1...100, optimised Huffman tables, 4:4:4
 * chroma at quality >= 90, else 4:2:0. */
int sc_png_encode(const float *red, const float *green, const float *blue, size_t row_stride,
                  uint32_t width, uint32_t height, int threads,
                  uint8_t **out, size_t *outlen, char *err, size_t errlen);
int sc_jpeg_encode(const uint8_t *rgb, uint32_t width, uint32_t height, int quality,
                   uint8_t **out, size_t *outlen, char *err, size_t errlen);

/* Planar float RGB (n values per plane) -> packed 8-bit RGB, each value x as ImageEncoder.quantize
 * does it: clamped to [0, 1] (NaN -> 0), then (uint8_t)(int32_t)(x * 255 + 0.5) in float. */
void sc_quantize_rgb8(const float *r, const float *g, const float *b, size_t n, uint8_t *out);

/* `n` pixels of interleaved 8-bit RGB -> n values in each of r, g and b, each sample v as v/255
 * (the float division, correctly rounded). */
void sc_rgb8_to_planes(const uint8_t *src, size_t n, float *r, float *g, float *b);

/* One output row of a vertical resample: out[x] = the sum over t < taps (>= 1) of
 * weights[t] * rows[t][x], for x < n, in tap order (with AVX2, fused multiply-adds after the
 * first product). */
void sc_resample_columns(const float *const *rows, const float *weights, size_t taps, size_t n, float *out);

/* `groups` groups of eight consecutive outputs of a horizontal resample whose eight windows
 * start two inputs apart: output j (0...7) of group g is the sum over t < taps (>= 1) of
 * weights[weights_step * g + 8 * t + lane(j)] * src[starts[8 * g] + 2 * j + t], written to
 * dst[8 * g + j], where lane(j) is 0 1 4 5 2 3 6 7 for j = 0...7 (the order the vector loop
 * gathers the inputs in). weights_step is 8 * taps, or 0 when all groups share one set of
 * weights. Reads src[starts[8 * g] ... starts[8 * g] + taps + 14]. Products are added in tap
 * order (with AVX2, fused multiply-adds after the first). */
void sc_resample_stride2_groups(const float *src, const ptrdiff_t *starts, const float *weights, size_t weights_step,
                                size_t taps, size_t groups, float *dst);

/* Free a buffer returned by this library (NULL is fine). */
void sc_free(void *p);

#ifdef __cplusplus
}
#endif

#endif /* CIMAGECODECS_H */
