// The whole streaming step of a pose-only model in one call: keypoints -> pose encoder
// (edgeact/models/pose.py: normalisation, per-joint features, joint and joint-relation
// convolutions, projection, left-to-right order of people) -> stacked LSTM/GRU -> classifier.
//
// A step through Python and ONNX Runtime costs tens of small calls for a few hundred thousand
// multiply-adds; here it is one validated call with the GIL released. The dense parts run on the
// ISA-dispatched `dense` kernel (kernels.h): 1x1 convolutions as dense layers over the joints,
// each tap of the relation convolutions as a dense layer over the positions it reaches (the
// taps summed in place), then the projection and the classifier. The recurrent stack is a _C.LSTM/_C.GRU object driven through
// RecurrentView. Everything but the recurrent kernel runs on the calling thread, in a fixed
// order, so the result does not depend on the thread count.
#include "pose_step.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include <pybind11/numpy.h>

#include "arrays.h"
#include "errors.h"
#include "isa.h"
#include "recurrent.h"

namespace py = pybind11;

namespace edgeact {
namespace {

constexpr float kEps = 1e-12f;       // pose.py's _EPS: the floor of a squared scale
constexpr float kScaleFloor = 1e-6f;  // sqrt(_EPS): the floor of the group's mean scale
constexpr int kMaxSize = 1 << 16;     // joints, channels, widths: far above any pose model

struct FloatTag { static constexpr char name[] = "float"; };
struct IntListTag { static constexpr char name[] = "collections.abc.Sequence[int]"; };
struct StrListTag { static constexpr char name[] = "collections.abc.Sequence[str]"; };
struct CellTag { static constexpr char name[] = "LSTM | GRU"; };
using FloatArg = Arg<FloatTag>;
using IntListArg = Arg<IntListTag>;
using StrListArg = Arg<StrListTag>;
using CellArg = Arg<CellTag>;

enum class Feature { kPosition, kBone, kVelocity, kGroup };

py::sequence sequence(const char* name, const py::handle& obj, const char* of) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj)) {
    throw InputTypeError(std::string(name) + " must be a list or tuple of " + of + ", got " + type_name(obj) + ".");
  }
  return py::reinterpret_borrow<py::sequence>(obj);
}

std::vector<int> int_list(const char* name, const py::handle& obj, int lo, int hi) {
  std::vector<int> out;
  for (const py::handle item : sequence(name, obj, "int")) {
    const long long v = as_int(name, item);
    if (v < lo || v > hi) {
      throw InputError(std::string(name) + " entries must be in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                       "], got " + std::to_string(v) + ".");
    }
    out.push_back(static_cast<int>(v));
  }
  return out;
}

int int_in(const char* name, const py::handle& obj, int lo, int hi) {
  const long long v = as_int(name, obj);
  if (v < lo || v > hi) {
    throw InputError(std::string(name) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                     std::to_string(v) + ".");
  }
  return static_cast<int>(v);
}

std::vector<FloatArray> arrays(const char* name, const py::handle& obj) {
  std::vector<FloatArray> out;
  const py::sequence seq = sequence(name, obj, "numpy.ndarray");
  for (std::size_t i = 0; i < seq.size(); ++i) {
    out.push_back(float_array(std::string(name) + "[" + std::to_string(i) + "]", seq[i], Access::kRead));
  }
  return out;
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};

// A dense layer packed for the `dense` kernel: per tap w [k][n_padded], bias [n_padded],
// zero-padded. k is the input channels; a convolution has `taps` such matrices.
struct Dense {
  int k = 0, n = 0, n_padded = 0, taps = 1;
  std::vector<float> w, bias;
  const float* tap(int t) const { return w.data() + static_cast<std::size_t>(t) * k * n_padded; }
};

int padded(int n, int lanes) { return (n + lanes - 1) / lanes * lanes; }

// weight [n][k][taps] (taps = 1: a 1x1 convolution or a linear layer).
Dense pack_dense(const FloatArray& weight, const FloatArray& bias, int taps, int lanes) {
  Dense d;
  d.n = static_cast<int>(weight.shape[0]);
  d.k = static_cast<int>(weight.shape[1]);
  d.taps = taps;
  d.n_padded = padded(d.n, lanes);
  d.w.assign(static_cast<std::size_t>(taps) * d.k * d.n_padded, 0.0f);
  d.bias.assign(static_cast<std::size_t>(d.n_padded), 0.0f);
  for (int o = 0; o < d.n; ++o) {
    for (int k = 0; k < d.k; ++k) {
      for (int t = 0; t < taps; ++t) {
        d.w[(static_cast<std::size_t>(t) * d.k + k) * d.n_padded + o] = weight.data[(o * d.k + k) * taps + t];
      }
    }
    d.bias[o] = bias.data[o];
  }
  return d;
}

