#include "CSystemMemory.h"
#include <stdlib.h>   /* defines __GLIBC__ on glibc systems */
#if defined(__GLIBC__)
#include <malloc.h>
void stylist_release_free_heap(void) { malloc_trim(0); }
#else
void stylist_release_free_heap(void) {}
#endif
