// depth_range_maps: the nearest (front) and farthest (back) depth of a triangle mesh at each pixel
// centre of an H x W picture, orthographic camera along +z. Native twin of
// streamrecon.body.maps.raster_depth_maps_reference; tests/body/test_maps.py compares them bit
// for bit.
//
// Raster coordinates: x right, y down, in pixels; pixel (i, j) is the unit square whose top-left
// corner is (j, i), so its centre is (j + 0.5, i + 0.5); z = depth, larger = farther.
//
// Coverage: a pixel centre p is covered by a triangle when it lies inside or on it, either winding.
// The three edge functions e_k(p) (twice the signed area of p and the edge opposite corner k) are
// evaluated in double from the float32 corners; p is covered when all three are >= 0 or all are
// <= 0. For corners of similar magnitude that evaluation is exact in sign; when the corners'
// magnitudes differ by more than ~2^29 their differences round, and a centre exactly on an edge
// can come out on either side depending on the corner the edge is evaluated from. Each edge is
// therefore evaluated from a canonical origin, the lexicographically smaller (x, y) of its
// endpoints: the two triangles that share an edge traverse it in opposite directions, and as IEEE
// subtraction and products are exactly antisymmetric they compute the same rounded value with
// opposite signs, so a centre on or within rounding of a shared edge is covered by at least one of
// them. A closed mesh's mask has no cracks, without an epsilon (which would also cover centres
// outside).
//
// Depth: the plane through the corners, z = z0 + gx (px - x0) + gy (py - y0), exact for an
// orthographic camera; clamped to the corners' z range, so a depth never leaves its triangle's
// range through rounding (in slivers the gradient is ill-conditioned). A depth of zero is +0.
// Degenerate triangles (doubled area exactly 0) and triangles with a non-finite coordinate cover
// nothing.
//
// Cost: per triangle a set-up and the pixel centres of its bounding box clipped to the picture.
// A fitted body at 256 x 256 has ~28k triangles of a few pixels each, so the set-up weighs as much
// as the pixels: triangles are set up 64 at a time, several per vector instruction, into a fixed
// stack buffer (the only allocations are the two H x W maps), then drawn without branches on
// coverage; with AVX2 (chosen at run time) four columns of a row at a time. Every path computes
// the same IEEE operations per pixel, so all give the same bits; -ffp-contract=off
// (CMakeLists.txt) keeps every product and sum rounded separately, as numpy does.
#include "depth_maps.h"

#include <pybind11/numpy.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

namespace py = pybind11;

