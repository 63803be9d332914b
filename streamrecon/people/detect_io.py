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
    import cv2

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserInputError(f"cannot read image {path!r}; give a PNG/JPEG file")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_video(path: str, max_frames: int = 0) -> Iterator[Frame]:
    """Frames of a video file (RGB), with pts in seconds from the container."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SourceError(f"cannot open video {path!r}; check the file and that it is a format FFmpeg reads")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
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
    return {"name": name, "frame": frame.index, "pts": frame.pts,
            "people": [{"id": p.person_id, "rect": [round(v, 2) for v in p.rect],
                        "raw_rect": [round(v, 2) for v in p.meta.get("raw_rect", p.rect)],
                        "score": round(p.score, 4), "crop_rule": p.meta.get("crop_rule")} for p in people]}


def detect_path(path: str, out_dir: str, cfg: PeopleConfig, every: int = 1, max_frames: int = 0) -> dict:
    """Run detection over an image, a folder of images (each its own still, ids reset) or a video
    (one tracked sequence). Returns a summary dict (frames, people, ids, median_ms)."""
    inputs = _inputs(path)
    finder = PeopleFinder(cfg)  # fails (e.g. missing models) before anything is written
    os.makedirs(out_dir, exist_ok=True)
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
    with open(os.path.join(out_dir, "people.jsonl"), "w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
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
    import cv2

    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"
    if not cv2.imwrite(tmp, img):
        raise UserInputError(f"cannot write {path!r}; check that the --out folder is writable")
    os.replace(tmp, path)


def _atomic_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
