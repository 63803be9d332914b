// Sparse marching cubes: triangulate only the listed cells of a grid (the cells the octree found
// the surface in) instead of scanning all (N-1)^3 of them. Slow twin: PyMCubes on the dense grid
// (same case tables, same vertex interpolation; tests/test_marching_cubes.py compares them).
//
// Input: cells [M, 3] int64 lower-corner grid indices (i, j, k), each in [0, dims - 2];
//        values [M, 8] float32 corner values in PyMCubes' corner order (see mc_tables.h);
//        dims = points per axis of the grid; level = iso level.
// Output: vertices [V, 3] float64 in grid-index coordinates, faces [F, 3] int64.
// A corner at or below the level is "outside" (PyMCubes' convention): for occupancy (inside > level)
// the faces come out counter-clockwise seen from outside.
// One vertex per crossed grid edge, shared by the (up to 4) listed cells around it.
#include "marching_cubes.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "mc_tables.h"

namespace py = pybind11;

namespace {

// Edge e runs from corner kEdgeFrom[e] (the lower end) along axis kEdgeAxis[e].
constexpr int kEdgeFrom[12] = {0, 1, 3, 0, 4, 5, 7, 4, 0, 1, 2, 3};
constexpr int kEdgeTo[12] = {1, 2, 2, 3, 5, 6, 6, 7, 4, 5, 6, 7};
constexpr int kEdgeAxis[12] = {0, 1, 0, 1, 0, 1, 0, 1, 2, 2, 2, 2};
constexpr int kCorner[8][3] = {{0, 0, 0}, {1, 0, 0}, {1, 1, 0}, {0, 1, 0},
                               {0, 0, 1}, {1, 0, 1}, {1, 1, 1}, {0, 1, 1}};

// Open-addressing hash map int64 edge key -> int64 vertex index (linear probing, grows at 50%).
class EdgeMap {
   public:
    explicit EdgeMap(size_t expected) { rehash(next_pow2(expected * 2 + 16)); }

    // Returns the slot for key; *fresh tells whether it was just inserted.
    int64_t& slot(int64_t key, bool* fresh) {
        if ((size_ + 1) * 2 > keys_.size()) rehash(keys_.size() * 2);
        size_t i = hash(key) & mask_;
        while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
        *fresh = keys_[i] == kEmpty;
        if (*fresh) {
            keys_[i] = key;
            ++size_;
        }
        return vals_[i];
    }

