/* PNG decoding and header probing through libpng, from memory. */
#include "internal.h"

#include <stdlib.h>

#include <png.h>

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
    if (sc_over_pixel_limit(width, height, max_pixels, err, errlen)) {
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
    out->width = width;
    out->height = height;
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
    if (sc_png_decode_fast(data, len, max_pixels, out) == SC_OK) {
        if (err != NULL && errlen > 0) err[0] = 0;
        return SC_OK;
    }
    return sc_png_run(data, len, 1, max_pixels, out, err, errlen);
}

int sc_png_decode_libpng(const uint8_t *data, size_t len, uint64_t max_pixels, sc_image *out,
                         char *err, size_t errlen) {
    return sc_png_run(data, len, 1, max_pixels, out, err, errlen);
}
