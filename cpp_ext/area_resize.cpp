// Area-averaging downscale of 8-bit, 3-channel images that gives, bit for bit, what OpenCV's
// cv::resize(INTER_AREA) gives on its general path (a non-integer factor on either axis),
// in less time: OpenCV sums a source row horizontally once for every output row that the
// source row overlaps (1080p centre crop halved to 540x540, then 224 px: 540 rows summed 760
// times, unvectorised); here each source row is summed once, with the three channels of a
// pixel in one vector. The arithmetic is OpenCV's, in its order, so the rounded results match:
//  * per axis, a table of (source index, output index, float32 weight) terms built in double
//    as OpenCV builds it (a partial source cell at each end, whole cells between, weights
//    divided by the cell's extent);
//  * a source row's horizontal sums: per output pixel, its terms in order, each adding
//    src * weight to a float32 sum starting at 0;
//  * an output row: its rows' horizontal sums times their vertical weights, the first a
//    product and each next one added in order;
//  * rounding to nearest, ties to even, saturated to [0, 255].
// CMakeLists.txt compiles this file with -ffp-contract=off: a fused multiply-add would round
// differently from OpenCV's separate multiply and add.
#include "area_resize.h"

#include <pybind11/numpy.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "errors.h"

namespace py = pybind11;

