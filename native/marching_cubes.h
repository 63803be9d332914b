// Sparse marching cubes kernel (native/marching_cubes.cpp), registered into streamrecon._native.
#pragma once
#include <pybind11/pybind11.h>

void register_marching_cubes(pybind11::module_& m);
