// Stateful LSTM and GRU steps over weights packed once at construction.
//
// PyTorch's weight_ih / weight_hh / bias_ih / bias_hh load unchanged (gate order i, f, g, o
// and r, z, n). The constructor repacks them per layer into panels of `lanes` hidden units
// (kernels.h): one pass over the panel's weights, covering [x, h], yields every gate of those
// units, whose nonlinearities and state update then run while the sums are still in registers.
// The object holds no recurrent state: h and c are the caller's arrays.
#include "recurrent.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "arrays.h"
#include "errors.h"
#include "isa.h"
#include "thread_pool.h"

namespace py = pybind11;

namespace edgeact {
namespace {

constexpr int kMaxThreads = 256;
constexpr py::ssize_t kMaxSize = 1 << 20;  // input_size, hidden_size

enum class CellKind { kLstm, kGru };

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<void, AlignedFree>;

// 64-byte aligned (a cache line, an AVX-512 register), so a panel never straddles lines.
AlignedBuffer aligned_buffer(std::size_t bytes) {
  const std::size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, rounded == 0 ? 64 : rounded);
  return AlignedBuffer(p);
}

// Round to nearest even; NaN stays NaN (a plain rounding add could carry it into infinity).
std::uint16_t to_bfloat16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

inline void put(float* out, std::size_t at, float v) { out[at] = v; }
inline void put(std::uint16_t* out, std::size_t at, float v) { out[at] = to_bfloat16(v); }
inline void put(std::int8_t* out, std::size_t at, float v) { out[at] = static_cast<std::int8_t>(v); }  // integral

// int8 weights of one matrix w [rows, cols] (a layer's W_ih or W_hh), SmoothQuant-style:
// column k is first divided by mult[k] = sqrt(max_r |w[r][k]| / mean over columns of that
// max), which evens out the columns' ranges (the step multiplies x[k] or h[k] by mult[k]
// instead), then each row gets a symmetric scale, max |row| / 127, and rounds to nearest.
// Returns the rounded weights as floats (integers in [-127, 127]) for pack_weights.
struct Int8Matrix {
  std::vector<float> q, row_scale, mult;
};

Int8Matrix quantize_matrix(const FloatArray& w) {
  const std::size_t rows = static_cast<std::size_t>(w.shape[0]), cols = static_cast<std::size_t>(w.shape[1]);
  Int8Matrix m;
  m.q.assign(rows * cols, 0.0f);
  m.row_scale.assign(rows, 0.0f);
  m.mult.assign(cols, 1.0f);
  std::vector<double> col_max(cols, 0.0);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t k = 0; k < cols; ++k) {
      const float v = w.data[r * cols + k];
      if (!std::isfinite(v)) {
        throw InputError(w.name + " has a non-finite value at row " + std::to_string(r) + ", column " +
                         std::to_string(k) + "; int8 weights need finite ones.");
      }
      col_max[k] = std::max(col_max[k], static_cast<double>(std::fabs(v)));
    }
  }
  double mean = 0.0;
  std::size_t used = 0;
  for (const double v : col_max) {
    if (v > 0.0) mean += v, ++used;
  }
  if (used > 0) mean /= static_cast<double>(used);
  for (std::size_t k = 0; k < cols; ++k) {
    if (col_max[k] > 0.0) m.mult[k] = static_cast<float>(std::sqrt(col_max[k] / mean));
  }
  std::vector<float> row(cols);
  for (std::size_t r = 0; r < rows; ++r) {
    float largest = 0.0f;
    for (std::size_t k = 0; k < cols; ++k) {
      row[k] = w.data[r * cols + k] / m.mult[k];
      largest = std::max(largest, std::fabs(row[k]));
    }
    if (largest == 0.0f) continue;  // a zero row: scale 0, weights 0
    m.row_scale[r] = largest / 127.0f;
    for (std::size_t k = 0; k < cols; ++k) {
      m.q[r * cols + k] = std::min(127.0f, std::max(-127.0f, std::nearbyint(row[k] / m.row_scale[r])));
    }
  }
  return m;
}

