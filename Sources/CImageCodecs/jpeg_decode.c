/* JPEG decoding and header probing through libjpeg-turbo, from memory, optionally at a reduced
 * scale (the scaled IDCT) for images much larger than the size they are needed at. */
#include "internal.h"

#include <limits.h>
#include <stdlib.h>

#include <jerror.h>

/* A progressive JPEG may have any number of scans; each costs a pass over the coefficient
 * buffer. Crafted files with thousands of tiny scans are a known CPU-exhaustion vector
 * (libjpeg-turbo's own tools limit this the same way). */
#define SC_JPEG_MAX_SCANS 500

/* libjpeg's whole-image coefficient buffer (progressive and multi-scan files) holds 2 bytes
 * per sample; with at most 4 full-resolution components that is 8 bytes per pixel. Its
 * allocation is refused beyond that for the pixel limit, plus slack for MCU padding. */
#define SC_JPEG_BYTES_PER_PIXEL 9
#define SC_JPEG_MEMORY_SLACK (64L << 20)


typedef struct {
    struct jpeg_decompress_struct cinfo;
    sc_jpeg_err jerr;
    struct jpeg_progress_mgr progress;
    int created;
    int orientation; /* from the first APP1 with a valid EXIF orientation; 0 until then */
    uint8_t *pixels; /* owned until handed to the caller */
    uint8_t *row;    /* CMYK scanline */
} sc_jpeg_dctx;

static void sc_jpeg_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > SC_JPEG_MAX_SCANS) {
        sc_jpeg_err *e = (sc_jpeg_err *)cinfo->err;
        char msg[96];
        snprintf(msg, sizeof msg, "more than %d progressive scans", SC_JPEG_MAX_SCANS);
        sc_set_err(e->err, e->errlen, "invalid JPEG: ", msg);
        e->status = SC_ERR_CORRUPT;
        longjmp(e->jb, 1);
    }
}

/* APP1 handler replacing jpeg_save_markers: the segment is read in place from the memory
 * source (which holds the whole file), the first valid EXIF orientation is kept, and nothing
 * is copied, so any number of APP1 segments costs no memory. */
static boolean sc_jpeg_read_app1(j_decompress_ptr cinfo) {
    sc_jpeg_dctx *ctx = (sc_jpeg_dctx *)cinfo; /* cinfo is the context's first member */
    struct jpeg_source_mgr *src = cinfo->src;
    if (src->bytes_in_buffer < 2) ERREXIT(cinfo, JERR_INPUT_EOF);
    const size_t length = ((size_t)src->next_input_byte[0] << 8) | src->next_input_byte[1];
    if (length < 2) ERREXIT(cinfo, JERR_BAD_LENGTH);
    if (length > src->bytes_in_buffer) ERREXIT(cinfo, JERR_INPUT_EOF);
    if (ctx->orientation == 0) {
        ctx->orientation = sc_exif_orientation(src->next_input_byte + 2, length - 2);
    }
    src->next_input_byte += length;
    src->bytes_in_buffer -= length;
    return TRUE;
}

/* The ceiling for libjpeg's own allocations of whole-image buffers (see
 * SC_JPEG_BYTES_PER_PIXEL), saturating. */
static long sc_jpeg_memory_budget(uint64_t max_pixels) {
    const uint64_t room = (uint64_t)LONG_MAX - (uint64_t)SC_JPEG_MEMORY_SLACK;
    const uint64_t image = max_pixels > room / SC_JPEG_BYTES_PER_PIXEL
                               ? room
                               : max_pixels * SC_JPEG_BYTES_PER_PIXEL;
    return (long)(image + (uint64_t)SC_JPEG_MEMORY_SLACK);
}

static void sc_jpeg_dctx_free(sc_jpeg_dctx *ctx) {
    if (ctx->created) jpeg_destroy_decompress(&ctx->cinfo);
    free(ctx->pixels);
    free(ctx->row);
    free(ctx);
}

static inline uint8_t sc_mul255(unsigned a, unsigned b) {
    /* round(a*b/255) for a, b in 0...255 */
    unsigned t = a * b + 128;
    return (uint8_t)((t + (t >> 8)) >> 8);
}

/* The largest IDCT scale denominator (8, 4 or 2; else 1) whose output, ceil(side / denom) a side,
 * still covers need_w x need_h. The sizes are in stored orientation. */
