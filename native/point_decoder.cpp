// The embedded model's point decoder (streamrecon.embedded.net.PointDecoder, eval mode) as one
// native pass over the query points, without the GIL.
//
// Per point (x, y, z) in the crop frame, with (u, v) = (x, -y) the image-sampling position:
//   f     = bilinear(features, u, v)            zeros padding, align_corners=True, C channels
//   m     = bilinear(mask, u, v)                the same, 1 channel
//   zt    = linear(z_table, z)                  border padding, align_corners=True, feat channels
//   h     = f[:feat] + zt + mask_w * m          (+ depth_w @ (z - f[feat], f[feat+1] - z) with a depth prior)
//   h     = W_k @ leaky_relu(h, 0.1) + b_k      for each layer k (the last has 1 output)
//   logit = h[0]                                (+ k * m * min(z - f[feat], f[feat+1] - z) with a depth prior)
//
// The torch path computes the same function with grid_sample and matmuls over all points at
// once ([B, C, N] intermediates of tens of MB: memory-bound); here a block of points stays in
// L1/L2 and every layer runs in register tiles of 8 points x 16 outputs the compiler vectorises
// (AVX-512 / AVX2+FMA / baseline builds of the block code, picked at run time). Sums run in a different order than torch's: results agree to
// float rounding (tests compare them, tests/test_point_decoder.py).
#include "point_decoder.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;

