// The embedded model's point decoder (native/point_decoder.cpp), registered into streamrecon._native.
#pragma once
#include <pybind11/pybind11.h>

void register_point_decoder(pybind11::module_& m);