namespace {

constexpr int64_t kMaxSide = 1 << 16;
constexpr int kBatch = 64;  // triangles set up together (a fixed 16 KiB on the stack)
constexpr float kInf = std::numeric_limits<float>::infinity();

// Four lanes for AVX2, two (SSE2's width: wider vectors lower badly there) for the generic path.
typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4l __attribute__((vector_size(32)));  // a v4d comparison: all ones or zero per lane
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef double v2d __attribute__((vector_size(16)));
typedef int64_t v2l __attribute__((vector_size(16)));
typedef int32_t v2i __attribute__((vector_size(8)));

// The comparison mask and int32 vector types with the lanes of a double vector type.
template <typename VD>
struct Lanes;
template <>
struct Lanes<v4d> {
    typedef v4l mask;
    typedef v4i i32;
};
template <>
struct Lanes<v2d> {
    typedef v2l mask;
    typedef v2i i32;
};

// The vector helpers are always inlined, so no vector crosses a call boundary and the ABI note
// GCC gives for 32-byte vectors outside AVX2 functions does not apply.
#define DM_INLINE inline __attribute__((always_inline))
#pragma GCC diagnostic ignored "-Wpsabi"

struct Mesh {
    const char* v;  // float32 [V, 3], byte strides sv0, sv1
    int64_t sv0, sv1, nv;
    const char* f;  // int32 [F, 3], byte strides sf0, sf1
    int64_t sf0, sf1, nf;
    float vert(int64_t i, int k) const { return *reinterpret_cast<const float*>(v + i * sv0 + k * sv1); }
    int32_t face(int64_t t, int k) const { return *reinterpret_cast<const int32_t*>(f + t * sf0 + k * sf1); }
};

// The set-up of kBatch triangles, one lane per triangle (structure of arrays, so that it is
// computed four triangles at a time). Edge k is the edge opposite corner k, traversed 1 -> 2,
// 2 -> 0, 0 -> 1; its edge function is w_k(p) = a_k (py - oy_k) - b_k (px - ox_k): direction
// (a, b) = Q - P, origin (ox, oy) the lexicographically smaller endpoint (see the header comment).
// The depth plane is z = z0 + gx (px - x0) + gy (py - y0). Rows i0..i1 and columns j0..j1 (as
// doubles) hold the covered pixel centres' bounding box; ``live`` is all ones for a triangle to draw.
struct alignas(32) Batch {
    double x[3][kBatch], y[3][kBatch], z[3][kBatch];
    double ox[3][kBatch], oy[3][kBatch], a[3][kBatch], b[3][kBatch];
    double gx[kBatch], gy[kBatch], zmin[kBatch], zmax[kBatch];
    double j0[kBatch], j1[kBatch], i0[kBatch], i1[kBatch];
    int64_t live[kBatch];
};

template <typename VD>
DM_INLINE VD loadv(const double* p) {
    VD r;
    std::memcpy(&r, p, sizeof r);
    return r;
}
template <typename VD>
DM_INLINE void storev(double* p, VD v) {
    std::memcpy(p, &v, sizeof v);
}
template <typename VD>
DM_INLINE VD vmin(VD a, VD b) {
    return b < a ? b : a;
}
template <typename VD>
DM_INLINE VD vmax(VD a, VD b) {
    return b > a ? b : a;
}

// ceil(c) clamped to [0, n] and floor(c) clamped to [-1, n - 1], for n <= kMaxSide: clamped first
// (a NaN becomes -1) so that the int32 truncation is defined.
template <typename VD>
DM_INLINE VD ceil_clamped(VD c, double n) {
    c = c > -1.0 ? c : -1.0;
    c = c < n ? c : n;
    const VD t = __builtin_convertvector(__builtin_convertvector(c, typename Lanes<VD>::i32), VD);  // toward 0
    return vmax(t + (t < c ? 1.0 : 0.0), VD{} + 0.0);
}
template <typename VD>
DM_INLINE VD floor_clamped(VD c, double n) {
    c = c > -1.0 ? c : -1.0;
    c = c < n - 1.0 ? c : n - 1.0;
    const VD t = __builtin_convertvector(__builtin_convertvector(c, typename Lanes<VD>::i32), VD);
    return t - (t > c ? 1.0 : 0.0);
}

DM_INLINE void load_batch(const Mesh& m, int64_t t0, int n, Batch& B) {
    for (int q = 0; q < n; ++q)
        for (int k = 0; k < 3; ++k) {
            const int64_t vi = m.face(t0 + q, k);
            B.x[k][q] = m.vert(vi, 0);
            B.y[k][q] = m.vert(vi, 1);
            B.z[k][q] = m.vert(vi, 2);
        }
    for (int q = n; q < kBatch; ++q)  // unused lanes: a degenerate triangle
        for (int k = 0; k < 3; ++k) B.x[k][q] = B.y[k][q] = B.z[k][q] = 0.0;
}

template <typename VD>
DM_INLINE void edge_setup(Batch& B, int k, int q, VD px, VD py, VD qx, VD qy) {
    const typename Lanes<VD>::mask p_first = (px < qx) | ((px == qx) & (py < qy));
    storev(B.ox[k] + q, p_first ? px : qx);
    storev(B.oy[k] + q, p_first ? py : qy);
    storev(B.a[k] + q, qx - px);
    storev(B.b[k] + q, qy - py);
}

template <typename VD>
DM_INLINE void setup_batch(Batch& B, double height, double width) {
    constexpr int L = sizeof(VD) / sizeof(double);
    static_assert(kBatch % L == 0, "a batch is whole vectors");
    for (int q = 0; q < kBatch; q += L) {
        const VD x0 = loadv<VD>(B.x[0] + q), x1 = loadv<VD>(B.x[1] + q), x2 = loadv<VD>(B.x[2] + q);
        const VD y0 = loadv<VD>(B.y[0] + q), y1 = loadv<VD>(B.y[1] + q), y2 = loadv<VD>(B.y[2] + q);
        const VD z0 = loadv<VD>(B.z[0] + q), z1 = loadv<VD>(B.z[1] + q), z2 = loadv<VD>(B.z[2] + q);
        const VD area2 = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
        const VD inv = 1.0 / area2;
        storev(B.gx + q, ((z1 - z0) * (y2 - y0) - (z2 - z0) * (y1 - y0)) * inv);
        storev(B.gy + q, ((x1 - x0) * (z2 - z0) - (x2 - x0) * (z1 - z0)) * inv);
        storev(B.zmin + q, vmin(vmin(z0, z1), z2));
        storev(B.zmax + q, vmax(vmax(z0, z1), z2));
        edge_setup(B, 0, q, x1, y1, x2, y2);
        edge_setup(B, 1, q, x2, y2, x0, y0);
        edge_setup(B, 2, q, x0, y0, x1, y1);
        const VD j0 = ceil_clamped(vmin(vmin(x0, x1), x2) - 0.5, width);
        const VD j1 = floor_clamped(vmax(vmax(x0, x1), x2) - 0.5, width);
        const VD i0 = ceil_clamped(vmin(vmin(y0, y1), y2) - 0.5, height);
        const VD i1 = floor_clamped(vmax(vmax(y0, y1), y2) - 0.5, height);
        storev(B.j0 + q, j0);
        storev(B.j1 + q, j1);
        storev(B.i0 + q, i0);
        storev(B.i1 + q, i1);
        // a non-finite coordinate makes the sum inf or NaN, and inf * 0 is NaN
        const VD all = ((x0 + x1) + (x2 + y0)) + ((y1 + y2) + (z0 + z1)) + z2;
        const typename Lanes<VD>::mask live = (all * 0.0 == 0.0) & (area2 != 0.0) & (j0 <= j1) & (i0 <= i1);
        std::memcpy(B.live + q, &live, sizeof live);
    }
}

// ``a`` where ``mask`` is all ones, ``b`` where it is zero, without a branch.
DM_INLINE float select(uint32_t mask, float a, float b) {
    uint32_t ua, ub;
    std::memcpy(&ua, &a, 4);
    std::memcpy(&ub, &b, 4);
    const uint32_t r = (ua & mask) | (ub & ~mask);
    float out;
    std::memcpy(&out, &r, 4);
    return out;
}

// One pixel centre at a time, branchless (whether a centre is covered is unpredictable in small
// triangles).
DM_INLINE void raster_batch_scalar(const Batch& B, int n, int64_t width, float* front, float* back) {
    for (int q = 0; q < n; ++q) {
        if (!B.live[q]) continue;
        const double ox0 = B.ox[0][q], ox1 = B.ox[1][q], ox2 = B.ox[2][q];
        const double oy0 = B.oy[0][q], oy1 = B.oy[1][q], oy2 = B.oy[2][q];
        const double a0 = B.a[0][q], a1 = B.a[1][q], a2 = B.a[2][q];
        const double b0 = B.b[0][q], b1 = B.b[1][q], b2 = B.b[2][q];
        const double x0 = B.x[0][q], y0 = B.y[0][q], z0 = B.z[0][q];
        const double gx = B.gx[q], gy = B.gy[q], zmin = B.zmin[q], zmax = B.zmax[q];
        const int64_t j0 = static_cast<int64_t>(B.j0[q]), j1 = static_cast<int64_t>(B.j1[q]);
        for (int64_t i = static_cast<int64_t>(B.i0[q]), i1 = static_cast<int64_t>(B.i1[q]); i <= i1; ++i) {
            const double py = static_cast<double>(i) + 0.5;
            const double r0 = a0 * (py - oy0), r1 = a1 * (py - oy1), r2 = a2 * (py - oy2);
            const double zr = z0 + gy * (py - y0);
            float* frow = front + i * width;
            float* brow = back + i * width;
            double px = static_cast<double>(j0) + 0.5;
            for (int64_t j = j0; j <= j1; ++j, px += 1.0) {
                const double w0 = r0 - b0 * (px - ox0), w1 = r1 - b1 * (px - ox1), w2 = r2 - b2 * (px - ox2);
                const bool covered = (std::min(std::min(w0, w1), w2) >= 0.0) | (std::max(std::max(w0, w1), w2) <= 0.0);
                // + 0.0 turns -0 into +0: which of two equal zeros a min keeps differs between
                // this loop and numpy's, and their bits would differ
                const double d = std::min(std::max(zr + gx * (px - x0), zmin), zmax) + 0.0;
                const uint32_t keep = 0u - static_cast<uint32_t>(covered);
                const float df = static_cast<float>(d);
                frow[j] = std::min(frow[j], select(keep, df, kInf));
                brow[j] = std::max(brow[j], select(keep, df, -kInf));
            }
        }
    }
}

// Pixel centres (i, s..s+3) of a window of four columns, given the window's column terms.
struct Window {
    v4d c0, c1, c2, zc;  // b_k (px - ox_k) and gx (px - x0) of the four columns
    v4l in_cols;         // lanes inside the triangle's columns
};

DM_INLINE Window window_at(const Batch& B, int q, int64_t s, int64_t js) {
    const v4d px = static_cast<double>(s) + v4d{0.5, 1.5, 2.5, 3.5};
    return {B.b[0][q] * (px - B.ox[0][q]), B.b[1][q] * (px - B.ox[1][q]), B.b[2][q] * (px - B.ox[2][q]),
            B.gx[q] * (px - B.x[0][q]), (px >= static_cast<double>(js) + 0.5) & (px <= B.j1[q] + 0.5)};
}

DM_INLINE void window_row(const Batch& B, int q, const Window& w, int64_t i, float* fp, float* bp) {
    const v4f inf4 = {kInf, kInf, kInf, kInf};
    const double py = static_cast<double>(i) + 0.5;
    const v4d w0 = B.a[0][q] * (py - B.oy[0][q]) - w.c0;
    const v4d w1 = B.a[1][q] * (py - B.oy[1][q]) - w.c1;
    const v4d w2 = B.a[2][q] * (py - B.oy[2][q]) - w.c2;
    const v4l covered = ((vmin(vmin(w0, w1), w2) >= 0.0) | (vmax(vmax(w0, w1), w2) <= 0.0)) & w.in_cols;
    const v4d d = vmin(vmax((B.z[0][q] + B.gy[q] * (py - B.y[0][q])) + w.zc, v4d{} + B.zmin[q]), v4d{} + B.zmax[q]) + 0.0;
    const v4f df = __builtin_convertvector(d, v4f);
    const v4i keep = __builtin_convertvector(covered, v4i);
    v4f fo, bo;
    std::memcpy(&fo, fp, sizeof fo);
    std::memcpy(&bo, bp, sizeof bo);
    const v4f fz = keep ? df : inf4, bz = keep ? df : -inf4;
    fo = fz < fo ? fz : fo;
    bo = bz > bo ? bz : bo;
    std::memcpy(fp, &fo, sizeof fo);
    std::memcpy(bp, &bo, sizeof bo);
}

// The same arithmetic four columns at a time (width >= 4): windows of columns [s, s + 4) that stay
// inside the row, lanes outside the triangle's columns masked. A triangle no wider than a window
// (most of a body mesh's) computes its column terms once and walks its rows; a wider one walks
// rows then windows, in memory order.
DM_INLINE void raster_batch_wide(const Batch& B, int n, int64_t width, float* front, float* back) {
    for (int q = 0; q < n; ++q) {
        if (!B.live[q]) continue;
        const int64_t j0 = static_cast<int64_t>(B.j0[q]), j1 = static_cast<int64_t>(B.j1[q]);
        const int64_t i0 = static_cast<int64_t>(B.i0[q]), i1 = static_cast<int64_t>(B.i1[q]);
        if (j1 - j0 < 4) {
            const int64_t s = std::min(j0, width - 4);
            const Window w = window_at(B, q, s, j0);
            for (int64_t i = i0; i <= i1; ++i) window_row(B, q, w, i, front + i * width + s, back + i * width + s);
        } else {
            for (int64_t i = i0; i <= i1; ++i)
                for (int64_t js = j0; js <= j1; js += 4) {
                    const int64_t s = std::min(js, width - 4);
                    window_row(B, q, window_at(B, q, s, js), i, front + i * width + s, back + i * width + s);
                }
        }
    }
}

template <bool kWide>
DM_INLINE void rasterize_impl(const Mesh& m, int64_t height, int64_t width, float* front, float* back) {
    Batch B;
    for (int64_t t0 = 0; t0 < m.nf; t0 += kBatch) {
        const int n = static_cast<int>(std::min<int64_t>(kBatch, m.nf - t0));
        load_batch(m, t0, n, B);
        if constexpr (kWide) {
            setup_batch<v4d>(B, static_cast<double>(height), static_cast<double>(width));
            raster_batch_wide(B, n, width, front, back);
        } else {
            setup_batch<v2d>(B, static_cast<double>(height), static_cast<double>(width));
            raster_batch_scalar(B, n, width, front, back);
        }
    }
}

void rasterize_generic(const Mesh& m, int64_t height, int64_t width, float* front, float* back) {
    rasterize_impl<false>(m, height, width, front, back);
}

#if defined(__x86_64__)
// Four-wide vectors are native with AVX2 (without FMA: every product is rounded, as in the twin).
__attribute__((target("avx2"))) void rasterize_avx2(const Mesh& m, int64_t height, int64_t width, float* front,
                                                    float* back) {
    rasterize_impl<true>(m, height, width, front, back);
}

bool has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
#endif

// Every path produces the same bits (tests/body/test_maps.py checks both against the numpy twin).
void rasterize_depth_range(const Mesh& m, int64_t height, int64_t width, float* front, float* back, bool simd) {
#if defined(__x86_64__)
    static const bool avx2 = has_avx2();
    if (simd && avx2 && width >= 4) return rasterize_avx2(m, height, width, front, back);
#endif
    (void)simd;
    rasterize_generic(m, height, width, front, back);
}

std::string describe(py::handle obj) {
    if (!py::isinstance<py::array>(obj)) return std::string(py::str(py::type::of(obj).attr("__name__")));
    py::array a = py::reinterpret_borrow<py::array>(obj);
    std::string shape = "[";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) shape += (d ? ", " : "") + std::to_string(a.shape(d));
    return std::string(py::str(a.dtype())) + " " + shape + "]";
}

