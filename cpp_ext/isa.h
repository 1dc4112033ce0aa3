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
// find_kernel_table, or an InputError naming the tables this CPU runs; `shown` is how the caller's
// argument reads in the message (its Python repr).
const KernelTable& kernel_table_or_throw(const std::string& isa, const std::string& shown);

}  // namespace edgeact
