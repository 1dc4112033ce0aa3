// The kernels for x86-64 CPUs with AVX-512F and BW (Skylake-SP, Ice Lake, Sapphire Rapids, Zen 4).
// CMakeLists.txt compiles this file alone with -mavx512f -mavx512bw; isa.cpp calls it only where
// the CPU (and the OS, which must save zmm state) supports both.
#if EDGEACT_X86_DISPATCH
#define EDGEACT_ISA_NAME "avx512"
#define EDGEACT_VECTOR_BYTES 64
#define EDGEACT_MAX_ROWS 4  // 32 zmm registers
#define EDGEACT_ISA_NAMESPACE avx512
#include "kernels_impl.h"
#endif
