/* CImageCodecs: libpng + libjpeg-turbo behind setjmp-safe C functions.
 *
 * Conventions:
 *  - Every function that calls into libpng/libjpeg does its own setjmp; the libraries'
 *    error handlers longjmp back to it, never further.
 *  - All state touched after setjmp lives in a heap-allocated context (not in automatic
 *    variables), so its values are well defined after a longjmp.
 *  - Buffers owned by the context are freed on both the success and the error path.
 */
#include "CImageCodecs.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <jpeglib.h>
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

/* Only IHDR, PLTE, tRNS, IDAT and IEND are used, so every other chunk is skipped unread
 * (its CRC is still checked): text chunks are never inflated, iCCP/eXIf/unknown chunks
 * never copied. The limits below are a second line: nothing ancillary is kept, and no
 * single chunk allocation outside the image data may exceed 1 MiB. */
#define SC_PNG_CHUNK_CACHE_MAX 16
#define SC_PNG_CHUNK_MALLOC_MAX (1U << 20)

/* After the last row, libpng inflates whatever is left of the IDAT stream, 1 KiB at a time
 * and without limit: a few MB of deflated zeros there cost seconds. A real encoder leaves only
 * the end of the last block and the Adler-32 (a few bytes), so a budget of compressed IDAT
 * bytes read after the last row (at most ~1000x that inflated) refuses the rest. */
#define SC_PNG_MAX_IDAT_AFTER_IMAGE (64U << 10)
#define SC_PNG_IDAT 0x49444154U /* "IDAT" as png_get_io_chunk_type reports it */

static void sc_set_err(char *err, size_t errlen, const char *prefix, const char *msg) {
    if (err == NULL || errlen == 0) return;
    snprintf(err, errlen, "%s%s", prefix ? prefix : "", msg ? msg : "");
}

static int sc_host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

void sc_free(void *p) { free(p); }

/* ------------------------------------------------------------------------------------- */
/* PNG decoding                                                                          */
/* ------------------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *data;
    size_t len;
    size_t pos;
    char *err;
    size_t errlen;
    int status;        /* status to return when libpng longjmps */
    png_structp png;
    png_infop info;
    uint8_t *pixels;   /* owned until handed to the caller */
    png_bytep *rows;
    int decoding;      /* past png_read_update_info: libpng's row and pass counters are live */
    int interlaced;
    png_uint_32 height;
    size_t idat_after_image; /* IDAT data bytes read after the last row */
} sc_png_ctx;

static void sc_png_error_fn(png_structp png, png_const_charp msg) {
    sc_png_ctx *ctx = (sc_png_ctx *)png_get_error_ptr(png);
    if (ctx != NULL) sc_set_err(ctx->err, ctx->errlen, "invalid PNG: ", msg);
    png_longjmp(png, 1);
}

static void sc_png_warning_fn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* benign (CRC of an ancillary chunk, unknown chunk...): ignore quietly */
}

/* Whether libpng has produced every row. It finishes the zlib stream inside the call for the
 * last row, so "png_read_image returned" would be too late to tell. */
static int sc_png_rows_done(png_structp png, const sc_png_ctx *ctx) {
    if (!ctx->decoding) return 0;
    return ctx->interlaced ? png_get_current_pass_number(png) >= 7
                           : png_get_current_row_number(png) >= ctx->height;
}

static void sc_png_read_fn(png_structp png, png_bytep out, size_t n) {
    sc_png_ctx *ctx = (sc_png_ctx *)png_get_io_ptr(png);
    if (ctx == NULL || n > ctx->len - ctx->pos) {
        png_error(png, "unexpected end of data (truncated file)");
    }
    if (png_get_io_chunk_type(png) == SC_PNG_IDAT &&
        (png_get_io_state(png) & PNG_IO_MASK_LOC) == PNG_IO_CHUNK_DATA && sc_png_rows_done(png, ctx)) {
        if (n > SC_PNG_MAX_IDAT_AFTER_IMAGE - ctx->idat_after_image) {
            png_error(png, "too much compressed data after the last row");
        }
        ctx->idat_after_image += n;
    }
    memcpy(out, ctx->data + ctx->pos, n);
    ctx->pos += n;
}