// The largest int16 activation: the kernels sum at most kInt8MaxRun products of at most
// 127 * 32767 each in int32 before converting, so the full int16 range is safe.
constexpr int kActivationMax = 32767;
static_assert(static_cast<long long>(kInt8MaxRun) * 127 * kActivationMax < 2147483647LL, "int32 sums overflow");

// WeightFormat's names (weights_dtype) and bytes per packed weight, in its order.
constexpr const char* kWeightDtypes[] = {"float32", "bfloat16", "int8"};
constexpr std::size_t kWeightBytes[] = {sizeof(float), sizeof(std::uint16_t), sizeof(std::int8_t)};

const char* gate_rows(CellKind kind) { return kind == CellKind::kLstm ? "4*hidden_size" : "3*hidden_size"; }

std::string axes(CellKind kind, const char* second) {
  return std::string("(") + gate_rows(kind) + ", " + second + ")";
}

// The arrays of one per-layer list argument (weight_ih, ...), validated as float32 2-D/1-D.
std::vector<FloatArray> array_list(const char* name, const py::handle& obj, std::size_t layers_expected) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj)) {
    throw InputTypeError(std::string(name) + " must be a list or tuple of numpy.ndarray (one per layer), got " +
                         type_name(obj) + ".");
  }
  const py::sequence seq = py::reinterpret_borrow<py::sequence>(obj);
  if (layers_expected == 0 && seq.size() == 0) {
    throw InputError(std::string(name) + " must hold at least one layer, got an empty " + type_name(obj) + ".");
  }
  if (layers_expected != 0 && seq.size() != layers_expected) {
    throw InputError(std::string(name) + " must hold one array per layer, like weight_ih (" +
                     std::to_string(layers_expected) + "), got " + std::to_string(seq.size()) + ".");
  }
  std::vector<FloatArray> arrays;
  for (std::size_t l = 0; l < seq.size(); ++l) {
    arrays.push_back(float_array(std::string(name) + "[" + std::to_string(l) + "]", seq[l], Access::kRead));
  }
  return arrays;
}

}  // namespace