class PoseStep {
 public:
  PoseStep(const ArrayListArg& joint_weight, const ArrayListArg& joint_bias, const ArrayListArg& relation_weight,
           const ArrayListArg& relation_bias, const ArrayArg& project_weight, const ArrayArg& project_bias,
           const CellArg& head, const ArrayArg& classifier_weight, const ArrayArg& classifier_bias,
           const IntArg& joints, const IntArg& coords, const IntArg& people, const IntListArg& center_joints,
           const FloatArg& min_confidence, const StrListArg& features, const IntListArg& parents,
           const IntListArg& align, const IntArg& vertical_axis, const StrArg& isa) {
    joints_ = int_in("joints", joints.obj, 1, kMaxSize);
    coords_ = int_in("coords", coords.obj, 2, 3);
    people_ = int_in("people", people.obj, 1, kMaxSize);
    center_ = int_list("center_joints", center_joints.obj, 0, joints_ - 1);
    parents_ = int_list("parents", parents.obj, 0, joints_ - 1);
    align_ = int_list("align", align.obj, 0, joints_ - 1);
    vertical_ = int_in("vertical_axis", vertical_axis.obj, 0, 2);
    if (!py::isinstance<py::float_>(min_confidence.obj) && !py::isinstance<py::int_>(min_confidence.obj)) {
      throw InputTypeError("min_confidence must be a float, got " + type_name(min_confidence.obj) + ".");
    }
    min_confidence_ = min_confidence.obj.cast<float>();
    for (const py::handle item : sequence("features", features.obj, "str")) {
      const std::string name = as_str("features", item);
      const Feature f = name == "position" ? Feature::kPosition
                        : name == "bone"   ? Feature::kBone
                        : name == "velocity" ? Feature::kVelocity
                        : name == "group"  ? Feature::kGroup
                                           : throw InputError("features entries must be 'position', 'bone', "
                                                              "'velocity' or 'group', got " +
                                                              std::string(py::repr(item)) + ".");
      for (Feature seen : features_) {
        if (seen == f) throw InputError("features lists " + std::string(py::repr(item)) + " twice.");
      }
      features_.push_back(f);
    }
    if (features_.empty()) throw InputError("features must list at least one feature.");
    velocity_ = has(Feature::kVelocity);
    if (has(Feature::kBone) && static_cast<int>(parents_.size()) != joints_) {
      throw InputError("parents must give one parent per joint (" + std::to_string(joints_) + ") for 'bone', got " +
                       std::to_string(parents_.size()) + ".");
    }
    if (has(Feature::kGroup) && (people_ < 2 || !align_.empty())) {
      throw InputError("'group' needs people >= 2 and no align.");
    }
    if (!align_.empty() && (align_.size() != 2 || coords_ != 3)) {
      throw InputError("align takes two joints (left, right) of 3D keypoints (coords 3), got " +
                       std::to_string(align_.size()) + " joints with coords " + std::to_string(coords_) + ".");
    }
    const std::string isa_name = as_str("isa", isa.obj);
    kernels_ = &kernel_table_or_throw(isa_name, std::string(py::repr(isa.obj)));
    const int lanes = kernels_->lanes;

    // Joint convolutions (1x1): [out, in], layer 0 reads coords per feature + visibility.
    int width = coords_ * static_cast<int>(features_.size()) + 1;
    const std::vector<FloatArray> jw = arrays("joint_weight", joint_weight.obj);
    const std::vector<FloatArray> jb = arrays("joint_bias", joint_bias.obj);
    if (jw.empty() || jb.size() != jw.size()) {
      throw InputError("joint_weight and joint_bias must hold one array per joint convolution (at least one), got " +
                       std::to_string(jw.size()) + " and " + std::to_string(jb.size()) + ".");
    }
    for (std::size_t l = 0; l < jw.size(); ++l) {
      expect_ndim(jw[l], 2, "(out_channels, in_channels)");
      expect_shape(jw[l], {jw[l].shape[0], width}, "(out_channels, in_channels)",
                   l == 0 ? "The first layer reads coords per feature plus visibility." : "");
      expect_shape(jb[l], {jw[l].shape[0]}, "(out_channels,)");
      joint_layers_.push_back(pack_dense(jw[l], jb[l], 1, lanes));
      width = static_cast<int>(jw[l].shape[0]);
    }
    length_ = width;  // the relation convolutions' sequence axis: joint channels
    // Relation convolutions: [out, in, taps], joints are the channels of the first.
    const std::vector<FloatArray> rw = arrays("relation_weight", relation_weight.obj);
    const std::vector<FloatArray> rb = arrays("relation_bias", relation_bias.obj);
    if (rw.empty() || rb.size() != rw.size()) {
      throw InputError("relation_weight and relation_bias must hold one array per relation convolution (at least "
                       "one), got " + std::to_string(rw.size()) + " and " + std::to_string(rb.size()) + ".");
    }
    width = joints_;
    for (std::size_t l = 0; l < rw.size(); ++l) {
      expect_ndim(rw[l], 3, "(out_channels, in_channels, taps)");
      const py::ssize_t taps = rw[l].shape[2];
      if (taps % 2 == 0) {
        throw InputError(rw[l].name + " must have an odd number of taps (padding taps // 2 keeps the length), got " +
                         std::to_string(taps) + ".");
      }
      expect_shape(rw[l], {rw[l].shape[0], width, taps}, "(out_channels, in_channels, taps)",
                   l == 0 ? "The first layer's channels are the joints." : "");
      expect_shape(rb[l], {rw[l].shape[0]}, "(out_channels,)");
      relation_layers_.push_back(pack_dense(rw[l], rb[l], static_cast<int>(taps), lanes));
      width = static_cast<int>(rw[l].shape[0]);
    }
    relation_channels_ = width;
    extra_ = (people_ > 1 ? coords_ : 0) + (velocity_ ? coords_ : 0);
    const FloatArray pw = float_array("project_weight", project_weight.obj, Access::kRead);
    const FloatArray pb = float_array("project_bias", project_bias.obj, Access::kRead);
    expect_ndim(pw, 2, "(dim, in_features)");
    const py::ssize_t project_in = static_cast<py::ssize_t>(relation_channels_) * length_ + extra_;
    expect_shape(pw, {pw.shape[0], project_in}, "(dim, in_features)",
                 "in_features = relation channels x joint channels + placement and motion coords.");
    expect_shape(pb, {pw.shape[0]}, "(dim,)");
    project_ = pack_dense(pw, pb, 1, lanes);
    dim_ = project_.n;

    head_ = recurrent_view("head", head.obj);
    if (head_.input_size != people_ * dim_) {
      throw InputError("head must take people x dim = " + std::to_string(people_ * dim_) +
                       " features per step, got input_size " + std::to_string(head_.input_size) + ".");
    }
    const FloatArray cw = float_array("classifier_weight", classifier_weight.obj, Access::kRead);
    const FloatArray cb = float_array("classifier_bias", classifier_bias.obj, Access::kRead);
    expect_ndim(cw, 2, "(classes, hidden_size)");
    expect_shape(cw, {cw.shape[0], head_.hidden_size}, "(classes, hidden_size)");
    expect_shape(cb, {cw.shape[0]}, "(classes,)");
    classifier_ = pack_dense(cw, cb, 1, lanes);

    const int c1 = coords_ + 1;
    if (velocity_) {
      state_names_ = {"prev", "prev_centre", "seen"};
      state_shapes_ = {{people_, joints_, c1}, {people_, coords_}, {1, 1}};
    }
    for (int l = 0; l < head_.num_layers; ++l) {
      state_names_.push_back("h" + std::to_string(l));
      state_shapes_.push_back({head_.hidden_size});
      if (head_.lstm) {
        state_names_.push_back("c" + std::to_string(l));
        state_shapes_.push_back({head_.hidden_size});
      }
    }
  }

