// Temporal shift (TSM): the first `fold` channels of each frame come from the previous frame.
//
// Online, the previous frame's channels live in a cache, and one swap both emits them and
// stores the current frame's: no allocation, no copy of the other C - fold channels (the
// torch slice+cat form copies the whole tensor). Offline, over a clip, for parity tests.
#include "temporal_shift.h"

#include <cstring>
#include <string>

#include "arrays.h"
#include "errors.h"
#include "isa.h"

namespace py = pybind11;

namespace edgeact {
namespace {

py::ssize_t checked_fold(const IntArg& fold, const FloatArray& x, py::ssize_t channels) {
  const long long value = as_int("fold", fold.obj);
  if (value < 1 || value > channels) {
    throw InputError("fold must be in [1, " + std::to_string(channels) + "] (the channel count of x " +
                     shape_str(x.shape) + "), got " + std::to_string(value) + ".");
  }
  return static_cast<py::ssize_t>(value);
}

void temporal_shift_online_(const ArrayArg& x, const ArrayArg& cache, const IntArg& fold) {
  const FloatArray xa = float_array("x", x.obj, Access::kWrite);
  expect_ndim(xa, 4, "(batch, channels, height, width)");
  const py::ssize_t batch = xa.shape[0], channels = xa.shape[1], height = xa.shape[2], width = xa.shape[3];
  const py::ssize_t f = checked_fold(fold, xa, channels);
  const FloatArray ca = float_array("cache", cache.obj, Access::kWrite);
  expect_shape(ca, {batch, f, height, width}, "(batch, fold, height, width of x)");
  expect_disjoint(xa, ca);

  const std::size_t frame = static_cast<std::size_t>(channels * height * width);
  const std::size_t shifted = static_cast<std::size_t>(f * height * width);
  const KernelTable& kernels = *runnable_kernel_tables().front();
  py::gil_scoped_release release;
  for (py::ssize_t b = 0; b < batch; ++b) kernels.swap(xa.data + b * frame, ca.data + b * shifted, shifted);
}

py::array_t<float> temporal_shift_offline(const ArrayArg& x, const IntArg& fold) {
  const FloatArray xa = float_array("x", x.obj, Access::kRead);
  expect_ndim(xa, 5, "(batch, time, channels, height, width)");
  const py::ssize_t batch = xa.shape[0], time = xa.shape[1], channels = xa.shape[2];
  const py::ssize_t f = checked_fold(fold, xa, channels);

  py::array_t<float> out(xa.shape);
  float* o = out.mutable_data();
  const float* in = xa.data;
  const std::size_t plane = static_cast<std::size_t>(xa.shape[3] * xa.shape[4]);
  const std::size_t frame = static_cast<std::size_t>(channels) * plane;
  const std::size_t shifted = static_cast<std::size_t>(f) * plane;
  py::gil_scoped_release release;
  for (py::ssize_t b = 0; b < batch; ++b) {
    for (py::ssize_t t = 0; t < time; ++t) {
      const std::size_t at = static_cast<std::size_t>(b * time + t) * frame;
      if (t == 0) {
        std::memset(o + at, 0, shifted * sizeof(float));  // causal: nothing before the clip
      } else {
        std::memcpy(o + at, in + at - frame, shifted * sizeof(float));
      }
      std::memcpy(o + at + shifted, in + at + shifted, (frame - shifted) * sizeof(float));
    }
  }
  return out;
}

}  // namespace

void bind_temporal_shift(py::module_& m) {
  m.def("temporal_shift_online_", &temporal_shift_online_, py::arg("x"), py::arg("cache"), py::arg("fold"),
        "Online causal temporal shift, in place: swap x[:, :fold] with cache.\n\n"
        "x: float32 (batch, channels, height, width), C-contiguous, writeable.\n"
        "cache: float32 (batch, fold, height, width), not overlapping x; start it at zeros.\n"
        "Afterwards x[:, :fold] holds the previous frame's channels and cache holds this frame's.\n"
        "The GIL is released while it runs.");
  m.def("temporal_shift_offline", &temporal_shift_offline, py::arg("x"), py::arg("fold"),
        "Offline causal temporal shift over a clip; returns a new array.\n\n"
        "x: float32 (batch, time, channels, height, width), C-contiguous.\n"
        "out[:, t, :fold] = x[:, t-1, :fold] (zeros at t = 0); the other channels are copied.\n"
        "The GIL is released while it runs.");
}

}  // namespace edgeact