static void sc_png_ctx_free(sc_png_ctx *ctx) {
    if (ctx->png != NULL) png_destroy_read_struct(&ctx->png, ctx->info ? &ctx->info : NULL, NULL);
    free(ctx->rows);
    free(ctx->pixels);
    free(ctx);
}

/* decode == 0: header only. */
static int sc_png_run(const uint8_t *data, size_t len, int decode, uint64_t max_pixels,
                      sc_image *out, char *err, size_t errlen) {
    if (err != NULL && errlen > 0) err[0] = 0;
    if (out == NULL) return SC_ERR_ARGUMENT;
    memset(out, 0, sizeof *out);
    out->info.orientation = 1;
    if (data == NULL || len == 0) {
        sc_set_err(err, errlen, "invalid PNG: ", "empty input");
        return SC_ERR_CORRUPT;
    }
    if (len < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        sc_set_err(err, errlen, "invalid PNG: ", "bad signature");
        return SC_ERR_CORRUPT;
    }

    sc_png_ctx *ctx = (sc_png_ctx *)calloc(1, sizeof *ctx);
    if (ctx == NULL) {
        sc_set_err(err, errlen, "", "out of memory");
        return SC_ERR_NOMEM;
    }
    ctx->data = data;
    ctx->len = len;
    ctx->err = err;
    ctx->errlen = errlen;
    ctx->status = SC_ERR_CORRUPT;

    ctx->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, sc_png_error_fn, sc_png_warning_fn);
    if (ctx->png == NULL) {
        sc_png_ctx_free(ctx);
        sc_set_err(err, errlen, "", "out of memory (png_create_read_struct)");
        return SC_ERR_NOMEM;
    }
    ctx->info = png_create_info_struct(ctx->png);
    if (ctx->info == NULL) {
        sc_png_ctx_free(ctx);
        sc_set_err(err, errlen, "", "out of memory (png_create_info_struct)");
        return SC_ERR_NOMEM;
    }

    if (setjmp(png_jmpbuf(ctx->png))) {
        int status = ctx->status;
        sc_png_ctx_free(ctx);
        return status;
    }

    png_set_read_fn(ctx->png, ctx, sc_png_read_fn);
    /* Let any size through libpng's own limits: our max_pixels check decides, so a huge
     * header is reported as "too large" rather than "corrupt". */
    png_set_user_limits(ctx->png, 0x7fffffffU, 0x7fffffffU);
    /* num_chunks -1: NEVER becomes the handling of unknown chunks and of every ancillary
     * chunk libpng knows except tRNS, so a zTXt/iTXt/iCCP bomb costs one CRC pass. */
    png_set_keep_unknown_chunks(ctx->png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_set_chunk_cache_max(ctx->png, SC_PNG_CHUNK_CACHE_MAX);
    png_set_chunk_malloc_max(ctx->png, SC_PNG_CHUNK_MALLOC_MAX);
    png_read_info(ctx->png, ctx->info);

    png_uint_32 width = 0, height = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(ctx->png, ctx->info, &width, &height, &depth, &color, &interlace, NULL, NULL);
    out->info.width = width;
    out->info.height = height;
    out->info.bit_depth = depth == 16 ? 16 : 8;

    if (!decode) {
        sc_png_ctx_free(ctx);
        return SC_OK;
    }
    if ((uint64_t)width * (uint64_t)height > max_pixels) {
        char msg[128];
        snprintf(msg, sizeof msg, "image is %ux%u pixels, over the limit of %llu pixels",
                 (unsigned)width, (unsigned)height, (unsigned long long)max_pixels);
        sc_set_err(err, errlen, "", msg);
        sc_png_ctx_free(ctx);
        return SC_ERR_TOO_LARGE;
    }

    /* Transformations: palette -> RGB, grey < 8 bits -> 8 bits, tRNS -> alpha (all by
     * png_set_expand); then drop alpha without compositing; grey -> RGB; 16-bit samples in
     * host byte order; de-interlace. No gamma handling: samples are used as stored. */
    png_set_expand(ctx->png);
    png_set_strip_alpha(ctx->png);
    png_set_gray_to_rgb(ctx->png);
    if (depth == 16 && sc_host_is_little_endian()) png_set_swap(ctx->png);
    (void)png_set_interlace_handling(ctx->png);
    png_read_update_info(ctx->png, ctx->info);

    const int out_depth = png_get_bit_depth(ctx->png, ctx->info);
    const int channels = png_get_channels(ctx->png, ctx->info);
    const size_t rowbytes = png_get_rowbytes(ctx->png, ctx->info);
    const size_t bytes_per_sample = out_depth == 16 ? 2 : 1;
    if (channels != 3 || (out_depth != 8 && out_depth != 16) ||
        rowbytes != (size_t)width * 3 * bytes_per_sample) {
        /* Should be unreachable given the transformations above. */
        png_error(ctx->png, "unexpected pixel layout after transformations");
    }
    out->info.bit_depth = out_depth;

    if (height != 0 && rowbytes > SIZE_MAX / height) {
        ctx->status = SC_ERR_NOMEM;
        png_error(ctx->png, "image too large for this address space");
    }
    const size_t size = rowbytes * height;
    ctx->pixels = (uint8_t *)malloc(size ? size : 1);
    ctx->rows = (png_bytep *)malloc((height ? height : 1) * sizeof(png_bytep));
    if (ctx->pixels == NULL || ctx->rows == NULL) {
        ctx->status = SC_ERR_NOMEM;
        png_error(ctx->png, "out of memory for the pixel buffer");
    }
    for (png_uint_32 y = 0; y < height; y++) ctx->rows[y] = ctx->pixels + (size_t)y * rowbytes;

    ctx->interlaced = interlace != PNG_INTERLACE_NONE;
    ctx->height = height;
    ctx->decoding = 1;
    png_read_image(ctx->png, ctx->rows);
    /* Read to IEND: verifies the end of the zlib stream and the last CRCs, so truncated
     * files fail instead of decoding to a partial image. */
    png_read_end(ctx->png, NULL);

    out->pixels = ctx->pixels;
    out->size = size;
    ctx->pixels = NULL;
    sc_png_ctx_free(ctx);
    return SC_OK;
}

