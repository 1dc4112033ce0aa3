#pragma once

#include <pybind11/pybind11.h>

namespace edgeact {

void bind_pose_step(pybind11::module_& m);

}  // namespace edgeact
