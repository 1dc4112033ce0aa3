// Which kernel tables this build contains and which of them this CPU can run.
#pragma once

#include <string>
#include <vector>

#include "kernels.h"

namespace edgeact {

// Tables this CPU can run, fastest first; never empty (the baseline table always runs).
const std::vector<const KernelTable*>& runnable_kernel_tables();
// Names of every table compiled into this module, whether or not this CPU can run it.
std::vector<std::string> compiled_isas();
// The table named `isa` ("auto" = the first runnable one), or nullptr if it cannot run here.
const KernelTable* find_kernel_table(const std::string& isa);

}  // namespace edgeact