class PackedRecurrent {
 public:
  PackedRecurrent(CellKind kind, const ArrayListArg& weight_ih, const ArrayListArg& weight_hh,
                  const OptionalArrayListArg& bias_ih, const OptionalArrayListArg& bias_hh, const IntArg& threads,
                  const StrArg& weights_dtype, const StrArg& isa)
      : kind_(kind), gates_(kind == CellKind::kLstm ? 4 : 3) {
    const std::vector<FloatArray> w_ih = array_list("weight_ih", weight_ih.obj, 0);
    const std::size_t layers = w_ih.size();
    const std::vector<FloatArray> w_hh = array_list("weight_hh", weight_hh.obj, layers);
    std::vector<FloatArray> b_ih, b_hh;
    if (!bias_ih.is_none()) b_ih = array_list("bias_ih", bias_ih.obj, layers);
    if (!bias_hh.is_none()) b_hh = array_list("bias_hh", bias_hh.obj, layers);

    expect_ndim(w_hh[0], 2, axes(kind, "hidden_size").c_str());
    expect_ndim(w_ih[0], 2, axes(kind, "input_size").c_str());
    // Kernel offsets are int: k * gates * lanes must not overflow.
    for (const FloatArray* w : {&w_hh[0], &w_ih[0]}) {
      if (w->shape[1] > kMaxSize) {
        throw InputError(w->name + " has " + std::to_string(w->shape[1]) + " columns; input_size and hidden_size must be at most " +
                         std::to_string(kMaxSize) + ".");
      }
    }
    hidden_size_ = static_cast<int>(w_hh[0].shape[1]);
    input_size_ = static_cast<int>(w_ih[0].shape[1]);
    const py::ssize_t rows = static_cast<py::ssize_t>(gates_) * hidden_size_;
    for (std::size_t l = 0; l < layers; ++l) {
      const py::ssize_t in = l == 0 ? input_size_ : hidden_size_;
      expect_shape(w_hh[l], {rows, hidden_size_}, axes(kind, "hidden_size").c_str());  // defines hidden_size
      if (l == 0) {
        expect_shape(w_ih[l], {rows, in}, axes(kind, "input_size").c_str());
      } else {
        expect_shape(w_ih[l], {rows, in}, axes(kind, "hidden_size").c_str(),
                     "Layers above the first take the hidden state of the layer below as input.");
      }
      const std::string bias_axes = std::string("(") + gate_rows(kind) + ",)";
      if (!b_ih.empty()) expect_shape(b_ih[l], {rows}, bias_axes.c_str());
      if (!b_hh.empty()) expect_shape(b_hh[l], {rows}, bias_axes.c_str());
    }

    const long long thread_count = as_int("threads", threads.obj);
    if (thread_count < 1 || thread_count > kMaxThreads) {
      throw InputError("threads must be in [1, " + std::to_string(kMaxThreads) + "], got " +
                       std::to_string(thread_count) + ".");
    }
    const std::string dtype = as_str("weights_dtype", weights_dtype.obj);
    const auto named = std::find(std::begin(kWeightDtypes), std::end(kWeightDtypes), dtype);
    if (named == std::end(kWeightDtypes)) {
      throw InputError("weights_dtype must be 'float32', 'bfloat16' or 'int8', got " +
                       std::string(py::repr(weights_dtype.obj)) + ".");
    }
    format_ = static_cast<WeightFormat>(named - std::begin(kWeightDtypes));
    const std::string isa_name = as_str("isa", isa.obj);
    kernels_ = &kernel_table_or_throw(isa_name, std::string(py::repr(isa.obj)));

    for (std::size_t l = 0; l < layers; ++l) {
      layers_.push_back(pack_layer(w_ih[l], w_hh[l], b_ih.empty() ? nullptr : &b_ih[l],
                                   b_hh.empty() ? nullptr : &b_hh[l]));
    }
    threads_ = static_cast<int>(thread_count);
    if (threads_ > 1) pool_ = std::make_unique<ThreadPool>(threads_);
  }

  int input_size() const { return input_size_; }
  int hidden_size() const { return hidden_size_; }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  int threads() const { return threads_; }
  std::string weights_dtype() const { return kWeightDtypes[static_cast<int>(format_)]; }
  std::string isa() const { return kernels_->isa; }
  std::size_t packed_nbytes() const {
    std::size_t total = 0;
    for (const Layer& layer : layers_) total += layer.weight_bytes + layer.bias_bytes + layer.scale_bytes;
    return total;
  }

  std::string repr(const char* cls) const {
    return std::string(cls) + "(input_size=" + std::to_string(input_size_) + ", hidden_size=" +
           std::to_string(hidden_size_) + ", num_layers=" + std::to_string(num_layers()) +
           ", threads=" + std::to_string(threads_) + ", weights_dtype='" + weights_dtype() + "', isa='" + isa() + "')";
  }

  // Validates a step's arrays; throws before anything is written. c/c_out are absent for a GRU.
  struct StepArrays {
    FloatArray x, h, c, h_out, c_out;
    bool in_place = true;
    int batch = 0;
  };