namespace {

using farray = py::array_t<float, py::array::c_style | py::array::forcecast>;

constexpr int kBlock = 32;  // points per block: activations of 32 x 96 floats stay in L1

struct Layer {
    const float* wt;  // [in, out] (transposed weight)
    const float* b;   // [out]
    int in, out;
};

struct Params {
    const float* feat;  // [H * W, C] channels-last
    int H, W, C;
    const float* mask;  // [MH, MW]
    int MH, MW;
    const float* ztab;  // [T, F]
    int T, F;
    const float* mask_w;   // [F]
    const float* depth_w;  // [F, 2] or null
    float prior_k;
    std::vector<Layer> layers;
    int max_width;
};

// Bilinear corner rows and weights of (u, v) in [-1, 1] on an h x w grid (align_corners=True,
// zeros padding: corners outside the grid get weight 0 and index 0).
inline void corners(float u, float v, int h, int w, int64_t idx[4], float wt[4]) {
    const float ix = (u + 1.0f) * (0.5f * static_cast<float>(w - 1));
    const float iy = (v + 1.0f) * (0.5f * static_cast<float>(h - 1));
    const float x0f = std::floor(ix), y0f = std::floor(iy);
    const float fx = ix - x0f, fy = iy - y0f;
    const int64_t x0 = static_cast<int64_t>(x0f), y0 = static_cast<int64_t>(y0f);
    const int64_t xs[4] = {x0, x0 + 1, x0, x0 + 1};
    const int64_t ys[4] = {y0, y0, y0 + 1, y0 + 1};
    const float ws[4] = {(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy};
    for (int k = 0; k < 4; ++k) {
        const bool in = xs[k] >= 0 && xs[k] < w && ys[k] >= 0 && ys[k] < h;
        idx[k] = in ? ys[k] * w + xs[k] : 0;
        wt[k] = in ? ws[k] : 0.0f;
    }
}

// 16 floats as one value (GCC/Clang vector extension): a zmm register in the AVX-512 build, two
// ymm in the AVX2 one, four xmm in the baseline. Loaded and stored with memcpy (unaligned).
typedef float v16 __attribute__((vector_size(64)));

inline __attribute__((always_inline)) v16 load16(const float* p) {
    v16 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// One register tile of a layer: rows 0..R of h_out[:, o0:o0+16] = b + h_in @ Wt (h_in already
// activated). The R accumulators stay in vector registers across the whole input loop.
template <int R>
inline __attribute__((always_inline)) void layer_tile16(const float* hin, int stride, const Layer& L, int o0,
                                                        float* hout) {
    v16 acc[R];
    const v16 bias = load16(L.b + o0);
    for (int r = 0; r < R; ++r) acc[r] = bias;
    for (int j = 0; j < L.in; ++j) {
        const v16 w = load16(L.wt + static_cast<int64_t>(j) * L.out + o0);
        for (int r = 0; r < R; ++r) acc[r] += hin[static_cast<int64_t>(r) * stride + j] * w;
    }
    for (int r = 0; r < R; ++r) std::memcpy(hout + static_cast<int64_t>(r) * stride + o0, &acc[r], sizeof(v16));
}

// The same for one output column (widths that are not a multiple of 16, and the last layer).
template <int R>
inline __attribute__((always_inline)) void layer_tile1(const float* hin, int stride, const Layer& L, int o,
                                                       float* hout) {
    for (int r = 0; r < R; ++r) {
        const float* h = hin + static_cast<int64_t>(r) * stride;
        float acc = L.b[o];
        for (int j = 0; j < L.in; ++j) acc += h[j] * L.wt[static_cast<int64_t>(j) * L.out + o];
        hout[static_cast<int64_t>(r) * stride + o] = acc;
    }
}

// A one-output layer (the last): its weights are contiguous over the inputs, so each row is a
// dot product in 16-wide partial sums, the R rows interleaved, then the 16 lanes summed as a
// tree. layer_tile1 runs each row as one chain of L.in dependent scalar FMAs: the whole decoder
// 15.8 -> 14.6 ms for 44k points (a frame's queries at 128) on one core of the 2-core Xeon.
template <int R>
inline __attribute__((always_inline)) void layer_dot1(const float* hin, int stride, const Layer& L, float* hout) {
    const v16 zero = {0.0f};
    v16 acc[R];
    for (int r = 0; r < R; ++r) acc[r] = zero;
    int j = 0;
    for (; j + 16 <= L.in; j += 16) {
        const v16 w = load16(L.wt + j);
        for (int r = 0; r < R; ++r) acc[r] += load16(hin + static_cast<int64_t>(r) * stride + j) * w;
    }
    for (int r = 0; r < R; ++r) {
        const float* h = hin + static_cast<int64_t>(r) * stride;
        float lanes[16];
        std::memcpy(lanes, &acc[r], sizeof lanes);
        for (int width = 8; width >= 1; width /= 2)
            for (int k = 0; k < width; ++k) lanes[k] += lanes[k + width];
        float sum = L.b[0] + lanes[0];
        for (int jj = j; jj < L.in; ++jj) sum += h[jj] * L.wt[jj];
        hout[static_cast<int64_t>(r) * stride] = sum;
    }
}

// h_out[i, o] = b[o] + sum_j h_in[i, j] * Wt[j, o] for R rows.
template <int R>
inline __attribute__((always_inline)) void layer_rows(const float* hin, int stride, const Layer& L, float* hout) {
    if (L.out == 1) {
        layer_dot1<R>(hin, stride, L, hout);
        return;
    }
    int o0 = 0;
    for (; o0 + 16 <= L.out; o0 += 16) layer_tile16<R>(hin, stride, L, o0, hout);
    for (; o0 < L.out; ++o0) layer_tile1<R>(hin, stride, L, o0, hout);
}

inline __attribute__((always_inline)) void decode_block_impl(const Params& p, const float* pts, int n, float* out,
                                                             float* buf_a, float* buf_b, float* fbuf) {
    const int F = p.F, C = p.C;
    float prior[kBlock];
    // first layer's input: sampled features + depth term + mask term
    for (int i = 0; i < n; ++i) {
        const float x = pts[3 * i], y = pts[3 * i + 1], z = pts[3 * i + 2];
        int64_t idx[4];
        float wt[4];
        corners(x, -y, p.H, p.W, idx, wt);
        float* f = fbuf;
        const float* r0 = p.feat + idx[0] * C;
        const float* r1 = p.feat + idx[1] * C;
        const float* r2 = p.feat + idx[2] * C;
        const float* r3 = p.feat + idx[3] * C;
        for (int c = 0; c < C; ++c) f[c] = wt[0] * r0[c] + wt[1] * r1[c] + wt[2] * r2[c] + wt[3] * r3[c];
        int64_t midx[4];
        float mwt[4];
        corners(x, -y, p.MH, p.MW, midx, mwt);
        const float m = mwt[0] * p.mask[midx[0]] + mwt[1] * p.mask[midx[1]] + mwt[2] * p.mask[midx[2]] +
                        mwt[3] * p.mask[midx[3]];
        // z table: border padding clamps the position into [0, T - 1]
        float iz = (z + 1.0f) * (0.5f * static_cast<float>(p.T - 1));
        iz = std::min(std::max(iz, 0.0f), static_cast<float>(p.T - 1));
        const float z0f = std::floor(iz);
        const float fz = iz - z0f;
        const int64_t z0 = static_cast<int64_t>(z0f);
        const int64_t z1 = std::min<int64_t>(z0 + 1, p.T - 1);
        const float* t0 = p.ztab + z0 * F;
        const float* t1 = p.ztab + z1 * F;
        float* h = buf_a + static_cast<int64_t>(i) * p.max_width;
        const float a0 = 1.0f - fz;
        for (int c = 0; c < F; ++c) h[c] = f[c] + (a0 * t0[c] + fz * t1[c]) + p.mask_w[c] * m;
        prior[i] = 0.0f;
        if (p.depth_w != nullptr) {
            const float g0 = z - f[F], g1 = f[F + 1] - z;
            for (int c = 0; c < F; ++c) h[c] += p.depth_w[2 * c] * g0 + p.depth_w[2 * c + 1] * g1;
            prior[i] = p.prior_k * m * std::min(g0, g1);
        }
    }
    // the layers: h_out = b + leaky_relu(h_in, 0.1) @ Wt, in tiles of 8 rows x 16 outputs
    float* cur = buf_a;
    float* nxt = buf_b;
    const int stride = p.max_width;
    for (const Layer& L : p.layers) {
        for (int i = 0; i < n; ++i) {
            float* hi = cur + static_cast<int64_t>(i) * stride;
            for (int j = 0; j < L.in; ++j) hi[j] = std::max(hi[j], 0.1f * hi[j]);  // leaky ReLU (slope < 1)
        }
        int i = 0;
        for (; i + 8 <= n; i += 8) layer_rows<8>(cur + static_cast<int64_t>(i) * stride, stride, L, nxt + static_cast<int64_t>(i) * stride);
        for (; i + 4 <= n; i += 4) layer_rows<4>(cur + static_cast<int64_t>(i) * stride, stride, L, nxt + static_cast<int64_t>(i) * stride);
        for (; i < n; ++i) layer_rows<1>(cur + static_cast<int64_t>(i) * stride, stride, L, nxt + static_cast<int64_t>(i) * stride);
        std::swap(cur, nxt);
    }
    for (int i = 0; i < n; ++i) out[i] = cur[static_cast<int64_t>(i) * stride] + prior[i];
}

// The same block code compiled for three instruction sets; decode_points picks one at run time by
// what the CPU supports (target_clones' "arch=" dispatch tests the CPU model, not its features).
__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,bmi,bmi2")))
void decode_block_avx512(const Params& p, const float* pts, int n, float* out, float* a, float* b, float* f) {
    decode_block_impl(p, pts, n, out, a, b, f);
}

__attribute__((target("avx2,fma,bmi,bmi2")))
void decode_block_avx2(const Params& p, const float* pts, int n, float* out, float* a, float* b, float* f) {
    decode_block_impl(p, pts, n, out, a, b, f);
}

void decode_block_generic(const Params& p, const float* pts, int n, float* out, float* a, float* b, float* f) {
    decode_block_impl(p, pts, n, out, a, b, f);
}

using BlockFn = void (*)(const Params&, const float*, int, float*, float*, float*, float*);

BlockFn pick_block_fn() {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("fma"))
        return decode_block_avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return decode_block_avx2;
    return decode_block_generic;
}

void check2(const farray& a, const char* name) {
    if (a.ndim() != 2) throw std::invalid_argument(std::string(name) + ": expected a 2-D float32 array");
}

py::array_t<float> decode_points(farray feat, int H, int W, farray mask, farray ztab, farray mask_w,
                                 py::object depth_w_obj, float prior_k, std::vector<farray> weights_t,
                                 std::vector<farray> biases, farray points) {
    check2(feat, "feat");
    check2(mask, "mask");
    check2(ztab, "z_table");
    check2(points, "points");
    if (H < 1 || W < 1 || feat.shape(0) != static_cast<py::ssize_t>(H) * W)
        throw std::invalid_argument("feat: expected [H * W, C] rows for the given H, W");
    if (points.shape(1) != 3) throw std::invalid_argument("points: expected [N, 3]");
    Params p;
    p.feat = feat.data();
    p.H = H;
    p.W = W;
    p.C = static_cast<int>(feat.shape(1));
    p.mask = mask.data();
    p.MH = static_cast<int>(mask.shape(0));
    p.MW = static_cast<int>(mask.shape(1));
    p.ztab = ztab.data();
    p.T = static_cast<int>(ztab.shape(0));
    p.F = static_cast<int>(ztab.shape(1));
    if (p.T < 2 || p.MH < 1 || p.MW < 1) throw std::invalid_argument("z_table / mask: empty");
    if (mask_w.ndim() != 1 || mask_w.shape(0) != p.F) throw std::invalid_argument("mask_w: expected [F]");
    p.mask_w = mask_w.data();
    farray depth_w;
    p.depth_w = nullptr;
    if (!depth_w_obj.is_none()) {
        depth_w = depth_w_obj.cast<farray>();
        if (depth_w.ndim() != 2 || depth_w.shape(0) != p.F || depth_w.shape(1) != 2)
            throw std::invalid_argument("depth_w: expected [F, 2]");
        if (p.C < p.F + 2) throw std::invalid_argument("feat: a depth prior needs F + 2 channels");
        p.depth_w = depth_w.data();
    } else if (p.C < p.F) {
        throw std::invalid_argument("feat: fewer channels than the z table's F");
    }
    p.prior_k = prior_k;
    if (weights_t.empty() || weights_t.size() != biases.size())
        throw std::invalid_argument("weights_t / biases: expected the same, non-zero number of layers");
    int in = p.F;
    p.max_width = p.F;
    for (size_t k = 0; k < weights_t.size(); ++k) {
        const farray& w = weights_t[k];
        const farray& b = biases[k];
        if (w.ndim() != 2 || w.shape(0) != in || b.ndim() != 1 || b.shape(0) != w.shape(1))
            throw std::invalid_argument("layer " + std::to_string(k) + ": expected Wt [in, out] and b [out] chained from F");
        p.layers.push_back({w.data(), b.data(), in, static_cast<int>(w.shape(1))});
        in = static_cast<int>(w.shape(1));
        p.max_width = std::max(p.max_width, in);
    }
    if (in != 1) throw std::invalid_argument("the last layer must have 1 output");
    const int64_t n = points.shape(0);
    py::array_t<float> out(static_cast<py::ssize_t>(n));
    float* o = out.mutable_data();
    const float* pts = points.data();
    {
        py::gil_scoped_release release;
        static const BlockFn block_fn = pick_block_fn();
        std::vector<float> a(static_cast<size_t>(kBlock) * p.max_width), b(a.size()), f(static_cast<size_t>(p.C));
        for (int64_t s = 0; s < n; s += kBlock) {
            const int m = static_cast<int>(std::min<int64_t>(kBlock, n - s));
            block_fn(p, pts + 3 * s, m, o + s, a.data(), b.data(), f.data());
        }
    }
    return out;
}

}  // namespace

void register_point_decoder(py::module_& m) {
    m.def("decode_points", &decode_points, py::arg("feat"), py::arg("H"), py::arg("W"), py::arg("mask"),
          py::arg("z_table"), py::arg("mask_w"), py::arg("depth_w"), py::arg("prior_k"), py::arg("weights_t"),
          py::arg("biases"), py::arg("points"),
          "Occupancy logits [N] of the embedded point decoder (see native/point_decoder.cpp).");
}
