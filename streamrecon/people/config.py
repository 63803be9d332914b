"""Configuration of person finding (detection, crop rule, segmentation, tracking, smoothing).

One frozen dataclass; each field's docstring is mirrored by a ``streamrecon detect`` flag of the
same name (underscores become dashes). Defaults live here only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

DETECTORS = ("auto", "mediapipe", "hog", "motion", "full-frame")
BACKGROUNDS = ("keep", "remove")
SEGMENTATIONS = ("pose", "fused")


@dataclass(frozen=True)
class PeopleConfig:
    detector: str = "auto"
    """Person detector: ``mediapipe`` (BlazePose detector + 33 landmarks + person mask, the models
    bundled in the mediapipe wheel, run by LiteRT; people smaller than a quarter of the frame are
    proposed by the HOG pedestrian detector and confirmed by the landmark model), ``hog`` (the HOG people detector of OpenCV 4 in
    numpy, boxes only, GrabCut mask; upright whole people), ``motion`` (moving foreground on a static camera by MOG2
    background subtraction, video only), ``full-frame`` (one person filling the image), or ``auto``
    (mediapipe when installed, else hog, else full-frame, with one warning)."""

    max_people: int = 8
    """At most this many people per frame (highest scores first)."""

    min_height: float = 50.0
    """mediapipe detector: find people from this many pixels tall (the detector also runs on
    overlapping tiles at smaller scales, down to tiles 4x this size: a lower value finds smaller
    people for more detector runs, about 4x more per halving)."""

    min_score: float = 0.3
    """Detector score below which a candidate person is dropped (the landmark model's presence
    flag then confirms each remaining one)."""

    keypoint_threshold: float = 0.2
    """A keypoint counts as visible above this confidence (the reference uses 0.2)."""

    margin: float = 0.65
    """Whole-body crop: half side = margin x the larger side of the visible-keypoint box
    (reference: 0.65)."""

    background: str = "keep"
    """``keep`` the image as is, or ``remove`` it: pixels outside the person mask are set to
    ``background_color`` before the network."""

    background_color: Tuple[int, int, int] = (0, 0, 0)
    """RGB colour used for removed background."""

    mask_threshold: float = 0.5
    """Person-probability threshold of the segmentation mask."""

    segmentation: str = "fused"
    """Person masks (mediapipe detector): ``pose`` = BlazePose's mask from each person's ROI alone;
    ``fused`` = also mediapipe's selfie-segmentation model on each person's ROI and on a square
    around their box (max of the logits; pixels split between people by nearest skeleton): mask
    IoU 0.87-0.88 vs 0.71-0.79 on the labelme photos, ~10 ms more per person."""

    track_iou: float = 0.3
    """A detection keeps the id of the previous-frame person it overlaps most if IoU >= this."""

    track_max_missed: int = 5
    """Frames a person may go undetected before its id is forgotten."""

    smooth_min_cutoff: float = 0.3
    """One-Euro filter minimum cutoff frequency (Hz): lower = steadier still crops, more lag."""

    smooth_beta: float = 0.004
    """One-Euro filter speed coefficient (per pixel/s): higher = less lag when the person moves fast."""

    smooth_d_cutoff: float = 1.0
    """One-Euro filter cutoff (Hz) for the derivative estimate."""

    rule_switch_frames: int = 5
    """On video, a person's crop rule (feet / mid-hip / upper-body / visible) changes only after the
    keypoints have called for the new rule this many frames in a row (stops flip-flopping)."""

    smooth: bool = True
    """Temporally smooth crop rectangles on video (One-Euro filter per person id)."""

    num_threads: int = 1
    """CPU threads for the detector/landmark networks."""

    detect_every: int = 5
    """mediapipe detector on video: while people are tracked, run the person detector on every
    this many frames only (the landmark model follows tracked people in between, as mediapipe's
    pose tracking does; a tracked person lost, or nobody tracked, runs it on the next frame).
    Newcomers are found within this many frames; 1 = every frame (a quarter of the person finder's
    time)."""

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"PeopleConfig.detector: expected one of {DETECTORS}, got {self.detector!r}")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"PeopleConfig.background: expected one of {BACKGROUNDS}, got {self.background!r}")
        if self.segmentation not in SEGMENTATIONS:
            raise ValueError(f"PeopleConfig.segmentation: expected one of {SEGMENTATIONS}, got {self.segmentation!r}")
        if self.rule_switch_frames < 1:
            raise ValueError(f"PeopleConfig.rule_switch_frames: expected >= 1, got {self.rule_switch_frames}")
        if self.detect_every < 1:
            raise ValueError(f"PeopleConfig.detect_every: expected >= 1, got {self.detect_every}")
        if not self.min_height > 0:
            raise ValueError(f"PeopleConfig.min_height: expected > 0 pixels, got {self.min_height}")
        if self.max_people < 1:
            raise ValueError(f"PeopleConfig.max_people: expected >= 1, got {self.max_people}")
        for name in ("min_score", "keypoint_threshold", "mask_threshold", "track_iou"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"PeopleConfig.{name}: expected a value in [0, 1], got {v}")
        if self.margin <= 0:
            raise ValueError(f"PeopleConfig.margin: expected > 0, got {self.margin}")
        if len(self.background_color) != 3 or not all(0 <= int(c) <= 255 for c in self.background_color):
            raise ValueError(f"PeopleConfig.background_color: expected 3 values in 0..255, got {self.background_color!r}")
        if self.smooth_min_cutoff <= 0 or self.smooth_d_cutoff <= 0 or self.smooth_beta < 0:
            raise ValueError("PeopleConfig.smooth_*: cutoffs must be > 0 and beta >= 0")


def parse_color(text: str) -> Tuple[int, int, int]:
    import argparse

    try:
        parts = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(0 <= v <= 255 for v in parts):
        raise argparse.ArgumentTypeError(f"expected R,G,B with values 0..255, got {text!r}")
    return parts
