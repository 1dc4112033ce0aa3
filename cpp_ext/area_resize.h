#pragma once

#include <pybind11/pybind11.h>

namespace edgeact {

void bind_area_resize(pybind11::module_& m);

}  // namespace edgeact
