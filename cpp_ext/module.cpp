// edgeact._C: the private compiled module. The Python facade is edgeact/kernels.py; the
// signatures are mirrored in edgeact/_C.pyi.
#include <pybind11/pybind11.h>

#include "area_resize.h"
#include "build_info.h"
#include "errors.h"
#include "pose_step.h"
#include "recurrent.h"
#include "temporal_shift.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "edgeact compiled kernels (private; use the edgeact package API).";
  m.attr("__version__") = EDGEACT_VERSION;
  edgeact::register_error_translators(m);
  m.def("build_info", &edgeact::build_info,
        "Facts about this build: version, compiler, flags, SIMD level, sanitizer and arch options,\n"
        "and the kernel instruction sets compiled in and chosen on this CPU.");
  edgeact::bind_temporal_shift(m);
  edgeact::bind_recurrent(m);
  edgeact::bind_pose_step(m);
  edgeact::bind_area_resize(m);
}
