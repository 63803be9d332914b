// Mesh kernels that run once per frame on the streaming path, without the GIL:
//
// - face_components: connected components of a triangle mesh (vertices joined through faces),
//   union-find; native twin of streamrecon.mesh.cleanup.connected_components (numpy min-label
//   hooking). Same labels: the smallest vertex index of each component.
// - obj_text: the OBJ text of streamrecon.meshio.obj_bytes, byte for byte (tests compare them).
//   Floats are printed in fixed notation, correctly rounded as Python's '%.6f' % x prints them
//   (put_float: exact integer scaling; std::to_chars for huge values), integers by two-digit
//   table lookups, into a buffer grown a line at a time.
// - vertex_normals: area-weighted vertex normals of streamrecon.mesh.normals.vertex_normals, the
//   same float64 arithmetic in the same order (numpy's cross, bincount over faces in order, norm).
#include "mesh_ops.h"

#include <pybind11/numpy.h>

#include <algorithm>
#include <charconv>
#include <cstring>
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

// Text is written through a raw pointer into a buffer that grows by whole lines (``room``): no
// per-character bounds checks.
struct TextBuffer {
    std::string s;
    size_t n = 0;
    char* room(size_t k) {
        if (n + k > s.size()) s.resize(std::max(2 * s.size(), n + k));
        return &s[n];
    }
    void commit(const char* end) { n = static_cast<size_t>(end - s.data()); }
};

constexpr char kDigits2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869"
    "70717273747576777879808182838485868788899091929394959697989900";

inline int decimal_digits(uint64_t x) {
    int n = 1;
    for (;;) {
        if (x < 10) return n;
        if (x < 100) return n + 1;
        if (x < 1000) return n + 2;
        if (x < 10000) return n + 3;
        x /= 10000;
        n += 4;
    }
}

// Digits written backwards from the end, two at a time.
inline char* put_uint(char* p, uint64_t x) {
    char* const end = p + decimal_digits(x);
    char* q = end;
    while (x >= 100) {
        const uint64_t r = x % 100;
        x /= 100;
        q -= 2;
        std::memcpy(q, kDigits2 + 2 * r, 2);
    }
    if (x >= 10) {
        std::memcpy(q - 2, kDigits2 + 2 * x, 2);
    } else {
        q[-1] = static_cast<char>('0' + x);
    }
    return end;
}

inline char* put_int(char* p, int64_t x) {
    if (x < 0) {
        *p++ = '-';
        return put_uint(p, static_cast<uint64_t>(-(x + 1)) + 1);
    }
    return put_uint(p, static_cast<uint64_t>(x));
}

constexpr int kMaxFloatChars = 64;  // the longest put_float output (to_chars of FLT_MAX, 6 places: 47)

// '%.<P>f' % x (Python, C printf) for a float32 x and P <= 6 places: x * 10^P
// is exact in a double (24 + 14 significant bits at most), so rounding it to the nearest integer,
// ties to even, is the correctly rounded decimal that printf prints.
// Values of 1e12 and beyond, inf and nan go through std::to_chars.
template <int P>
inline char* put_float(char* p, float xf) {
    static_assert(P >= 0 && P <= 6, "put_float: at most 6 places");
    constexpr uint64_t kScale = P == 0 ? 1 : P == 1 ? 10 : P == 2 ? 100 : P == 3 ? 1000 : P == 4 ? 10000 : P == 5 ? 100000 : 1000000;
    const double x = xf;
    if (std::isnan(x)) {
        std::memcpy(p, "nan", 3);
        return p + 3;
    }
    if (!(std::fabs(x) < 1e12)) {
        if (std::isinf(x)) {
            if (x < 0) *p++ = '-';
            std::memcpy(p, "inf", 3);
            return p + 3;
        }
        return std::to_chars(p, p + kMaxFloatChars, x, std::chars_format::fixed, P).ptr;
    }
    const double t = std::fabs(x) * static_cast<double>(kScale);  // exact, < 2^63
    uint64_t u = static_cast<uint64_t>(t);
    const double rest = t - static_cast<double>(u);  // exact
    if (rest > 0.5 || (rest == 0.5 && (u & 1))) ++u;  // to nearest, ties to even
    if (std::signbit(x)) *p++ = '-';  // -0.0 and values that round to zero keep their sign, as printf
    p = put_uint(p, u / kScale);
    *p++ = '.';
    uint64_t frac = u % kScale;
    for (int k = P - 1; k >= 0; --k) {
        p[k] = static_cast<char>('0' + frac % 10);
        frac /= 10;
    }
    return p + P;
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
    TextBuffer out;
    {
        py::gil_scoped_release release;
        out.s.resize(static_cast<size_t>(nv) * (has_n ? 80 : 40) + static_cast<size_t>(nf) * (has_n ? 48 : 24) + 64);
        const size_t v_line = 3 + 3 * (kMaxFloatChars + 1) * (has_c ? 2 : 1);
        for (int64_t i = 0; i < nv; ++i) {
            char* p = out.room(v_line);
            *p++ = 'v';
            for (int k = 0; k < 3; ++k) {
                *p++ = ' ';
                p = put_float<6>(p, v[3 * i + k]);
            }
            if (has_c) {
                for (int k = 0; k < 3; ++k) {
                    *p++ = ' ';
                    // the Python twin prints float32(c) / 255 computed in float32
                    p = put_float<4>(p, c[3 * i + k] / 255.0f);
                }
            }
            *p++ = '\n';
            out.commit(p);
        }
        if (has_n) {
            for (int64_t i = 0; i < nv; ++i) {
                char* p = out.room(4 + 3 * (kMaxFloatChars + 1));
                *p++ = 'v';
                *p++ = 'n';
                for (int k = 0; k < 3; ++k) {
                    *p++ = ' ';
                    p = put_float<5>(p, n[3 * i + k]);
                }
                *p++ = '\n';
                out.commit(p);
            }
        }
        for (int64_t i = 0; i < nf; ++i) {
            char* p = out.room(3 + 3 * (2 * 21 + 3));
            *p++ = 'f';
            for (int k = 0; k < 3; ++k) {
                *p++ = ' ';
                const int64_t idx = f[3 * i + k] + 1;
                p = put_int(p, idx);
                if (has_n) {
                    *p++ = '/';
                    *p++ = '/';
                    p = put_int(p, idx);
                }
            }
            *p++ = '\n';
            out.commit(p);
        }
    }
    return py::bytes(out.s.data(), out.n);
}

