// Front and back depth maps of a triangle mesh (native/depth_maps.cpp), registered into streamrecon._native.
#pragma once
#include <pybind11/pybind11.h>

void register_depth_maps(pybind11::module_& m);
