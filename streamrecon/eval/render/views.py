"""Render a ``Mesh`` with the camera of its crop: silhouette, depth, normals and shading, in the
crop view (the square crop, like the network saw it) or the image view (the original frame)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...types import Mesh
from .cameras import CropCamera
from .rasterizer import Fragments, rasterize
from .shading import lambert, normal_image, normals_to_rgb


@dataclass
class Render:
    """One view of one mesh. ``view``: 'image' or 'crop'. ``depth`` [H, W] float32, NaN on
    background, in the frame of the view: image-frame z in pixels for 'image', crop-frame z
    ([-1, 1] units, +z away from the camera) for 'crop'. ``normals`` [H, W, 3] float32 unit
    normals in the raster frame (x right, y down, z away; n_z <= 0 on the surface). ``shaded``
    [H, W] float32 Lambert shading in [0, 1], 0 on background."""

    view: str
    fragments: Fragments
    depth: np.ndarray
    normals: np.ndarray
    shaded: np.ndarray

    @property
    def silhouette(self) -> np.ndarray:
        """[H, W] bool: pixels covered by the mesh."""
        return self.fragments.mask

    def shaded_u8(self) -> np.ndarray:
        """[H, W] uint8 grey shading (0 on background)."""
        return np.clip(np.rint(self.shaded * 255.0), 0, 255).astype(np.uint8)

    def normals_rgb(self) -> np.ndarray:
        """[H, W, 3] uint8 normal map (red right, green up, blue toward the viewer)."""
        return normals_to_rgb(self.normals, self.silhouette)


def render_mesh(mesh: Mesh, camera: CropCamera, view: str = "image", crop_size: int = 512,
                smooth: bool = True, ambient: float = 0.15) -> Render:
    """Render ``mesh`` (vertices in ``mesh.frame``) seen by ``camera`` in ``view``: 'image' (an
    H x W picture of the original frame) or 'crop' (``crop_size`` x ``crop_size`` pixels covering
    the crop rect)."""
    raster = camera.to_raster(mesh.vertices, mesh.frame, view, crop_size)
    h, w = camera.view_shape(view, crop_size)
    frags = rasterize(raster, mesh.faces, h, w)
    normals = normal_image(frags, raster, mesh.faces, smooth=smooth)
    shaded = lambert(normals, frags.mask, ambient=ambient)
    depth = frags.depth.astype(np.float64)
    if view == "crop":
        depth = depth * (2.0 / crop_size)  # raster z of the crop view -> crop-frame z
    depth = np.where(frags.mask, depth, np.nan).astype(np.float32)
    return Render(view=view, fragments=frags, depth=depth, normals=normals, shaded=shaded)
