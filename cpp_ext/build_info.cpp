// Build facts of the compiled module: which compiler, flags and SIMD level this binary has.
#include "build_info.h"

#include "isa.h"

#include <pybind11/stl.h>

namespace edgeact {

std::string simd_level() {
  // What the compiler was allowed to emit, not what the CPU running us supports.
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2+fma";
#elif defined(__AVX2__)
  return "avx2";
#elif defined(__AVX__)
  return "avx";
#elif defined(__SSE4_2__)
  return "sse4.2";
#elif defined(__SSE2__) || defined(_M_X64)
  return "sse2";
#elif defined(__ARM_FEATURE_SVE)
  return "sve";
#elif defined(__ARM_NEON) || defined(__aarch64__)
  return "neon";
#else
  return "scalar";
#endif
}

pybind11::dict build_info() {
  pybind11::dict info;
  info["version"] = EDGEACT_VERSION;
  info["compiler"] = std::string(EDGEACT_COMPILER_ID) + " " + EDGEACT_COMPILER_VERSION;
  info["cxx_flags"] = EDGEACT_CXX_FLAGS;
  info["build_type"] = EDGEACT_BUILD_TYPE;
  info["processor"] = EDGEACT_SYSTEM_PROCESSOR;
  info["simd"] = simd_level();
  // The kernels dispatch at run time, so a baseline build can still run AVX2/AVX-512 code.
  std::vector<std::string> runnable;
  for (const KernelTable* table : runnable_kernel_tables()) runnable.push_back(table->isa);
  info["kernel_isa"] = runnable.front();          // what isa="auto" and temporal shift use here
  info["kernel_isas"] = pybind11::cast(runnable);  // what this CPU can run, fastest first
  info["kernel_isas_compiled"] = pybind11::cast(compiled_isas());
#ifdef EDGEACT_NATIVE_ARCH
  info["native_arch"] = true;
#else
  info["native_arch"] = false;
#endif
#ifdef EDGEACT_SANITIZE
  info["sanitize"] = true;
#else
  info["sanitize"] = false;
#endif
  info["cxx_standard"] = static_cast<long>(__cplusplus);
  return info;
}

}  // namespace edgeact
