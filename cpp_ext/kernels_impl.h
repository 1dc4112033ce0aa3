// The kernels, written once with GCC/Clang vector extensions and compiled once per ISA.
//
// Include only from kernels_<isa>.cpp, after defining
//   EDGEACT_ISA_NAMESPACE  the namespace of this copy (baseline, avx2, avx512)
//   EDGEACT_ISA_NAME       the name reported to Python ("avx2", ...)
//   EDGEACT_VECTOR_BYTES   SIMD register width this translation unit may use (16, 32, 64)
//   EDGEACT_MAX_ROWS       batch rows accumulated at once (bounded by the register count)
// Everything below has internal linkage or lives in EDGEACT_ISA_NAMESPACE, and no standard
// library template is instantiated here: the AVX2 copy of an inline function must never be
// merged by the linker into the SSE2 copy, which would crash older CPUs with SIGILL.
#include <cstddef>
#include <cstdint>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "kernels.h"

namespace edgeact {
namespace EDGEACT_ISA_NAMESPACE {
namespace {

constexpr int kLanes = EDGEACT_VECTOR_BYTES / 4;
constexpr int kMaxRows = EDGEACT_MAX_ROWS;
// Batch rows whose accumulators stay live across input chunks (on the stack): the weights of
// one chunk are then read from L2 once and from L1 for the other rows.
constexpr int kGroupRows = 8;
constexpr int kChunkBytes = 24 * 1024;  // half of a typical 48 KiB L1d; Jetson Orin has 64 KiB

typedef float vf __attribute__((vector_size(EDGEACT_VECTOR_BYTES)));
typedef std::int32_t vi __attribute__((vector_size(EDGEACT_VECTOR_BYTES)));
typedef std::uint32_t vu __attribute__((vector_size(EDGEACT_VECTOR_BYTES)));

inline int imin(int a, int b) { return a < b ? a : b; }
inline vf splat(float s) { return vf{} + s; }

// memcpy loads: user arrays are only float-aligned; compilers turn these into one movups.
inline vf load(const float* p) {
  vf v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
// bfloat16 weights come in pairs (k, k+1) per 32-bit lane (see kernels.h); bfloat16 is the top
// half of a float32, so the two widen with a shift and a mask, without any shuffle.
inline void load_pair(const std::uint16_t* p, vf& even, vf& odd) {
  vu words;
  __builtin_memcpy(&words, p, sizeof words);
  even = (vf)(words << 16);
  odd = (vf)(words & 0xffff0000u);
}
inline void store(float* p, vf v) { __builtin_memcpy(p, &v, sizeof v); }

// int8 weights x int16 activations (WeightFormat::kInt8): `widen_pairs` turns 2 * kLanes int8
// weights (a pair per lane) into int16 pairs, one per 32-bit lane of a vi, and `dot_pairs` adds
// w.lo * x.lo + w.hi * x.hi to each lane's int32 sum: one vpdpwssd with AVX-512 VNNI or
// AVX-VNNI, vpmaddwd + vpaddd without, plain vector arithmetic elsewhere (NEON, generic). The
// sums are exact, so every ISA gives the same integers.
#if EDGEACT_VECTOR_BYTES == 64 && defined(__AVX512BW__)
inline vi widen_pairs(const std::int8_t* p) {
  return (vi)_mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline vi dot_pairs(vi acc, vi w, vi x) {
#if defined(__AVX512VNNI__)
  return (vi)_mm512_dpwssd_epi32((__m512i)acc, (__m512i)w, (__m512i)x);
#else
  return acc + (vi)_mm512_madd_epi16((__m512i)w, (__m512i)x);
#endif
}
#elif EDGEACT_VECTOR_BYTES == 32 && defined(__AVX2__)
inline vi widen_pairs(const std::int8_t* p) {
  return (vi)_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline vi dot_pairs(vi acc, vi w, vi x) {
#if defined(__AVXVNNI__)
  return (vi)_mm256_dpwssd_avx_epi32((__m256i)acc, (__m256i)w, (__m256i)x);
#else
  return acc + (vi)_mm256_madd_epi16((__m256i)w, (__m256i)x);
#endif
}
#elif EDGEACT_VECTOR_BYTES == 16 && defined(__SSE2__)
inline vi widen_pairs(const std::int8_t* p) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return (vi)_mm_srai_epi16(_mm_unpacklo_epi8(bytes, bytes), 8);  // each byte twice, shifted: sign-extended
}
inline vi dot_pairs(vi acc, vi w, vi x) { return acc + (vi)_mm_madd_epi16((__m128i)w, (__m128i)x); }
#else
typedef std::int8_t vb __attribute__((vector_size(EDGEACT_VECTOR_BYTES / 2)));
typedef std::int16_t vs __attribute__((vector_size(EDGEACT_VECTOR_BYTES)));
inline vi widen_pairs(const std::int8_t* p) {
  vb bytes;
  __builtin_memcpy(&bytes, p, sizeof bytes);
  return (vi)__builtin_convertvector(bytes, vs);
}
inline vi dot_pairs(vi acc, vi w, vi x) {
  return acc + ((w << 16) >> 16) * ((x << 16) >> 16) + (w >> 16) * (x >> 16);  // arithmetic shifts
}
#endif
// The activation pair (q[0], q[1]) in every lane.
inline vi splat_pair(const std::int16_t* q) {
  std::int32_t pair;
  __builtin_memcpy(&pair, q, sizeof pair);
  return vi{} + pair;
}

inline vf load_partial(const float* p, int n) {
  float tmp[kLanes] = {};
  for (int j = 0; j < n; ++j) tmp[j] = p[j];
  return load(tmp);
}
inline void store_partial(float* p, vf v, int n) {
  float tmp[kLanes];
  store(tmp, v);
  for (int j = 0; j < n; ++j) p[j] = tmp[j];
}

// Clamps written so that NaN passes through (a comparison with NaN is false).
inline vf clamp(vf x, float lo, float hi) {
  x = x > splat(hi) ? splat(hi) : x;
  return x < splat(lo) ? splat(lo) : x;
}

// exp with the Cephes expf polynomial: about 1 ulp on [-87, 88], vectorised, no libm call.
inline vf exp_approx(vf x) {
  x = clamp(x, -87.0f, 88.0f);
  // Round x*log2(e) to the nearest integer with the 1.5*2^23 trick (no float->int rounding mode).
  vf n = (x * splat(1.44269504088896341f) + splat(12582912.0f)) - splat(12582912.0f);
  vf g = x - n * splat(0.693359375f);  // ln 2 split in two for an exact reduction
  g = g - n * splat(-2.12194440e-4f);
  vf y = splat(1.9875691500e-4f);
  y = y * g + splat(1.3981999507e-3f);
  y = y * g + splat(8.3334519073e-3f);
  y = y * g + splat(4.1665795894e-2f);
  y = y * g + splat(1.6666665459e-1f);
  y = y * g + splat(5.0000001201e-1f);
  y = y * (g * g) + g + splat(1.0f);
  const vi pow2n = (__builtin_convertvector(n, vi) + 127) << 23;  // 2^n built from its exponent bits
  return y * (vf)pow2n;
}
inline vf sigmoid(vf x) { return splat(1.0f) / (splat(1.0f) + exp_approx(-x)); }
// Absolute error about 1e-7 near 0 (the form loses relative precision there, not absolute).
inline vf tanh_approx(vf x) {
  return splat(2.0f) / (splat(1.0f) + exp_approx(x * splat(-2.0f))) - splat(1.0f);
}

// acc[r][s] += sum_k w[k][s][:] * v[r][k]  for k < n.  float w is [n][S][kLanes]; bfloat16 w
// is [n/2][S][kLanes][2] (k and k+1 side by side; an odd n ends with a zero partner).
template <int R, int S>
inline void accumulate(vf (&acc)[R][S], const float* w, const float* const (&v)[R], int n) {
  if constexpr (R == 1) {
    // One row gives S independent FMA chains; a second set for odd k hides the FMA latency.
    vf odd[S] = {};
    int k = 0;
    for (; k + 2 <= n; k += 2) {
      const float even_in = v[0][k], odd_in = v[0][k + 1];
      for (int s = 0; s < S; ++s) acc[0][s] += load(w + (k * S + s) * kLanes) * even_in;
      for (int s = 0; s < S; ++s) odd[s] += load(w + ((k + 1) * S + s) * kLanes) * odd_in;
    }
    if (k < n) {
      for (int s = 0; s < S; ++s) acc[0][s] += load(w + (k * S + s) * kLanes) * v[0][k];
    }
    for (int s = 0; s < S; ++s) acc[0][s] += odd[s];
  } else {
    for (int k = 0; k < n; ++k) {
      for (int s = 0; s < S; ++s) {
        const vf wv = load(w + (k * S + s) * kLanes);
        for (int r = 0; r < R; ++r) acc[r][s] += wv * v[r][k];
      }
    }
  }
}

template <int R, int S>
inline void accumulate(vf (&acc)[R][S], const std::uint16_t* w, const float* const (&v)[R], int n) {
  // Same summation order as the float version, so both agree on bfloat16-representable weights.
  vf odd[R == 1 ? S : 1] = {};
  int k = 0;
  for (; k + 2 <= n; k += 2) {
    for (int s = 0; s < S; ++s) {
      vf even_w, odd_w;
      load_pair(w + ((k / 2) * S + s) * 2 * kLanes, even_w, odd_w);
      if constexpr (R == 1) {
        acc[0][s] += even_w * v[0][k];
        odd[s] += odd_w * v[0][k + 1];
      } else {
        for (int r = 0; r < R; ++r) acc[r][s] += even_w * v[r][k];
        for (int r = 0; r < R; ++r) acc[r][s] += odd_w * v[r][k + 1];
      }
    }
  }
  if (k < n) {  // v[r][k + 1] is past the row: use the even half only
    for (int s = 0; s < S; ++s) {
      vf even_w, odd_w;
      load_pair(w + ((k / 2) * S + s) * 2 * kLanes, even_w, odd_w);
      for (int r = 0; r < R; ++r) acc[r][s] += even_w * v[r][k];
    }
  }
  if constexpr (R == 1) {
    for (int s = 0; s < S; ++s) acc[0][s] += odd[s];
  }
}

// Runs `accumulate` for R rows of one input range, moving the accumulators between the
// stack group and registers. kHidden selects the GRU h-range slot map (r, z, n_h -> 0, 1, 3).
template <int R, int S, bool kGru, bool kHidden, typename W>
inline void accumulate_rows(vf (*acc)[4], const W* w, const float* v, int ld, int n) {
  vf local[R][S];
  const float* rows[R];
  for (int r = 0; r < R; ++r) {
    rows[r] = v + static_cast<std::ptrdiff_t>(r) * ld;
    for (int s = 0; s < S; ++s) local[r][s] = acc[r][(kGru && kHidden && s == 2) ? 3 : s];
  }
  accumulate<R, S>(local, w, rows, n);
  for (int r = 0; r < R; ++r) {
    for (int s = 0; s < S; ++s) acc[r][(kGru && kHidden && s == 2) ? 3 : s] = local[r][s];
  }
}

// One input range (x or h) of one panel for `rows` batch rows, in L1-sized chunks of k.
template <int S, bool kGru, bool kHidden, typename W>
inline void accumulate_range(vf (*acc)[4], int rows, const W* w, const float* v, int ld, int n) {
  constexpr int kChunk = kChunkBytes / static_cast<int>(S * kLanes * sizeof(W)) / 2 * 2;  // even: bf16 pairs
  // With a single register block there is no reuse to gain from chunking.
  const int chunk = rows <= kMaxRows ? n : kChunk;
  for (int k0 = 0; k0 < n; k0 += chunk) {
    const int len = imin(chunk, n - k0);
    const W* wk = w + static_cast<std::ptrdiff_t>(k0) * S * kLanes;
    for (int r0 = 0; r0 < rows; r0 += kMaxRows) {
      const float* vk = v + static_cast<std::ptrdiff_t>(r0) * ld + k0;
      switch (imin(kMaxRows, rows - r0)) {
        case 1: accumulate_rows<1, S, kGru, kHidden>(acc + r0, wk, vk, ld, len); break;
#if EDGEACT_MAX_ROWS >= 2
        case 2: accumulate_rows<2, S, kGru, kHidden>(acc + r0, wk, vk, ld, len); break;
#endif
#if EDGEACT_MAX_ROWS >= 3
        case 3: accumulate_rows<3, S, kGru, kHidden>(acc + r0, wk, vk, ld, len); break;
#endif
#if EDGEACT_MAX_ROWS >= 4
        case 4: accumulate_rows<4, S, kGru, kHidden>(acc + r0, wk, vk, ld, len); break;
#endif
        default: break;
      }
    }
  }
}

// The fused gate nonlinearities and state update for one panel of one batch row.
inline void finish_lstm(const vf (&acc)[4], const RecurrentLayerArgs& a, int b, int unit0, int valid) {
  const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(b) * a.hidden_size + unit0;
  const vf in_gate = sigmoid(acc[0]);
  const vf forget_gate = sigmoid(acc[1]);
  const vf cell_gate = tanh_approx(acc[2]);
  const vf out_gate = sigmoid(acc[3]);
  const vf c_prev = valid == kLanes ? load(a.c + at) : load_partial(a.c + at, valid);
  const vf c_new = forget_gate * c_prev + in_gate * cell_gate;
  const vf h_new = out_gate * tanh_approx(c_new);
  if (valid == kLanes) {
    store(a.c_out + at, c_new);
    store(a.h_out + at, h_new);
  } else {
    store_partial(a.c_out + at, c_new, valid);
    store_partial(a.h_out + at, h_new, valid);
  }
}

inline void finish_gru(const vf (&acc)[4], const RecurrentLayerArgs& a, int b, int unit0, int valid) {
  const std::ptrdiff_t at = static_cast<std::ptrdiff_t>(b) * a.hidden_size + unit0;
  const vf reset_gate = sigmoid(acc[0]);
  const vf update_gate = sigmoid(acc[1]);
  const vf new_gate = tanh_approx(acc[2] + reset_gate * acc[3]);
  const vf h_prev = valid == kLanes ? load(a.h + at) : load_partial(a.h + at, valid);
  const vf h_new = new_gate + update_gate * (h_prev - new_gate);  // (1-z)*n + z*h, as PyTorch
  if (valid == kLanes) {
    store(a.h_out + at, h_new);
  } else {
    store_partial(a.h_out + at, h_new, valid);
  }
}

template <typename W, bool kGru>
void recurrent_panels(const RecurrentLayerArgs& a, int first_panel, int end_panel) {
  constexpr int kSlots = kGru ? 3 : 4;  // slots per input range (see kernels.h)
  const int in = a.input_size, hid = a.hidden_size;
  // bfloat16 pairs pad each range to an even length.
  const int in_packed = sizeof(W) == 2 ? (in + 1) / 2 * 2 : in;
  const int hid_packed = sizeof(W) == 2 ? (hid + 1) / 2 * 2 : hid;
  const std::ptrdiff_t panel_stride = static_cast<std::ptrdiff_t>(in_packed + hid_packed) * kSlots * kLanes;
  const W* weights = static_cast<const W*>(a.weights);
  for (int i = first_panel; i < end_panel; ++i) {
    const int p = a.descending ? first_panel + end_panel - 1 - i : i;
    const W* wx = weights + p * panel_stride;
    const W* wh = wx + static_cast<std::ptrdiff_t>(in_packed) * kSlots * kLanes;
    const float* bias = a.bias + static_cast<std::ptrdiff_t>(p) * 4 * kLanes;
    const int unit0 = p * kLanes;
    const int valid = imin(kLanes, hid - unit0);
    for (int b0 = 0; b0 < a.batch; b0 += kGroupRows) {
      const int rows = imin(kGroupRows, a.batch - b0);
      vf acc[kGroupRows][4];
      for (int r = 0; r < rows; ++r) {
        for (int s = 0; s < 4; ++s) acc[r][s] = load(bias + s * kLanes);
      }
      const std::ptrdiff_t row0 = static_cast<std::ptrdiff_t>(b0);
      accumulate_range<kSlots, kGru, false>(acc, rows, wx, a.x + row0 * in, in, in);
      accumulate_range<kSlots, kGru, true>(acc, rows, wh, a.h + row0 * hid, hid, hid);
      for (int r = 0; r < rows; ++r) {
        if constexpr (kGru) {
          finish_gru(acc[r], a, b0 + r, unit0, valid);
        } else {
          finish_lstm(acc[r], a, b0 + r, unit0, valid);
        }
      }
    }
  }
}

// acc[r][s] += sum over pairs of w[k/2][s][:][0..1] . q[r][k..k+1] for even k < n (n even):
// exact int32 sums (recurrent.cpp bounds the activations so that they cannot overflow).
template <int R, int S>
inline void accumulate_int8(vi (&acc)[R][S], const std::int8_t* w, const std::int16_t* const (&q)[R], int n) {
  if constexpr (R == 1) {
    vi odd[S] = {};  // a second chain per slot hides the multiply-add latency
    int k = 0;
    for (; k + 4 <= n; k += 4) {
      const vi even_in = splat_pair(q[0] + k), odd_in = splat_pair(q[0] + k + 2);
      for (int s = 0; s < S; ++s) acc[0][s] = dot_pairs(acc[0][s], widen_pairs(w + ((k / 2) * S + s) * 2 * kLanes), even_in);
      for (int s = 0; s < S; ++s) odd[s] = dot_pairs(odd[s], widen_pairs(w + ((k / 2 + 1) * S + s) * 2 * kLanes), odd_in);
    }
    if (k < n) {
      const vi in = splat_pair(q[0] + k);
      for (int s = 0; s < S; ++s) acc[0][s] = dot_pairs(acc[0][s], widen_pairs(w + ((k / 2) * S + s) * 2 * kLanes), in);
    }
    for (int s = 0; s < S; ++s) acc[0][s] += odd[s];
  } else {
    for (int k = 0; k < n; k += 2) {
      vi in[R];
      for (int r = 0; r < R; ++r) in[r] = splat_pair(q[r] + k);
      for (int s = 0; s < S; ++s) {
        const vi wv = widen_pairs(w + ((k / 2) * S + s) * 2 * kLanes);
        for (int r = 0; r < R; ++r) acc[r][s] = dot_pairs(acc[r][s], wv, in[r]);
      }
    }
  }
}

// One int8 input range of one panel for R batch rows: integer sums over runs of kInt8MaxRun
// inputs, each then added as acc += sum * weight row scale * the row's activation scale
// (kHidden: GRU slot n_h -> 3).
template <int R, int S, bool kGru, bool kHidden>
inline void accumulate_rows_int8(vf (*acc)[4], const std::int8_t* w, const std::int16_t* q, int ld, int n,
                                 const float* scales, const float* act_scales) {
  const std::int16_t* rows[R];
  vf factor[R][S];
  for (int r = 0; r < R; ++r) {
    rows[r] = q + static_cast<std::ptrdiff_t>(r) * ld;
    for (int s = 0; s < S; ++s) {
      factor[r][s] = load(scales + ((kGru && kHidden && s == 2) ? 3 : s) * kLanes) * splat(act_scales[r * 2]);
    }
  }
  for (int k0 = 0; k0 < n; k0 += kInt8MaxRun) {
    vi sums[R][S] = {};
    accumulate_int8<R, S>(sums, w + static_cast<std::ptrdiff_t>(k0 / 2) * S * 2 * kLanes, rows,
                          imin(kInt8MaxRun, n - k0));
    for (int r = 0; r < R; ++r) {
      rows[r] += kInt8MaxRun;
      for (int s = 0; s < S; ++s) {
        acc[r][(kGru && kHidden && s == 2) ? 3 : s] += __builtin_convertvector(sums[r][s], vf) * factor[r][s];
      }
    }
  }
}

template <int S, bool kGru, bool kHidden>
inline void accumulate_range_int8(vf (*acc)[4], int rows, const std::int8_t* w, const std::int16_t* q, int ld,
                                  const float* scales, const float* act_scales) {
  for (int r0 = 0; r0 < rows; r0 += kMaxRows) {
    const std::int16_t* qr = q + static_cast<std::ptrdiff_t>(r0) * ld;
    const float* ar = act_scales + r0 * 2;
    switch (imin(kMaxRows, rows - r0)) {
      case 1: accumulate_rows_int8<1, S, kGru, kHidden>(acc + r0, w, qr, ld, ld, scales, ar); break;
#if EDGEACT_MAX_ROWS >= 2
      case 2: accumulate_rows_int8<2, S, kGru, kHidden>(acc + r0, w, qr, ld, ld, scales, ar); break;
#endif
#if EDGEACT_MAX_ROWS >= 3
      case 3: accumulate_rows_int8<3, S, kGru, kHidden>(acc + r0, w, qr, ld, ld, scales, ar); break;
#endif
#if EDGEACT_MAX_ROWS >= 4
      case 4: accumulate_rows_int8<4, S, kGru, kHidden>(acc + r0, w, qr, ld, ld, scales, ar); break;
#endif
      default: break;
    }
  }
}

template <bool kGru>
void recurrent_panels_int8(const RecurrentLayerArgs& a, int first_panel, int end_panel) {
  constexpr int kSlots = kGru ? 3 : 4;
  const int in_packed = (a.input_size + 1) / 2 * 2, hid_packed = (a.hidden_size + 1) / 2 * 2;
  const std::ptrdiff_t panel_stride = static_cast<std::ptrdiff_t>(in_packed + hid_packed) * kSlots * kLanes;
  const std::int8_t* weights = static_cast<const std::int8_t*>(a.weights);
  for (int i = first_panel; i < end_panel; ++i) {
    const int p = a.descending ? first_panel + end_panel - 1 - i : i;
    const std::int8_t* wx = weights + p * panel_stride;
    const std::int8_t* wh = wx + static_cast<std::ptrdiff_t>(in_packed) * kSlots * kLanes;
    const float* bias = a.bias + static_cast<std::ptrdiff_t>(p) * 4 * kLanes;
    const float* scales = a.scales + static_cast<std::ptrdiff_t>(p) * 2 * 4 * kLanes;
    const int unit0 = p * kLanes;
    const int valid = imin(kLanes, a.hidden_size - unit0);
    for (int b0 = 0; b0 < a.batch; b0 += kGroupRows) {
      const int rows = imin(kGroupRows, a.batch - b0);
      vf acc[kGroupRows][4];
      for (int r = 0; r < rows; ++r) {
        for (int s = 0; s < 4; ++s) acc[r][s] = load(bias + s * kLanes);
      }
      accumulate_range_int8<kSlots, kGru, false>(acc, rows, wx, a.qx + static_cast<std::ptrdiff_t>(b0) * in_packed,
                                                 in_packed, scales, a.act_scales + b0 * 2);
      accumulate_range_int8<kSlots, kGru, true>(acc, rows, wh, a.qh + static_cast<std::ptrdiff_t>(b0) * hid_packed,
                                                hid_packed, scales + 4 * kLanes, a.act_scales + b0 * 2 + 1);
      for (int r = 0; r < rows; ++r) {
        if constexpr (kGru) {
          finish_gru(acc[r], a, b0 + r, unit0, valid);
        } else {
          finish_lstm(acc[r], a, b0 + r, unit0, valid);
        }
      }
    }
  }
}

void lstm_panels(const RecurrentLayerArgs& a, int first_panel, int end_panel) {
  if (a.format == WeightFormat::kInt8) {
    recurrent_panels_int8<false>(a, first_panel, end_panel);
  } else if (a.format == WeightFormat::kBFloat16) {
    recurrent_panels<std::uint16_t, false>(a, first_panel, end_panel);
  } else {
    recurrent_panels<float, false>(a, first_panel, end_panel);
  }
}

void gru_panels(const RecurrentLayerArgs& a, int first_panel, int end_panel) {
  if (a.format == WeightFormat::kInt8) {
    recurrent_panels_int8<true>(a, first_panel, end_panel);
  } else if (a.format == WeightFormat::kBFloat16) {
    recurrent_panels<std::uint16_t, true>(a, first_panel, end_panel);
  } else {
    recurrent_panels<float, true>(a, first_panel, end_panel);
  }
}

// R rows x V output vectors: R*V independent accumulator chains stay in registers over the
// whole k loop, and each weight vector loaded serves all R rows.
template <int R, int V>
inline void dense_block(const DenseArgs& a, int r0, int n0) {
  vf acc[R][V];
  const float* in[R];
  for (int r = 0; r < R; ++r) {
    in[r] = a.in + static_cast<std::ptrdiff_t>(r0 + r) * a.in_stride;
    const float* base = a.accumulate ? a.out + static_cast<std::ptrdiff_t>(r0 + r) * a.out_stride : a.bias;
    for (int v = 0; v < V; ++v) acc[r][v] = load(base + n0 + v * kLanes);
  }
  const float* w = a.w + n0;
  for (int k = 0; k < a.k; ++k) {
    vf wv[V];
    for (int v = 0; v < V; ++v) wv[v] = load(w + static_cast<std::ptrdiff_t>(k) * a.n_padded + v * kLanes);
    for (int r = 0; r < R; ++r) {
      const float s = in[r][k];
      for (int v = 0; v < V; ++v) acc[r][v] += wv[v] * s;
    }
  }
  for (int r = 0; r < R; ++r) {
    float* out = a.out + static_cast<std::ptrdiff_t>(r0 + r) * a.out_stride + n0;
    for (int v = 0; v < V; ++v) {
      vf y = acc[r][v];
      if (a.relu) y = y < splat(0.0f) ? splat(0.0f) : y;  // NaN passes, as in torch.relu
      store(out + v * kLanes, y);
    }
  }
}

// All output vectors of R rows: V = kDenseVectors / R at a time (one row gets them all), then
// the remainder one vector at a time.
constexpr int kDenseVectors = EDGEACT_MAX_ROWS * 2;  // accumulators: 8 AVX-512/NEON, 4 SSE2/AVX2
template <int R>
inline void dense_rows(const DenseArgs& a, int r0) {
  constexpr int V = kDenseVectors / R;
  int n0 = 0;
  for (; n0 + V * kLanes <= a.n_padded; n0 += V * kLanes) dense_block<R, V>(a, r0, n0);
  for (; n0 < a.n_padded; n0 += kLanes) dense_block<R, 1>(a, r0, n0);
}

void dense(const DenseArgs& a) {
  constexpr int kRows = EDGEACT_MAX_ROWS;
  int r0 = 0;
  for (; r0 + kRows <= a.rows; r0 += kRows) dense_rows<kRows>(a, r0);
  for (; r0 < a.rows; ++r0) dense_rows<1>(a, r0);
}

void swap(float* __restrict a, float* __restrict b, std::size_t n) {
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    const vf va = load(a + i), vb = load(b + i);
    store(a + i, vb);
    store(b + i, va);
  }
  for (; i < n; ++i) {
    const float t = a[i];
    a[i] = b[i];
    b[i] = t;
  }
}

typedef std::int16_t vh __attribute__((vector_size(EDGEACT_VECTOR_BYTES / 2)));  // kLanes int16

float quantize(const float* v, const float* mult, int n, int n_padded, int qmax, std::int16_t* out) {
  vf largest = {};
  vi bad = {};
  int k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    const vf t = load(v + k) * load(mult + k);
    bad |= (t - t) != splat(0.0f);  // inf - inf and NaN - NaN are NaN
    const vf magnitude = t < splat(0.0f) ? -t : t;
    largest = magnitude > largest ? magnitude : largest;
  }
  float amax = 0.0f;
  bool finite = true;
  for (int j = 0; j < kLanes; ++j) {
    amax = largest[j] > amax ? largest[j] : amax;
    finite = finite && bad[j] == 0;
  }
  for (int j = k; j < n; ++j) {
    const float t = v[j] * mult[j];
    finite = finite && t - t == 0.0f;
    const float magnitude = t < 0.0f ? -t : t;
    amax = magnitude > amax ? magnitude : amax;
  }
  if (!finite || amax == 0.0f) {
    for (int j = 0; j < n_padded; ++j) out[j] = 0;
    return finite ? 0.0f : __builtin_nanf("");
  }
  const float scale = amax / static_cast<float>(qmax);
  // Round to nearest even with the 1.5 * 2^23 trick (|t / scale| <= qmax < 2^22), as the tail does.
  const vf magic = splat(12582912.0f);
  for (k = 0; k + kLanes <= n; k += kLanes) {
    const vf t = (load(v + k) * load(mult + k)) / splat(scale);
    const vh rounded = __builtin_convertvector(__builtin_convertvector((t + magic) - magic, vi), vh);
    __builtin_memcpy(out + k, &rounded, sizeof rounded);
  }
  for (; k < n; ++k) {
    const float t = (v[k] * mult[k]) / scale;
    out[k] = static_cast<std::int16_t>(static_cast<std::int32_t>((t + 12582912.0f) - 12582912.0f));
  }
  for (; k < n_padded; ++k) out[k] = 0;
  return scale;
}

constexpr KernelTable kTable = {EDGEACT_ISA_NAME, kLanes, &swap, &lstm_panels, &gru_panels, &dense, &quantize};

}  // namespace

const KernelTable& kernel_table() { return kTable; }

}  // namespace EDGEACT_ISA_NAMESPACE
}  // namespace edgeact
