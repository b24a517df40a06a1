// The Python module fastnerf._C: a stub whose import runs the TORCH_LIBRARY registrations of
// every op in csrc/. Ops are reached through torch.ops.fastnerf.*, never through this module.
#include <Python.h>
#include <torch/library.h>

#include <string>

static bool built_with_cuda() {
#ifdef FASTNERF_WITH_CUDA
  return true;
#else
  return false;
#endif
}

// What this library was built with, as JSON: the compiler, plus the record fastnerf/_build.py
// passes in (torch version, flags, CUDA). `fastnerf info` prints it.
#ifndef FASTNERF_BUILD_RECORD
#define FASTNERF_BUILD_RECORD "{}"
#endif
static std::string build_info() {
  const std::string record = FASTNERF_BUILD_RECORD;  // "{...}": the compiler goes in front
  const std::string rest = record.size() > 2 ? ", " + record.substr(1) : "}";
  return std::string("{\"compiler\": \"") + __VERSION__ + "\"" + rest;
}

// Every file, this one too, adds to the library with TORCH_LIBRARY_FRAGMENT, so the Triton ops
// defined from Python (torch.library.custom_op) can share the namespace in any load order.
TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def("built_with_cuda() -> bool", &built_with_cuda);
  m.def("build_info() -> str", &build_info);
}

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}
