// Run-time choice of kernel table: a portable (baseline) wheel still uses AVX2/AVX-512 on CPUs
// that have them, and never executes an instruction the CPU lacks.
#include "isa.h"

#include "errors.h"

namespace edgeact {

const std::vector<const KernelTable*>& runnable_kernel_tables() {
  static const std::vector<const KernelTable*> tables = [] {
    std::vector<const KernelTable*> found;
#if EDGEACT_X86_DISPATCH
    __builtin_cpu_init();
    // libgcc's check also requires the OS to save the wider registers (XGETBV).
    const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool has_avx512 = has_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    if (has_avx512 && __builtin_cpu_supports("avx512vnni")) found.push_back(&avx512_vnni::kernel_table());
    if (has_avx512) found.push_back(&avx512::kernel_table());
    if (has_avx2) found.push_back(&avx2::kernel_table());
#endif
    found.push_back(&baseline::kernel_table());
    return found;
  }();
  return tables;
}

std::vector<std::string> compiled_isas() {
  std::vector<std::string> names;
#if EDGEACT_X86_DISPATCH
  // Literals: even kernel_table() of those files is AVX code, not to be called on any CPU.
  names.push_back("avx512_vnni");
  names.push_back("avx512");
  names.push_back("avx2");
#endif
  names.push_back(baseline::kernel_table().isa);
  return names;
}

const KernelTable* find_kernel_table(const std::string& isa) {
  const auto& tables = runnable_kernel_tables();
  if (isa == "auto") return tables.front();
  for (const KernelTable* table : tables) {
    if (isa == table->isa) return table;
  }
  return nullptr;
}

const KernelTable& kernel_table_or_throw(const std::string& isa, const std::string& shown) {
  if (const KernelTable* table = find_kernel_table(isa)) return *table;
  std::string names = "'auto'";
  for (const KernelTable* table : runnable_kernel_tables()) names += std::string(", '") + table->isa + "'";
  throw InputError("isa must be one of " + names + " (those this CPU runs), got " + shown + ".");
}

}  // namespace edgeact
