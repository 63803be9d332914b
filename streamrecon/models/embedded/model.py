"""The embedded model as an ``ImplicitModel`` (see ``streamrecon.models.protocol``), and its file format.

File format (``torch.save``; safe to read with ``torch.load(weights_only=True)``): a plain dict
    {"format": "streamrecon-embedded", "version": 1,
     "config": NetConfig as JSON (str/int/float/bool/lists),
     "meta": JSON-able dict (training command, data seed, steps, metrics),
     "state_dict": {name: tensor}}

Input handling in ``encode(image, rect, mask, body)``: the square ``rect`` (frame pixels, may extend
beyond the frame; zero padding) is resampled to ``in_res`` x ``in_res`` so that pixel centres
span the crop frame's [-1, 1] exactly (``align_corners=True``), as in training. The network reads
the person mask (and RGB, and/or the shading channel, if its config says so: the shading
channel is the crop's luminance normalised within the mask, ``photo_shading``). When ``mask`` is None we fall back to a GrabCut
segmentation initialised with the central 80% of the rect as "probably person" (logged once):
acceptable for a single well-framed person on a plain background, and a reason to pass a real mask.
Weights with ``NetConfig.body`` (``reads_body``) also read the person's fitted body
(``streamrecon.body.conditioning.body_maps`` of the ``BodyFit``, on the same pixel grid); a person
without a fit gets empty body channels.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ...errors import CheckpointError, UserInputError

log = logging.getLogger(__name__)

FORMAT = "streamrecon-embedded"
VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.pt"
MASK_ONLY_WEIGHTS = WEIGHTS_DIR / "mask_only.pt"
"""the embedded model that reads the person mask alone (no body): ``--model mask-only``"""
BODY_WEIGHTS = WEIGHTS_DIR / "body.pt"
"""the embedded model that reads the person mask and each person's fitted body: ``--model body``"""
NAMED_WEIGHTS = {"mask-only": MASK_ONLY_WEIGHTS, "body": BODY_WEIGHTS}
"""the shipped models besides ``default.pt``, by their ``--model`` name"""


def crop_affine(rect, res: int) -> np.ndarray:
    """[2, 3] affine: crop pixel (col j, row i) -> frame pixel coordinates for ``cv2.warpAffine``
    with ``WARP_INVERSE_MAP``. Crop pixel j is at crop x = -1 + 2 j / (res - 1), i.e. at frame
    x = rx + j / (res - 1) * rw (pixel centres sit at integer + 0.5 in frame coordinates)."""
    rx, ry, rw, rh = (float(v) for v in rect)
    sx, sy = rw / (res - 1), rh / (res - 1)
    return np.array([[sx, 0.0, rx - 0.5], [0.0, sy, ry - 0.5]])