int sc_png_probe(const uint8_t *data, size_t len, sc_info *info, char *err, size_t errlen) {
    sc_image img;
    int status = sc_png_run(data, len, 0, 0, &img, err, errlen);
    if (info != NULL) *info = img.info;
    return status;
}

int sc_png_decode(const uint8_t *data, size_t len, uint64_t max_pixels, sc_image *out,
                  char *err, size_t errlen) {
    return sc_png_run(data, len, 1, max_pixels, out, err, errlen);
}

/* ------------------------------------------------------------------------------------- */
/* EXIF orientation (APP1 "Exif\0\0" + TIFF header + IFD0 tag 0x0112)                    */
/* ------------------------------------------------------------------------------------- */

static uint32_t sc_rd16(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | ((uint32_t)p[1] << 8) : ((uint32_t)p[0] << 8) | (uint32_t)p[1];
}

static uint32_t sc_rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24)
              : ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Returns 1...8, or 0 when the segment is not EXIF or has no valid orientation. */
static int sc_exif_orientation(const uint8_t *p, size_t n) {
    static const uint8_t exif_id[6] = {'E', 'x', 'i', 'f', 0, 0};
    if (p == NULL || n < 6 + 8 || memcmp(p, exif_id, 6) != 0) return 0;
    const uint8_t *t = p + 6; /* TIFF header; offsets are relative to it */
    const size_t tn = n - 6;
    int le;
    if (t[0] == 'I' && t[1] == 'I') le = 1;
    else if (t[0] == 'M' && t[1] == 'M') le = 0;
    else return 0;
    if (sc_rd16(t + 2, le) != 42) return 0;
    const uint32_t ifd = sc_rd32(t + 4, le);
    if (ifd < 8 || ifd > tn || tn - ifd < 2) return 0;
    const uint32_t count = sc_rd16(t + ifd, le);
    size_t e = (size_t)ifd + 2;
    for (uint32_t i = 0; i < count; i++, e += 12) {
        if (e > tn || tn - e < 12) return 0;
        if (sc_rd16(t + e, le) != 0x0112) continue;
        const uint32_t type = sc_rd16(t + e + 2, le);
        const uint32_t cnt = sc_rd32(t + e + 4, le);
        uint32_t v;
        if (cnt < 1) return 0;
        if (type == 3) v = sc_rd16(t + e + 8, le);      /* SHORT, stored inline */
        else if (type == 4) v = sc_rd32(t + e + 8, le); /* LONG: not standard, tolerated */
        else return 0;
        return (v >= 1 && v <= 8) ? (int)v : 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------- */
/* JPEG decoding                                                                         */
/* ------------------------------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char *err;
    size_t errlen;
    int status;
} sc_jpeg_err;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    sc_jpeg_err jerr;
    struct jpeg_progress_mgr progress;
    int created;
    int orientation; /* from the first APP1 with a valid EXIF orientation; 0 until then */
    uint8_t *pixels; /* owned until handed to the caller */
    uint8_t *row;    /* CMYK scanline */
} sc_jpeg_dctx;

static int sc_jpeg_classify(int code) {
    switch (code) {
    case JERR_IMAGE_TOO_BIG:
        return SC_ERR_TOO_LARGE;
    case JERR_BAD_PRECISION: /* 12/16-bit JPEG */
    case JERR_SOF_UNSUPPORTED:
    case JERR_ARITH_NOTIMPL:
    case JERR_CONVERSION_NOTIMPL:
    case JERR_NOT_COMPILED:
        return SC_ERR_UNSUPPORTED;
    case JERR_OUT_OF_MEMORY:
        return SC_ERR_NOMEM;
    case JERR_NO_BACKING_STORE: /* over max_memory_to_use: a layout no real photo has */
        return SC_ERR_UNSUPPORTED;
    default:
        return SC_ERR_CORRUPT;
    }
}

static void sc_jpeg_error_exit(j_common_ptr cinfo) {
    sc_jpeg_err *e = (sc_jpeg_err *)cinfo->err;
    char buf[JMSG_LENGTH_MAX];
    buf[0] = 0;
    if (cinfo->err->msg_code == JERR_NO_BACKING_STORE) {
        snprintf(buf, sizeof buf, "its coefficient buffer is over the memory budget");
    } else {
        (*cinfo->err->format_message)(cinfo, buf);
    }
    const int status = sc_jpeg_classify(cinfo->err->msg_code);
    const char *prefix = !cinfo->is_decompressor ? "JPEG encoder: "
                         : status == SC_ERR_UNSUPPORTED ? "unsupported JPEG: " : "invalid JPEG: ";
    sc_set_err(e->err, e->errlen, prefix, buf);
    e->status = status;
    longjmp(e->jb, 1);
}

/* Warnings that mean the data is truncated or damaged are fatal: libjpeg would otherwise
 * pad the image with grey and report success. Benign ones (extraneous bytes before a
 * marker, odd JFIF versions, bad ICC) are ignored. */
static void sc_jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level >= 0) return; /* trace messages */
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_ARITH_BAD_CODE:
    case JWRN_MUST_RESYNC:
        sc_jpeg_error_exit(cinfo);
        break;
    default:
        cinfo->err->num_warnings++;
        break;
    }
}

