// Validation of Python arguments at the module boundary. Every check raises InputError or
// InputTypeError with a sentence naming the argument, what was expected and what arrived.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

namespace edgeact {

// Any Python object, as an argument type. Taking the object itself, rather than py::array_t
// (whose caster copies a float64 or strided array into a temporary) or int/str (whose casters
// fail with pybind11's generic "incompatible function arguments"), lets the callee reject it
// with a sentence naming the argument, and guarantees an in-place update reaches the caller's
// array. The tag only sets the type shown in the generated signature.
template <typename Tag>
struct Arg {
  pybind11::object obj;
  bool is_none() const { return obj.is_none(); }
};
struct ArrayTag { static constexpr char name[] = "numpy.ndarray"; };
struct OptionalArrayTag { static constexpr char name[] = "numpy.ndarray | None"; };
struct ArrayListTag { static constexpr char name[] = "collections.abc.Sequence[numpy.ndarray]"; };
struct OptionalArrayListTag { static constexpr char name[] = "collections.abc.Sequence[numpy.ndarray] | None"; };
struct IntTag { static constexpr char name[] = "int"; };
struct StrTag { static constexpr char name[] = "str"; };
using ArrayArg = Arg<ArrayTag>;
using OptionalArrayArg = Arg<OptionalArrayTag>;
using ArrayListArg = Arg<ArrayListTag>;
using OptionalArrayListArg = Arg<OptionalArrayListTag>;
using IntArg = Arg<IntTag>;
using StrArg = Arg<StrTag>;

enum class Access { kRead, kWrite };

// A float32, C-contiguous, aligned, non-empty ndarray (writeable if asked for).
struct FloatArray {
  std::string name;
  pybind11::array array;  // holds a reference, so `data` stays valid
  float* data = nullptr;
  std::vector<pybind11::ssize_t> shape;

  std::size_t size() const;
  std::size_t nbytes() const { return size() * sizeof(float); }
};

FloatArray float_array(const std::string& name, const pybind11::handle& obj, Access access);
// `meaning` names the axes, e.g. "(batch, channels, height, width)".
void expect_ndim(const FloatArray& a, int ndim, const char* meaning);
// `hint`, if any, is a sentence appended to the message.
void expect_shape(const FloatArray& a, const std::vector<pybind11::ssize_t>& shape, const char* meaning,
                  const char* hint = "");
void expect_disjoint(const FloatArray& a, const FloatArray& b);
// A Python int or anything with __index__ (numpy integers); bool is refused.
long long as_int(const char* name, const pybind11::handle& obj);
// A Python str (InputTypeError otherwise).
std::string as_str(const char* name, const pybind11::handle& obj);
std::string shape_str(const std::vector<pybind11::ssize_t>& shape);
std::string type_name(const pybind11::handle& obj);

}  // namespace edgeact

namespace pybind11 {
namespace detail {

template <typename Tag>
struct type_caster<edgeact::Arg<Tag>> {
  PYBIND11_TYPE_CASTER(edgeact::Arg<Tag>, const_name(Tag::name));
  bool load(handle src, bool /*convert*/) {
    value.obj = reinterpret_borrow<object>(src);
    return true;
  }
  static handle cast(const edgeact::Arg<Tag>& src, return_value_policy, handle) {
    return src.obj.inc_ref();
  }
};

}  // namespace detail
}  // namespace pybind11
