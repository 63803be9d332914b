"""Shared by the streaming tests: generated videos and small stage doubles."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from streamrecon.testing.sources import disc_image
from streamrecon.stream.stages import FrameReconstructor
from streamrecon.testing.sphere_model import SphereModel, sphere_reconstruct

CODECS = {"mp4": ("mpeg4", "yuv420p"), "mkv": ("libx264", "yuv420p"), "avi": ("mjpeg", "yuvj420p")}


def write_video(path: Path, n: int, size=(96, 64), fps: int = 25) -> Path:
    """A video of ``disc_image`` frames, encoded by PyAV with the codec of the suffix."""
    import av

    codec, pix = CODECS[path.suffix.lstrip(".")]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = size[0], size[1], pix
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(disc_image(i, *size)[0], format="rgb24")
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def sphere_stage(delay_s: float = 0.0, resolution: int = 16, mesh_frame: str = "image") -> FrameReconstructor:
    model = SphereModel()

    class Cfg:
        pass

    cfg = Cfg()
    cfg.resolution = resolution

    def reconstruct(image, crop):
        if delay_s:
            time.sleep(delay_s)
        return sphere_reconstruct(model, image, crop.rect, crop.mask, cfg)

    return FrameReconstructor(reconstruct, mesh_frame=mesh_frame)


def disc_centre_error(mesh, index: int, size) -> float:
    """Distance in pixels between an image-frame mesh's x/y centre and the disc drawn in frame
    ``index`` (shows each mesh belongs to its own frame)."""
    _, (cx, cy, _) = disc_image(index, *size)
    c = mesh.vertices[:, :2].mean(axis=0)
    return float(np.hypot(c[0] - cx, c[1] - cy))