  StepArrays check_step(const ArrayArg& x, const ArrayArg& h, const ArrayArg* c, const OptionalArrayArg& h_out,
                        const OptionalArrayArg* c_out) const {
    StepArrays s;
    s.in_place = h_out.is_none();
    if (c_out != nullptr && h_out.is_none() != c_out->is_none()) {
      throw InputError("h_out and c_out must be given together, or neither to update h and c in place.");
    }
    const Access state_access = s.in_place ? Access::kWrite : Access::kRead;
    s.x = float_array("x", x.obj, Access::kRead);
    expect_ndim(s.x, 2, "(batch, input_size)");
    const py::ssize_t batch = s.x.shape[0];
    expect_shape(s.x, {batch, input_size_}, "(batch, input_size)");
    const std::vector<py::ssize_t> state_shape = {num_layers(), batch, hidden_size_};
    const char* state_axes = "(num_layers, batch, hidden_size)";
    s.h = float_array("h", h.obj, state_access);
    expect_shape(s.h, state_shape, state_axes);
    if (c != nullptr) {
      s.c = float_array("c", c->obj, state_access);
      expect_shape(s.c, state_shape, state_axes);
    }
    // In place, layer l overwrites c[l] (and finally h) while other panels still read x and h.
    if (s.in_place) {
      expect_disjoint(s.x, s.h);
      if (c != nullptr) {
        expect_disjoint(s.x, s.c);
        expect_disjoint(s.h, s.c);
      }
    } else {
      s.h_out = float_array("h_out", h_out.obj, Access::kWrite);
      expect_shape(s.h_out, state_shape, state_axes);
      expect_disjoint(s.h_out, s.x);
      expect_disjoint(s.h_out, s.h);
      if (c != nullptr) {
        expect_disjoint(s.h_out, s.c);
        s.c_out = float_array("c_out", c_out->obj, Access::kWrite);
        expect_shape(s.c_out, state_shape, state_axes);
        expect_disjoint(s.c_out, s.x);
        expect_disjoint(s.c_out, s.h);
        expect_disjoint(s.c_out, s.c);
        expect_disjoint(s.c_out, s.h_out);
      }
    }
    s.batch = static_cast<int>(batch);
    return s;
  }