   private:
    static constexpr int64_t kEmpty = -1;
    static size_t next_pow2(size_t n) {
        size_t p = 1;
        while (p < n) p <<= 1;
        return p;
    }
    static size_t hash(int64_t k) {
        uint64_t x = static_cast<uint64_t>(k);
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        return static_cast<size_t>(x);
    }
    void rehash(size_t cap) {
        std::vector<int64_t> old_k(cap, kEmpty), old_v(cap, 0);
        old_k.swap(keys_);
        old_v.swap(vals_);
        mask_ = cap - 1;
        for (size_t j = 0; j < old_k.size(); ++j) {
            if (old_k[j] == kEmpty) continue;
            size_t i = hash(old_k[j]) & mask_;
            while (keys_[i] != kEmpty) i = (i + 1) & mask_;
            keys_[i] = old_k[j];
            vals_[i] = old_v[j];
        }
    }
    std::vector<int64_t> keys_, vals_;
    size_t mask_ = 0, size_ = 0;
};

// PyMCubes' interpolation: the midpoint when both ends are equal.
inline double interp(double level, double f1, double f2, double x1, double x2) {
    if (f2 == f1) return (x1 + x2) / 2;
    return (x2 - x1) * (level - f1) / (f2 - f1) + x1;
}

py::tuple sparse_marching_cubes(py::array_t<int64_t, py::array::c_style | py::array::forcecast> cells,
                                py::array_t<float, py::array::c_style | py::array::forcecast> values,
                                std::vector<int64_t> dims, double level) {
    if (dims.size() != 3 || dims[0] < 2 || dims[1] < 2 || dims[2] < 2)
        throw std::invalid_argument("dims: expected 3 sizes >= 2 (grid points per axis)");
    if (cells.ndim() != 2 || cells.shape(1) != 3)
        throw std::invalid_argument("cells: expected int64 [M, 3]");
    const int64_t m = cells.shape(0);
    if (values.ndim() != 2 || values.shape(0) != m || values.shape(1) != 8)
        throw std::invalid_argument("values: expected float32 [M, 8] with M = " + std::to_string(m) +
                                    " rows (one per cell)");
    const int64_t nx = dims[0], ny = dims[1], nz = dims[2];
    auto c = cells.unchecked<2>();
    auto v = values.unchecked<2>();
    for (int64_t r = 0; r < m; ++r) {
        if (c(r, 0) < 0 || c(r, 0) > nx - 2 || c(r, 1) < 0 || c(r, 1) > ny - 2 || c(r, 2) < 0 || c(r, 2) > nz - 2)
            throw std::invalid_argument("cells: row " + std::to_string(r) + " lies outside [0, dims - 2]");
    }

    std::vector<double> verts;
    std::vector<int64_t> faces;
    {
        py::gil_scoped_release release;
        EdgeMap edges(static_cast<size_t>(m) * 2);
        verts.reserve(static_cast<size_t>(m) * 3 * 2);
        faces.reserve(static_cast<size_t>(m) * 3 * 2);
        int64_t vid[12];
        for (int64_t r = 0; r < m; ++r) {
            double f[8];
            unsigned idx = 0;
            for (int q = 0; q < 8; ++q) {
                f[q] = static_cast<double>(v(r, q));
                if (f[q] <= level) idx |= 1u << q;
            }
            const unsigned mask = streamrecon_mc::kEdgeMask[idx];
            if (mask == 0) continue;
            const int64_t i = c(r, 0), j = c(r, 1), k = c(r, 2);
            for (int e = 0; e < 12; ++e) {
                if (!(mask & (1u << e))) continue;
                const int* a = kCorner[kEdgeFrom[e]];
                const int64_t pi = i + a[0], pj = j + a[1], pk = k + a[2];
                const int axis = kEdgeAxis[e];
                const int64_t key = ((pi * ny + pj) * nz + pk) * 3 + axis;
                bool fresh = false;
                int64_t& slot = edges.slot(key, &fresh);
                if (fresh) {
                    slot = static_cast<int64_t>(verts.size() / 3);
                    double p[3] = {static_cast<double>(pi), static_cast<double>(pj), static_cast<double>(pk)};
                    p[axis] = interp(level, f[kEdgeFrom[e]], f[kEdgeTo[e]], p[axis], p[axis] + 1.0);
                    verts.insert(verts.end(), p, p + 3);
                }
                vid[e] = slot;
            }
            const int8_t* t = streamrecon_mc::kTriangles[idx];
            for (int q = 0; q < 16 && t[q] >= 0; ++q) faces.push_back(vid[t[q]]);
        }
    }
    py::array_t<double> vout({static_cast<py::ssize_t>(verts.size() / 3), static_cast<py::ssize_t>(3)});
    std::copy(verts.begin(), verts.end(), vout.mutable_data());
    py::array_t<int64_t> fout({static_cast<py::ssize_t>(faces.size() / 3), static_cast<py::ssize_t>(3)});
    std::copy(faces.begin(), faces.end(), fout.mutable_data());
    return py::make_tuple(vout, fout);
}

}  // namespace

void register_marching_cubes(py::module_& m) {
    m.def("sparse_marching_cubes", &sparse_marching_cubes, py::arg("cells"), py::arg("values"), py::arg("dims"),
          py::arg("level") = 0.5,
          "Marching cubes over the listed cells only. cells int64 [M,3] lower corners in [0, dims-2]; "
          "values float32 [M,8] corner values (PyMCubes corner order); dims: grid points per axis. "
          "Returns (vertices float64 [V,3] in grid-index coordinates, faces int64 [F,3]), "
          "triangulated exactly like PyMCubes.");
}