  py::list state_names() const {
    py::list out;
    for (const std::string& name : state_names_) out.append(name);
    return out;
  }
  py::list state_shapes() const {
    py::list out;
    for (const auto& shape : state_shapes_) {
      py::tuple dims(shape.size());
      for (std::size_t i = 0; i < shape.size(); ++i) dims[i] = shape[i];
      out.append(dims);
    }
    return out;
  }
  int classes() const { return classifier_.n; }
  int feature_size() const { return people_ * dim_; }
  std::string isa() const { return kernels_->isa; }

  py::array_t<float> step(const ArrayArg& keypoints, const ArrayListArg& state_in, const ArrayListArg& state_out) {
    const FloatArray kp = float_array("keypoints", keypoints.obj, Access::kRead);
    expect_ndim(kp, 4, "(batch, people, joints, coords + 1)");
    const py::ssize_t batch = kp.shape[0];
    expect_shape(kp, {batch, people_, joints_, coords_ + 1}, "(batch, people, joints, coords + 1)");
    const std::vector<FloatArray> in = state_list("state_in", state_in.obj, batch, Access::kRead);
    const std::vector<FloatArray> out = state_list("state_out", state_out.obj, batch, Access::kWrite);
    for (std::size_t i = 0; i < out.size(); ++i) {
      expect_disjoint(out[i], kp);
      for (const FloatArray& a : in) expect_disjoint(out[i], a);
      for (std::size_t j = 0; j < i; ++j) expect_disjoint(out[i], out[j]);
    }
    py::array_t<float> logits({batch, static_cast<py::ssize_t>(classifier_.n)});
    float* logits_data = logits.mutable_data();
    {
      py::gil_scoped_release release;
      run(static_cast<int>(batch), kp.data, in, out, logits_data);
    }
    return logits;
  }