  // Runs every layer; call with the GIL released.
  void run(const StepArrays& s) {
    std::lock_guard<std::mutex> lock(mutex_);  // scratch_ and the pool serve one step at a time
    const std::size_t state = static_cast<std::size_t>(s.batch) * hidden_size_;
    if (s.in_place && scratch_.size() < state * layers_.size()) scratch_.resize(state * layers_.size());
    const bool lstm = kind_ == CellKind::kLstm;
    const float* input = s.x.data;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      RecurrentLayerArgs args = layer_args(l, s.batch, input);
      args.h = s.h.data + l * state;
      args.c = lstm ? s.c.data + l * state : nullptr;
      // In place, new h goes to scratch (all of old h[l] is read by every panel) and is copied
      // back at the end; new c may overwrite old c, since unit j's c is read only by its panel.
      args.h_out = (s.in_place ? scratch_.data() : s.h_out.data) + l * state;
      args.c_out = lstm ? (s.in_place ? s.c.data : s.c_out.data) + l * state : nullptr;
      quantize_inputs(l, args);
      run_layer(args);
      input = args.h_out;
    }
    if (s.in_place) std::memcpy(s.h.data, scratch_.data(), state * layers_.size() * sizeof(float));
    // Weights a little larger than a core's L2 would miss on every line if streamed in the
    // same order each step (the oldest line is always evicted just before its reuse). Walking
    // the panels back and forth starts each step on the lines the last one read most recently.
    // Panels are independent, so the order does not change the result.
    descending_ = !descending_;
  }

  // RecurrentView::step: every layer from raw rows, outputs never aliasing inputs.
  void run_raw(int batch, const float* x, const float* const* h, const float* const* c, float* const* h_out,
               float* const* c_out) {
    std::lock_guard<std::mutex> lock(mutex_);
    const bool lstm = kind_ == CellKind::kLstm;
    const float* input = x;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      RecurrentLayerArgs args = layer_args(l, batch, input);
      args.h = h[l];
      args.c = lstm ? c[l] : nullptr;
      args.h_out = h_out[l];
      args.c_out = lstm ? c_out[l] : nullptr;
      quantize_inputs(l, args);
      run_layer(args);
      input = h_out[l];
    }
    descending_ = !descending_;
  }

 private:
  struct Layer {
    int input_size = 0;
    AlignedBuffer weights, bias;
    std::size_t weight_bytes = 0, bias_bytes = 0;
    // int8 only: row scales [panel][x, h][4][lanes] and the column multipliers of x then h
    AlignedBuffer scales;
    std::size_t scale_bytes = 0;
    std::vector<float> mult;
  };

  // int8: rounds this layer's x and h rows to int16 (kernels.h, QuantizeFn) into quantized_ and
  // points args at them; nothing to do for float weights. Runs under mutex_, on the caller's
  // thread, before the panels (which all read every row) are shared out.
  void quantize_inputs(std::size_t l, RecurrentLayerArgs& args) {
    if (format_ != WeightFormat::kInt8) return;
    const Layer& layer = layers_[l];
    const int in_packed = (layer.input_size + 1) / 2 * 2, hid_packed = (hidden_size_ + 1) / 2 * 2;
    const std::size_t batch = static_cast<std::size_t>(args.batch);
    quantized_.resize(batch * (in_packed + hid_packed));
    activation_scales_.resize(batch * 2);
    std::int16_t* qx = quantized_.data();
    std::int16_t* qh = qx + batch * in_packed;
    const float* mult_h = layer.mult.data() + layer.input_size;
    for (std::size_t b = 0; b < batch; ++b) {
      activation_scales_[b * 2] =
          kernels_->quantize(args.x + b * layer.input_size, layer.mult.data(), layer.input_size, in_packed,
                             kActivationMax, qx + b * in_packed);
      activation_scales_[b * 2 + 1] = kernels_->quantize(args.h + b * hidden_size_, mult_h, hidden_size_, hid_packed,
                                                         kActivationMax, qh + b * hid_packed);
    }
    args.qx = qx;
    args.qh = qh;
    args.act_scales = activation_scales_.data();
  }

  // Layer l's weights and shape for one step of `batch` rows reading `x`; the caller adds the
  // state pointers.
  RecurrentLayerArgs layer_args(std::size_t l, int batch, const float* x) const {
    RecurrentLayerArgs args;
    args.weights = layers_[l].weights.get();
    args.bias = static_cast<const float*>(layers_[l].bias.get());
    args.scales = static_cast<const float*>(layers_[l].scales.get());
    args.qx = args.qh = nullptr;
    args.act_scales = nullptr;
    args.format = format_;
    args.input_size = layers_[l].input_size;
    args.hidden_size = hidden_size_;
    args.batch = batch;
    args.descending = descending_;
    args.x = x;
    return args;
  }

  int panels() const { return (hidden_size_ + kernels_->lanes - 1) / kernels_->lanes; }

  Layer pack_layer(const FloatArray& w_ih, const FloatArray& w_hh, const FloatArray* b_ih, const FloatArray* b_hh) const {
    Layer layer;
    layer.input_size = static_cast<int>(w_ih.shape[1]);
    const std::size_t lanes = static_cast<std::size_t>(kernels_->lanes);
    const std::size_t slots = static_cast<std::size_t>(gates_);
    const std::size_t in = static_cast<std::size_t>(layer.input_size), hid = static_cast<std::size_t>(hidden_size_);
    const std::size_t pairs = format_ == WeightFormat::kFloat32 ? 1 : 2;  // bf16, int8 pad ranges to even length
    const std::size_t count =
        static_cast<std::size_t>(panels()) * ((in + pairs - 1) / pairs + (hid + pairs - 1) / pairs) * pairs * slots * lanes;
    layer.weight_bytes = count * kWeightBytes[static_cast<int>(format_)];
    layer.weights = aligned_buffer(layer.weight_bytes);  // zeroed: padding units beyond H stay 0
    if (format_ == WeightFormat::kFloat32) {
      pack_weights(static_cast<float*>(layer.weights.get()), w_ih.data, w_hh.data, in, hid, slots, lanes);
    } else if (format_ == WeightFormat::kBFloat16) {
      pack_weights(static_cast<std::uint16_t*>(layer.weights.get()), w_ih.data, w_hh.data, in, hid, slots, lanes);
    } else {
      const Int8Matrix x_part = quantize_matrix(w_ih), h_part = quantize_matrix(w_hh);
      pack_weights(static_cast<std::int8_t*>(layer.weights.get()), x_part.q.data(), h_part.q.data(), in, hid, slots,
                   lanes);
      layer.mult = x_part.mult;
      layer.mult.insert(layer.mult.end(), h_part.mult.begin(), h_part.mult.end());
      // [panel][x, h][4][lanes] in the bias's slot order (GRU n_h is slot 3 of the h range).
      layer.scale_bytes = static_cast<std::size_t>(panels()) * 2 * 4 * lanes * sizeof(float);
      layer.scales = aligned_buffer(layer.scale_bytes);
      float* scales = static_cast<float*>(layer.scales.get());
      for (std::size_t unit = 0; unit < hid; ++unit) {
        const std::size_t at = unit / lanes * 2 * 4 * lanes + unit % lanes;
        for (std::size_t s = 0; s < slots; ++s) {
          const std::size_t h_slot = kind_ == CellKind::kGru && s == 2 ? 3 : s;
          scales[at + s * lanes] = x_part.row_scale[s * hid + unit];
          scales[at + (4 + h_slot) * lanes] = h_part.row_scale[s * hid + unit];
        }
      }
    }

    layer.bias_bytes = static_cast<std::size_t>(panels()) * 4 * lanes * sizeof(float);
    layer.bias = aligned_buffer(layer.bias_bytes);
    float* bias = static_cast<float*>(layer.bias.get());
    const float* bi = b_ih ? b_ih->data : nullptr;
    const float* bh = b_hh ? b_hh->data : nullptr;
    for (std::size_t unit = 0; unit < hid; ++unit) {
      const std::size_t at = unit / lanes * 4 * lanes + unit % lanes;
      for (std::size_t s = 0; s < slots; ++s) {
        const float from_x = bi ? bi[s * hid + unit] : 0.0f;
        const float from_h = bh ? bh[s * hid + unit] : 0.0f;
        if (kind_ == CellKind::kGru && s == 2) {  // n: b_in outside r*(...), b_hn inside
          bias[at + 2 * lanes] = from_x;
          bias[at + 3 * lanes] = from_h;
        } else {
          bias[at + s * lanes] = from_x + from_h;
        }
      }
    }
    return layer;
  }

  // Panel p, input range [x | h], k, slot s, lane j  <-  row s*H + p*lanes + j, column k.
  // bfloat16 and int8 (kPairs = 2) interleave k and k+1 per lane and pad each range to even length.
  template <typename W>
  static void pack_weights(W* out, const float* w_ih, const float* w_hh, std::size_t in, std::size_t hid,
                           std::size_t slots, std::size_t lanes) {
    constexpr std::size_t kPairs = sizeof(W) == sizeof(float) ? 1 : 2;
    std::size_t range_start = 0;
    for (std::size_t unit0 = 0; unit0 < hid; unit0 += lanes) {
      for (const auto& [w, cols] : {std::make_pair(w_ih, in), std::make_pair(w_hh, hid)}) {
        for (std::size_t k = 0; k < cols; ++k) {
          for (std::size_t s = 0; s < slots; ++s) {
            for (std::size_t j = 0; j < lanes && unit0 + j < hid; ++j) {
              const std::size_t at = range_start + ((k / kPairs * slots + s) * lanes + j) * kPairs + k % kPairs;
              put(out, at, w[(s * hid + unit0 + j) * cols + k]);
            }
          }
        }
        range_start += (cols + kPairs - 1) / kPairs * kPairs * slots * lanes;
      }
    }
  }

  void run_layer(const RecurrentLayerArgs& args) {
    auto kernel = kind_ == CellKind::kLstm ? kernels_->lstm_panels : kernels_->gru_panels;
    const int count = panels();
    if (!pool_ || count < 2) {
      kernel(args, 0, count);
      return;
    }
    // Contiguous panel ranges: each part computes whole panels, so the result does not depend
    // on the thread count.
    pool_->run([&](int part) {
      const int first = static_cast<int>(static_cast<long long>(count) * part / threads_);
      const int end = static_cast<int>(static_cast<long long>(count) * (part + 1) / threads_);
      if (first < end) kernel(args, first, end);
    });
  }

  const CellKind kind_;
  const int gates_;
  int input_size_ = 0;
  int hidden_size_ = 0;
  int threads_ = 1;
  WeightFormat format_ = WeightFormat::kFloat32;
  const KernelTable* kernels_ = nullptr;
  std::vector<Layer> layers_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<float> scratch_;  // new h of every layer during an in-place step
  std::vector<std::int16_t> quantized_;   // int8 weights: one layer's rounded x rows, then h rows
  std::vector<float> activation_scales_;  // int8 weights: [batch][x, h]
  bool descending_ = false;     // panel order of the next step
  std::mutex mutex_;
};

