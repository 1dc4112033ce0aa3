#include "arrays.h"

#include <cstdint>
#include <sstream>

#include "errors.h"

namespace py = pybind11;

namespace edgeact {

std::size_t FloatArray::size() const {
  std::size_t n = 1;
  for (py::ssize_t d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

std::string shape_str(const std::vector<py::ssize_t>& shape) {
  std::ostringstream out;
  out << '(';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << (shape.size() == 1 ? ",)" : ")");
  return out.str();
}

std::string type_name(const py::handle& obj) {
  const py::handle type = py::type::handle_of(obj);
  const std::string module = py::str(type.attr("__module__"));
  const std::string name = py::str(type.attr("__qualname__"));
  return module == "builtins" ? name : module + "." + name;
}

FloatArray float_array(const std::string& name, const py::handle& obj, Access access) {
  const std::string& n = name;
  if (!py::isinstance<py::array>(obj)) {
    throw InputTypeError(n + " must be a numpy.ndarray, got " + type_name(obj) + ".");
  }
  FloatArray a;
  a.name = name;
  a.array = py::reinterpret_borrow<py::array>(obj);
  // EquivTypes: a byte-swapped '>f4' array is not float32 here, and is refused.
  if (!py::array_t<float>::check_(obj)) {
    throw InputTypeError(n + " must have dtype float32, got " + std::string(py::str(a.array.dtype())) + ".");
  }
  a.shape.assign(a.array.shape(), a.array.shape() + a.array.ndim());
  const int flags = a.array.flags();
  if (!(flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_)) {
    const std::vector<py::ssize_t> strides(a.array.strides(), a.array.strides() + a.array.ndim());
    std::string message = n + " must be C-contiguous";
    message += access == Access::kWrite ? " because it is written in place" : "";
    message += "; got strides " + shape_str(strides) + " for shape " + shape_str(a.shape) + ".";
    if (access == Access::kRead) message += " Pass numpy.ascontiguousarray(" + n + ").";
    throw InputError(message);
  }
  if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) {
    throw InputError(n + " must be aligned to 4 bytes; got a misaligned view.");
  }
  if (access == Access::kWrite && !a.array.writeable()) {
    throw InputError(n + " must be writeable because it is written in place.");
  }
  if (a.array.size() == 0) {
    throw InputError(n + " must not be empty, got shape " + shape_str(a.shape) + ".");
  }
  a.data = static_cast<float*>(const_cast<void*>(a.array.data()));
  return a;
}

void expect_ndim(const FloatArray& a, int ndim, const char* meaning) {
  if (static_cast<int>(a.shape.size()) != ndim) {
    throw InputError(a.name + " must be " + std::to_string(ndim) + "-D " + meaning +
                     ", got shape " + shape_str(a.shape) + ".");
  }
}

void expect_shape(const FloatArray& a, const std::vector<py::ssize_t>& shape, const char* meaning,
                  const char* hint) {
  if (a.shape != shape) {
    throw InputError(a.name + " must have shape " + shape_str(shape) + " " + meaning + ", got " + shape_str(a.shape) +
                     "." + (*hint ? " " : "") + hint);
  }
}

void expect_disjoint(const FloatArray& a, const FloatArray& b) {
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.data), b0 = reinterpret_cast<std::uintptr_t>(b.data);
  if (a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes()) {
    throw InputError(a.name + " and " + b.name + " must not overlap in memory.");
  }
}

long long as_int(const char* name, const py::handle& obj) {
  if (PyBool_Check(obj.ptr()) || !PyIndex_Check(obj.ptr())) {
    throw InputTypeError(std::string(name) + " must be an int, got " + type_name(obj) + ".");
  }
  const auto index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!index) throw py::error_already_set();  // a broken __index__: its own error
  const long long value = PyLong_AsLongLong(index.ptr());
  if (value == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    throw InputError(std::string(name) + " is out of range, got " + std::string(py::repr(obj)) + ".");
  }
  return value;
}

std::string as_str(const char* name, const py::handle& obj) {
  if (!py::isinstance<py::str>(obj)) {
    throw InputTypeError(std::string(name) + " must be a str, got " + type_name(obj) + ".");
  }
  return obj.cast<std::string>();
}

}  // namespace edgeact
