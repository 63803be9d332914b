"""Video sources and the capture loop.

A source yields ``(image, pts)`` pairs (image [H, W, 3] uint8 RGB, pts = presentation time in
seconds or None) from ``frames()``. ``open_source`` picks one from what the user typed:

- ``--camera N``                        -> ``CameraSource`` (OpenCV V4L2), live
- ``rtsp://``, ``http://``, ``udp://``... -> ``AVSource`` (PyAV, any FFmpeg input), live
- a folder                              -> ``ImageFolderSource`` (sorted png/jpg/bmp files)
- ``synthetic:frames=N,size=WxH,fps=F`` -> ``testing.sources.SyntheticSource`` (a moving bright disc)
- any other path                        -> ``AVSource`` on a file (mp4, mkv, avi, ... any codec)

``live`` sources default to the queue policy ``latest`` (stale frames dropped and counted), the
others to ``block`` (nothing lost). Opening fails with ``SourceError`` whose message says what is
wrong and what to try. ``capture_loop`` runs on the capture thread (see ``pipeline``).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np

from ..errors import SourceError, UserInputError
from ..types import Frame
from .source import Source

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://", "rtp://")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# A file source gives up after this many consecutive undecodable packets (the rest is garbage).
MAX_BROKEN_RUN = 250


class AVSource(Source):
    """A video file or network stream decoded by PyAV (FFmpeg). Opened in the constructor so
    that a missing or unreadable input fails before any thread starts."""

    def __init__(self, url: str, live: Optional[bool] = None) -> None:
        import av

        self.name = url
        is_stream = url.startswith(STREAM_SCHEMES)
        self.kind = "stream" if is_stream else "file"
        self.live = is_stream if live is None else live
        if not is_stream and not os.path.exists(url):
            raise SourceError(f"video file {url!r} does not exist; check the path")
        if not is_stream and os.path.isdir(url):
            raise SourceError(f"{url!r} is a folder; pass a video file, or a folder of images")
        options = {"rtsp_transport": "tcp"} if url.startswith("rtsp") else {}
        try:
            self._container = av.open(url, options=options, timeout=(10.0, 10.0) if is_stream else None)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise SourceError(f"cannot open {url!r} as video: {_av_reason(exc)}; check the file plays with ffprobe/ffplay") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{url!r} has no video stream")
        self._stream = self._container.streams.video[0]
        if self._stream.codec_context is None:
            self._container.close()
            raise SourceError(f"{url!r}: this FFmpeg build has no decoder for its video codec; re-encode it, "
                              "e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.num_frames = int(self._stream.frames) or None
        if self.num_frames is None and self.fps and self._container.duration and not is_stream:
            # mkv/webm headers carry no frame count: estimate it (progress bar / ETA only)
            self.num_frames = max(1, round(self._container.duration / 1e6 * self.fps))
        self._lock = threading.Lock()

    def frames(self) -> Iterator[Tuple[np.ndarray, Optional[float]]]:
        """Decoded frames, packet by packet: a packet the decoder rejects (corrupt data) is skipped
        and counted in ``skipped``; a file whose container breaks off (truncated) ends there. A
        network stream that breaks raises ``SourceError`` (a ``ReconnectingSource`` retries it)."""
        import av

        n = 0
        run = 0  # consecutive broken packets
        demux = self._container.demux(self._stream)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                if self.kind == "stream":
                    raise SourceError(f"{self.name!r}: reading the stream failed after {n} frames: {_av_reason(exc)}") from None
                self.skipped += 1
                log.warning("%s: container unreadable after %d frames (%s); stopping there (truncated file?)",
                            self.name, n, _av_reason(exc))
                break
            try:
                decoded = packet.decode()
            except av.FFmpegError as exc:
                self.skipped += 1
                run += 1
                log.debug("%s: skipped a corrupt packet after frame %d (%s)", self.name, n, _av_reason(exc))
                if run >= MAX_BROKEN_RUN:
                    raise SourceError(f"{self.name!r}: {run} consecutive packets fail to decode after {n} frames "
                                      f"({_av_reason(exc)}); the file is damaged beyond this point, re-encode or re-download it") from None
                continue
            run = 0
            for frame in decoded:
                n += 1
                yield frame.to_ndarray(format="rgb24"), (float(frame.time) if frame.time is not None else None)
        if n and self.skipped:
            log.warning("%s: skipped %d undecodable packet(s) (corrupt data); counted in the summary", self.name, self.skipped)
        if n == 0:
            broken = f" ({self.skipped} broken packets)" if self.skipped else ""
            raise SourceError(f"{self.name!r} contains no decodable video frames{broken}; check it plays with ffplay")

    def close(self) -> None:
        with self._lock:
            try:
                self._container.close()
            except Exception:  # closing a half-broken container must not hide the real error
                log.debug("closing %s failed", self.name, exc_info=True)


def _av_reason(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(msg).split())


class CameraSource(Source):
    """A webcam through OpenCV (V4L2 on Linux). ``index`` = N of ``/dev/videoN``."""

    kind = "camera"
    live = True

    def __init__(self, index: int, width: Optional[int] = None, height: Optional[int] = None) -> None:
        import cv2

        self.name = f"camera:{index}"
        if index < 0:
            raise UserInputError(f"--camera: expected a camera index >= 0, got {index}")
        dev = f"/dev/video{index}"
        if os.name == "posix" and os.path.isdir("/dev") and not os.path.exists(dev):
            present = sorted(p.name for p in Path("/dev").glob("video*"))
            hint = f"cameras present: {', '.join(present)}" if present else "no camera is connected (no /dev/video*)"
            raise SourceError(f"camera {index} not found ({dev} does not exist); {hint}")
        api = getattr(cv2, "CAP_V4L2", 0) if os.name == "posix" else 0
        cap = cv2.VideoCapture(index, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {index} cannot be opened ({dev}); is it in use, or does this user lack access (group 'video')?")
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # we drop stale frames ourselves; the driver should not queue them
        self.fps = cap.get(cv2.CAP_PROP_FPS) or None
        self._cap = cap

    def frames(self) -> Iterator[Tuple[np.ndarray, Optional[float]]]:
        import cv2

        t0 = time.monotonic()
        while True:
            ok, bgr = self._cap.read()
            if not ok:
                raise SourceError(f"{self.name}: reading a frame failed (camera unplugged?)")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), time.monotonic() - t0

    def close(self) -> None:
        self._cap.release()


class ImageFolderSource(Source):
    """Every image file in a folder, in sorted name order; pts = i / fps (i: the entry's position,
    so a skipped entry leaves a gap in time, not in frame indices). An entry that cannot be read
    (corrupt or too large image, dangling or looping symlink, FIFO, device, folder) is skipped,
    counted in ``skipped`` and listed with its reason in ``skipped_entries``, and a warning says
    what was wrong; the folder goes on. A folder with no readable image at all is a
    ``SourceError``."""

    kind = "images"

    def __init__(self, folder: str, fps: float = 25.0) -> None:
        self.name = folder
        try:
            self.files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        except OSError as exc:
            raise SourceError(f"cannot list the folder {folder!r}: {exc.strerror}") from None
        if not self.files:
            raise SourceError(f"folder {folder!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self.num_frames = len(self.files)
        self.fps = fps
        self.skipped_entries: list = []
        """``{"file": name, "reason": what was wrong}`` per skipped entry (capture thread appends)"""

    def frames(self) -> Iterator[Tuple[np.ndarray, Optional[float]]]:
        from ..images.decode import load_image

        n = 0
        for i, path in enumerate(self.files):
            try:  # load_image reads the header first: a huge image is refused before decoding
                image = load_image(path)
            except UserInputError as exc:
                reason = str(exc).removeprefix(f"cannot read image {path}: ")
                self.skipped += 1
                self.skipped_entries.append({"file": path.name, "reason": reason})
                log.warning("skipped %s: %s", path, reason)
                continue
            n += 1
            yield image, i / self.fps
        if n == 0:
            raise SourceError(f"folder {self.name!r}: none of its {len(self.files)} image entries can be read "
                              f"(first: {self.skipped_entries[0]['file']}: {self.skipped_entries[0]['reason']})")


@dataclass(frozen=True)
class ReconnectConfig:
    """How a live source (camera, network stream) is reopened after it fails mid-stream."""

    attempts: int = 5
    """Reopen attempts without a frame in between before giving up (0 = fail at once)."""
    backoff_s: float = 0.5
    """Wait before the first attempt; doubled after each failed one."""
    max_backoff_s: float = 4.0
    """Longest single wait."""


class ReconnectingSource(Source):
    """A live source that survives being unplugged: ``open_fn()`` opens the inner source (its
    errors on the first open propagate as they are: missing or busy camera). When the inner
    ``frames()`` raises ``SourceError`` mid-stream, it is closed and reopened with exponential
    back-off (``ReconnectConfig``); frames go on with the next index. After ``attempts`` failed
    tries without a frame in between it raises ``SourceError`` saying how many frames were read
    and what was tried, so the pipeline delivers every frame read before and the run ends
    cleanly (summary written, exit code 4). Runs on the capture thread, except ``close``."""

    def __init__(self, open_fn, config: ReconnectConfig = ReconnectConfig(), sleep=None) -> None:
        self._open = open_fn
        self.config = config
        self._inner: Optional[Source] = open_fn()
        for attr in ("kind", "live", "name", "fps", "num_frames"):
            setattr(self, attr, getattr(self._inner, attr))
        self._stop = threading.Event()  # the pipeline's (see ``watch``); never set from here
        self._closed = threading.Event()
        self._sleep = sleep  # tests inject a fake clock
        self.reconnects = 0
        self._lost = 0

    @property
    def skipped(self) -> int:  # type: ignore[override]
        return self._lost + (self._inner.skipped if self._inner is not None else 0)

    def watch(self, stop: threading.Event) -> None:
        self._stop = stop

    def _wait(self, seconds: float) -> bool:
        """Sleep (or the injected clock); False when the pipeline was stopped meanwhile."""
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            end = time.monotonic() + seconds
            while time.monotonic() < end and not (self._stop.is_set() or self._closed.is_set()):
                time.sleep(min(0.05, max(0.0, end - time.monotonic())))
        return not (self._stop.is_set() or self._closed.is_set())

    def frames(self) -> Iterator[Tuple[np.ndarray, Optional[float]]]:
        n = 0
        failures = 0  # tries since the last frame
        while True:
            first_error: Optional[BaseException] = None
            try:
                for item in self._inner.frames():
                    n += 1
                    failures = 0
                    yield item
                return  # the source ended by itself
            except SourceError as exc:
                first_error = exc
            self._close_inner()
            log.warning("%s lost after %d frames (%s); reconnecting", self.name, n, first_error)
            delay, t0, last = self.config.backoff_s, time.monotonic(), first_error
            while self._inner is None:
                if failures >= self.config.attempts:
                    raise SourceError(
                        f"{self.name} lost after {n} frames ({first_error}); {failures} reconnect attempt(s) over "
                        f"{time.monotonic() - t0:.1f} s failed (last: {last}); check the cable or network and start again"
                    ) from None
                failures += 1
                if not self._wait(delay):
                    return  # stopped while waiting: end of stream
                delay = min(delay * 2.0, self.config.max_backoff_s)
                try:
                    self._inner = self._open()
                    self.reconnects += 1
                    log.warning("%s reconnected (attempt %d)", self.name, failures)
                except SourceError as exc:
                    last = exc

    def _close_inner(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            self._lost += inner.skipped
            try:
                inner.close()
            except Exception:
                log.debug("closing %s failed", self.name, exc_info=True)

    def close(self) -> None:
        self._closed.set()
        self._close_inner()


def open_source(spec: Optional[str] = None, camera: Optional[int] = None, live: Optional[bool] = None,
                reconnect: ReconnectConfig = ReconnectConfig()) -> Source:
    """Open what the user named (see module docstring). Cameras and network streams are wrapped in
    ``ReconnectingSource`` (``reconnect``). Raises ``SourceError``/``UserInputError``."""
    if reconnect.attempts < 0 or reconnect.backoff_s < 0:
        raise UserInputError(f"--reconnect-attempts/--reconnect-backoff: expected values >= 0, got {reconnect}")
    if camera is not None:
        return ReconnectingSource(lambda: CameraSource(camera), reconnect)
    if not spec:
        raise UserInputError("no input: pass a video file, a stream URL, an image folder or --camera N")
    if spec.startswith("synthetic:"):
        from ..testing.sources import parse_synthetic

        return parse_synthetic(spec, live=bool(live))
    if not spec.startswith(STREAM_SCHEMES) and os.path.isdir(spec):
        return ImageFolderSource(spec)
    if spec.startswith(STREAM_SCHEMES) and live is not False:
        return ReconnectingSource(lambda: AVSource(spec, live=live), reconnect)
    return AVSource(spec, live=live)


class PacedSource(Source):
    """Plays a file source in real time (at its fps) and marks it live, so ``live VIDEO`` behaves
    like a camera: frames the reconstruction cannot keep up with are dropped."""

    live = True

    def __init__(self, inner: Source, fps: Optional[float] = None) -> None:
        self.inner = inner
        self.kind, self.name, self.num_frames = inner.kind, inner.name, inner.num_frames
        self.fps = fps or inner.fps or 25.0

    @property
    def skipped(self) -> int:  # type: ignore[override]
        return self.inner.skipped

    def frames(self) -> Iterator[Tuple[np.ndarray, Optional[float]]]:
        t0 = time.monotonic()
        for i, item in enumerate(self.inner.frames()):
            delay = t0 + i / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield item

    def close(self) -> None:
        self.inner.close()


def capture_loop(source: Source, put, stop: threading.Event, max_frames: Optional[int] = None) -> int:
    """Read ``source`` into ``put(Frame)`` until it ends, ``stop`` is set or ``max_frames`` were
    read. ``Frame.timestamp`` is ``time.monotonic()`` at capture. Returns the frames read. Runs on
    the capture thread; the caller closes the queue (end of stream / error) in its ``finally``."""
    n = 0
    source.watch(stop)
    for image, pts in source.frames():
        if stop.is_set() or (max_frames is not None and n >= max_frames):
            break
        put(Frame(index=n, image=image, timestamp=time.monotonic(), pts=pts))
        n += 1
    return n
