// streamrecon._native: native kernels. Each kernel has a plain-Python twin and a test comparing them.
#include <pybind11/pybind11.h>

#include "depth_maps.h"
#include "marching_cubes.h"
#include "mesh_ops.h"
#include "octree_cells.h"
#include "point_decoder.h"

namespace py = pybind11;

PYBIND11_MODULE(_native, m) {
    m.doc() = "streamrecon native kernels";
    m.attr("ABI_VERSION") = 9;
    register_marching_cubes(m);
    register_octree_cells(m);
    register_mesh_ops(m);
    register_point_decoder(m);
    register_depth_maps(m);
}