namespace {

class Lstm {
 public:
  Lstm(const ArrayListArg& weight_ih, const ArrayListArg& weight_hh, const OptionalArrayListArg& bias_ih,
       const OptionalArrayListArg& bias_hh, const IntArg& threads, const StrArg& weights_dtype, const StrArg& isa)
      : core(CellKind::kLstm, weight_ih, weight_hh, bias_ih, bias_hh, threads, weights_dtype, isa) {}

  void step(const ArrayArg& x, const ArrayArg& h, const ArrayArg& c, const OptionalArrayArg& h_out,
            const OptionalArrayArg& c_out) {
    const PackedRecurrent::StepArrays arrays = core.check_step(x, h, &c, h_out, &c_out);
    py::gil_scoped_release release;
    core.run(arrays);
  }

  PackedRecurrent core;
};

class Gru {
 public:
  Gru(const ArrayListArg& weight_ih, const ArrayListArg& weight_hh, const OptionalArrayListArg& bias_ih,
      const OptionalArrayListArg& bias_hh, const IntArg& threads, const StrArg& weights_dtype, const StrArg& isa)
      : core(CellKind::kGru, weight_ih, weight_hh, bias_ih, bias_hh, threads, weights_dtype, isa) {}

  void step(const ArrayArg& x, const ArrayArg& h, const OptionalArrayArg& h_out) {
    const PackedRecurrent::StepArrays arrays = core.check_step(x, h, nullptr, h_out, nullptr);
    py::gil_scoped_release release;
    core.run(arrays);
  }

