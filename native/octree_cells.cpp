// Surface cells of an octree grid and their corner values, in one pass over the queried points.
// Native twin of OctreeOccupancy.surface_cells() + corner_values() (streamrecon/occupancy/octree.py);
// tests/test_octree.py compares them (same cells, bit-identical values).
//
// Finest lattice: L + 1 points per axis (L = extent), linear key (i * n1 + j) * n1 + k.
// keys: sorted int64 [K] of queried points, vals: float32 [K] their values; parent: float32
// [n2, n2, n2] values of the stride-2 lattice (n2 = L / 2 + 1). A point that was not queried takes
// its value by midpoint interpolation of its parent support, x then y then z, (a + b) * 0.5 in
// float32 (the torch code's order), and its side from any support point (supports of
// interpolated points never straddle the level).
//
// Speed (2-core Xeon, 128: 45k points -> 24k cells; 256): 23 -> 6.6 ms and 131 -> 29 ms against the
// first version (a hash lookup, 64-bit divisions, a sort of the crossed cells): keys decode by a
// multiply (FastDiv), points are found by a presence bitset and word ranks, crossed cells are
// deduplicated in a bitset. Key decoding is 32-bit: L <= 1600 (octree.py falls back above).
#include "octree_cells.h"

#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace py = pybind11;

namespace {

// Value of child-lattice point (i, j, k) by midpoint interpolation of the parent lattice
// ([n2]^3, stride 2): x, then y, then z, (a + b) * 0.5 in float32, the order of the torch code.
inline float interp_from_parent(const float* parent, int64_t n2, int64_t i, int64_t j, int64_t k) {
    const int64_t li = i >> 1, lj = j >> 1, lk = k >> 1, oi = i & 1, oj = j & 1, ok = k & 1;
    float c[2][2][2];
    for (int dx = 0; dx < 2; ++dx)
        for (int dy = 0; dy < 2; ++dy)
            for (int dz = 0; dz < 2; ++dz) c[dx][dy][dz] = parent[((li + dx * oi) * n2 + lj + dy * oj) * n2 + lk + dz * ok];
    float cx[2][2], cy[2];
    for (int dy = 0; dy < 2; ++dy)
        for (int dz = 0; dz < 2; ++dz) cx[dy][dz] = (c[0][dy][dz] + c[1][dy][dz]) * 0.5f;
    for (int dz = 0; dz < 2; ++dz) cy[dz] = (cx[0][dz] + cx[1][dz]) * 0.5f;
    return (cy[0] + cy[1]) * 0.5f;
}

// floor(x / d) for 32-bit x and 2 <= d < 2^32 by one 128-bit multiply (Lemire et al., "Faster
// remainder by direct computation", 2019): the lattice's keys are decoded into coordinates per
// point, and a 64-bit division by a run-time divisor costs tens of cycles.
struct FastDiv {
    uint64_t m;
    uint64_t d;
    explicit FastDiv(uint64_t divisor) : m(UINT64_MAX / divisor + 1), d(divisor) {}
    uint64_t div(uint64_t x) const { return static_cast<uint64_t>((static_cast<unsigned __int128>(m) * x) >> 64); }
};

// (i, j, k) of a key (i * n + j) * n + k of an n^3 lattice (n^3 < 2^32).
struct KeyCoder {
    FastDiv by_n, by_nn;
    int64_t n;
    explicit KeyCoder(int64_t side) : by_n(static_cast<uint64_t>(side)), by_nn(static_cast<uint64_t>(side * side)), n(side) {}
    void decode(int64_t key, int64_t out[3]) const {
        const uint64_t i = by_nn.div(static_cast<uint64_t>(key));
        const uint64_t rest = static_cast<uint64_t>(key) - i * static_cast<uint64_t>(n * n);
        const uint64_t j = by_n.div(rest);
        out[0] = static_cast<int64_t>(i);
        out[1] = static_cast<int64_t>(j);
        out[2] = static_cast<int64_t>(rest - j * static_cast<uint64_t>(n));
    }
};

inline int popcount64(uint64_t x) { return __builtin_popcountll(x); }

struct Lattice {
    const int64_t* keys;
    const float* vals;
    int64_t nk;
    const float* parent;
    int64_t n1, n2;
    float level;  // compared in float32, as torch compares a float32 tensor with a Python float
    KeyCoder coder;
    // Key -> row. Lattices up to 2^28 points: a presence bit per point and the rank of each
    // 64-bit word (row = rank + set bits below; the keys are sorted, so rows are ranks): two
    // loads from arrays of a few MB. Larger ones: open addressing on a hash.
    bool use_bits = false;
    std::vector<uint64_t> bits;
    std::vector<uint32_t> rank;
    std::vector<int64_t> table;
    uint64_t mask = 0;

