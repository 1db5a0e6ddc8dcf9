#ifndef STYLIST_CEPOLL_SHIM_H
#define STYLIST_CEPOLL_SHIM_H
/* epoll, eventfd and prctl (Linux), which the Glibc module does not include. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>

/* Names the calling thread (at most 15 bytes show); prctl is variadic, which Swift cannot call. */
static inline int stylist_name_current_thread(const char *name) {
    return prctl(PR_SET_NAME, name, 0, 0, 0);
}
#endif
