#pragma once

#include <pybind11/pybind11.h>

namespace edgeact {

void bind_temporal_shift(pybind11::module_& m);

}  // namespace edgeact