py::array_t<float> vertex_normals(py::array_t<float, py::array::c_style | py::array::forcecast> vertices,
                                  py::array_t<int64_t, py::array::c_style | py::array::forcecast> faces) {
    if (vertices.ndim() != 2 || vertices.shape(1) != 3) throw std::invalid_argument("vertices: expected float32 [V, 3]");
    if (faces.ndim() != 2 || faces.shape(1) != 3) throw std::invalid_argument("faces: expected int64 [F, 3]");
    const int64_t nv = vertices.shape(0), nf = faces.shape(0);
    const float* v = vertices.data();
    const int64_t* f = faces.data();
    for (int64_t r = 0; r < nf * 3; ++r)
        if (f[r] < 0 || f[r] >= nv) throw std::invalid_argument("faces: vertex index out of range");
    py::array_t<float> out({static_cast<py::ssize_t>(nv), static_cast<py::ssize_t>(3)});
    float* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        std::vector<double> acc(static_cast<size_t>(nv) * 3, 0.0);
        for (int64_t t = 0; t < nf; ++t) {
            const float *a = v + f[3 * t] * 3, *b = v + f[3 * t + 1] * 3, *c = v + f[3 * t + 2] * 3;
            const double e0[3] = {double(b[0]) - double(a[0]), double(b[1]) - double(a[1]), double(b[2]) - double(a[2])};
            const double e1[3] = {double(c[0]) - double(a[0]), double(c[1]) - double(a[1]), double(c[2]) - double(a[2])};
            const double x0 = e0[1] * e1[2], x1 = e0[2] * e1[1];
            const double y0 = e0[2] * e1[0], y1 = e0[0] * e1[2];
            const double z0 = e0[0] * e1[1], z1 = e0[1] * e1[0];
            const double n[3] = {x0 - x1, y0 - y1, z0 - z1};
            for (int q = 0; q < 3; ++q) {
                double* d = &acc[static_cast<size_t>(f[3 * t + q]) * 3];
                d[0] += n[0];
                d[1] += n[1];
                d[2] += n[2];
            }
        }
        for (int64_t r = 0; r < nv; ++r) {
            const double* d = &acc[static_cast<size_t>(r) * 3];
            const double sq0 = d[0] * d[0], sq1 = d[1] * d[1], sq2 = d[2] * d[2];
            const double len = std::sqrt(sq0 + sq1 + sq2);
            for (int q = 0; q < 3; ++q) o[r * 3 + q] = len > 0 ? static_cast<float>(d[q] / std::max(len, 1e-30)) : 0.0f;
        }
    }
    return out;
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
    m.def("vertex_normals", &vertex_normals, py::arg("vertices"), py::arg("faces"),
          "Unit area-weighted vertex normals float32 [V, 3] (streamrecon.mesh.normals.vertex_normals; "
          "unused vertices get 0). Releases the GIL.");
}