namespace edgeact {
namespace {

struct AreaTerm {
  int src, dst;
  float weight;
};

// The terms of one axis shrinking from `from` to `to` samples (from >= to), in output order.
std::vector<AreaTerm> area_terms(int from, int to) {
  const double scale = 1.0 / (static_cast<double>(to) / from);  // cv::resize's inverse of its inverse scale
  std::vector<AreaTerm> terms;
  for (int d = 0; d < to; ++d) {
    const double start = d * scale, end = start + scale;
    const double cell = std::min(scale, from - start);
    int first = static_cast<int>(std::ceil(start)), last = static_cast<int>(std::floor(end));
    last = std::min(last, from - 1);
    first = std::min(first, last);
    if (first - start > 1e-3) terms.push_back({first - 1, d, static_cast<float>((first - start) / cell)});
    for (int s = first; s < last; ++s) terms.push_back({s, d, static_cast<float>(1.0 / cell)});
    if (end - last > 1e-3) terms.push_back({last, d, static_cast<float>(std::min(std::min(end - last, 1.0), cell) / cell)});
  }
  return terms;
}

typedef float v4 __attribute__((vector_size(16)));

// One axis's terms grouped by output index: output d's terms are [start[d], start[d + 1]).
struct AreaTable {
  std::vector<int> src, start;
  std::vector<float> weight;
};

AreaTable area_table(int from, int to) {
  AreaTable table;
  table.start.assign(static_cast<std::size_t>(to) + 1, 0);
  for (const AreaTerm& t : area_terms(from, to)) {
    table.src.push_back(t.src);
    table.weight.push_back(t.weight);
    ++table.start[static_cast<std::size_t>(t.dst) + 1];
  }
  for (int d = 0; d < to; ++d) table.start[d + 1] += table.start[d];
  return table;
}

// One source row's horizontal sums, a v4 per output pixel (lane 3 unused). `floats` is scratch
// of 3 * width + 1 floats: the row converted once, so that each term is one unaligned load of a
// pixel's three channels (and the next pixel's first, ignored), a multiply and an add. Each
// output pixel sums in a register, so output pixels proceed independently.
void sum_row(const std::uint8_t* row, int width, const AreaTable& x, float* floats, v4* sums, int out_width) {
  for (int i = 0; i < 3 * width; ++i) floats[i] = static_cast<float>(row[i]);
  for (int d = 0; d < out_width; ++d) {
    v4 sum = {};
    for (int k = x.start[d]; k < x.start[d + 1]; ++k) {
      v4 pixel;
      std::memcpy(&pixel, floats + 3 * x.src[k], sizeof pixel);
      sum = sum + pixel * x.weight[k];
    }
    sums[d] = sum;
  }
}

inline std::uint8_t saturate(float v) {
  const long r = std::lrint(v);  // the default rounding mode: to nearest, ties to even
  return static_cast<std::uint8_t>(std::min(255L, std::max(0L, r)));
}

// src: (height, width, 3) uint8, rows `row_stride` bytes apart, pixels packed.
void area_resize(const std::uint8_t* src, int height, int width, std::ptrdiff_t row_stride, std::uint8_t* out,
                 int out_height, int out_width) {
  const AreaTable x_table = area_table(width, out_width);
  const std::vector<AreaTerm> y_terms = area_terms(height, out_height);
  std::vector<v4> row_sums(out_width), out_sums(out_width);
  std::vector<float> floats(3 * static_cast<std::size_t>(width) + 1, 0.0f);
  int cached = -1;  // the source row row_sums holds: consecutive output rows share one
  std::size_t j = 0;
  for (int y = 0; y < out_height; ++y) {
    bool first = true;
    for (; j < y_terms.size() && y_terms[j].dst == y; ++j) {
      const AreaTerm& t = y_terms[j];
      if (t.src != cached) {
        sum_row(src + row_stride * t.src, width, x_table, floats.data(), row_sums.data(), out_width);
        cached = t.src;
      }
      if (first) {
        for (int x = 0; x < out_width; ++x) out_sums[x] = row_sums[x] * t.weight;
      } else {
        for (int x = 0; x < out_width; ++x) out_sums[x] = out_sums[x] + row_sums[x] * t.weight;
      }
      first = false;
    }
    std::uint8_t* o = out + static_cast<std::ptrdiff_t>(y) * out_width * 3;
    for (int x = 0; x < out_width; ++x) {
      for (int c = 0; c < 3; ++c) o[3 * x + c] = saturate(out_sums[x][c]);
    }
  }
}

py::array_t<std::uint8_t> area_resize_py(const py::object& frame_obj, const py::object& width_obj,
                                         const py::object& height_obj) {
  if (!py::isinstance<py::array>(frame_obj)) {
    throw InputTypeError("frame must be a numpy.ndarray (height, width, 3) uint8, got " +
                         std::string(py::str(py::type::handle_of(frame_obj).attr("__name__"))) + ".");
  }
  const py::array frame = py::reinterpret_borrow<py::array>(frame_obj);
  if (!frame.dtype().is(py::dtype::of<std::uint8_t>()) || frame.ndim() != 3 || frame.shape(2) != 3) {
    throw InputError("frame must be a (height, width, 3) uint8 array, got shape " +
                     std::string(py::str(py::tuple(frame.attr("shape")))) + " " +
                     std::string(py::str(frame.dtype())) + ".");
  }
  if (frame.strides(2) != 1 || frame.strides(1) != 3 || frame.strides(0) < 3 * frame.shape(1)) {
    throw InputError("frame must have packed pixels (strides (row, 3, 1), rows not overlapping), got strides " +
                     std::string(py::str(py::tuple(frame.attr("strides")))) + ".");
  }
  const long long width = width_obj.cast<long long>(), height = height_obj.cast<long long>();
  const long long src_h = frame.shape(0), src_w = frame.shape(1);
  if (width < 1 || height < 1 || width > src_w || height > src_h) {
    throw InputError("area_resize shrinks: the output size must be in [1, source] on each axis, got " +
                     std::to_string(width) + "x" + std::to_string(height) + " from " + std::to_string(src_w) + "x" +
                     std::to_string(src_h) + ".");
  }
  py::array_t<std::uint8_t> out({static_cast<py::ssize_t>(height), static_cast<py::ssize_t>(width), py::ssize_t{3}});
  const std::uint8_t* src = static_cast<const std::uint8_t*>(frame.data());
  std::uint8_t* dst = out.mutable_data();
  const std::ptrdiff_t stride = frame.strides(0);
  {
    py::gil_scoped_release release;
    area_resize(src, static_cast<int>(src_h), static_cast<int>(src_w), stride, dst, static_cast<int>(height),
                static_cast<int>(width));
  }
  return out;
}

}  // namespace

void bind_area_resize(py::module_& m) {
  m.def("area_resize", &area_resize_py, py::arg("frame"), py::arg("width"), py::arg("height"),
        "Area-averaging downscale of a (height, width, 3) uint8 frame (packed pixels, any row\n"
        "stride) to (height, width, 3): bit for bit cv2.resize(frame, (width, height),\n"
        "interpolation=cv2.INTER_AREA) where OpenCV takes its general path (a non-integer factor),\n"
        "with each source row summed once. The GIL is released while it runs.");
}

}  // namespace edgeact
