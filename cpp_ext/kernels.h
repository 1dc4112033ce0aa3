// The compute kernels, compiled once per instruction set and chosen at run time.
//
// kernels_impl.h holds the kernels, written with GCC/Clang vector extensions so the same source
// becomes SSE2, AVX2+FMA or AVX-512 code depending on the flags its translation unit gets
// (CMakeLists.txt gives kernels_avx2.cpp and kernels_avx512.cpp their -m flags). A default
// build therefore runs on any x86-64 CPU yet uses AVX2/AVX-512 where the CPU has them;
// isa.cpp picks the table with __builtin_cpu_supports. No Python in here: kernels run
// with the GIL released.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edgeact {

// How the packed recurrent weights are stored.
enum class WeightFormat : int { kFloat32 = 0, kBFloat16 = 1, kInt8 = 2 };

// One recurrent layer's step over a range of panels. A panel is `lanes` consecutive hidden
// units (lanes = the table's SIMD width in floats); its weights are stored k-major:
//   [k in input range][slot][lane] then [k in hidden range][slot][lane]
// so the inner loop streams them contiguously and needs no horizontal sums.
// LSTM slots: i, f, g, o (x and h ranges both). GRU x-range slots: r, z, n_x; h-range slots:
// r, z, n_h (n keeps its two halves apart because r multiplies only the hidden half).
// bfloat16 panels pair k and k+1 in each 32-bit lane, [k/2][slot][lane][k%2], and pad each
// range to an even length with zeros, so a lane widens to two floats with a shift and a mask.
// int8 panels have the bfloat16 layout with one byte per weight: a lane's pair (k, k+1) widens
// to two int16 and meets the pair (q[k], q[k+1]) of int16 activations in one pairwise
// multiply-add (vpdpwssd / vpmaddwd), summed exactly in int32. Each gate row has its own scale
// per input range (symmetric, over columns pre-multiplied by `mult`, see recurrent.cpp), and
// each batch row's x and h have theirs, set by `quantize` before the step.
struct RecurrentLayerArgs {
  const void* weights;   // packed panels, float, uint16 bfloat16 or int8 (see `format`)
  const float* bias;     // [panel][4][lanes]: LSTM i,f,g,o; GRU r,z,n_x,n_h (pre-summed)
  WeightFormat format;
  int input_size;        // I: length of one row of x
  int hidden_size;       // H
  int batch;             // B
  bool descending;       // visit the panel range last to first (see PackedRecurrent::run)
  const float* x;        // [B, I] layer input
  const float* h;        // [B, H] previous hidden state
  const float* c;        // [B, H] previous cell state (LSTM only)
  float* h_out;          // [B, H] new hidden state; never overlaps x, h or c
  float* c_out;          // [B, H] new cell state (LSTM only); may be the same buffer as c
  // int8 only:
  const float* scales;         // [panel][x, h][4][lanes] weight row scales, slots as `bias`
  const std::int16_t* qx;      // [B][I rounded up to even] x * mult_x / act_scales[b][0], rounded
  const std::int16_t* qh;      // [B][H rounded up to even] h * mult_h / act_scales[b][1], rounded
  const float* act_scales;     // [B][2]; NaN where that row's x or h was not finite
};

// int8 sums run in int32 over at most this many inputs (even) before they are converted to
// float: 512 * 127 * 32767 < 2^31.
constexpr int kInt8MaxRun = 512;

// int8 activations: out[k] = round(v[k] * mult[k] / scale) for k < n, 0 up to n_padded, with
// scale = max_k |v[k] * mult[k]| / qmax returned. All zero gives scale 0; any non-finite
// v[k] * mult[k] gives NaN and zeros, so the step's outputs become NaN as a float step's would.
typedef float (*QuantizeFn)(const float* v, const float* mult, int n, int n_padded, int qmax, std::int16_t* out);

// out[r][n] = act(base[r][n] + sum_k in[r][k] * w[k][n]) for r < rows, n < n_padded, where base is
// bias[n], or out[r][n] itself with `accumulate` (a convolution tap added to the taps before):
// a small dense layer over a few rows (the pose encoder's 1x1 convolutions over the joints, one
// tap of its joint-relation convolutions over the positions, its projection, a classifier).
// n_padded is a multiple of the table's lanes; w ([k][n_padded]) and bias are zero beyond the
// real outputs, so padded outputs are act(0).
struct DenseArgs {
  const float* in;  // rows x k, row stride in_stride
  int rows, k, in_stride;
  const float* w;     // [k][n_padded]
  const float* bias;  // [n_padded]; unused with accumulate
  int n_padded;
  float* out;  // rows x n_padded, row stride out_stride; never overlaps in
  int out_stride;
  bool accumulate;
  bool relu;
};

struct KernelTable {
  const char* isa;  // "avx512_vnni", "avx512", "avx2", "sse2", "neon" or "generic"
  int lanes;        // floats per SIMD register = hidden units per packed panel
  // a[i] <-> b[i] for i < n; a and b do not overlap.
  void (*swap)(float* a, float* b, std::size_t n);
  void (*lstm_panels)(const RecurrentLayerArgs& args, int first_panel, int end_panel);
  void (*gru_panels)(const RecurrentLayerArgs& args, int first_panel, int end_panel);
  void (*dense)(const DenseArgs& args);
  QuantizeFn quantize;
};

// One table per translation unit in kernels_<isa>.cpp.
namespace baseline { const KernelTable& kernel_table(); }
#if EDGEACT_X86_DISPATCH
namespace avx2 { const KernelTable& kernel_table(); }
namespace avx512 { const KernelTable& kernel_table(); }
namespace avx512_vnni { const KernelTable& kernel_table(); }
#endif

}  // namespace edgeact
