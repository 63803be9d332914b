"""File side of ``streamrecon detect``: read images/videos, run a PeopleFinder, write rect files
(reference format), masks, network inputs, overlays and people.jsonl. Runs on the caller's thread."""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Iterator, List, Tuple

import numpy as np

from ..errors import SourceError, UserInputError
from ..types import Frame, PersonCrop
from .config import PeopleConfig
from .finder import PeopleFinder
from .segmentation import apply_background, union_masks

log = logging.getLogger(__name__)
IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# BlazePose limbs drawn in the overlay
SKELETON = ((11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24), (23, 25), (25, 27),
            (24, 26), (26, 28), (27, 29), (29, 31), (28, 30), (30, 32), (0, 2), (0, 5), (2, 7), (5, 8))
COLORS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240))


def read_image(path: str) -> np.ndarray:
    """uint8 RGB [H, W, 3] through ``images.decode.load_image``, the loader of ``run`` and
    ``reconstruct``: the size is read from the header and an image above the pixel limit is refused
    before decoding (one-line ``UserInputError``)."""
    from ..images.decode import load_image

    return load_image(path)


def iter_video(path: str, max_frames: int = 0) -> Iterator[Frame]:
    """Frames of a video file (RGB), with pts in seconds from the container."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path!r}; check the file and that it is a format FFmpeg reads")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    try:  # the container's frame size, before a frame is decoded: the same pixel limit as images
        from ..images.header import MAX_IMAGE_PIXELS, check_size

        check_size(max(w, 1), max(h, 1), name=path, max_pixels=MAX_IMAGE_PIXELS)
    except ValueError as exc:
        cap.release()
        raise UserInputError(str(exc)) from None
    i = 0
    try:
        while not max_frames or i < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            yield Frame(i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.monotonic(), pts=i / fps)
            i += 1
    finally:
        cap.release()
    if i == 0:
        raise SourceError(f"no frames could be decoded from {path!r}")


def format_rects(people: List[PersonCrop]) -> str:
    """Reference rect-file text: one 'x y w h' line (integers) per person, in id order."""
    lines = []
    for p in sorted(people, key=lambda p: p.person_id):
        x, y, w, h = p.rect
        s = int(round(w))
        lines.append(f"{int(round(x))} {int(round(y))} {s} {s}")
    return "\n".join(lines) + ("\n" if lines else "")


def draw_overlay(image: np.ndarray, people: List[PersonCrop], threshold: float = 0.2) -> np.ndarray:
    """RGB overlay: background dimmed outside the masks, each person's square crop, skeleton and id."""
    import cv2

    h, w = image.shape[:2]
    out = image.copy()
    masks = [p.mask for p in people if p.mask is not None]
    if masks:
        u = union_masks(masks, (h, w))
        out[~u] = (out[~u] * 0.35).astype(np.uint8)
    # rects may leave the image: draw on a padded canvas so the user sees the whole crop
    boxes = [p.rect for p in people]
    pad = int(max([0] + [max(-x, -y, x + s - w, y + s - h) for x, y, s, _ in boxes]))
    pad = min(max(pad, 0), 2 * max(h, w))
    canvas = cv2.copyMakeBorder(out, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(40, 40, 40))
    lw = max(1, round(max(h, w) / 300))
    for p in people:
        c = COLORS[p.person_id % len(COLORS)]
        x, y, s, _ = (int(round(v)) for v in p.rect)
        cv2.rectangle(canvas, (x + pad, y + pad), (x + s + pad, y + s + pad), c, lw)
        if p.keypoints is not None:
            k = p.keypoints
            for a, b in SKELETON:
                if a < len(k) and b < len(k) and k[a, 2] > threshold and k[b, 2] > threshold:
                    cv2.line(canvas, (int(k[a, 0]) + pad, int(k[a, 1]) + pad), (int(k[b, 0]) + pad, int(k[b, 1]) + pad),
                             c, lw)
        cv2.putText(canvas, f"id {p.person_id} {p.score:.2f}", (x + pad + 3, y + pad + 14 * lw), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45 * lw, c, lw)
    return canvas


def write_outputs(out_dir: str, name: str, image: np.ndarray, people: List[PersonCrop], cfg: PeopleConfig,
                  images: bool = True) -> None:
    import cv2

    _atomic_text(os.path.join(out_dir, f"{name}_rect.txt"), format_rects(people))
    if not images:
        return
    for p in people:
        if p.mask is not None:
            _imwrite(os.path.join(out_dir, f"{name}_mask_p{p.person_id}.png"), p.mask.astype(np.uint8) * 255)
    net = image
    if cfg.background == "remove":
        masks = [p.mask for p in people if p.mask is not None]
        if masks:
            net = apply_background(image, union_masks(masks, image.shape[:2]), "remove", cfg.background_color)
    _imwrite(os.path.join(out_dir, f"{name}.png"), cv2.cvtColor(net, cv2.COLOR_RGB2BGR))
    _imwrite(os.path.join(out_dir, f"{name}_overlay.jpg"),
             cv2.cvtColor(draw_overlay(image, people, cfg.keypoint_threshold), cv2.COLOR_RGB2BGR))


