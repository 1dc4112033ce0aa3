// C++ exceptions that reach Python as edgeact.errors.InputError / InputTypeError (which are
// also ValueError / TypeError), so callers catch kernel errors like any other edgeact error.
#pragma once

#include <stdexcept>

#include <pybind11/pybind11.h>

namespace edgeact {

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct InputTypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void register_error_translators(pybind11::module_& m);

}  // namespace edgeact
