// The Python module fastnerf._C: a stub whose import runs the TORCH_LIBRARY registrations of
// every op in csrc/. Ops are reached through torch.ops.fastnerf.*, never through this module.
#include <Python.h>
#include <torch/library.h>

static bool built_with_cuda() {
#ifdef FASTNERF_WITH_CUDA
  return true;
#else
  return false;
#endif
}

// Every file, this one too, adds to the library with TORCH_LIBRARY_FRAGMENT, so the Triton ops
// defined from Python (torch.library.custom_op) can share the namespace in any load order.
TORCH_LIBRARY_FRAGMENT(fastnerf, m) {
  m.def("built_with_cuda() -> bool", &built_with_cuda);
}

extern "C" {
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}