  std::string repr() const {
    return "PoseStep(joints=" + std::to_string(joints_) + ", coords=" + std::to_string(coords_) + ", people=" +
           std::to_string(people_) + ", dim=" + std::to_string(dim_) + ", hidden_size=" +
           std::to_string(head_.hidden_size) + ", num_layers=" + std::to_string(head_.num_layers) + ", cell='" +
           (head_.lstm ? "lstm" : "gru") + "', classes=" + std::to_string(classifier_.n) + ", isa='" + isa() + "')";
  }

 private:
  bool has(Feature f) const {
    for (Feature g : features_) {
      if (g == f) return true;
    }
    return false;
  }

  std::vector<FloatArray> state_list(const char* name, const py::handle& obj, py::ssize_t batch, Access access) const {
    const py::sequence seq = sequence(name, obj, "numpy.ndarray");
    if (seq.size() != state_shapes_.size()) {
      std::string names;
      for (const std::string& n : state_names_) names += (names.empty() ? "" : ", ") + n;
      throw InputError(std::string(name) + " must hold " + std::to_string(state_shapes_.size()) + " arrays (" + names +
                       "), got " + std::to_string(seq.size()) + ".");
    }
    std::vector<FloatArray> out;
    for (std::size_t i = 0; i < seq.size(); ++i) {
      out.push_back(float_array(std::string(name) + "[" + std::to_string(i) + "] (" + state_names_[i] + ")", seq[i],
                                access));
      std::vector<py::ssize_t> shape = {batch};
      for (int d : state_shapes_[i]) shape.push_back(d);
      expect_shape(out.back(), shape, "(batch, *state_shapes[i])");
    }
    return out;
  }

  // Scratch for one step; sized on first use for the widest layer.
  struct Scratch {
    std::vector<float> joints, centre, scale, count, cosine, sine, placement, x, a, b, positions, project_in, project_out,
        features, logits;
  };

