#include "CCPUFeatures.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

// Compiled without -m flags: xgetbv is issued as raw bytes so that no target feature is needed.
static unsigned long long read_xcr0(void) {
    unsigned int eax, edx;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

int stylist_cpu_has_avx512(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if (!(ecx & bit_OSXSAVE)) return 0;                       // XGETBV usable
    // SSE (1), AVX (2), opmask (5), ZMM0-15 upper halves (6), ZMM16-31 (7).
    const unsigned long long wanted = (1u << 1) | (1u << 2) | (1u << 5) | (1u << 6) | (1u << 7);
    if ((read_xcr0() & wanted) != wanted) return 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return 0;
    const unsigned int features = bit_AVX512F | bit_AVX512DQ | bit_AVX512BW | bit_AVX512VL;
    return (ebx & features) == features;
}
#else
int stylist_cpu_has_avx512(void) { return 0; }
#endif
