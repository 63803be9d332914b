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

// Checks a level's inputs, parent float32 [P, P, P] (P >= 2) and known bool [n^3] over its child
// lattice (at most 2^28 points: larger ones take the torch code); returns n = 2 P - 1.
int64_t child_side(const py::array_t<float, py::array::c_style | py::array::forcecast>& parent,
                   const py::array_t<bool, py::array::c_style>& known) {
    if (parent.ndim() != 3 || parent.shape(0) != parent.shape(1) || parent.shape(0) != parent.shape(2) || parent.shape(0) < 2)
        throw std::invalid_argument("parent: expected float32 [P, P, P] with P >= 2");
    const int64_t n = 2 * parent.shape(0) - 1;
    if (known.ndim() != 1 || known.shape(0) != n * n * n)
        throw std::invalid_argument("known: expected bool [n^3] with n = 2 P - 1 = " + std::to_string(n));
    if (n * n * n > (int64_t(1) << 28))
        throw std::invalid_argument("known: lattices above 2^28 points take the torch code");
    return n;
}

// One round of the octree's lossless check (streamrecon/occupancy/octree.py, _refine): the
// 6-neighbours of the newly queried points that were never queried and whose interpolated side
// (midpoint interpolation from the parent lattice, the same float32 arithmetic as
// interp_from_parent) differs from the queried point's side. Returns them as sorted unique keys
// of the child lattice (n = 2 * npar - 1 points per axis). Native twin of the torch round body;
// tests/test_octree.py compares whole octrees built either way.
py::array_t<int64_t> octree_check_round(py::array_t<int64_t, py::array::c_style | py::array::forcecast> new_keys,
                                        py::array_t<float, py::array::c_style | py::array::forcecast> new_vals,
                                        py::array_t<float, py::array::c_style | py::array::forcecast> parent,
                                        py::array_t<bool, py::array::c_style> known, double level) {
    if (new_keys.ndim() != 1 || new_vals.ndim() != 1 || new_keys.shape(0) != new_vals.shape(0))
        throw std::invalid_argument("new_keys, new_vals: expected 1-D arrays of the same length");
    const int64_t n = child_side(parent, known), npar = parent.shape(0);
    const int64_t m = new_keys.shape(0);
    const int64_t* keys = new_keys.data();
    const float* vals = new_vals.data();
    const float* par = parent.data();
    const bool* kn = known.data();
    for (int64_t r = 0; r < m; ++r)
        if (keys[r] < 0 || keys[r] >= n * n * n) throw std::invalid_argument("new_keys: key outside the child lattice");
    std::vector<int64_t> out;
    {
        py::gil_scoped_release release;
        const float lv = static_cast<float>(level);
        static const int kNb[6][3] = {{1, 0, 0}, {-1, 0, 0}, {0, 1, 0}, {0, -1, 0}, {0, 0, 1}, {0, 0, -1}};
        const KeyCoder coder(n);
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
                if ((interp_from_parent(par, npar, qx, qy, qz) > lv) != s) out.push_back(q);
            }
        }
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
    }
    py::array_t<int64_t> res(static_cast<py::ssize_t>(out.size()));
    std::copy(out.begin(), out.end(), res.mutable_data());
    return res;
}

// The first candidates of one octree level (streamrecon/occupancy/octree.py, _refine, band 0, no
// margin/spread): for every edge of the parent lattice whose ends lie on different sides of the
// level, the child-lattice points around it (the edge midpoint, the 4 face centres and the 4 cell
// centres: 2p + e_a + sb e_b + sc e_c, sb, sc in {-1, 0, 1}) that are inside the lattice and not
// yet queried. Sorted unique keys of the child lattice (n = 2 P - 1), deduplicated in a bitset
// over it (known holds at most 2^25 points, the caller's mask limit). Native twin of the torch
// code (nonzero, offsets, range filter, unique, mask lookup).
py::array_t<int64_t> octree_edge_candidates(py::array_t<float, py::array::c_style | py::array::forcecast> parent,
                                            py::array_t<bool, py::array::c_style> known, double level) {
    const int64_t n = child_side(parent, known), P = parent.shape(0);
    const float* par = parent.data();
    const bool* kn = known.data();
    std::vector<int64_t> out;
    {
        py::gil_scoped_release release;
        const float lv = static_cast<float>(level);
        const size_t npts = static_cast<size_t>(n * n * n);
        std::vector<uint64_t> mark((npts + 63) / 64, 0);
        // side of each parent point, one byte each
        std::vector<uint8_t> side(static_cast<size_t>(P * P * P));
        for (size_t r = 0; r < side.size(); ++r) side[r] = par[r] > lv;
        const int64_t pstride[3] = {P * P, P, 1};
        const int64_t cstride[3] = {n * n, n, 1};
        for (int64_t i = 0; i < P; ++i)
            for (int64_t j = 0; j < P; ++j)
                for (int64_t k = 0; k < P; ++k) {
                    const int64_t p = (i * P + j) * P + k;
                    const int64_t pc[3] = {i, j, k};
                    for (int a = 0; a < 3; ++a) {
                        if (pc[a] == P - 1 || side[p] == side[p + pstride[a]]) continue;
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
        for (size_t w = 0; w < mark.size(); ++w)
            for (uint64_t word = mark[w]; word; word &= word - 1)
                out.push_back(static_cast<int64_t>(w * 64 + __builtin_ctzll(word)));
    }
    py::array_t<int64_t> res(static_cast<py::ssize_t>(out.size()));
    std::copy(out.begin(), out.end(), res.mutable_data());
    return res;
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
        std::vector<int64_t> order(static_cast<size_t>(nb));
        for (int64_t r = 0; r < nb; ++r) order[r] = r;
        bool sorted_b = true;
        for (int64_t r = 1; r < nb && sorted_b; ++r) sorted_b = kb[r] >= kb[r - 1];
        if (!sorted_b) std::sort(order.begin(), order.end(), [kb](int64_t x, int64_t y) { return kb[x] < kb[y]; });
        int64_t i = 0, j = 0, o = 0;
        while (i < na && j < nb) {
            if (kb[order[j]] < ka[i]) {
                k[o] = kb[order[j]];
                v[o++] = vb[order[j++]];
            } else {
                k[o] = ka[i];
                v[o++] = va[i++];
            }
        }
        for (; i < na; ++i, ++o) k[o] = ka[i], v[o] = va[i];
        for (; j < nb; ++j, ++o) k[o] = kb[order[j]], v[o] = vb[order[j]];
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
    m.def("octree_edge_candidates", &octree_edge_candidates, py::arg("parent"), py::arg("known"), py::arg("level") = 0.5,
          "Sorted unique child-lattice keys (n = 2P - 1) of the points around the parent lattice's crossed "
          "edges (midpoint, face and cell centres) that known does not mark. Releases the GIL.");
    m.def("octree_inside_columns", &octree_inside_columns, py::arg("keys"), py::arg("vals"), py::arg("parent"),
          py::arg("extent"), py::arg("resolution"), py::arg("level") = 0.5,
          "bool [resolution, resolution]: the grid column (a, b) holds a point above the level, exact or "
          "interpolated from the stride-2 parent lattice (the silhouette fill's test). Releases the GIL.");
    m.def("merge_sorted_keys", &merge_sorted_keys, py::arg("keys_a"), py::arg("vals_a"), py::arg("keys_b"), py::arg("vals_b"),
          "(keys, vals): sorted keys_a and keys_b (any order) merged into one sorted array, values alongside.");
}