  void run(int batch, const float* kp, const std::vector<FloatArray>& in, const std::vector<FloatArray>& out,
           float* logits) {
    std::lock_guard<std::mutex> lock(mutex_);  // scratch_ serves one step at a time
    const int P = people_, J = joints_, C = coords_, C1 = C + 1, L = length_;
    Scratch& s = scratch_;
    s.joints.resize(static_cast<std::size_t>(P) * J * C1);
    s.centre.resize(static_cast<std::size_t>(P) * C);
    s.scale.resize(P);
    s.count.resize(P);
    s.cosine.resize(P);
    s.sine.resize(P);
    s.placement.resize(static_cast<std::size_t>(P) * C);
    int widest = 0;
    for (const Dense& d : joint_layers_) widest = std::max(widest, d.n_padded);
    for (const Dense& d : relation_layers_) widest = std::max(widest, d.n_padded);
    const int rows = std::max(J, L);
    const int F = C * static_cast<int>(features_.size()) + 1;
    s.x.resize(static_cast<std::size_t>(J) * F);
    s.a.resize(static_cast<std::size_t>(rows) * widest);
    s.b.resize(static_cast<std::size_t>(rows) * widest);
    s.positions.resize(static_cast<std::size_t>(L) * J);
    const int project_k = project_.k;
    s.project_in.resize(static_cast<std::size_t>(P) * project_k);
    s.project_out.resize(static_cast<std::size_t>(P) * project_.n_padded);
    const int width = P * dim_;
    s.features.resize(static_cast<std::size_t>(batch) * width);
    s.logits.resize(static_cast<std::size_t>(batch) * classifier_.n_padded);

    const int head_state = velocity_ ? 3 : 0;  // the first state index of the head
    for (int r = 0; r < batch; ++r) {
      const float* prev = velocity_ ? in[0].data + static_cast<std::size_t>(r) * P * J * C1 : nullptr;
      const float* prev_centre = velocity_ ? in[1].data + static_cast<std::size_t>(r) * P * C : nullptr;
      const float seen = velocity_ ? in[2].data[r] : 0.0f;
      for (int p = 0; p < P; ++p) normalize(kp + (static_cast<std::size_t>(r) * P + p) * J * C1, p);
      float group_scale = 1.0f;
      if (P > 1) group_scale = placement(s);
      for (int p = 0; p < P; ++p) {
        features_of(s, p, group_scale, prev ? prev + static_cast<std::size_t>(p) * J * C1 : nullptr, seen);
        encode(s, p, prev_centre ? prev_centre + static_cast<std::size_t>(p) * C : nullptr, seen);
      }
      order_people(s, s.features.data() + static_cast<std::size_t>(r) * width);
      if (velocity_) {
        std::memcpy(out[0].data + static_cast<std::size_t>(r) * P * J * C1, s.joints.data(),
                    s.joints.size() * sizeof(float));
        std::memcpy(out[1].data + static_cast<std::size_t>(r) * P * C, s.centre.data(), s.centre.size() * sizeof(float));
        out[2].data[r] = seen < 1.0f ? 1.0f : seen;  // clamp_min(1): NaN stays NaN
      }
    }

    const int layers = head_.num_layers, per_layer = head_.lstm ? 2 : 1;
    std::vector<const float*> h(layers), c(layers);
    std::vector<float*> h_out(layers), c_out(layers);
    for (int l = 0; l < layers; ++l) {
      const int at = head_state + l * per_layer;
      h[l] = in[at].data;
      h_out[l] = out[at].data;
      c[l] = head_.lstm ? in[at + 1].data : nullptr;
      c_out[l] = head_.lstm ? out[at + 1].data : nullptr;
    }
    head_.step(batch, s.features.data(), h.data(), c.data(), h_out.data(), c_out.data());
    dense(h_out[layers - 1], batch, head_.hidden_size, classifier_, s.logits.data(), false);
    for (int r = 0; r < batch; ++r) {
      std::memcpy(logits + static_cast<std::size_t>(r) * classifier_.n,
                  s.logits.data() + static_cast<std::size_t>(r) * classifier_.n_padded, classifier_.n * sizeof(float));
    }
  }

  // out (rows x d.n_padded) = act(bias + in (rows x d.k) . tap 0), or += in . tap `tap`.
  void dense(const float* in, int rows, int in_stride, const Dense& d, float* out, bool relu, int tap = 0,
             bool accumulate = false) const {
    DenseArgs args;
    args.in = in;
    args.rows = rows;
    args.k = d.k;
    args.in_stride = in_stride;
    args.w = d.tap(tap);
    args.bias = d.bias.data();
    args.n_padded = d.n_padded;
    args.out = out;
    args.out_stride = d.n_padded;
    args.accumulate = accumulate;
    args.relu = relu;
    kernels_->dense(args);
  }

