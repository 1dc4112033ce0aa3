#pragma once

#include <pybind11/pybind11.h>

namespace edgeact {

void bind_recurrent(pybind11::module_& m);

}  // namespace edgeact
