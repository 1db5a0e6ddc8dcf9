/* JPEG encoding through libjpeg-turbo, into a malloc'd buffer. */
#include "internal.h"

#include <stdlib.h>

#include <jerror.h>

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
    sc_jpeg_install_errors(&ctx->cinfo.err, &ctx->jerr, err, errlen);

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
    /* The standard Huffman tables, not per-image ones: optimising them buffers every coefficient
     * and codes the image twice, which triples the encode time for files a few percent smaller
     * (BENCHMARKS.md, end-to-end section). The pixels are the same either way. */
    ctx->cinfo.optimize_coding = FALSE;
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