  // PoseEncoder.normalize for person p of one row: s.joints[p], centre, scale, count, facing.
  void normalize(const float* kp, int p) {
    Scratch& s = scratch_;
    const int J = joints_, C = coords_, C1 = C + 1;
    float* joints = s.joints.data() + static_cast<std::size_t>(p) * J * C1;
    float* centre = s.centre.data() + static_cast<std::size_t>(p) * C;
    float count = 0.0f, sum[3] = {0.0f, 0.0f, 0.0f};
    for (int j = 0; j < J; ++j) {
      const bool visible = kp[j * C1 + C] > min_confidence_;  // NaN: missing
      joints[j * C1 + C] = visible ? 1.0f : 0.0f;
      count += joints[j * C1 + C];
      for (int c = 0; c < C; ++c) {
        joints[j * C1 + c] = visible ? kp[j * C1 + c] : 0.0f;  // a missing joint may carry NaN
        sum[c] += joints[j * C1 + c];
      }
    }
    for (int c = 0; c < C; ++c) centre[c] = sum[c] / std::max(count, 1.0f);
    if (!center_.empty()) {
      float anchor_count = 0.0f, anchor[3] = {0.0f, 0.0f, 0.0f};
      for (int j : center_) {
        anchor_count += joints[j * C1 + C];
        for (int c = 0; c < C; ++c) anchor[c] += joints[j * C1 + c];
      }
      if (anchor_count > 0.0f) {
        for (int c = 0; c < C; ++c) centre[c] = anchor[c] / std::max(anchor_count, 1.0f);
      }
    }
    float squares = 0.0f;
    for (int j = 0; j < J; ++j) {
      const bool visible = joints[j * C1 + C] > 0.0f;
      for (int c = 0; c < C; ++c) {
        const float rel = visible ? joints[j * C1 + c] - centre[c] : 0.0f;
        joints[j * C1 + c] = rel;
        squares += rel * rel;
      }
    }
    const float scale = std::sqrt(std::max(squares / std::max(count, 1.0f), kEps));
    for (int j = 0; j < J; ++j) {
      for (int c = 0; c < C; ++c) joints[j * C1 + c] /= scale;
    }
    s.scale[p] = scale;
    s.count[p] = count;
    s.cosine[p] = 1.0f;
    s.sine[p] = 0.0f;
    if (!align_.empty()) {
      const int left = align_[0], right = align_[1];
      const int a = vertical_ == 0 ? 1 : 0, b = vertical_ == 2 ? 1 : 2;
      const float both = joints[left * C1 + C] * joints[right * C1 + C];
      const float u = (joints[right * C1 + a] - joints[left * C1 + a]) * both;
      const float v = (joints[right * C1 + b] - joints[left * C1 + b]) * both;
      const float norm = std::sqrt(std::max(u * u + v * v, kEps));
      if (both > 0.0f) {
        s.cosine[p] = u / norm;
        s.sine[p] = v / norm;
      }
      for (int j = 0; j < J; ++j) turn(joints + j * C1, p);
    }
  }

  // PoseEncoder.turn of one 3-vector by person p's facing.
  void turn(float* x, int p) const {
    const int a = vertical_ == 0 ? 1 : 0, b = vertical_ == 2 ? 1 : 2;
    const float cos = scratch_.cosine[p], sin = scratch_.sine[p];
    const float pa = x[a], pb = x[b];
    x[a] = cos * pa + sin * pb;
    x[b] = cos * pb - sin * pa;
  }

  // PoseEncoder._placement over the row's people: s.placement; returns the group's mean scale.
  float placement(Scratch& s) const {
    const int P = people_, C = coords_;
    float n = 0.0f, centre_sum[3] = {0.0f, 0.0f, 0.0f}, scale_sum = 0.0f;
    for (int p = 0; p < P; ++p) {
      const float present = s.count[p] > 0.0f ? 1.0f : 0.0f;
      n += present;
      for (int c = 0; c < C; ++c) centre_sum[c] += s.centre[p * C + c] * present;
      scale_sum += s.scale[p] * present;
    }
    n = std::max(n, 1.0f);
    const float group_scale = std::max(scale_sum / n, kScaleFloor);
    for (int p = 0; p < P; ++p) {
      const float present = s.count[p] > 0.0f ? 1.0f : 0.0f;
      for (int c = 0; c < C; ++c) s.placement[p * C + c] = (s.centre[p * C + c] - centre_sum[c] / n) / group_scale * present;
    }
    return group_scale;
  }

