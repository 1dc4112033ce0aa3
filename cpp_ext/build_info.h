#pragma once
#include <string>

#include <pybind11/pybind11.h>

namespace edgeact {

std::string simd_level();
pybind11::dict build_info();

}  // namespace edgeact
