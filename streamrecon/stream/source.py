"""The interface every video source implements (``capture`` has the real ones,
``testing.sources`` the synthetic one)."""
from __future__ import annotations

import threading
from typing import Iterator, Optional, Tuple

import numpy as np


class Source:
    """Base of every source. ``kind``: file|camera|stream|images|synthetic (the manifest's
    ``source_kind``); ``live``: frames arrive in real time and may be dropped; ``num_frames`` and
    ``fps`` when known (progress bar / ETA). Used from the capture thread only, except ``close``."""

    kind = "file"
    live = False
    name = ""
    num_frames: Optional[int] = None
    fps: Optional[float] = None
    skipped = 0
    """Frames (packets) that could not be decoded and were skipped (manifest ``summary.skipped``)."""

    def frames(self) -> Iterator[Tuple[np.ndarray, Optional[float]]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def watch(self, stop: threading.Event) -> None:
        """Called by ``capture_loop`` with the pipeline's stop event (sources that wait use it)."""
