"""Finding people in frames: detection + keypoints, PIFuHD crop rectangles, person masks, stable
ids and smoothed crops. See docs/people.md.

    from streamrecon.people import PeopleFinder, PeopleConfig, apply_background
    finder = PeopleFinder(PeopleConfig(max_people=2))
    for frame in frames:
        for person in finder.find(frame):   # PersonCrop: person_id, rect, mask, keypoints, world_landmarks, score
            net_input = apply_background(frame.image, person.mask, "remove")

Heavy modules (cv2, LiteRT) load when a finder is built, not on import.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PeopleFinder": "streamrecon.people.finder",
    "make_detector": "streamrecon.people.finder",
    "PeopleConfig": "streamrecon.people.config",
    "apply_background": "streamrecon.people.segmentation",
    "mask_iou": "streamrecon.people.segmentation",
    "crop_rect_from_keypoints": "streamrecon.people.crop_rule",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamrecon.people' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