def _record(name: str, frame: Frame, people: List[PersonCrop]) -> dict:
    """One people.jsonl line: per person id, rect (smoothed) and raw_rect, score, crop rule,
    height_px (body height, frame pixels), keypoints ([33] x [x, y, conf], frame pixels) and
    world_landmarks ([33] x [x, y, z], metres, hips at the origin) when the detector gives them."""
    out = []
    for p in people:
        r = {"id": p.person_id, "rect": [round(v, 2) for v in p.rect],
             "raw_rect": [round(v, 2) for v in p.meta.get("raw_rect", p.rect)],
             "score": round(p.score, 4), "crop_rule": p.meta.get("crop_rule")}
        if p.meta.get("height_px") is not None:
            r["height_px"] = round(float(p.meta["height_px"]), 1)
        if p.keypoints is not None:
            r["keypoints"] = [[round(float(x), 1), round(float(y), 1), round(float(c), 3)] for x, y, c in p.keypoints]
        if p.world_landmarks is not None:
            r["world_landmarks"] = [[round(float(v), 3) for v in row] for row in p.world_landmarks]
        out.append(r)
    return {"name": name, "frame": frame.index, "pts": frame.pts, "people": out}


def detect_path(path: str, out_dir: str, cfg: PeopleConfig, every: int = 1, max_frames: int = 0) -> dict:
    """Run detection over an image, a folder of images (each its own still, ids reset) or a video
    (one tracked sequence). Returns a summary dict (frames, people, ids, median_ms)."""
    from ..images.decode import check_image_file
    from ..mesh.io import atomic_write_bytes, check_output_dir, make_output_dir

    inputs = _inputs(path)
    for kind, item in inputs:  # headers only: a huge or broken image is refused before the models load
        if kind == "image":
            check_image_file(item)
    check_output_dir(out_dir)  # a read-only or full disk is said before the models load
    finder = PeopleFinder(cfg)  # fails (e.g. missing models) before anything is written
    make_output_dir(out_dir)
    times, n_people, ids = [], 0, set()
    records = []

    def run(name: str, frame: Frame, images: bool) -> None:
        nonlocal n_people
        t = time.perf_counter()
        people = finder.find(frame)
        times.append(time.perf_counter() - t)
        n_people += len(people)
        ids.update(p.person_id for p in people)
        write_outputs(out_dir, name, frame.image, people, cfg, images)
        records.append(_record(name, frame, people))

    for kind, item in inputs:
        if kind == "image":
            finder.reset()
            name = os.path.splitext(os.path.basename(item))[0]
            run(name, Frame(0, read_image(item), time.monotonic()), True)
        else:
            finder.reset()
            for frame in iter_video(item, max_frames):
                run(f"frame_{frame.index:06d}", frame, frame.index % every == 0)
    atomic_write_bytes(os.path.join(out_dir, "people.jsonl"), "".join(json.dumps(r) + "\n" for r in records).encode())
    return {"frames": len(times), "people": n_people, "ids": sorted(ids),
            "median_ms": float(np.median(times) * 1e3) if times else 0.0}


def _inputs(path: str) -> List[Tuple[str, str]]:
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXT))
        if not files:
            raise UserInputError(f"folder {path!r} has no images ({', '.join(IMAGE_EXT)})")
        return [("image", f) for f in files]
    if path.lower().endswith(IMAGE_EXT):
        return [("image", path)]
    return [("video", path)]


def _imwrite(path: str, img: np.ndarray) -> None:
    """Encode ``img`` (BGR) by the suffix of ``path`` and write it atomically (``OutputError`` when
    it cannot be written; the file's mode follows the umask)."""
    import cv2

    from ..mesh.io import atomic_write_bytes

    ok, buf = cv2.imencode(os.path.splitext(path)[1], img)
    if not ok:
        raise UserInputError(f"cannot encode {path!r} as {os.path.splitext(path)[1]}")
    atomic_write_bytes(path, buf.tobytes())


def _atomic_text(path: str, text: str) -> None:
    from ..mesh.io import atomic_write_bytes

    atomic_write_bytes(path, text.encode())
