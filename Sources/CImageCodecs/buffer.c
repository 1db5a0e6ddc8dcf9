/* The growable output buffer of the encoders, and sc_free. */
#include "internal.h"

#include <stdlib.h>

void sc_free(void *p) { free(p); }

int sc_buffer_reserve(sc_buffer *b, size_t extra) {
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
