#include "errors.h"

namespace py = pybind11;

namespace edgeact {
namespace {

void raise_edgeact_error(const char* name, PyObject* fallback, const char* message) {
  // Looked up on the error path only; edgeact.errors is pure Python and always importable
  // where edgeact._C is, since _C lives inside the edgeact package.
  try {
    py::object cls = py::module_::import("edgeact.errors").attr(name);
    PyErr_SetString(cls.ptr(), message);
  } catch (py::error_already_set&) {
    PyErr_SetString(fallback, message);
  }
}

}  // namespace

void register_error_translators(py::module_& m) {
  (void)m;
  py::register_local_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const InputTypeError& e) {
      raise_edgeact_error("InputTypeError", PyExc_TypeError, e.what());
    } catch (const InputError& e) {
      raise_edgeact_error("InputError", PyExc_ValueError, e.what());
    }
  });
}

}  // namespace edgeact