def crop_inputs(image: np.ndarray, rect, mask: Optional[np.ndarray], res: int):
    """The crop as the network sees it: (mask [res, res] float32 {0, 1}, rgb [res, res, 3] float32
    in [-1, 1]). ``image`` [H, W, 3] uint8 RGB, ``mask`` [H, W] bool."""
    import cv2

    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        desc = f"{image.dtype} {list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
        raise UserInputError(f"image: expected uint8 [H, W, 3] RGB, got {desc}")
    if len(rect) != 4 or not (float(rect[2]) > 0 and float(rect[3]) > 0):
        raise UserInputError(f"rect: expected (x, y, w, h) with w, h > 0, got {rect!r}")
    m = crop_affine(rect, res)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    rgb = cv2.warpAffine(image, m, (res, res), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if mask is None:
        mask_crop = grabcut_mask(rgb)
    else:
        if mask.shape != image.shape[:2]:
            raise UserInputError(f"mask: expected shape {list(image.shape[:2])} like the image, got {list(mask.shape)}")
        mc = cv2.warpAffine(mask.astype(np.float32), m, (res, res), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        mask_crop = (mc > 0.5).astype(np.float32)
    rgbf = (rgb.astype(np.float32) / 127.5 - 1.0) * mask_crop[..., None]
    return mask_crop, rgbf


def photo_shading(rgb_crop: np.ndarray, mask_crop: np.ndarray) -> np.ndarray:
    """The shading channel of a photo crop: its luminance normalised within the mask
    (``embedded.shading.normalise``). ``rgb_crop`` [R, R, 3] in [-1, 1], ``mask_crop`` [R, R]."""
    import torch

    from .shading import luminance, normalise

    grey = luminance(torch.from_numpy((np.asarray(rgb_crop, np.float32) + 1.0) * 0.5))[None]
    return normalise(grey, torch.from_numpy(np.asarray(mask_crop) > 0.5)[None])[0].numpy()


_warned_grabcut = False


def _body_faces() -> np.ndarray:
    """The body model's triangles (its asset loads once)."""
    global _BODY_FACES
    if _BODY_FACES is None:
        from ...body.model import load_asset

        _BODY_FACES = load_asset().faces
    return _BODY_FACES


_BODY_FACES = None


def grabcut_mask(rgb_crop: np.ndarray) -> np.ndarray:
    """Fallback person mask [R, R] float32 of a crop without one (GrabCut from a centred box)."""
    import cv2

    global _warned_grabcut
    if not _warned_grabcut:
        log.warning("no person mask given: segmenting the crop with GrabCut (pass a mask for better results)")
        _warned_grabcut = True
    res = rgb_crop.shape[0]
    small = 128 if res > 128 else res
    img = cv2.resize(rgb_crop, (small, small), interpolation=cv2.INTER_AREA)
    gc = np.zeros((small, small), np.uint8)
    b = int(0.1 * small)
    rect = (b, b // 2, small - 2 * b, small - b)
    try:
        cv2.grabCut(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), gc, rect, np.zeros((1, 65)), np.zeros((1, 65)), 3, cv2.GC_INIT_WITH_RECT)
        fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.float32)
    except cv2.error:
        fg = np.zeros((small, small), np.float32)
        fg[rect[1]:rect[1] + rect[3], rect[0]:rect[0] + rect[2]] = 1
    return (cv2.resize(fg, (res, res), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.float32)


@dataclass
class EmbeddedFeatures:
    """Per-person features: ``feat`` [1, C, R/4, R/4], ``mask`` [1, 1, R, R] on the model's device;
    ``packed``: the same packed for the native point decoder (made by the first query that uses it)."""

    feat: object
    mask: object
    packed: object = None


class EmbeddedModel:
    """``ImplicitModel`` around ``EmbeddedNet``. Used from one thread (the reconstruction stage's)."""

    name = "embedded"

    def __init__(self, net, device="cpu", meta: Optional[dict] = None):
        import torch

        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.cfg = net.cfg
        self.meta = dict(meta or {})
        # the weights' own iso level (``models.protocol.surface_level``), chosen on held-out people
        level = self.meta.get("iso_level")
        self.iso_level = float(level) if isinstance(level, (int, float)) and 0.0 < float(level) < 1.0 else None
        self._native_decoder = None  # set by compile(auto) on CPU: native_query.NativeDecoder
        self.decoder_backend = "torch"

    @property
    def reads_body(self) -> bool:
        """These weights read the person's fitted body (``encode(..., body=fit)``)."""
        return bool(self.cfg.body)

    def encode(self, image: np.ndarray, rect: tuple, mask: Optional[np.ndarray] = None, body=None) -> EmbeddedFeatures:
        """Features of the person in ``rect``; ``body``: their ``BodyFit`` (frame pixels) or None,
        read by body weights only."""
        m, rgb = crop_inputs(image, rect, mask, self.cfg.in_res)
        shading = photo_shading(rgb, m) if self.cfg.shading else None
        maps = None
        if self.cfg.body:
            from ...body.conditioning import maybe_maps

            maps = maybe_maps(body, _body_faces(), rect, self.cfg.in_res).stack()
        return self.encode_crop(m, rgb, shading, maps)

    def _encode_tensor(self, x) -> EmbeddedFeatures:
        import torch

        runner = getattr(self, "_runners", {}).get("encoder")
        with torch.inference_mode():
            if runner is not None:
                return EmbeddedFeatures(runner(x), x[:, :1])
            feat, mk = self.net.encode(x)
        return EmbeddedFeatures(feat, mk)

    def compile(self, cfg, cache=None) -> "EmbeddedModel":
        """Run the image encoder (the U-Net, ~70% of a frame's network time at 128^3 outside the
        queries) through a ``streamrecon.backends`` runner for ``cfg``: ``auto`` on CPU is ONNX
        Runtime when installed (6.5 vs 11.3 ms per frame on one core of the 2-core AMD EPYC;
        features within 2e-4 of values up to ~5, occupancies within 5e-5), else eager. The
        engine is cached like PIFuHD's, keyed by the weights' sha256.

        ``auto`` on CPU at bf16 (a CPU with native bfloat16) runs the encoder eagerly in
        channels-last bfloat16: 20 -> 10 ms a frame on one core of the 2-core AMX Xeon; features
        within ~0.1 of values up to ~4.

        ``auto`` on CPU (fp32 or bf16) also moves the point decoder (the octree's ~35 queries a
        frame) to the native kernel, in fp32 either way (``native_query``; ``decoder_backend``
        says which runs: "native" or "torch"); every explicit backend keeps it in torch.
        Returns self."""
        import torch

        from ...backends import compile_module
        from ..pifuhd.compiled import weights_sha256

        if torch.device(cfg.device) != self.device:
            raise ValueError(f"cfg.device: the model is on {self.device}, got {cfg.device!r}")
        backend = cfg.backend
        if backend == "auto" and self.device.type == "cuda":
            backend = "eager"  # on CPU ``resolve_backend`` picks: ONNX Runtime at fp32 when installed, else eager
        from dataclasses import replace

        if getattr(self, "weights_id", None) is None:
            self.weights_id = "sha256:" + weights_sha256(self.net)
        example = torch.zeros(1, self.cfg.in_channels, self.cfg.in_res, self.cfg.in_res, device=self.device)
        runner = compile_module(self.net.encoder, (example,), replace(cfg, backend=backend),
                                f"embedded:{self.weights_id}:encoder", cache=cache)
        self._runners = {"encoder": runner}
        self.backend = runner.backend
        self._native_decoder = None
        if cfg.backend == "auto" and self.device.type == "cpu" and cfg.precision in ("fp32", "bf16"):
            from ...native import native_or_none
            from .native_query import NativeDecoder

            native = native_or_none("embedded point decoder")
            if native is not None:
                self._native_decoder = NativeDecoder.from_decoder(self.net.decoder, native)
        self.decoder_backend = "torch" if self._native_decoder is None else "native"
        log.info("embedded model: encoder on %s, point decoder on %s", self.backend, self.decoder_backend)
        return self

    def encode_crop(self, mask_crop: np.ndarray, rgb_crop: Optional[np.ndarray] = None,
                    shading: Optional[np.ndarray] = None, body_maps: Optional[np.ndarray] = None) -> EmbeddedFeatures:
        """Features from an already cropped mask [R, R] (crop frame pixel grid; used by evaluation),
        with the RGB crop ([R, R, 3] in [-1, 1]) for ``rgb`` weights, the shading channel ([R, R],
        ``embedded.shading``) for ``shading`` weights (from ``rgb_crop`` when not given) and the
        body channels ([3, R, R], ``body.conditioning.BodyMaps.stack``; None = no body) for
        ``body`` weights."""
        import torch

        chans = [mask_crop.astype(np.float32)[None]]
        if self.cfg.rgb:
            chans.append(np.transpose(rgb_crop if rgb_crop is not None else np.zeros(mask_crop.shape + (3,), np.float32), (2, 0, 1)))
        if self.cfg.shading:
            if shading is None:
                if rgb_crop is None:
                    raise ValueError("these weights read a shading channel: pass shading= or rgb_crop=")
                shading = photo_shading(rgb_crop, mask_crop)
            chans.append(np.asarray(shading, np.float32)[None])
        if self.cfg.body:
            chans.append(np.zeros((3,) + mask_crop.shape, np.float32) if body_maps is None else np.asarray(body_maps, np.float32))
        x = torch.from_numpy(np.concatenate(chans, 0)[None]).to(self.device)
        return self._encode_tensor(x)

    def query(self, features: EmbeddedFeatures, points):
        import torch

        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points: expected [N, 3], got {list(points.shape)}")
        native = getattr(self, "_native_decoder", None)
        if native is not None:
            from .native_query import pack_features

            if features.packed is None:
                features.packed = pack_features(features.feat, features.mask)
            logits = native.logits(features.packed, points.detach().cpu().numpy())
            return torch.sigmoid(torch.from_numpy(logits))
        with torch.inference_mode():
            logits = self.net.query((features.feat, features.mask), points.to(self.device, torch.float32)[None])
        return torch.sigmoid(logits[0])


def save_embedded(path: Union[str, Path], net, meta: Optional[dict] = None) -> Path:
    """Write ``net`` in the embedded file format (atomic)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    obj = {"format": FORMAT, "version": VERSION, "config": net.cfg.to_json(), "meta": dict(meta or {}), "state_dict": sd}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path


def safe_load(path: Union[str, Path]):
    """``torch.load(path, weights_only=True)`` on CPU (plain tensors and JSON-like values only),
    with a ``CheckpointError`` that says what is wrong for a missing or unreadable file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (no such checkpoint); pass an existing one, or omit --checkpoint for the embedded model")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot be read as a safe streamrecon checkpoint ({exc.__class__.__name__}: {exc})") from exc


def check_version(obj: dict, path: Union[str, Path]) -> None:
    """Refuse an embedded-format object of another format version."""
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{path}: embedded format version {obj.get('version')} is not supported (expected {VERSION}); upgrade streamrecon")


def load_embedded(path: Union[str, Path], device: str = "cpu") -> EmbeddedModel:
    """Load an embedded-format file (refusing anything but plain tensors and JSON-like values)."""
    from .net import EmbeddedNet, NetConfig

    obj = safe_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a streamrecon-embedded checkpoint (format {obj.get('format') if isinstance(obj, dict) else type(obj).__name__!r})")
    check_version(obj, path)
    try:
        net = EmbeddedNet(NetConfig.from_json(obj["config"]))
        net.load_state_dict(obj["state_dict"])
    except (KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{path}: weights do not match their config ({exc})") from exc
    return EmbeddedModel(net, device, obj.get("meta"))


def load_shipped(name: str, device: str = "cpu") -> EmbeddedModel:
    """A model shipped in the package besides the default, by its ``--model`` name (``NAMED_WEIGHTS``)."""
    path = NAMED_WEIGHTS[name]
    if not path.is_file():
        raise CheckpointError(f"the {name} weights {path} are missing from this install; reinstall streamrecon")
    return load_embedded(path, device)


def load_mask_only(device: str = "cpu") -> EmbeddedModel:
    """The mask-only model shipped in the package (``MASK_ONLY_WEIGHTS``)."""
    return load_shipped("mask-only", device)


def load_default(device: str = "cpu") -> EmbeddedModel:
    """The model shipped in the package (``streamrecon/models/embedded/weights/default.pt``)."""
    if not DEFAULT_WEIGHTS.is_file():
        raise CheckpointError(f"the embedded weights {DEFAULT_WEIGHTS} are missing from this install; reinstall streamrecon or pass --checkpoint")
    return load_embedded(DEFAULT_WEIGHTS, device)