  PackedRecurrent core;
};

template <typename Cell>
void bind_properties(py::class_<Cell>& cls, const char* name) {
  cls.def_property_readonly("input_size", [](const Cell& self) { return self.core.input_size(); },
                            "Features per row of x (layer 0's input).")
      .def_property_readonly("hidden_size", [](const Cell& self) { return self.core.hidden_size(); })
      .def_property_readonly("num_layers", [](const Cell& self) { return self.core.num_layers(); })
      .def_property_readonly("threads", [](const Cell& self) { return self.core.threads(); },
                             "Threads one step is split across (fixed at construction).")
      .def_property_readonly("weights_dtype", [](const Cell& self) { return self.core.weights_dtype(); },
                             "'float32', 'bfloat16' or 'int8': how the packed weights are stored.")
      .def_property_readonly("isa", [](const Cell& self) { return self.core.isa(); },
                             "Instruction set of the kernels this object runs.")
      .def_property_readonly("packed_nbytes", [](const Cell& self) { return self.core.packed_nbytes(); },
                             "Bytes of packed weights and biases (what one step streams).")
      .def("__repr__", [name](const Cell& self) { return self.core.repr(name); });
}

}  // namespace

void RecurrentView::step(int batch, const float* x, const float* const* h, const float* const* c,
                         float* const* h_out, float* const* c_out) const {
  core->run_raw(batch, x, h, c, h_out, c_out);
}

RecurrentView recurrent_view(const char* name, const py::handle& cell) {
  RecurrentView view;
  view.owner = py::reinterpret_borrow<py::object>(cell);
  if (py::isinstance<Lstm>(cell)) {
    view.core = &cell.cast<Lstm&>().core;
    view.lstm = true;
  } else if (py::isinstance<Gru>(cell)) {
    view.core = &cell.cast<Gru&>().core;
  } else {
    throw InputTypeError(std::string(name) + " must be an edgeact._C.LSTM or edgeact._C.GRU, got " + type_name(cell) +
                         ".");
  }
  view.input_size = view.core->input_size();
  view.hidden_size = view.core->hidden_size();
  view.num_layers = view.core->num_layers();
  return view;
}