// ``obj`` as a 2-D [N, 3] numpy array of exactly the element type T (any strides; no copy, so
// nothing proportional to N is allocated), else ValueError naming ``name``.
template <typename T>
py::array checked_rows3(py::handle obj, const char* name, const char* want) {
    const bool ok = py::isinstance<py::array_t<T>>(obj) && py::reinterpret_borrow<py::array>(obj).ndim() == 2 &&
                    py::reinterpret_borrow<py::array>(obj).shape(1) == 3;
    if (!ok) throw std::invalid_argument(std::string(name) + ": expected a numpy " + want + ", got " + describe(obj));
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
        throw std::invalid_argument(std::string(name) + ": expected an aligned array");
    return a;
}

py::tuple depth_range_maps(py::handle vertices, py::handle faces, int64_t height, int64_t width, bool simd) {
    const py::array v = checked_rows3<float>(vertices, "vertices", "float32 [V, 3]");
    const py::array f = checked_rows3<int32_t>(faces, "faces", "int32 [F, 3]");
    if (height < 0 || height > kMaxSide || width < 0 || width > kMaxSide)
        throw std::invalid_argument("height, width: expected 0..65536, got " + std::to_string(height) + " x " +
                                    std::to_string(width));
    const Mesh m{static_cast<const char*>(v.data()), v.strides(0), v.strides(1), v.shape(0),
                 static_cast<const char*>(f.data()), f.strides(0), f.strides(1), f.shape(0)};
    py::array_t<float> front({static_cast<py::ssize_t>(height), static_cast<py::ssize_t>(width)});
    py::array_t<float> back({static_cast<py::ssize_t>(height), static_cast<py::ssize_t>(width)});
    float* fr = front.mutable_data();
    float* bk = back.mutable_data();
    int64_t bad_row = -1, bad_index = 0;
    {
        py::gil_scoped_release release;
        for (int64_t t = 0; t < m.nf && bad_row < 0; ++t)
            for (int k = 0; k < 3; ++k) {
                const int32_t vi = m.face(t, k);
                if (vi < 0 || vi >= m.nv) {
                    bad_row = t;
                    bad_index = vi;
                    break;
                }
            }
        if (bad_row < 0) {
            std::fill(fr, fr + height * width, std::numeric_limits<float>::infinity());
            std::fill(bk, bk + height * width, -std::numeric_limits<float>::infinity());
            rasterize_depth_range(m, height, width, fr, bk, simd);
        }
    }
    if (bad_row >= 0)
        throw std::invalid_argument("faces: row " + std::to_string(bad_row) + " has vertex index " +
                                    std::to_string(bad_index) + " outside [0, " + std::to_string(m.nv) + ")");
    return py::make_tuple(front, back);
}

}  // namespace

void register_depth_maps(py::module_& m) {
    m.def("depth_range_maps", &depth_range_maps, py::arg("vertices"), py::arg("faces"), py::arg("height"),
          py::arg("width"), py::arg("simd") = true,
          "(front, back) float32 [height, width]: the min and max depth z over the triangles covering each "
          "pixel centre (+inf / -inf where none). vertices float32 [V, 3] in raster coordinates (x right, y "
          "down in pixels, pixel (i, j)'s centre at (j + 0.5, i + 0.5), z = depth, larger = farther; "
          "orthographic along +z), faces int32 [F, 3] (either winding). A centre inside or on a triangle is "
          "covered; degenerate or non-finite triangles cover nothing. simd=False runs the portable one-pixel loop "
          "(the same bits; for tests). Releases the GIL.");
}
