// Mesh kernels that run once per frame on the streaming path, without the GIL:
//
// - face_components: connected components of a triangle mesh (vertices joined through faces),
//   union-find; native twin of streamrecon.mesh.cleanup.connected_components (numpy min-label
//   hooking). Same labels: the smallest vertex index of each component.
// - obj_text: the OBJ text of streamrecon.meshio.obj_bytes, byte for byte (tests compare them).
//   Floats are printed with std::to_chars in fixed notation (shortest correctly rounded digits
//   of the double value, as Python's '%.6f' % x prints), integers likewise.
#include "mesh_ops.h"

#include <pybind11/numpy.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

int64_t find_root(std::vector<int64_t>& parent, int64_t x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];  // path halving
        x = parent[x];
    }
    return x;
}

py::array_t<int64_t> face_components(py::array_t<int64_t, py::array::c_style | py::array::forcecast> faces,
                                     int64_t num_vertices) {
    if (num_vertices < 0) throw std::invalid_argument("num_vertices: expected >= 0");
    if (faces.ndim() != 2 || (faces.shape(0) > 0 && faces.shape(1) != 3))
        throw std::invalid_argument("faces: expected int64 [F, 3]");
    const int64_t nf = faces.shape(0);
    const int64_t* f = faces.data();
    for (int64_t i = 0; i < nf * 3; ++i)
        if (f[i] < 0 || f[i] >= num_vertices)
            throw std::invalid_argument("faces: index " + std::to_string(f[i]) + " outside [0, " +
                                        std::to_string(num_vertices) + ")");
    py::array_t<int64_t> out(static_cast<py::ssize_t>(num_vertices));
    int64_t* lab = out.mutable_data();
    {
        py::gil_scoped_release release;
        std::vector<int64_t> parent(static_cast<size_t>(num_vertices));
        for (int64_t v = 0; v < num_vertices; ++v) parent[v] = v;
        auto unite = [&](int64_t a, int64_t b) {
            a = find_root(parent, a);
            b = find_root(parent, b);
            if (a == b) return;
            if (a < b) parent[b] = a;  // the smaller index becomes the root: root = component minimum
            else parent[a] = b;
        };
        for (int64_t i = 0; i < nf; ++i) {
            unite(f[3 * i], f[3 * i + 1]);
            unite(f[3 * i + 1], f[3 * i + 2]);
        }
        for (int64_t v = 0; v < num_vertices; ++v) lab[v] = find_root(parent, v);
    }
    return out;
}

void put_float(std::string& s, double x, int precision) {
    char buf[64];
    if (std::isnan(x)) {
        s += "nan";
        return;
    }
    if (std::isinf(x)) {
        s += x > 0 ? "inf" : "-inf";
        return;
    }
    auto r = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::fixed, precision);
    s.append(buf, r.ptr);
}

void put_int(std::string& s, int64_t x) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof(buf), x);
    s.append(buf, r.ptr);
}

py::bytes obj_text(py::array_t<float, py::array::c_style | py::array::forcecast> vertices,
                   py::array_t<int64_t, py::array::c_style | py::array::forcecast> faces,
                   py::object normals, py::object colors) {
    if (vertices.ndim() != 2 || (vertices.shape(0) > 0 && vertices.shape(1) != 3))
        throw std::invalid_argument("vertices: expected float32 [V, 3]");
    if (faces.ndim() != 2 || (faces.shape(0) > 0 && faces.shape(1) != 3))
        throw std::invalid_argument("faces: expected int64 [F, 3]");
    const int64_t nv = vertices.shape(0), nf = faces.shape(0);
    py::array_t<float, py::array::c_style | py::array::forcecast> nrm;
    py::array_t<float, py::array::c_style | py::array::forcecast> col;
    const bool has_n = !normals.is_none(), has_c = !colors.is_none();
    if (has_n) {
        nrm = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(normals);
        if (!nrm || nrm.ndim() != 2 || nrm.shape(0) != nv || (nv > 0 && nrm.shape(1) != 3))
            throw std::invalid_argument("normals: expected float32 [V, 3] like the vertices");
    }
    if (has_c) {
        col = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(colors);
        if (!col || col.ndim() != 2 || col.shape(0) != nv || (nv > 0 && col.shape(1) != 3))
            throw std::invalid_argument("colors: expected [V, 3] like the vertices");
    }
    const float* v = vertices.data();
    const int64_t* f = faces.data();
    const float* n = has_n ? nrm.data() : nullptr;
    const float* c = has_c ? col.data() : nullptr;
    std::string s;
    {
        py::gil_scoped_release release;
        s.reserve(static_cast<size_t>(nv) * (has_n ? 80 : 40) + static_cast<size_t>(nf) * (has_n ? 48 : 24));
        for (int64_t i = 0; i < nv; ++i) {
            s += "v ";
            for (int k = 0; k < 3; ++k) {
                if (k) s += ' ';
                put_float(s, v[3 * i + k], 6);
            }
            if (has_c) {
                for (int k = 0; k < 3; ++k) {
                    s += ' ';
                    // the Python twin prints float32(c) / 255 computed in float32
                    put_float(s, static_cast<double>(c[3 * i + k] / 255.0f), 4);
                }
            }
            s += '\n';
        }
        if (has_n) {
            for (int64_t i = 0; i < nv; ++i) {
                s += "vn ";
                for (int k = 0; k < 3; ++k) {
                    if (k) s += ' ';
                    put_float(s, n[3 * i + k], 5);
                }
                s += '\n';
            }
        }
        for (int64_t i = 0; i < nf; ++i) {
            s += "f ";
            for (int k = 0; k < 3; ++k) {
                if (k) s += ' ';
                const int64_t idx = f[3 * i + k] + 1;
                put_int(s, idx);
                if (has_n) {
                    s += "//";
                    put_int(s, idx);
                }
            }
            s += '\n';
        }
    }
    return py::bytes(s);
}

}  // namespace

void register_mesh_ops(py::module_& m) {
    m.def("face_components", &face_components, py::arg("faces"), py::arg("num_vertices"),
          "Component label [V] int64 per vertex (vertices joined through faces share the label = "
          "the smallest vertex index of their component). faces int64 [F, 3]. Releases the GIL.");
    m.def("obj_text", &obj_text, py::arg("vertices"), py::arg("faces"), py::arg("normals") = py::none(),
          py::arg("colors") = py::none(),
          "OBJ text (bytes) of streamrecon.meshio.obj_bytes: 'v x y z [r g b]' (%.6f; colours given "
          "as 0..255 values, printed as float32(c) / 255 with %.4f), 'vn' (%.5f) when normals are given, 1-based "
          "faces ('f a//a ...' with normals). Releases the GIL while formatting.");
}
