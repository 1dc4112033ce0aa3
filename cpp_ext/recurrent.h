#pragma once

#include <pybind11/pybind11.h>

namespace edgeact {

void bind_recurrent(pybind11::module_& m);

class PackedRecurrent;

// A _C.LSTM or _C.GRU object as other C++ code drives it (the fused pose step runs its layers).
// Holds a reference to the Python object, so the packed weights live as long as the view.
struct RecurrentView {
  pybind11::object owner;
  PackedRecurrent* core = nullptr;
  bool lstm = false;
  int input_size = 0, hidden_size = 0, num_layers = 0;

  // Every layer's step for `batch` rows; call with the GIL released. Layer l reads x (l = 0) or
  // h_out[l - 1], and h[l], c[l]; it writes h_out[l], c_out[l] (c, c_out unused for a GRU), each
  // [batch, hidden_size]. The caller has checked the shapes, and that no output overlaps an input.
  void step(int batch, const float* x, const float* const* h, const float* const* c, float* const* h_out,
            float* const* c_out) const;
};

// `name` is the argument's name in error messages; InputTypeError unless `cell` is a _C.LSTM/_C.GRU.
RecurrentView recurrent_view(const char* name, const pybind11::handle& cell);

}  // namespace edgeact
