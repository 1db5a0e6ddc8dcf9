/* Helpers shared by the codec files of CImageCodecs (not part of its public interface).
 *
 * Conventions of every file here:
 *  - Every function that calls into libpng/libjpeg does its own setjmp; the libraries'
 *    error handlers longjmp back to it, never further.
 *  - All state touched after setjmp lives in a heap-allocated context (not in automatic
 *    variables), so its values are well defined after a longjmp.
 *  - Buffers owned by the context are freed on both the success and the error path.
 */
#ifndef CIMAGECODECS_INTERNAL_H
#define CIMAGECODECS_INTERNAL_H

#include "CImageCodecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

/* Copies "prefix + msg" into the caller's error buffer (NUL-terminated, truncated). */
static inline void sc_set_err(char *err, size_t errlen, const char *prefix, const char *msg) {
    if (err == NULL || errlen == 0) return;
    snprintf(err, errlen, "%s%s", prefix ? prefix : "", msg ? msg : "");
}

/* True (with the error written) when width x height exceeds the decode limit. */
static inline int sc_over_pixel_limit(uint32_t width, uint32_t height, uint64_t max_pixels, char *err, size_t errlen) {
    if ((uint64_t)width * (uint64_t)height <= max_pixels) return 0;
    char msg[128];
    snprintf(msg, sizeof msg, "image is %ux%u pixels, over the limit of %llu pixels",
             (unsigned)width, (unsigned)height, (unsigned long long)max_pixels);
    sc_set_err(err, errlen, "", msg);
    return 1;
}

static inline int sc_host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* A growable malloc'd output buffer (the encoders' output). */
typedef struct {
    uint8_t *buf;
    size_t len;
    size_t cap;
} sc_buffer;

/* Ensures room for `extra` more bytes. Returns 0 on allocation failure. */
int sc_buffer_reserve(sc_buffer *b, size_t extra);

/* A raw deflate stream being written (deflate_huffman.c), LSB first. */
typedef struct {
    uint8_t *out;       /* next byte; at least 8 writable bytes past what is written (slack) */
    uint64_t bits;      /* pending bits, the first in the lowest position */
    unsigned bit_count; /* fewer than 8 between calls */
} sc_deflate_writer;

/* The most bytes sc_deflate_write writes for `n` input bytes (SIZE_MAX if it would overflow). */
size_t sc_deflate_bound(size_t n);

/* Appends `n` bytes as deflate blocks, the last with BFINAL set when `final`. */
void sc_deflate_write(sc_deflate_writer *w, const uint8_t *in, size_t n, int final);

/* An empty stored block (5 bytes at most), leaving the stream byte-aligned without ending it, so
 * that another deflate stream's blocks may follow: zlib's Z_SYNC_FLUSH. */
void sc_deflate_sync_flush(sc_deflate_writer *w);

/* Pads the final block to a byte boundary and writes the pending bits. */
void sc_deflate_end(sc_deflate_writer *w);

/* libjpeg error manager that longjmps to `jb` with `status` set and the message in `err`. */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char *err;
    size_t errlen;
    int status;
} sc_jpeg_err;

/* Installs the handlers on `e` and points `cinfo_err` (cinfo.err) at it: errors longjmp, warnings
 * that mean damaged data are errors, the others and trace messages are ignored. */
void sc_jpeg_install_errors(struct jpeg_error_mgr **cinfo_err, sc_jpeg_err *e, char *err, size_t errlen);

/* The EXIF orientation (1...8) of an APP1 segment's payload, 0 when it has none. */
int sc_exif_orientation(const uint8_t *p, size_t n);

#endif /* CIMAGECODECS_INTERNAL_H */
