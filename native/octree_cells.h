// Octree surface-cell gathering kernel (native/octree_cells.cpp), registered into streamrecon._native.
#pragma once
#include <pybind11/pybind11.h>

void register_octree_cells(pybind11::module_& m);
