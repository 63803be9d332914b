"""Stable person ids across frames by box overlap (greedy IoU matching). Pure bookkeeping, no
images; owned by the thread that runs ``PeopleFinder``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

from .candidates import box_iou


@dataclass
class Track:
    person_id: int
    box: tuple
    missed: int = 0


class IouTracker:
    """``update(boxes)`` -> one id per box. A box takes the id of the live track it overlaps most
    (IoU >= ``min_iou``, each track used once, best pairs first); others get new ids. Tracks not
    seen for more than ``max_missed`` frames are dropped; ids are never reused."""

    def __init__(self, min_iou: float = 0.3, max_missed: int = 5):
        self.min_iou, self.max_missed = min_iou, max_missed
        self.tracks: List[Track] = []
        self._next_id = 0

    def reset(self) -> None:
        self.tracks = []
        self._next_id = 0

    def forget(self) -> None:
        """Drop the live tracks (a new scene) but keep counting ids up: an id is never reused."""
        self.tracks = []

    def update(self, boxes: Sequence[tuple]) -> List[int]:
        pairs = sorted(((box_iou(b, t.box), i, j) for i, b in enumerate(boxes) for j, t in enumerate(self.tracks)),
                       reverse=True)
        ids = [-1] * len(boxes)
        used = set()
        for iou, i, j in pairs:
            if iou < self.min_iou:
                break
            if ids[i] != -1 or j in used:
                continue
            ids[i] = self.tracks[j].person_id
            used.add(j)
            self.tracks[j].box, self.tracks[j].missed = tuple(boxes[i]), 0
        for j, t in enumerate(self.tracks):
            if j not in used:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        # new people: left to right so ids on a first frame read naturally
        for i in sorted((i for i in range(len(boxes)) if ids[i] == -1), key=lambda i: boxes[i][0]):
            ids[i] = self._next_id
            self.tracks.append(Track(self._next_id, tuple(boxes[i])))
            self._next_id += 1
        return ids