static void sc_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

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

static int sc_jpeg_run(const uint8_t *data, size_t len, int decode, uint64_t max_pixels,
                       sc_image *out, char *err, size_t errlen) {
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
    ctx->cinfo.err = jpeg_std_error(&ctx->jerr.pub);
    ctx->jerr.pub.error_exit = sc_jpeg_error_exit;
    ctx->jerr.pub.emit_message = sc_jpeg_emit_message;
    ctx->jerr.pub.output_message = sc_jpeg_output_message;
    ctx->jerr.err = err;
    ctx->jerr.errlen = errlen;
    ctx->jerr.status = SC_ERR_CORRUPT;

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
    if ((uint64_t)width * (uint64_t)height > max_pixels) {
        char msg[128];
        snprintf(msg, sizeof msg, "image is %ux%u pixels, over the limit of %llu pixels",
                 (unsigned)width, (unsigned)height, (unsigned long long)max_pixels);
        sc_set_err(err, errlen, "", msg);
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

    (void)jpeg_start_decompress(&ctx->cinfo);
    const int comps = ctx->cinfo.output_components;
    if (ctx->cinfo.output_width != width || ctx->cinfo.output_height != height ||
        comps != (cmyk ? 4 : 3)) {
        ERREXIT(&ctx->cinfo, JERR_CONVERSION_NOTIMPL);
    }

    const size_t rowbytes = (size_t)width * 3;
    if (height != 0 && rowbytes > SIZE_MAX / height) ERREXIT1(&ctx->cinfo, JERR_OUT_OF_MEMORY, 100);
    const size_t size = rowbytes * height;
    ctx->pixels = (uint8_t *)malloc(size ? size : 1);
    if (ctx->pixels == NULL) ERREXIT1(&ctx->cinfo, JERR_OUT_OF_MEMORY, 101);
    if (cmyk) {
        ctx->row = (uint8_t *)malloc((size_t)width * 4 + 1);
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
            for (uint32_t x = 0; x < width; x++, s += 4, dst += 3) {
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
    ctx->pixels = NULL;
    sc_jpeg_dctx_free(ctx);
    return SC_OK;
}

int sc_jpeg_probe(const uint8_t *data, size_t len, sc_info *info, char *err, size_t errlen) {
    sc_image img;
    int status = sc_jpeg_run(data, len, 0, 0, &img, err, errlen);
    if (info != NULL) *info = img.info;
    return status;
}

int sc_jpeg_decode(const uint8_t *data, size_t len, uint64_t max_pixels, sc_image *out,
                   char *err, size_t errlen) {
    return sc_jpeg_run(data, len, 1, max_pixels, out, err, errlen);
}

/* ------------------------------------------------------------------------------------- */
/* Growable output buffer (shared by both encoders)                                      */
/* ------------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *buf;
    size_t len;
    size_t cap;
} sc_buffer;

/* Ensures room for `extra` more bytes. Returns 0 on allocation failure. */
static int sc_buffer_reserve(sc_buffer *b, size_t extra) {
    if (extra <= b->cap - b->len) return 1;
    if (extra > SIZE_MAX - b->len) return 0;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *nb = (uint8_t *)realloc(b->buf, cap);
    if (nb == NULL) return 0;
    b->buf = nb;
    b->cap = cap;
    return 1;
}

/* ------------------------------------------------------------------------------------- */
/* PNG encoding                                                                          */
/* ------------------------------------------------------------------------------------- */

typedef struct {
    sc_buffer out;
    char *err;
    size_t errlen;
    int status;
    png_structp png;
    png_infop info;
} sc_png_ectx;

static void sc_png_enc_error_fn(png_structp png, png_const_charp msg) {
    sc_png_ectx *ctx = (sc_png_ectx *)png_get_error_ptr(png);
    if (ctx != NULL) sc_set_err(ctx->err, ctx->errlen, "PNG encoder: ", msg);
    png_longjmp(png, 1);
}

static void sc_png_write_fn(png_structp png, png_bytep data, size_t n) {
    sc_png_ectx *ctx = (sc_png_ectx *)png_get_io_ptr(png);
    if (!sc_buffer_reserve(&ctx->out, n)) {
        ctx->status = SC_ERR_NOMEM;
        png_error(png, "out of memory for the output buffer");
    }
    memcpy(ctx->out.buf + ctx->out.len, data, n);
    ctx->out.len += n;
}

static void sc_png_flush_fn(png_structp png) { (void)png; }

int sc_png_encode(const uint8_t *rgb, uint32_t width, uint32_t height, int level,
                  uint8_t **out, size_t *outlen, char *err, size_t errlen) {
    if (err != NULL && errlen > 0) err[0] = 0;
    if (out == NULL || outlen == NULL) return SC_ERR_ARGUMENT;
    *out = NULL;
    *outlen = 0;
    if (rgb == NULL || width == 0 || height == 0 || width > 0x7fffffffU || height > 0x7fffffffU) {
        sc_set_err(err, errlen, "PNG encoder: ", "invalid image size");
        return SC_ERR_ARGUMENT;
    }
    const int zlevel = level < 0 ? 0 : level > 9 ? 9 : level;

    sc_png_ectx *ctx = (sc_png_ectx *)calloc(1, sizeof *ctx);
    if (ctx == NULL) return SC_ERR_NOMEM;
    ctx->err = err;
    ctx->errlen = errlen;
    ctx->status = SC_ERR_CORRUPT;
    ctx->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, sc_png_enc_error_fn, sc_png_warning_fn);
    if (ctx->png != NULL) ctx->info = png_create_info_struct(ctx->png);
    if (ctx->png == NULL || ctx->info == NULL) {
        if (ctx->png != NULL) png_destroy_write_struct(&ctx->png, NULL);
        free(ctx);
        sc_set_err(err, errlen, "PNG encoder: ", "out of memory");
        return SC_ERR_NOMEM;
    }

    if (setjmp(png_jmpbuf(ctx->png))) {
        int status = ctx->status;
        png_destroy_write_struct(&ctx->png, &ctx->info);
        free(ctx->out.buf);
        free(ctx);
        return status;
    }

    png_set_write_fn(ctx->png, ctx, sc_png_write_fn, sc_png_flush_fn);
    png_set_compression_level(ctx->png, zlevel);
    png_set_IHDR(ctx->png, ctx->info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(ctx->png, ctx->info);
    const size_t rowbytes = (size_t)width * 3;
    for (uint32_t y = 0; y < height; y++) {
        png_write_row(ctx->png, (png_const_bytep)(rgb + (size_t)y * rowbytes));
    }
    png_write_end(ctx->png, NULL);

    *out = ctx->out.buf;
    *outlen = ctx->out.len;
    ctx->out.buf = NULL;
    png_destroy_write_struct(&ctx->png, &ctx->info);
    free(ctx);
    return SC_OK;
}

/* ------------------------------------------------------------------------------------- */
/* JPEG encoding                                                                         */
/* ------------------------------------------------------------------------------------- */

typedef struct {
    struct jpeg_destination_mgr pub;
    sc_buffer out;
} sc_jpeg_dest;

typedef struct {
    struct jpeg_compress_struct cinfo;
    sc_jpeg_err jerr;
    sc_jpeg_dest dest;
    int created;
} sc_jpeg_ectx;

static void sc_jpeg_init_destination(j_compress_ptr cinfo) {
    sc_jpeg_dest *d = (sc_jpeg_dest *)cinfo->dest;
    d->out.len = 0;
    if (!sc_buffer_reserve(&d->out, 65536)) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 200);
    d->pub.next_output_byte = d->out.buf;
    d->pub.free_in_buffer = d->out.cap;
}

static boolean sc_jpeg_empty_output_buffer(j_compress_ptr cinfo) {
    sc_jpeg_dest *d = (sc_jpeg_dest *)cinfo->dest;
    d->out.len = d->out.cap; /* libjpeg filled the whole buffer */
    if (!sc_buffer_reserve(&d->out, d->out.cap)) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 201);
    d->pub.next_output_byte = d->out.buf + d->out.len;
    d->pub.free_in_buffer = d->out.cap - d->out.len;
    return TRUE;
}

static void sc_jpeg_term_destination(j_compress_ptr cinfo) {
    sc_jpeg_dest *d = (sc_jpeg_dest *)cinfo->dest;
    d->out.len = d->out.cap - d->pub.free_in_buffer;
}

int sc_jpeg_encode(const uint8_t *rgb, uint32_t width, uint32_t height, int quality,
                   uint8_t **out, size_t *outlen, char *err, size_t errlen) {
    if (err != NULL && errlen > 0) err[0] = 0;
    if (out == NULL || outlen == NULL) return SC_ERR_ARGUMENT;
    *out = NULL;
    *outlen = 0;
    if (rgb == NULL || width == 0 || height == 0) {
        sc_set_err(err, errlen, "JPEG encoder: ", "invalid image size");
        return SC_ERR_ARGUMENT;
    }
    if (width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION) {
        char msg[96];
        snprintf(msg, sizeof msg, "JPEG encoder: a side is over %d pixels", (int)JPEG_MAX_DIMENSION);
        sc_set_err(err, errlen, "", msg);
        return SC_ERR_TOO_LARGE;
    }
    const int q = quality < 1 ? 1 : quality > 100 ? 100 : quality;

    sc_jpeg_ectx *ctx = (sc_jpeg_ectx *)calloc(1, sizeof *ctx);
    if (ctx == NULL) return SC_ERR_NOMEM;
    ctx->cinfo.err = jpeg_std_error(&ctx->jerr.pub);
    ctx->jerr.pub.error_exit = sc_jpeg_error_exit;
    ctx->jerr.pub.emit_message = sc_jpeg_emit_message;
    ctx->jerr.pub.output_message = sc_jpeg_output_message;
    ctx->jerr.err = err;
    ctx->jerr.errlen = errlen;
    ctx->jerr.status = SC_ERR_CORRUPT;

    if (setjmp(ctx->jerr.jb)) {
        int status = ctx->jerr.status;
        if (ctx->created) jpeg_destroy_compress(&ctx->cinfo);
        free(ctx->dest.out.buf);
        free(ctx);
        return status;
    }

    jpeg_create_compress(&ctx->cinfo);
    ctx->created = 1;
    ctx->dest.pub.init_destination = sc_jpeg_init_destination;
    ctx->dest.pub.empty_output_buffer = sc_jpeg_empty_output_buffer;
    ctx->dest.pub.term_destination = sc_jpeg_term_destination;
    ctx->cinfo.dest = &ctx->dest.pub;

    ctx->cinfo.image_width = width;
    ctx->cinfo.image_height = height;
    ctx->cinfo.input_components = 3;
    ctx->cinfo.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ctx->cinfo);
    jpeg_set_quality(&ctx->cinfo, q, TRUE);
    ctx->cinfo.optimize_coding = TRUE;
    ctx->cinfo.dct_method = JDCT_ISLOW;
    if (q >= 90) {
        /* Full-resolution chroma: at high quality 4:2:0 would be the dominant loss. */
        for (int c = 0; c < ctx->cinfo.num_components; c++) {
            ctx->cinfo.comp_info[c].h_samp_factor = 1;
            ctx->cinfo.comp_info[c].v_samp_factor = 1;
        }
    }
    jpeg_start_compress(&ctx->cinfo, TRUE);
    const size_t rowbytes = (size_t)width * 3;
    while (ctx->cinfo.next_scanline < ctx->cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)ctx->cinfo.next_scanline * rowbytes);
        (void)jpeg_write_scanlines(&ctx->cinfo, &row, 1);
    }
    jpeg_finish_compress(&ctx->cinfo);

    *out = ctx->dest.out.buf;
    *outlen = ctx->dest.out.len;
    ctx->dest.out.buf = NULL;
    jpeg_destroy_compress(&ctx->cinfo);
    free(ctx);
    return SC_OK;
}
