/* libjpeg error handling shared by the JPEG decoder and encoder, and the EXIF orientation reader. */
#include "internal.h"

#include <jerror.h>

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

void sc_jpeg_install_errors(struct jpeg_error_mgr **cinfo_err, sc_jpeg_err *e, char *err, size_t errlen) {
    *cinfo_err = jpeg_std_error(&e->pub);
    e->pub.error_exit = sc_jpeg_error_exit;
    e->pub.emit_message = sc_jpeg_emit_message;
    e->pub.output_message = sc_jpeg_output_message;
    e->err = err;
    e->errlen = errlen;
    e->status = SC_ERR_CORRUPT;
}

/* EXIF orientation: APP1 "Exif\0\0" + TIFF header + IFD0 tag 0x0112. */

static uint32_t sc_rd16(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | ((uint32_t)p[1] << 8) : ((uint32_t)p[0] << 8) | (uint32_t)p[1];
}

static uint32_t sc_rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24)
              : ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* Returns 1...8, or 0 when the segment is not EXIF or has no valid orientation. */
int sc_exif_orientation(const uint8_t *p, size_t n) {
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
