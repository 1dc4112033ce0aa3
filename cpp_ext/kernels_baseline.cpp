// The kernels at the build's baseline instruction set: SSE2 on x86-64 by default, NEON on
// aarch64, or whatever -march=native allows when EDGEACT_NATIVE_ARCH=ON.
#if defined(__AVX512F__)
#define EDGEACT_ISA_NAME "avx512"
#define EDGEACT_VECTOR_BYTES 64
#define EDGEACT_MAX_ROWS 4
#elif defined(__AVX2__) && defined(__FMA__)
#define EDGEACT_ISA_NAME "avx2"
#define EDGEACT_VECTOR_BYTES 32
#define EDGEACT_MAX_ROWS 2
#elif defined(__x86_64__) || defined(_M_X64)
#define EDGEACT_ISA_NAME "sse2"
#define EDGEACT_VECTOR_BYTES 16
#define EDGEACT_MAX_ROWS 2
#elif defined(__aarch64__) || defined(__ARM_NEON)
#define EDGEACT_ISA_NAME "neon"
#define EDGEACT_VECTOR_BYTES 16
#define EDGEACT_MAX_ROWS 4  // 32 vector registers
#else
#define EDGEACT_ISA_NAME "generic"
#define EDGEACT_VECTOR_BYTES 16
#define EDGEACT_MAX_ROWS 2
#endif
#define EDGEACT_ISA_NAMESPACE baseline
#include "kernels_impl.h"
