// edgeact._C: the private compiled module. The Python facade lives in edgeact/ (see _C.pyi).
#include <pybind11/pybind11.h>

#include "build_info.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "edgeact compiled kernels (private; use the edgeact package API).";
  m.attr("__version__") = EDGEACT_VERSION;
  m.def("build_info", &edgeact::build_info,
        "Facts about this build: version, compiler, flags, SIMD level, sanitizer and arch options.");
}
