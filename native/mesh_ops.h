// Mesh kernels (native/mesh_ops.cpp), registered into streamrecon._native.
#pragma once
#include <pybind11/pybind11.h>

void register_mesh_ops(pybind11::module_& m);
