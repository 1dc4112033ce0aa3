// The kernels for x86-64 CPUs with AVX-512 VNNI (Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4):
// the AVX-512 kernels again, with int8 recurrent weights multiplied by one vpdpwssd per pair of
// inputs instead of vpmaddwd + vpaddd. CMakeLists.txt compiles this file alone with
// -mavx512f -mavx512bw -mavx512vnni; isa.cpp calls it only where the CPU has all three.
#if EDGEACT_X86_DISPATCH
#define EDGEACT_ISA_NAME "avx512_vnni"
#define EDGEACT_VECTOR_BYTES 64
#define EDGEACT_MAX_ROWS 4  // 32 zmm registers
#define EDGEACT_ISA_NAMESPACE avx512_vnni
#include "kernels_impl.h"
#endif
