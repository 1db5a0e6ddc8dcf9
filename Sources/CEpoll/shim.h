#ifndef STYLIST_CEPOLL_SHIM_H
#define STYLIST_CEPOLL_SHIM_H
/* epoll and eventfd (Linux), which the Glibc module does not include. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#endif