  // The per-joint input channels of person p (PoseEncoder._encode): s.x [J][F].
  void features_of(Scratch& s, int p, float group_scale, const float* prev, float seen) const {
    const int J = joints_, C = coords_, C1 = C + 1, F = C * static_cast<int>(features_.size()) + 1;
    const float* joints = s.joints.data() + static_cast<std::size_t>(p) * J * C1;
    for (int j = 0; j < J; ++j) {
      const float* pos = joints + j * C1;
      const float weight = pos[C];
      float* x = s.x.data() + static_cast<std::size_t>(j) * F;
      for (Feature f : features_) {
        if (f == Feature::kPosition) {
          for (int c = 0; c < C; ++c) x[c] = pos[c];
        } else if (f == Feature::kBone) {
          const float* parent = joints + parents_[j] * C1;
          for (int c = 0; c < C; ++c) x[c] = (pos[c] - parent[c]) * parent[C] * weight;
        } else if (f == Feature::kGroup) {
          const float ratio = s.scale[p] / group_scale;
          for (int c = 0; c < C; ++c) x[c] = (pos[c] * ratio + s.placement[p * C + c]) * weight;
        } else {
          const float* before = prev + j * C1;
          const float both = weight * before[C] * seen;
          for (int c = 0; c < C; ++c) x[c] = (pos[c] - before[c]) * both;
        }
        x += C;
      }
      *x = weight;
    }
  }

  // Person p's layers: joint convs, relation convs, projection -> s.project_out[p].
  void encode(Scratch& s, int p, const float* prev_centre, float seen) {
    const int J = joints_, C = coords_, L = length_, F = C * static_cast<int>(features_.size()) + 1;
    const float* in = s.x.data();
    int in_stride = F;
    float* buffers[2] = {s.a.data(), s.b.data()};
    int which = 0;
    for (const Dense& d : joint_layers_) {
      dense(in, J, in_stride, d, buffers[which], true);  // rows: joints
      in = buffers[which];
      in_stride = d.n_padded;
      which ^= 1;
    }
    // The relation convolutions run over positions (the joint channels) with the joints as
    // channels: rows [position][joint] first, then each layer's rows [position][channel].
    for (int t = 0; t < L; ++t) {
      for (int j = 0; j < J; ++j) s.positions[static_cast<std::size_t>(t) * J + j] = in[j * in_stride + t];
    }
    in = s.positions.data();
    in_stride = J;
    for (const Dense& d : relation_layers_) {
      float* out = buffers[which];
      const int pad = d.taps / 2;
      // Output row t gets tap k of input row t + k - pad where that row exists (zero padding):
      // the centre tap covers every row and adds the bias, the others add to it.
      dense(in, L, in_stride, d, out, d.taps == 1, pad);
      for (int k = 0; k < d.taps; ++k) {
        const int shift = k - pad, first = std::max(0, -shift), end = std::min(L, L - shift);
        if (k == pad || first >= end) continue;
        dense(in + static_cast<std::ptrdiff_t>(first + shift) * in_stride, end - first, in_stride, d,
              out + static_cast<std::ptrdiff_t>(first) * d.n_padded, false, k, true);
      }
      if (d.taps > 1) {
        for (std::size_t i = 0; i < static_cast<std::size_t>(L) * d.n_padded; ++i) {
          out[i] = out[i] < 0.0f ? 0.0f : out[i];  // NaN passes, as in torch.relu
        }
      }
      in = out;
      in_stride = d.n_padded;
      which ^= 1;
    }
    // Flatten as torch does, channel-major: [o * L + t], then placement and motion.
    float* v = s.project_in.data() + static_cast<std::size_t>(p) * project_.k;
    for (int o = 0; o < relation_channels_; ++o) {
      for (int t = 0; t < L; ++t) v[o * L + t] = in[t * in_stride + o];
    }
    float* extra = v + relation_channels_ * L;
    if (people_ > 1) {
      for (int c = 0; c < C; ++c) extra[c] = s.placement[p * C + c];
      if (!align_.empty()) turn(extra, p);
      extra += C;
    }
    if (velocity_) {
      const float present = s.count[p] > 0.0f ? 1.0f : 0.0f;
      for (int c = 0; c < C; ++c) extra[c] = (s.centre[p * C + c] - prev_centre[c]) / s.scale[p] * seen * present;
      if (!align_.empty()) turn(extra, p);
    }
    dense(v, 1, project_.k, project_, s.project_out.data() + static_cast<std::size_t>(p) * project_.n_padded, true);
  }

