// The kernels for x86-64 CPUs with AVX2 and FMA (Haswell, Zen and later). CMakeLists.txt
// compiles this file alone with -mavx2 -mfma; isa.cpp calls it only where the CPU has both.
#if EDGEACT_X86_DISPATCH
#define EDGEACT_ISA_NAME "avx2"
#define EDGEACT_VECTOR_BYTES 32
#define EDGEACT_MAX_ROWS 2  // 16 ymm registers: 2 rows x 4 gates of accumulators + weights
#define EDGEACT_ISA_NAMESPACE avx2
#include "kernels_impl.h"
#endif