void bind_recurrent(py::module_& m) {
  py::class_<Lstm> lstm(m, "LSTM",
                        "Stacked LSTM step over weights packed once (PyTorch gate order i, f, g, o).\n\n"
                        "weight_ih, weight_hh, bias_ih, bias_hh: one array per layer, as nn.LSTM's\n"
                        "weight_ih_l<k> (or nn.LSTMCell's weight_ih): float32, C-contiguous. Biases may be None.\n"
                        "threads: threads one step is split across (1 to 256).\n"
                        "weights_dtype: 'float32', 'bfloat16' (half the bytes per step; arithmetic stays float32)\n"
                        "or 'int8' (a quarter: per-row scales, x and h rounded to int16 each step, exact int32 sums).\n"
                        "isa: 'auto' or one of build_info()['kernel_isas'].");
  lstm.def(py::init<const ArrayListArg&, const ArrayListArg&, const OptionalArrayListArg&, const OptionalArrayListArg&,
                    const IntArg&, const StrArg&, const StrArg&>(),
           py::arg("weight_ih"), py::arg("weight_hh"), py::arg("bias_ih") = py::none(), py::arg("bias_hh") = py::none(),
           py::kw_only(), py::arg("threads") = 1, py::arg("weights_dtype") = "float32", py::arg("isa") = "auto")
      .def("step", &Lstm::step, py::arg("x"), py::arg("h"), py::arg("c"), py::arg("h_out") = py::none(),
           py::arg("c_out") = py::none(),
           "One time step of every layer.\n\n"
           "x: float32 (batch, input_size). h, c: float32 (num_layers, batch, hidden_size), as nn.LSTM's.\n"
           "Without h_out/c_out, h and c are updated in place; with them, the new state is written\n"
           "there and h, c are left unchanged. The top layer's output is h[-1] (or h_out[-1]).\n"
           "Arrays must be C-contiguous and must not overlap. The GIL is released while it runs.");
  bind_properties(lstm, "LSTM");

  py::class_<Gru> gru(m, "GRU",
                      "Stacked GRU step over weights packed once (PyTorch gate order r, z, n).\n\n"
                      "weight_ih, weight_hh, bias_ih, bias_hh: one array per layer, as nn.GRU's\n"
                      "weight_ih_l<k> (or nn.GRUCell's weight_ih): float32, C-contiguous. Biases may be None.\n"
                      "threads: threads one step is split across (1 to 256).\n"
                      "weights_dtype: 'float32', 'bfloat16' (half the bytes per step; arithmetic stays float32)\n"
                      "or 'int8' (a quarter: per-row scales, x and h rounded to int16 each step, exact int32 sums).\n"
                      "isa: 'auto' or one of build_info()['kernel_isas'].");
  gru.def(py::init<const ArrayListArg&, const ArrayListArg&, const OptionalArrayListArg&, const OptionalArrayListArg&,
                   const IntArg&, const StrArg&, const StrArg&>(),
          py::arg("weight_ih"), py::arg("weight_hh"), py::arg("bias_ih") = py::none(), py::arg("bias_hh") = py::none(),
          py::kw_only(), py::arg("threads") = 1, py::arg("weights_dtype") = "float32", py::arg("isa") = "auto")
      .def("step", &Gru::step, py::arg("x"), py::arg("h"), py::arg("h_out") = py::none(),
           "One time step of every layer.\n\n"
           "x: float32 (batch, input_size). h: float32 (num_layers, batch, hidden_size), as nn.GRU's.\n"
           "Without h_out, h is updated in place; with it, the new state is written there and h is\n"
           "left unchanged. The top layer's output is h[-1] (or h_out[-1]).\n"
           "Arrays must be C-contiguous and must not overlap. The GIL is released while it runs.");
  bind_properties(gru, "GRU");
}

}  // namespace edgeact
