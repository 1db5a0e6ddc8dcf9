#ifndef CCPUFEATURES_H
#define CCPUFEATURES_H
/// 1 when the CPU has AVX-512 F, VL, DQ and BW and the operating system saves the opmask and zmm
/// registers (XCR0 bits 1, 2, 5, 6, 7), so AVX-512 code may run; 0 otherwise (and on non-x86 CPUs).
int stylist_cpu_has_avx512(void);
#endif
