"""Options of ``streamrecon evaluate``: a frozen dataclass whose field docstrings are the CLI help
(``streamrecon.cli.help`` reads them), so defaults and help live in one place. Light: stdlib only."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import UserInputError

RENDER_VIEWS = ("none", "image", "crop")
CROP_RENDER_SIZE = 512


@dataclass(frozen=True)
class EvaluateConfig:
    """Options of ``streamrecon evaluate`` (each field is a CLI flag of the same name)."""

    iou_threshold: float = 0.5
    """A person in a frame whose silhouette IoU against its mask is below this is listed as failing."""
    samples: int = 8
    """How many frames, spread evenly over the run, the report shows as pictures."""
    max_failing: int = 12
    """At most this many failing frames get pictures in the report (metrics.json lists them all)."""
    boundary_tolerance: float = 0.0
    """Boundary F-score tolerance in pixels; 0 = 0.8% of the frame diagonal (the DAVIS rule)."""
    max_frames: int = 0
    """Evaluate only the first N frames of the manifest (0 = all)."""
    thumb_width: int = 360
    """Width in pixels of each picture in the report."""
    save_renders: str = "none"
    """Also write every render to OUT/renders/ ('image': frame view, 'crop': 512 px crop view, 'none'):
    frame_NNNNNN_pK.npz (silhouette, depth, normals) and frame_NNNNNN_pK.png (shaded normal map)."""
    covered_threshold: float = 0.55
    """3D: a person-frame whose fitted body is covered by the mesh (enclosed by it, or within
    --body-tolerance of its surface) over less than this share of its judged surface is failing."""
    thickness_threshold: float = 0.35
    """3D: a person-frame whose mesh is, in some height band, less than this share as thick front to
    back as the fitted body is failing."""
    body_tolerance: float = 3.0
    """3D: a body point this close to the mesh surface (cm, by the body's own scale) counts as covered."""
    thickness_bands: int = 10
    """3D: height bands of the thickness profile, over the body's judged height."""
    body_points: int = 2000
    """3D: samples on the fitted body's surface judged per person-frame."""
    turntable: int = 3
    """Frames, spread evenly over the run, the report shows turned through 8 angles (0 = none)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise UserInputError(f"--iou-threshold must lie in [0, 1], got {self.iou_threshold}")
        for name in ("samples", "max_failing", "max_frames", "turntable"):
            if getattr(self, name) < 0:
                raise UserInputError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.boundary_tolerance < 0:
            raise UserInputError(f"--boundary-tolerance must be >= 0 pixels, got {self.boundary_tolerance}")
        if self.save_renders not in RENDER_VIEWS:
            raise UserInputError(f"--save-renders must be one of {', '.join(RENDER_VIEWS)}, got {self.save_renders!r}")
        for name in ("covered_threshold", "thickness_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserInputError(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.body_tolerance <= 100.0:
            raise UserInputError(f"--body-tolerance must lie in [0, 100] cm, got {self.body_tolerance}")
        if not 1 <= self.thickness_bands <= 100:
            raise UserInputError(f"--thickness-bands must lie in [1, 100], got {self.thickness_bands}")
        if not 10 <= self.body_points <= 1_000_000:
            raise UserInputError(f"--body-points must lie in [10, 1000000], got {self.body_points}")
        if not 16 <= self.thumb_width <= 4096:
            raise UserInputError(f"--thumb-width must lie in [16, 4096] pixels, got {self.thumb_width}")