  // PoseEncoder._left_to_right: people by their centre's x, absent people last (ties keep order).
  void order_people(const Scratch& s, float* features) const {
    const int P = people_;
    std::vector<int> order(P);
    for (int p = 0; p < P; ++p) order[p] = p;
    auto key = [&](int p) {
      return s.count[p] > 0.0f ? s.centre[p * coords_] : std::numeric_limits<float>::infinity();
    };
    for (int i = 1; i < P; ++i) {  // insertion sort: stable, and P is 1 to a handful
      for (int j = i; j > 0 && key(order[j]) < key(order[j - 1]); --j) std::swap(order[j], order[j - 1]);
    }
    for (int i = 0; i < P; ++i) {
      std::memcpy(features + static_cast<std::size_t>(i) * dim_,
                  s.project_out.data() + static_cast<std::size_t>(order[i]) * project_.n_padded, dim_ * sizeof(float));
    }
  }

  int joints_ = 0, coords_ = 0, people_ = 0, vertical_ = 1;
  std::vector<int> center_, parents_, align_;
  float min_confidence_ = 0.0f;
  std::vector<Feature> features_;
  bool velocity_ = false;
  const KernelTable* kernels_ = nullptr;
  std::vector<Dense> joint_layers_, relation_layers_;
  int length_ = 0, relation_channels_ = 0, extra_ = 0, dim_ = 0;
  Dense project_, classifier_;
  RecurrentView head_;
  std::vector<std::string> state_names_;
  std::vector<std::vector<int>> state_shapes_;
  Scratch scratch_;
  std::mutex mutex_;
};

}  // namespace

void bind_pose_step(py::module_& m) {
  py::class_<PoseStep>(m, "PoseStep",
                       "One streaming step of a pose-only model: keypoints -> pose encoder -> LSTM/GRU stack ->\n"
                       "classifier, as edgeact.models.pose.PoseEncoder.step and the head's kernel plan.\n\n"
                       "joint_weight/joint_bias: the 1x1 joint convolutions, (out, in) and (out,) each.\n"
                       "relation_weight/relation_bias: the joint-relation convolutions, (out, in, taps) and (out,).\n"
                       "project_weight (dim, in), project_bias (dim,): the projection (ReLU after every layer).\n"
                       "head: an edgeact._C.LSTM or GRU taking people * dim inputs.\n"
                       "classifier_weight (classes, hidden_size), classifier_bias (classes,).\n"
                       "The keywords are PoseConfig's fields.")
      .def(py::init<const ArrayListArg&, const ArrayListArg&, const ArrayListArg&, const ArrayListArg&, const ArrayArg&,
                    const ArrayArg&, const CellArg&, const ArrayArg&, const ArrayArg&, const IntArg&, const IntArg&,
                    const IntArg&, const IntListArg&, const FloatArg&, const StrListArg&, const IntListArg&,
                    const IntListArg&, const IntArg&, const StrArg&>(),
           py::arg("joint_weight"), py::arg("joint_bias"), py::arg("relation_weight"), py::arg("relation_bias"),
           py::arg("project_weight"), py::arg("project_bias"), py::arg("head"), py::arg("classifier_weight"),
           py::arg("classifier_bias"), py::kw_only(), py::arg("joints"), py::arg("coords"), py::arg("people"),
           py::arg("center_joints"), py::arg("min_confidence"), py::arg("features"), py::arg("parents"),
           py::arg("align"), py::arg("vertical_axis"), py::arg("isa") = "auto")
      .def("step", &PoseStep::step, py::arg("keypoints"), py::arg("state_in"), py::arg("state_out"),
           "One step: keypoints float32 (batch, people, joints, coords + 1), normalised inside as PoseEncoder does;\n"
           "state_in and state_out: one array per state_names entry, (batch, *state_shapes[i]). Reads state_in,\n"
           "writes state_out (which must overlap no input), returns the logits (batch, classes) as a new array.\n"
           "Everything is validated before anything is written. The GIL is released while it runs.")
      .def_property_readonly("state_names", &PoseStep::state_names,
                             "The state arrays step takes, in order: prev, prev_centre, seen (with velocity), then\n"
                             "h<l>[, c<l>] per recurrent layer.")
      .def_property_readonly("state_shapes", &PoseStep::state_shapes, "Each state array's shape without the batch.")
      .def_property_readonly("classes", &PoseStep::classes)
      .def_property_readonly("feature_size", &PoseStep::feature_size, "people * dim: what the head reads.")
      .def_property_readonly("isa", &PoseStep::isa)
      .def("__repr__", &PoseStep::repr);
}

}  // namespace edgeact
