#ifndef CSYSTEMMEMORY_H
#define CSYSTEMMEMORY_H
/// Returns free heap memory to the system (glibc's malloc_trim; a no-op elsewhere).
void stylist_release_free_heap(void);
#endif