static unsigned sc_jpeg_scale_denom(uint32_t width, uint32_t height, uint32_t need_w, uint32_t need_h) {
    if (need_w == 0 || need_h == 0) return 1;
    for (unsigned d = 8; d > 1; d /= 2) {
        if ((width + d - 1) / d >= need_w && (height + d - 1) / d >= need_h) return d;
    }
    return 1;
}

/* decode == 0: header only. need_w x need_h (display orientation, 0 for full size): the
 * smallest size the caller needs, which picks a reduced IDCT scale when possible. */
static int sc_jpeg_run(const uint8_t *data, size_t len, int decode, uint64_t max_pixels,
                       uint32_t need_w, uint32_t need_h, sc_image *out, char *err, size_t errlen) {
    if (err != NULL && errlen > 0) err[0] = 0;
    if (out == NULL) return SC_ERR_ARGUMENT;
    memset(out, 0, sizeof *out);
    out->info.orientation = 1;
    if (data == NULL || len < 4) {
        sc_set_err(err, errlen, "invalid JPEG: ", "truncated file");
        return SC_ERR_CORRUPT;
    }
    if ((unsigned long long)len > (unsigned long long)ULONG_MAX) {
        sc_set_err(err, errlen, "", "input too large");
        return SC_ERR_ARGUMENT;
    }

    sc_jpeg_dctx *ctx = (sc_jpeg_dctx *)calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        sc_set_err(err, errlen, "", "out of memory");
        return SC_ERR_NOMEM;
    }
    sc_jpeg_install_errors(&ctx->cinfo.err, &ctx->jerr, err, errlen);

    if (setjmp(ctx->jerr.jb)) {
        int status = ctx->jerr.status;
        if (status == SC_ERR_TOO_LARGE && ctx->created) {
            /* JERR_IMAGE_TOO_BIG: the SOF was read, so its size is known. */
            out->info.width = ctx->cinfo.image_width;
            out->info.height = ctx->cinfo.image_height;
            out->info.bit_depth = 8;
            out->info.orientation = ctx->orientation ? ctx->orientation : 1;
        }
        sc_jpeg_dctx_free(ctx);
        return status;
    }

    jpeg_create_decompress(&ctx->cinfo);
    ctx->created = 1;
    ctx->progress.progress_monitor = sc_jpeg_progress;
    ctx->cinfo.progress = &ctx->progress;
    ctx->cinfo.mem->max_memory_to_use = sc_jpeg_memory_budget(decode ? max_pixels : 0);
    jpeg_mem_src(&ctx->cinfo, data, (unsigned long)len);
    /* Only APP1 (EXIF orientation) is looked at; libjpeg skips COM and the other APPn
     * without storing them (APP0/APP14 after reading a few bytes). */
    jpeg_set_marker_processor(&ctx->cinfo, JPEG_APP0 + 1, sc_jpeg_read_app1);
    (void)jpeg_read_header(&ctx->cinfo, TRUE);

    const uint32_t width = ctx->cinfo.image_width;
    const uint32_t height = ctx->cinfo.image_height;
    out->info.width = width;
    out->info.height = height;
    out->info.bit_depth = 8;
    out->info.orientation = ctx->orientation ? ctx->orientation : 1;

    if (!decode) {
        sc_jpeg_dctx_free(ctx);
        return SC_OK;
    }
    if (sc_over_pixel_limit(width, height, max_pixels, err, errlen)) {
        sc_jpeg_dctx_free(ctx);
        return SC_ERR_TOO_LARGE;
    }

    int cmyk = 0;
    switch (ctx->cinfo.jpeg_color_space) {
    case JCS_CMYK:
    case JCS_YCCK:
        ctx->cinfo.out_color_space = JCS_CMYK; /* libjpeg converts YCCK -> CMYK; we do -> RGB */
        cmyk = 1;
        break;
    default:
        ctx->cinfo.out_color_space = JCS_RGB; /* grey and YCbCr converted by libjpeg */
        break;
    }
    /* Accurate integer IDCT and smooth chroma upsampling (the libjpeg defaults, made explicit). */
    ctx->cinfo.dct_method = JDCT_ISLOW;
    ctx->cinfo.do_fancy_upsampling = TRUE;
    /* A reduced scale computes fewer IDCT outputs per block (1/8: the DC term alone, an 8x8 box
     * average), so a photo far larger than needed costs a fraction of a full decode. */
    const int transposed = out->info.orientation >= 5;
    const unsigned denom = sc_jpeg_scale_denom(width, height, transposed ? need_h : need_w,
                                               transposed ? need_w : need_h);
    ctx->cinfo.scale_num = 1;
    ctx->cinfo.scale_denom = denom;
    const uint32_t out_w = (width + denom - 1) / denom, out_h = (height + denom - 1) / denom;

    (void)jpeg_start_decompress(&ctx->cinfo);
    const int comps = ctx->cinfo.output_components;
    if (ctx->cinfo.output_width != out_w || ctx->cinfo.output_height != out_h ||
        comps != (cmyk ? 4 : 3)) {
        ERREXIT(&ctx->cinfo, JERR_CONVERSION_NOTIMPL);
    }

    const size_t rowbytes = (size_t)out_w * 3;
    if (out_h != 0 && rowbytes > SIZE_MAX / out_h) ERREXIT1(&ctx->cinfo, JERR_OUT_OF_MEMORY, 100);
    const size_t size = rowbytes * out_h;
    ctx->pixels = (uint8_t *)malloc(size ? size : 1);
    if (ctx->pixels == NULL) ERREXIT1(&ctx->cinfo, JERR_OUT_OF_MEMORY, 101);
    if (cmyk) {
        ctx->row = (uint8_t *)malloc((size_t)out_w * 4 + 1);
        if (ctx->row == NULL) ERREXIT1(&ctx->cinfo, JERR_OUT_OF_MEMORY, 102);
    }
    /* Photoshop (Adobe APP14) writes CMYK inverted: 255 = no ink. */
    const int inverted = cmyk && ctx->cinfo.saw_Adobe_marker;

    while (ctx->cinfo.output_scanline < ctx->cinfo.output_height) {
        const JDIMENSION y = ctx->cinfo.output_scanline;
        uint8_t *dst = ctx->pixels + (size_t)y * rowbytes;
        JSAMPROW row = cmyk ? (JSAMPROW)ctx->row : (JSAMPROW)dst;
        if (jpeg_read_scanlines(&ctx->cinfo, &row, 1) != 1) {
            /* Cannot happen with a memory source (it never suspends); guard against a loop. */
            ERREXIT(&ctx->cinfo, JERR_INPUT_EMPTY);
        }
        if (cmyk) {
            const uint8_t *s = ctx->row;
            for (uint32_t x = 0; x < out_w; x++, s += 4, dst += 3) {
                unsigned c = s[0], m = s[1], yy = s[2], k = s[3];
                if (!inverted) {
                    c = 255 - c;
                    m = 255 - m;
                    yy = 255 - yy;
                    k = 255 - k;
                }
                /* now 255 = no ink: R = (1-C)(1-K) */
                dst[0] = sc_mul255(c, k);
                dst[1] = sc_mul255(m, k);
                dst[2] = sc_mul255(yy, k);
            }
        }
    }
    (void)jpeg_finish_decompress(&ctx->cinfo);

    out->pixels = ctx->pixels;
    out->size = size;
    out->width = out_w;
    out->height = out_h;
    ctx->pixels = NULL;
    sc_jpeg_dctx_free(ctx);
    return SC_OK;
}

int sc_jpeg_probe(const uint8_t *data, size_t len, sc_info *info, char *err, size_t errlen) {
    sc_image img;
    int status = sc_jpeg_run(data, len, 0, 0, 0, 0, &img, err, errlen);
    if (info != NULL) *info = img.info;
    return status;
}

int sc_jpeg_decode(const uint8_t *data, size_t len, uint64_t max_pixels, sc_image *out,
                   char *err, size_t errlen) {
    return sc_jpeg_run(data, len, 1, max_pixels, 0, 0, out, err, errlen);
}

int sc_jpeg_decode_scaled(const uint8_t *data, size_t len, uint64_t max_pixels, uint32_t min_width,
                          uint32_t min_height, sc_image *out, char *err, size_t errlen) {
    return sc_jpeg_run(data, len, 1, max_pixels, min_width, min_height, out, err, errlen);
}