    static uint64_t hash(int64_t k) {
        uint64_t x = static_cast<uint64_t>(k);
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        return x;
    }
    void build(uint64_t bitset_max) {
        const uint64_t points = static_cast<uint64_t>(n1) * n1 * n1;
        use_bits = points <= bitset_max;
        if (use_bits) {
            const size_t words = static_cast<size_t>((points + 63) / 64);
            bits.assign(words, 0);
            for (int64_t r = 0; r < nk; ++r) bits[keys[r] >> 6] |= uint64_t(1) << (keys[r] & 63);
            rank.resize(words);
            uint32_t acc = 0;
            for (size_t w = 0; w < words; ++w) {
                rank[w] = acc;
                acc += static_cast<uint32_t>(popcount64(bits[w]));
            }
            return;
        }
        uint64_t cap = 16;
        while (cap < static_cast<uint64_t>(nk) * 2) cap <<= 1;
        table.assign(cap, -1);
        mask = cap - 1;
        for (int64_t r = 0; r < nk; ++r) {
            uint64_t i = hash(keys[r]) & mask;
            while (table[i] >= 0) i = (i + 1) & mask;
            table[i] = r;
        }
    }
    int64_t find(int64_t key) const {
        if (use_bits) {
            const uint64_t word = bits[key >> 6];
            const int b = static_cast<int>(key & 63);
            if (!((word >> b) & 1)) return -1;
            return static_cast<int64_t>(rank[key >> 6]) + popcount64(word & ((uint64_t(1) << b) - 1));
        }
        for (uint64_t i = hash(key) & mask;; i = (i + 1) & mask) {
            const int64_t r = table[i];
            if (r < 0 || keys[r] == key) return r;
        }
    }
    float parent_at(int64_t i, int64_t j, int64_t k) const { return parent[(i * n2 + j) * n2 + k]; }
    bool side(int64_t key) const {
        const int64_t f = find(key);
        if (f >= 0) return vals[f] > level;
        int64_t c[3];
        coder.decode(key, c);
        return parent_at(c[0] >> 1, c[1] >> 1, c[2] >> 1) > level;
    }
    float value(int64_t i, int64_t j, int64_t k) const {
        const int64_t f = find((i * n1 + j) * n1 + k);
        if (f >= 0) return vals[f];
        return interp_from_parent(parent, n2, i, j, k);
    }
};

constexpr int kCorner[8][3] = {{0, 0, 0}, {1, 0, 0}, {1, 1, 0}, {0, 1, 0},
                               {0, 0, 1}, {1, 0, 1}, {1, 1, 1}, {0, 1, 1}};

py::tuple octree_surface_cells(py::array_t<int64_t, py::array::c_style | py::array::forcecast> keys,
                               py::array_t<float, py::array::c_style | py::array::forcecast> vals,
                               py::array_t<float, py::array::c_style | py::array::forcecast> parent,
                               int64_t extent, int64_t resolution, double level, int64_t bitset_max) {
    if (keys.ndim() != 1 || vals.ndim() != 1 || keys.shape(0) != vals.shape(0))
        throw std::invalid_argument("keys, vals: expected 1-D arrays of the same length");
    if (extent < 2 || extent % 2 || resolution < 2 || resolution > extent + 1 || extent > 1600)
        throw std::invalid_argument("extent: expected an even L in [2, 1600] with resolution <= L + 1");
    const int64_t n2 = extent / 2 + 1;
    if (parent.ndim() != 3 || parent.shape(0) != n2 || parent.shape(1) != n2 || parent.shape(2) != n2)
        throw std::invalid_argument("parent: expected float32 [L/2 + 1]^3");
    Lattice lat{keys.data(), vals.data(), keys.shape(0), parent.data(), extent + 1, n2, static_cast<float>(level), KeyCoder(extent + 1)};
    const int64_t n1 = lat.n1, nk = lat.nk;
    for (int64_t r = 0; r < nk; ++r) {
        if (lat.keys[r] < 0 || lat.keys[r] >= n1 * n1 * n1 || (r && lat.keys[r] <= lat.keys[r - 1]))
            throw std::invalid_argument("keys: expected sorted unique keys of the finest lattice");
    }
    std::vector<int64_t> cells, ijk;  // linear cell keys, then their (i, j, k)
    std::vector<float> corners;
    {
        py::gil_scoped_release release;
        bitset_max = std::clamp<int64_t>(bitset_max, 0, int64_t(1) << 28);  // at most 32 MB of bits
        lat.build(static_cast<uint64_t>(bitset_max));
        // crossed cells, deduplicated in a bit set over the cell lattice (up to 2^28 cells), else sorted
        std::vector<uint64_t> cell_bits;
        if (static_cast<uint64_t>(resolution) * resolution * resolution <= static_cast<uint64_t>(bitset_max))
            cell_bits.assign(static_cast<size_t>((static_cast<uint64_t>(resolution) * resolution * resolution + 63) / 64), 0);
        const int64_t strides[3] = {n1 * n1, n1, 1};
        const int64_t hi = resolution - 2;  // last cell index
        for (int64_t r = 0; r < nk; ++r) {
            const int64_t p = lat.keys[r];
            const bool sp = lat.vals[r] > lat.level;
            int64_t pc[3];
            lat.coder.decode(p, pc);
            for (int a = 0; a < 3; ++a) {
                int64_t lower[2];
                int nl = 0;
                if (pc[a] < extent && lat.side(p + strides[a]) != sp) lower[nl++] = p;
                if (pc[a] > 0) {
                    const int64_t q = p - strides[a];
                    if (lat.find(q) < 0 && lat.side(q) != sp) lower[nl++] = q;
                }
                const int b = (a + 1) % 3, c = (a + 2) % 3;
                for (int e = 0; e < nl; ++e) {
                    int64_t l[3];
                    lat.coder.decode(lower[e], l);
                    for (int db = 0; db < 2; ++db)
                        for (int dc = 0; dc < 2; ++dc) {
                            int64_t cc[3] = {l[0], l[1], l[2]};
                            cc[b] -= db;
                            cc[c] -= dc;
                            if (cc[0] < 0 || cc[1] < 0 || cc[2] < 0 || cc[0] > hi || cc[1] > hi || cc[2] > hi) continue;
                            const int64_t key = (cc[0] * resolution + cc[1]) * resolution + cc[2];
                            if (cell_bits.empty())
                                cells.push_back(key);
                            else
                                cell_bits[key >> 6] |= uint64_t(1) << (key & 63);
                        }
                }
            }
        }
        if (cell_bits.empty()) {
            std::sort(cells.begin(), cells.end());
            cells.erase(std::unique(cells.begin(), cells.end()), cells.end());
        } else {  // the set bits in order are the sorted unique cells
            for (size_t w = 0; w < cell_bits.size(); ++w) {
                for (uint64_t word = cell_bits[w]; word; word &= word - 1)
                    cells.push_back(static_cast<int64_t>(w * 64 + __builtin_ctzll(word)));
            }
        }
        corners.resize(cells.size() * 8);
        ijk.resize(cells.size() * 3);
        const KeyCoder cell_coder(resolution);
        for (size_t m = 0; m < cells.size(); ++m) {
            int64_t* c = &ijk[m * 3];
            cell_coder.decode(cells[m], c);
            for (int q = 0; q < 8; ++q) corners[m * 8 + q] = lat.value(c[0] + kCorner[q][0], c[1] + kCorner[q][1], c[2] + kCorner[q][2]);
        }
    }
    const py::ssize_t m = static_cast<py::ssize_t>(cells.size());
    py::array_t<int64_t> cout({m, static_cast<py::ssize_t>(3)});
    std::copy(ijk.begin(), ijk.end(), cout.mutable_data());
    py::array_t<float> vout({m, static_cast<py::ssize_t>(8)});
    std::copy(corners.begin(), corners.end(), vout.mutable_data());
    return py::make_tuple(cout, vout);
}

// One round of the octree's lossless check (streamrecon/occupancy/octree.py, _refine): the
// 6-neighbours of the newly queried points that were never queried and whose interpolated side
// (midpoint interpolation from the parent lattice, the same float32 arithmetic as
// interp_from_parent) differs from the queried point's side, appended to ``out`` as sorted unique
// keys of the child lattice (n = 2 * npar - 1 points per axis). ``kn``: a byte per child point,
// nonzero where queried. Runs without the GIL.
// A never-queried point's support (the 2, 4 or 8 parent points it is the midpoint of) lies on one
// side of the level: every point with a mixed support sits on a crossed parent edge, face or cell
// and is among the level's first candidates, all queried before the rounds. The midpoint average
// of values on one side stays on that side in float32 ((a + b) rounds to at least 2 min(a, b) and
// at most 2 max(a, b); * 0.5 is exact), so the interpolated side is the side of the support point
// (q >> 1): one load instead of interp_from_parent's eight (the torch twin interpolates; tests
// compare the octrees bit for bit).
void check_round_core(const int64_t* keys, const float* vals, int64_t m, const float* par, int64_t npar,
                      const uint8_t* kn, float lv, std::vector<int64_t>& out) {
    const int64_t n = 2 * npar - 1;
    static const int kNb[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
    const KeyCoder coder(n);
    out.clear();
    for (int64_t r = 0; r < m; ++r) {
        int64_t c[3];
        coder.decode(keys[r], c);
        const int64_t x = c[0], y = c[1], z = c[2];
        const bool s = vals[r] > lv;
        for (const auto& d : kNb) {
            const int64_t qx = x + d[0], qy = y + d[1], qz = z + d[2];
            if (qx < 0 || qy < 0 || qz < 0 || qx > n - 1 || qy > n - 1 || qz > n - 1) continue;
            const int64_t q = (qx * n + qy) * n + qz;
            if (kn[q]) continue;
            if ((par[((qx >> 1) * npar + (qy >> 1)) * npar + (qz >> 1)] > lv) != s) out.push_back(q);
        }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
}

// The first candidates of one octree level (streamrecon/occupancy/octree.py, _refine, band 0, no
// margin/spread): for every edge of the parent lattice ([P]^3) whose ends lie on different sides
// of the level, the child-lattice points around it (the edge midpoint, the 4 face centres and the
// 4 cell centres: 2p + e_a + sb e_b + sc e_c, sb, sc in {-1, 0, 1}) that are inside the lattice and
// not yet queried (``kn``). Sorted unique keys of the child lattice (n = 2 P - 1), deduplicated in a
// bitset over it, into ``out``. Runs without the GIL.
void edge_candidates_core(const float* par, int64_t P, const uint8_t* kn, float lv, std::vector<int64_t>& out) {
    const int64_t n = 2 * P - 1;
    const size_t npts = static_cast<size_t>(n * n * n);
    std::vector<uint64_t> mark((npts + 63) / 64, 0);
    // side of each parent point, one byte each
    std::vector<uint8_t> side(static_cast<size_t>(P * P * P));
    for (size_t r = 0; r < side.size(); ++r) side[r] = par[r] > lv;
    const int64_t cstride[3] = {n * n, n, 1};
    std::vector<uint8_t> flag(static_cast<size_t>(P) + 8, 0);  // per row: bit a = edge along axis a crossed
    for (int64_t i = 0; i < P; ++i)
        for (int64_t j = 0; j < P; ++j) {
            // a row's crossings in one vectorisable pass, then only its crossed points (few)
            const uint8_t* s = side.data() + (i * P + j) * P;
            const uint8_t* sy = j + 1 < P ? s + P : s;  // the last row/plane compares with itself: no crossing
            const uint8_t* sx = i + 1 < P ? s + P * P : s;
            uint8_t* f = flag.data();
            for (int64_t k = 0; k + 1 < P; ++k) f[k] = static_cast<uint8_t>(((s[k] ^ s[k + 1]) << 2) | ((s[k] ^ sy[k]) << 1) | (s[k] ^ sx[k]));
            f[P - 1] = static_cast<uint8_t>(((s[P - 1] ^ sy[P - 1]) << 1) | (s[P - 1] ^ sx[P - 1]));
            for (int64_t k0 = 0; k0 < P; k0 += 8) {
                uint64_t word;
                std::memcpy(&word, f + k0, 8);  // (the padding past P is zero)
                if (!word) continue;
                for (int64_t k = k0; k < std::min(P, k0 + 8); ++k) {
                    if (!f[k]) continue;
                    const int64_t pc[3] = {i, j, k};
                    for (int a = 0; a < 3; ++a) {
                        if (!((f[k] >> a) & 1)) continue;
                        const int b = (a + 1) % 3, c = (a + 2) % 3;
                        const int64_t cb = 2 * pc[b], cc = 2 * pc[c];
                        const int64_t centre = 2 * i * cstride[0] + 2 * j * cstride[1] + 2 * k * cstride[2] + cstride[a];
                        for (int sb = -1; sb <= 1; ++sb) {
                            if (cb + sb < 0 || cb + sb > n - 1) continue;
                            for (int sc = -1; sc <= 1; ++sc) {
                                if (cc + sc < 0 || cc + sc > n - 1) continue;
                                const int64_t q = centre + sb * cstride[b] + sc * cstride[c];
                                if (!kn[q]) mark[static_cast<size_t>(q) >> 6] |= uint64_t(1) << (q & 63);
                            }
                        }
                    }
                }
            }
        }
    out.clear();
    for (size_t w = 0; w < mark.size(); ++w)
        for (uint64_t word = mark[w]; word; word &= word - 1)
            out.push_back(static_cast<int64_t>(w * 64 + __builtin_ctzll(word)));
}

// Checks a level's parent, float32 [P, P, P] with P >= 2 and a child lattice of at most 2^28
// points (larger ones take the torch code); returns n = 2 P - 1.
int64_t check_parent(const py::array_t<float, py::array::c_style | py::array::forcecast>& parent) {
    if (parent.ndim() != 3 || parent.shape(0) != parent.shape(1) || parent.shape(0) != parent.shape(2) || parent.shape(0) < 2)
        throw std::invalid_argument("parent: expected float32 [P, P, P] with P >= 2");
    const int64_t n = 2 * parent.shape(0) - 1;
    if (n * n * n > (int64_t(1) << 28))
        throw std::invalid_argument("parent: child lattices above 2^28 points take the torch code");
    return n;
}

// check_parent, and known bool [n^3] over the child lattice.
int64_t child_side(const py::array_t<float, py::array::c_style | py::array::forcecast>& parent,
                   const py::array_t<bool, py::array::c_style>& known) {
    const int64_t n = check_parent(parent);
    if (known.ndim() != 1 || known.shape(0) != n * n * n)
        throw std::invalid_argument("known: expected bool [n^3] with n = 2 P - 1 = " + std::to_string(n));
    return n;
}

py::array_t<int64_t> to_array(const std::vector<int64_t>& v) {
    py::array_t<int64_t> res(static_cast<py::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), res.mutable_data());
    return res;
}

// The torch round body of _refine as one call (see check_round_core); tests/test_octree.py
// compares whole octrees built either way.
py::array_t<int64_t> octree_check_round(py::array_t<int64_t, py::array::c_style | py::array::forcecast> new_keys,
                                        py::array_t<float, py::array::c_style | py::array::forcecast> new_vals,
                                        py::array_t<float, py::array::c_style | py::array::forcecast> parent,
                                        py::array_t<bool, py::array::c_style> known, double level) {
    if (new_keys.ndim() != 1 || new_vals.ndim() != 1 || new_keys.shape(0) != new_vals.shape(0))
        throw std::invalid_argument("new_keys, new_vals: expected 1-D arrays of the same length");
    const int64_t n = child_side(parent, known), npar = parent.shape(0);
    const int64_t m = new_keys.shape(0);
    const int64_t* keys = new_keys.data();
    for (int64_t r = 0; r < m; ++r)
        if (keys[r] < 0 || keys[r] >= n * n * n) throw std::invalid_argument("new_keys: key outside the child lattice");
    std::vector<int64_t> out;
    {
        py::gil_scoped_release release;
        check_round_core(keys, new_vals.data(), m, parent.data(), npar, reinterpret_cast<const uint8_t*>(known.data()),
                         static_cast<float>(level), out);
    }
    return to_array(out);
}

// Two sorted runs of disjoint keys (values alongside) merged into k, v (room for both). The
// second run is read through ``order`` (its rows in key order) when given.
void merge_two(const int64_t* ka, const float* va, size_t na, const int64_t* kb, const float* vb, size_t nb,
               const int64_t* order, int64_t* k, float* v) {
    size_t i = 0, j = 0, o = 0;
    auto row = [order](size_t r) { return order ? static_cast<size_t>(order[r]) : r; };
    while (i < na && j < nb) {
        const size_t b = row(j);
        if (kb[b] < ka[i]) k[o] = kb[b], v[o++] = vb[b], ++j;
        else k[o] = ka[i], v[o++] = va[i++];
    }
    for (; i < na; ++i, ++o) k[o] = ka[i], v[o] = va[i];
    for (; j < nb; ++j, ++o) k[o] = kb[row(j)], v[o] = vb[row(j)];
}

// Sorted runs of disjoint keys (values alongside) merged into one sorted run, pairwise.
void merge_runs(std::vector<std::vector<int64_t>>& keys, std::vector<std::vector<float>>& vals) {
    while (keys.size() > 1) {
        std::vector<std::vector<int64_t>> nk;
        std::vector<std::vector<float>> nv;
        for (size_t r = 0; r + 1 < keys.size(); r += 2) {
            const auto &ka = keys[r], &kb = keys[r + 1];
            std::vector<int64_t> k(ka.size() + kb.size());
            std::vector<float> v(k.size());
            merge_two(ka.data(), vals[r].data(), ka.size(), kb.data(), vals[r + 1].data(), kb.size(), nullptr,
                      k.data(), v.data());
            nk.push_back(std::move(k));
            nv.push_back(std::move(v));
        }
        if (keys.size() % 2) {
            nk.push_back(std::move(keys.back()));
            nv.push_back(std::move(vals.back()));
        }
        keys.swap(nk);
        vals.swap(nv);
    }
}

// upsample2 of streamrecon/occupancy/octree.py: [P]^3 -> [2P - 1]^3 by midpoint averaging
// (a + b) * 0.5 in float32 along x, then y, then z (bit-identical values).
void upsample2_core(const float* d, int64_t P, float* u) {
    const int64_t n = 2 * P - 1;
    for (int64_t i = 0; i < P; ++i)
        for (int64_t j = 0; j < P; ++j)
            for (int64_t k = 0; k < P; ++k) {
                const float a = d[(i * P + j) * P + k];
                u[((2 * i) * n + 2 * j) * n + 2 * k] = a;
                if (i + 1 < P) u[((2 * i + 1) * n + 2 * j) * n + 2 * k] = (a + d[((i + 1) * P + j) * P + k]) * 0.5f;
            }
    for (int64_t x = 0; x < n; ++x)
        for (int64_t j = 0; j + 1 < P; ++j)
            for (int64_t k = 0; k < P; ++k) {
                float* row = u + x * n * n + 2 * k;
                row[(2 * j + 1) * n] = (row[(2 * j) * n] + row[(2 * j + 2) * n]) * 0.5f;
            }
    for (int64_t x = 0; x < n; ++x)
        for (int64_t y = 0; y < n; ++y) {
            float* row = u + (x * n + y) * n;
            for (int64_t k = 0; k + 1 < P; ++k) row[2 * k + 1] = (row[2 * k] + row[2 * k + 2]) * 0.5f;
        }
}

// Asks ``ask`` (a Python callable, float32 [M, 3] crop-frame points -> float32 [M]) about the
// child-lattice keys (n per axis, stride h on the resolution-N grid). Points as grid.grid_points
// computes them: ((2.0 * i - N) / N) in float64, rounded once to float32. Needs the GIL.
std::vector<float> ask_keys(const py::object& ask, const std::vector<int64_t>& keys, int64_t n, int64_t h, int64_t N) {
    const py::ssize_t m = static_cast<py::ssize_t>(keys.size());
    py::array_t<float> pts({m, py::ssize_t(3)});
    float* p = pts.mutable_data();
    const KeyCoder coder(n);
    const double dn = static_cast<double>(N);
    for (py::ssize_t r = 0; r < m; ++r) {
        int64_t c[3];
        coder.decode(keys[r], c);
        for (int a = 0; a < 3; ++a) p[3 * r + a] = static_cast<float>((2.0 * static_cast<double>(c[a] * h) - dn) / dn);
    }
    py::object got = ask(pts);
    auto vals = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(got);
    if (!vals || vals.ndim() != 1 || vals.shape(0) != m)
        throw std::invalid_argument("ask: expected float32 [" + std::to_string(m) + "] values for the points");
    return std::vector<float>(vals.data(), vals.data() + m);
}

// One whole level of the octree (streamrecon/occupancy/octree.py, _refine with band 0, no
// margin/spread, the known mask) in one call: the parent's queried keys mapped to the child
// lattice, the first candidates, their queries (through ``ask``), the lossless check's rounds and
// their queries, and the merge into one sorted set; with ``upsample``, also the next level's dense
// lattice (upsample2 of the parent, queried values written in). Returns (keys, vals, next or
// None, first-candidate queries, rounds, queries). The torch code is its twin (tests compare the
// octrees, bit for bit).
py::tuple octree_refine_level(py::array_t<float, py::array::c_style | py::array::forcecast> parent,
                              py::array_t<int64_t, py::array::c_style | py::array::forcecast> parent_keys,
                              py::array_t<float, py::array::c_style | py::array::forcecast> parent_vals,
                              int64_t h, int64_t resolution, double level, bool check, int64_t max_rounds,
                              bool upsample, py::object ask) {
    const int64_t n = check_parent(parent), P = parent.shape(0);
    if (parent_keys.ndim() != 1 || parent_vals.ndim() != 1 || parent_keys.shape(0) != parent_vals.shape(0))
        throw std::invalid_argument("parent_keys, parent_vals: expected 1-D arrays of the same length");
    if (h < 1 || resolution < 2)
        throw std::invalid_argument("h, resolution: expected a stride >= 1 and a resolution >= 2");
    const int64_t nk = parent_keys.shape(0);
    const int64_t* pk = parent_keys.data();
    for (int64_t r = 0; r < nk; ++r)
        if (pk[r] < 0 || pk[r] >= P * P * P || (r && pk[r] <= pk[r - 1]))
            throw std::invalid_argument("parent_keys: expected sorted unique keys of the parent lattice");
    const float lv = static_cast<float>(level);
    const float* par = parent.data();
    std::vector<uint8_t> known(static_cast<size_t>(n * n * n), 0);
    std::vector<std::vector<int64_t>> run_keys(1);
    std::vector<std::vector<float>> run_vals(1);
    std::vector<int64_t> fresh;
    {
        py::gil_scoped_release release;
        // (i, j, k) -> (2i, 2j, 2k) keeps the order
        const KeyCoder coder(P);
        run_keys[0].resize(static_cast<size_t>(nk));
        for (int64_t r = 0; r < nk; ++r) {
            int64_t c[3];
            coder.decode(pk[r], c);
            const int64_t q = ((2 * c[0]) * n + 2 * c[1]) * n + 2 * c[2];
            run_keys[0][r] = q;
            known[q] = 1;
        }
        run_vals[0].assign(parent_vals.data(), parent_vals.data() + nk);
        edge_candidates_core(par, P, known.data(), lv, fresh);
    }
    // each round's keys and values are a run of their own (sorted, disjoint), merged at the end
    run_vals.push_back(fresh.empty() ? std::vector<float>() : ask_keys(ask, fresh, n, h, resolution));
    run_keys.push_back(std::move(fresh));
    const int64_t first = static_cast<int64_t>(run_keys.back().size());
    int64_t queries = first, rounds = 0;
    for (int64_t q : run_keys.back()) known[q] = 1;
    std::vector<int64_t> found;
    while (check && !run_keys.back().empty() && rounds < max_rounds) {
        ++rounds;
        {
            py::gil_scoped_release release;
            const std::vector<int64_t>& last = run_keys.back();
            check_round_core(last.data(), run_vals.back().data(), static_cast<int64_t>(last.size()), par, P,
                             known.data(), lv, found);
        }
        if (found.empty()) break;
        run_vals.push_back(ask_keys(ask, found, n, h, resolution));
        queries += static_cast<int64_t>(found.size());
        for (int64_t q : found) known[q] = 1;
        run_keys.push_back(std::move(found));
        found.clear();
    }
    py::object next = py::none();
    py::array_t<float> up;
    if (upsample) up = py::array_t<float>({n, n, n});
    {
        py::gil_scoped_release release;
        merge_runs(run_keys, run_vals);
        if (upsample) {
            float* u = up.mutable_data();
            upsample2_core(par, P, u);
            const std::vector<int64_t>& k = run_keys[0];
            const std::vector<float>& v = run_vals[0];
            for (size_t r = 0; r < k.size(); ++r) u[k[r]] = v[r];
        }
    }
    if (upsample) next = up;
    py::array_t<float> vo(static_cast<py::ssize_t>(run_vals[0].size()));
    std::copy(run_vals[0].begin(), run_vals[0].end(), vo.mutable_data());
    return py::make_tuple(to_array(run_keys[0]), vo, next, first, rounds, queries);
}

// keys_a (sorted) and keys_b (any order) with their values, as one sorted array: what
// torch.sort(torch.cat(...)) gives for disjoint keys, in O(|a| + |b| log |b|) instead of a sort
// of everything (the octree's sorted set of queried points grows by merges, several per level).
py::tuple merge_sorted_keys(py::array_t<int64_t, py::array::c_style | py::array::forcecast> keys_a,
                            py::array_t<float, py::array::c_style | py::array::forcecast> vals_a,
                            py::array_t<int64_t, py::array::c_style | py::array::forcecast> keys_b,
                            py::array_t<float, py::array::c_style | py::array::forcecast> vals_b) {
    if (keys_a.ndim() != 1 || vals_a.ndim() != 1 || keys_a.shape(0) != vals_a.shape(0) || keys_b.ndim() != 1 ||
        vals_b.ndim() != 1 || keys_b.shape(0) != vals_b.shape(0))
        throw std::invalid_argument("keys, vals: expected 1-D arrays, each pair of the same length");
    const int64_t na = keys_a.shape(0), nb = keys_b.shape(0);
    const int64_t *ka = keys_a.data(), *kb = keys_b.data();
    const float *va = vals_a.data(), *vb = vals_b.data();
    for (int64_t r = 1; r < na; ++r)
        if (ka[r] < ka[r - 1]) throw std::invalid_argument("keys_a: expected sorted keys");
    py::array_t<int64_t> ko(static_cast<py::ssize_t>(na + nb));
    py::array_t<float> vo(static_cast<py::ssize_t>(na + nb));
    int64_t* k = ko.mutable_data();
    float* v = vo.mutable_data();
    {
        py::gil_scoped_release release;
        bool sorted_b = true;
        for (int64_t r = 1; r < nb && sorted_b; ++r) sorted_b = kb[r] >= kb[r - 1];
        std::vector<int64_t> order;
        if (!sorted_b) {
            order.resize(static_cast<size_t>(nb));
            for (int64_t r = 0; r < nb; ++r) order[r] = r;
            std::sort(order.begin(), order.end(), [kb](int64_t x, int64_t y) { return kb[x] < kb[y]; });
        }
        merge_two(ka, va, static_cast<size_t>(na), kb, vb, static_cast<size_t>(nb), sorted_b ? nullptr : order.data(), k, v);
    }
    return py::make_tuple(ko, vo);
}


// The silhouette fill's "column holds a point above the level" test on an octree grid
// (streamrecon/occupancy/silhouette.py, _inside_columns_octree, its torch twin): [n, n] bool
// (a: x, b: y) over the resolution-n grid. A column is inside where a queried point (keys of the
// (L + 1)^3 lattice, i, j, k < n) is above the level, or where its stride-2 parent points above
// the level (each read by 2 fine points of the column) outnumber the queried points of the column
// that sit under such a parent but are not above themselves. Level compared in float32.
py::array_t<bool> octree_inside_columns(py::array_t<int64_t, py::array::c_style | py::array::forcecast> keys,
                                        py::array_t<float, py::array::c_style | py::array::forcecast> vals,
                                        py::array_t<float, py::array::c_style | py::array::forcecast> parent,
                                        int64_t extent, int64_t resolution, double level) {
    if (keys.ndim() != 1 || vals.ndim() != 1 || keys.shape(0) != vals.shape(0))
        throw std::invalid_argument("keys, vals: expected 1-D arrays of the same length");
    if (extent < 2 || extent % 2 || resolution < 2 || resolution > extent + 1 || extent > 1600)
        throw std::invalid_argument("extent: expected an even L in [2, 1600] with resolution <= L + 1");
    const int64_t n2 = extent / 2 + 1, n1 = extent + 1, n = resolution;
    if (parent.ndim() != 3 || parent.shape(0) != n2 || parent.shape(1) != n2 || parent.shape(2) != n2)
        throw std::invalid_argument("parent: expected float32 [L/2 + 1]^3");
    const int64_t nk = keys.shape(0);
    const int64_t* kp = keys.data();
    const float* vp = vals.data();
    const float* par = parent.data();
    for (int64_t r = 0; r < nk; ++r)
        if (kp[r] < 0 || kp[r] >= n1 * n1 * n1) throw std::invalid_argument("keys: key outside the finest lattice");
    py::array_t<bool> res({n, n});
    bool* out = res.mutable_data();
    {
        py::gil_scoped_release release;
        const float lv = static_cast<float>(level);
        const int64_t cmax = (n - 1) >> 1;
        std::vector<int64_t> per_parent(static_cast<size_t>(n2 * n2), 0);
        for (int64_t a = 0; a <= cmax; ++a)
            for (int64_t b = 0; b <= cmax; ++b) {
                const float* col = par + (a * n2 + b) * n2;
                int64_t c = 0;
                for (int64_t z = 0; z <= cmax; ++z) c += col[z] > lv;
                per_parent[a * n2 + b] = c;
            }
        std::vector<int64_t> count(static_cast<size_t>(n * n));  // children - lost per column
        std::vector<uint8_t> above(static_cast<size_t>(n * n), 0);
        for (int64_t a = 0; a < n; ++a)
            for (int64_t b = 0; b < n; ++b) count[a * n + b] = 2 * per_parent[(a >> 1) * n2 + (b >> 1)];
        const KeyCoder coder(n1);
        for (int64_t r = 0; r < nk; ++r) {
            int64_t c[3];
            coder.decode(kp[r], c);
            if (c[0] >= n || c[1] >= n || c[2] >= n) continue;
            const int64_t col = c[0] * n + c[1];
            if (vp[r] > lv) {
                above[col] = 1;
            } else if (par[((c[0] >> 1) * n2 + (c[1] >> 1)) * n2 + (c[2] >> 1)] > lv) {
                --count[col];
            }
        }
        for (int64_t q = 0; q < n * n; ++q) out[q] = above[q] || count[q] > 0;
    }
    return res;
}

}  // namespace

void register_octree_cells(py::module_& m) {
    m.def("octree_check_round", &octree_check_round, py::arg("new_keys"), py::arg("new_vals"), py::arg("parent"),
          py::arg("known"), py::arg("level") = 0.5,
          "One lossless-check round of the octree: sorted unique child-lattice keys of the never-queried "
          "6-neighbours of new_keys whose interpolated side disagrees with theirs. Releases the GIL.");
    m.def("octree_surface_cells", &octree_surface_cells, py::arg("keys"), py::arg("vals"), py::arg("parent"),
          py::arg("extent"), py::arg("resolution"), py::arg("level") = 0.5,
          py::arg("bitset_max") = int64_t(1) << 28,
          "Cells (int64 [M,3], sorted, in [0, resolution-2]^3) with an edge crossing the level, and their "
          "corner values (float32 [M,8], PyMCubes corner order), from an octree's queried points (sorted keys "
          "of the (extent+1)^3 lattice, values) and its stride-2 parent lattice float32 [extent/2+1]^3. "
          "Lattices of up to bitset_max points use bitsets (a few MB), larger ones a hash and a sort "
          "(the same result; tests lower it to run both).");
    m.def("octree_refine_level", &octree_refine_level, py::arg("parent"), py::arg("parent_keys"), py::arg("parent_vals"),
          py::arg("h"), py::arg("resolution"), py::arg("level"), py::arg("check"), py::arg("max_rounds"),
          py::arg("upsample"), py::arg("ask"),
          "One octree level (band 0, mask membership): (keys, vals, next dense lattice or None, first-candidate "
          "queries, rounds, queries). ask(float32 [M, 3] points) -> float32 [M] is called with the GIL held.");
    m.def("octree_inside_columns", &octree_inside_columns, py::arg("keys"), py::arg("vals"), py::arg("parent"),
          py::arg("extent"), py::arg("resolution"), py::arg("level") = 0.5,
          "bool [resolution, resolution]: the grid column (a, b) holds a point above the level, exact or "
          "interpolated from the stride-2 parent lattice (the silhouette fill's test). Releases the GIL.");
    m.def("merge_sorted_keys", &merge_sorted_keys, py::arg("keys_a"), py::arg("vals_a"), py::arg("keys_b"), py::arg("vals_b"),
          "(keys, vals): sorted keys_a and keys_b (any order) merged into one sorted array, values alongside.");
}
