"""Frame capture (issue 6, item 1): frame sources and a newest-frame-only grabber.

Sources (all :class:`FrameSource`: ``open()``, ``read() -> Frame``, ``close()``, context manager):

- :class:`DeviceSource`: a V4L2 device by index (``"0"``) or path (``"/dev/video0"``);
- :class:`VideoFileSource`: a video file; its end raises :class:`EndOfStream`, not an error;
- :class:`StreamSource`: an RTSP/HTTP/UDP/TCP/RTMP URL through FFmpeg, with open and read timeouts;
- :class:`ImageFolderSource`: the .jpg/.jpeg/.png/.bmp/.tif/.tiff files of a folder, sorted by name;
- :class:`Picamera2Source`: a Raspberry Pi camera through picamera2, where it is installed.

:func:`open_source` parses a spec string into one of them and opens it. ``sim://WORLD`` needs the
flight loop: it is served only when the caller passes a factory for the "sim" scheme.

Every frame is stamped by its source with the injected clock's ``monotonic_ns`` right after the
driver hands it over (the grabber keeps that stamp: give the source and the grabber the same
clock), is a BGR ``uint8`` HxWx3 array, and is read-only: a frame is never a borrowed driver
buffer (picamera2 requests are copied and released at once).

:class:`LatestFrameGrabber` reads a source on its own thread and keeps only the newest frame:
frames the consumer did not take in time are dropped and counted; a lost live source is reopened
with exponential backoff (counted); the end of a file ends the stream. ``get(timeout_s)`` returns
the newest frame not yet returned, or raises :class:`agridrone.errors.WaitTimeout`,
:class:`EndOfStream` or :class:`agridrone.errors.CameraError`.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Protocol, runtime_checkable

import numpy as np

from agridrone.clock import Clock
from agridrone.errors import CameraError, WaitTimeout
from agridrone.types import Frame

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
SPEC_HELP = ("expected a device index (0), a V4L2 path (/dev/video0), a video file, an image folder, "
             "an rtsp:// or http:// URL, picamera2[:N] or sim://WORLD")


class EndOfStream(CameraError):
    """A finite source (video file, image folder) has no more frames."""


@runtime_checkable
class FrameSource(Protocol):
    """Anything frames come from. ``live`` sources are worth reopening when they fail."""

    name: str
    live: bool

    def open(self) -> None: ...

    def read(self) -> Frame: ...

    def close(self) -> None: ...

    def __enter__(self) -> "FrameSource": ...

    def __exit__(self, *exc: object) -> None: ...


def _to_bgr(image: np.ndarray, what: str) -> np.ndarray:
    """A BGR uint8 HxWx3 array (grey and BGRA converted), owned and read-only."""
    import cv2

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise CameraError(f"{what}: expected a uint8 image, got {got}")
    if image.ndim == 2 or image.shape[2] == 1:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.shape[2] != 3:
        raise CameraError(f"{what}: expected 1, 3 or 4 channels, got {image.shape[2]}")
    image = np.ascontiguousarray(image)
    image.setflags(write=False)
    return image


class _BaseSource:
    """Shared bookkeeping of the sources below (each defines open/read/close): frame index, context manager."""

    live = False

    def __init__(self, name: str, clock: Clock) -> None:
        self.name = name
        self.clock = clock
        self._index = 0
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def __enter__(self):
        if not self._open:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _frame(self, image: np.ndarray, ts_ns: int) -> Frame:
        frame = Frame(ts_ns=ts_ns, image=_to_bgr(image, self.name), index=self._index, source=self.name)
        self._index += 1
        return frame


class _OpenCVSource(_BaseSource):
    """A cv2.VideoCapture behind the FrameSource protocol."""

    kind = "capture"

    def __init__(self, name: str, target: int | str, clock: Clock, *, api: int | None = None,
                 params: tuple[int, ...] = (), size_wh: tuple[int, int] | None = None) -> None:
        super().__init__(name, clock)
        self._target = target
        self._api = api
        self._params = params
        self._size_wh = size_wh
        self._cap = None

    def _check_exists(self) -> None:
        """Raise a clear CameraError before OpenCV gets a chance to print warnings."""

    def open(self) -> None:
        if self._open:
            return
        import cv2

        self._check_exists()
        api = cv2.CAP_ANY if self._api is None else self._api
        try:
            cap = cv2.VideoCapture(self._target, api, list(self._params)) if self._params \
                else cv2.VideoCapture(self._target, api)
        except cv2.error as exc:
            raise CameraError(f"cannot open {self.kind} {self.name!r}: {' '.join(str(exc).split())[:200]}") from None
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"cannot open {self.kind} {self.name!r}: OpenCV could not open it "
                              f"(expected a readable {self.kind})")
        if self._size_wh:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._size_wh[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._size_wh[1])
        self._cap = cap
        self._open = True

    def read(self) -> Frame:
        if not self._open or self._cap is None:
            raise CameraError(f"{self.kind} {self.name!r}: expected an open source, got a closed one")
        ok, image = self._cap.read()
        ts_ns = self.clock.monotonic_ns()
        if not ok or image is None:
            return self._on_failed_read()
        return self._frame(image, ts_ns)

    def _on_failed_read(self) -> Frame:
        raise CameraError(f"{self.kind} {self.name!r} stopped delivering frames after {self._index}")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._open = False


class DeviceSource(_OpenCVSource):
    """A V4L2 camera: ``DeviceSource(0, clock)`` or ``DeviceSource("/dev/video0", clock)``."""

    kind = "camera device"
    live = True

    def __init__(self, device: int | str, clock: Clock, *, size_wh: tuple[int, int] | None = None) -> None:
        path = f"/dev/video{device}" if isinstance(device, int) else str(device)
        api = None
        if sys.platform.startswith("linux"):
            import cv2

            api = cv2.CAP_V4L2
        super().__init__(path, device if isinstance(device, int) else path, clock, api=api, size_wh=size_wh)

    def _check_exists(self) -> None:
        if sys.platform.startswith("linux") and not os.path.exists(self.name):
            present = sorted(str(p) for p in Path("/dev").glob("video*")) if Path("/dev").is_dir() else []
            raise CameraError(f"camera device {self.name} not found (devices present: "
                              f"{', '.join(present) if present else 'none'})")


class VideoFileSource(_OpenCVSource):
    """A video file; reading past its end raises EndOfStream. ``pace_fps`` plays it at that rate."""

    kind = "video file"
    live = False

    def __init__(self, path: str | os.PathLike, clock: Clock, *, pace_fps: float | None = None) -> None:
        super().__init__(str(path), str(path), clock)
        self._pacer = _Pacer(clock, pace_fps)

    def _check_exists(self) -> None:
        if not os.path.isfile(self.name):
            raise CameraError(f"video file not found: {self.name!r} ({SPEC_HELP})")

    def read(self) -> Frame:
        self._pacer.wait()
        return super().read()

    def _on_failed_read(self) -> Frame:
        raise EndOfStream(f"video file {self.name!r} ended after {self._index} frames")


class StreamSource(_OpenCVSource):
    """A network stream through FFmpeg, with open/read timeouts so a dead peer cannot hang a read."""

    kind = "stream"
    live = True

    def __init__(self, url: str, clock: Clock, *, open_timeout_s: float = 5.0, read_timeout_s: float = 5.0) -> None:
        import cv2

        params = (cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000))
        super().__init__(url, url, clock, api=cv2.CAP_FFMPEG, params=params)


class ImageFolderSource(_BaseSource):
    """The images of a folder in name order; then EndOfStream (or from the start again with ``loop``)."""

    live = False

    def __init__(self, folder: str | os.PathLike, clock: Clock, *, loop: bool = False,
                 pace_fps: float | None = None) -> None:
        super().__init__(str(folder), clock)
        self._loop = loop
        self._files: list[Path] = []
        self._pos = 0
        self._pacer = _Pacer(clock, pace_fps)

    def open(self) -> None:
        if self._open:
            return
        folder = Path(self.name)
        if not folder.is_dir():
            raise CameraError(f"image folder not found: {self.name!r} ({SPEC_HELP})")
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CameraError(f"image folder {self.name!r}: expected {'/'.join(IMAGE_SUFFIXES)} files, got none")
        self._files, self._pos, self._open = files, 0, True

    def read(self) -> Frame:
        import cv2

        if not self._open:
            raise CameraError(f"image folder {self.name!r}: expected an open source, got a closed one")
        if self._pos >= len(self._files):
            if not self._loop:
                raise EndOfStream(f"image folder {self.name!r} ended after {len(self._files)} images")
            self._pos = 0
        self._pacer.wait()
        path = self._files[self._pos]
        self._pos += 1
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        ts_ns = self.clock.monotonic_ns()
        if image is None:
            raise CameraError(f"image {str(path)!r}: expected a readable image, got an unreadable file")
        if image.dtype == np.uint16:  # 16-bit TIFF/PNG: keep the top 8 bits
            image = (image >> 8).astype(np.uint8)
        return self._frame(image, ts_ns)

    def close(self) -> None:
        self._open = False


class Picamera2Source(_BaseSource):
    """A Raspberry Pi camera through picamera2 (only where picamera2 is installed)."""

    live = True

    def __init__(self, camera_num: int, clock: Clock, *, size_wh: tuple[int, int] = (640, 480)) -> None:
        super().__init__(f"picamera2:{camera_num}", clock)
        self.camera_num = camera_num
        self.size_wh = size_wh
        self._cam = None

    def open(self) -> None:
        if self._open:
            return
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError:
            raise CameraError(f"{self.name}: picamera2 is not installed (expected it on Raspberry Pi OS: "
                              "sudo apt install python3-picamera2; use a V4L2 device or a file elsewhere)") from None
        try:
            cam = Picamera2(camera_num=self.camera_num)
            # "RGB888" in libcamera's naming is B, G, R in memory: what OpenCV calls BGR
            cam.configure(cam.create_video_configuration(main={"size": tuple(self.size_wh), "format": "RGB888"}))
            cam.start()
        except Exception as exc:  # picamera2 raises plain RuntimeError/IndexError for missing cameras
            raise CameraError(f"{self.name}: cannot start the camera: {' '.join(str(exc).split())[:200]}") from None
        self._cam, self._open = cam, True

    def read(self) -> Frame:
        if not self._open or self._cam is None:
            raise CameraError(f"{self.name}: expected an open source, got a closed one")
        try:
            request = self._cam.capture_request()
        except Exception as exc:
            raise CameraError(f"{self.name}: capture failed: {' '.join(str(exc).split())[:200]}") from None
        ts_ns = self.clock.monotonic_ns()
        try:  # borrow the driver's buffer only for the copy, then give it back at once
            image = np.array(request.make_array("main"), dtype=np.uint8, copy=True)
        finally:
            request.release()
        return self._frame(image, ts_ns)

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None
        self._open = False


class _Pacer:
    """Sleeps on the injected clock so a recorded source plays at ``fps`` (no pacing when None)."""

    def __init__(self, clock: Clock, fps: float | None) -> None:
        if fps is not None and not fps > 0:
            raise CameraError(f"pace_fps: expected > 0 frames per second, got {fps}")
        self._clock = clock
        self._period_ns = None if fps is None else int(1e9 / fps)
        self._next_ns: int | None = None

    def wait(self) -> None:
        if self._period_ns is None:
            return
        now = self._clock.monotonic_ns()
        if self._next_ns is None or now - self._next_ns > self._period_ns:  # first frame, or late: no catch-up
            self._next_ns = now
        elif self._next_ns > now:
            self._clock.sleep((self._next_ns - now) / 1e9)
        self._next_ns += self._period_ns


SourceFactory = Callable[[str, Clock], FrameSource]


def parse_source(spec: str, clock: Clock, *, schemes: Mapping[str, SourceFactory] | None = None,
                 pace_fps: float | None = None, size_wh: tuple[int, int] | None = None) -> FrameSource:
    """The (unopened) source a spec names; ``schemes`` adds URL schemes such as "sim"."""
    if not isinstance(spec, str) or not spec.strip():
        raise CameraError(f"camera source: {SPEC_HELP}, got {spec!r}")
    spec = spec.strip()
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", spec)
    if m:
        scheme = m.group(1).lower()
        if schemes and scheme in schemes:
            return schemes[scheme](spec, clock)
        if scheme == "sim":
            raise CameraError(f"simulated camera needs the flight loop: {spec!r} can only be opened by "
                              "`agridrone fly`/`agridrone demo`, which render it from the vehicle's pose")
        if scheme in STREAM_SCHEMES:
            return StreamSource(spec, clock)
        if scheme == "file":
            return parse_source(m.group(2), clock, schemes=schemes, pace_fps=pace_fps, size_wh=size_wh)
        raise CameraError(f"camera source {spec!r}: unknown scheme {scheme!r} ({SPEC_HELP})")
    m = re.match(r"^picamera2(?::(\d+))?$", spec)
    if m:
        kwargs = {"size_wh": size_wh} if size_wh else {}
        return Picamera2Source(int(m.group(1) or 0), clock, **kwargs)
    if spec.isdigit():
        return DeviceSource(int(spec), clock, size_wh=size_wh)
    if spec.startswith("/dev/"):
        return DeviceSource(spec, clock, size_wh=size_wh)
    if spec.endswith(("/", os.sep)) or os.path.isdir(spec):
        return ImageFolderSource(spec, clock, pace_fps=pace_fps)
    return VideoFileSource(spec, clock, pace_fps=pace_fps)


def open_source(spec: str, clock: Clock, **options) -> FrameSource:
    """Parse ``spec`` (see :func:`parse_source`) and open the source; a CameraError says what was wrong."""
    source = parse_source(spec, clock, **options)
    source.open()
    return source


@dataclass(frozen=True, slots=True)
class GrabberStats:
    captured: int       # frames read from the source
    delivered: int      # frames handed out by get()
    dropped: int        # frames replaced by a newer one before anyone took them
    lost: int           # times a live source failed while reading
    reconnects: int     # successful reopenings
    reconnect_attempts: int
    connected: bool
    eof: bool


class LatestFrameGrabber:
    """Reads ``source`` on its own thread and keeps only the newest frame (see the module docstring).

    The grabber owns the source: it opens it in ``start()`` (so a missing camera fails there, in the
    caller's thread) and closes it when its thread ends. ``max_reconnect_attempts`` (None: forever)
    bounds consecutive failed reopenings; past it ``get`` raises CameraError.
    """

    def __init__(self, source: FrameSource, clock: Clock, *, backoff_initial_s: float = 0.1,
                 backoff_max_s: float = 5.0, max_reconnect_attempts: int | None = None) -> None:
        if not backoff_initial_s > 0 or backoff_max_s < backoff_initial_s:
            raise CameraError(f"backoff: expected 0 < initial <= max, got {backoff_initial_s}, {backoff_max_s}")
        self.source = source
        self.clock = clock
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_reconnect_attempts = max_reconnect_attempts
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: Frame | None = None
        self._latest_taken = True
        self._error: CameraError | None = None
        self._eof: EndOfStream | None = None
        self._connected = False
        self._captured = self._delivered = self._dropped = 0
        self._lost = self._reconnects = self._attempts = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "LatestFrameGrabber":
        if self._thread is not None:
            raise CameraError(f"grabber for {self.source.name!r}: expected one start(), got a second")
        if not getattr(self.source, "is_open", False):
            self.source.open()
        self._connected = True
        self._thread = threading.Thread(target=self._run, name=f"camera:{self.source.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise WaitTimeout(f"camera thread for {self.source.name!r} did not stop within {timeout_s} s",
                                  origin="camera.stop", timeout_s=timeout_s)
        else:
            self.source.close()

    def __enter__(self) -> "LatestFrameGrabber":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- consumer side ----------------------------------------------------------------------
    def get(self, timeout_s: float) -> Frame:
        """The newest frame not returned before; waits at most ``timeout_s`` (real time)."""
        if self._thread is None:
            raise CameraError(f"grabber for {self.source.name!r}: expected start() before get()")
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while True:
                if self._stop.is_set():
                    raise CameraError(f"grabber for {self.source.name!r} stopped: expected get() before stop()")
                if not self._latest_taken and self._latest is not None:
                    self._latest_taken = True
                    self._delivered += 1
                    return self._latest
                if self._error is not None:
                    raise self._error
                if self._eof is not None:
                    raise self._eof
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    state = "connected" if self._connected else "reconnecting"
                    raise WaitTimeout(f"no new frame from {self.source.name!r} within {timeout_s} s ({state})",
                                      origin="camera.get", timeout_s=timeout_s)
                self._cond.wait(remaining)

    @property
    def stats(self) -> GrabberStats:
        with self._cond:
            return GrabberStats(self._captured, self._delivered, self._dropped, self._lost, self._reconnects,
                                self._attempts, self._connected, self._eof is not None)

    # -- capture thread ---------------------------------------------------------------------
    def _publish(self, frame: Frame) -> None:
        with self._cond:
            self._captured += 1
            if not self._latest_taken:
                self._dropped += 1
            self._latest, self._latest_taken = frame, False
            self._cond.notify_all()

    def _finish(self, *, error: CameraError | None = None, eof: EndOfStream | None = None) -> None:
        with self._cond:
            self._error, self._eof = error, eof
            self._connected = False
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    frame = self.source.read()
                except EndOfStream as exc:
                    self._finish(eof=exc)
                    return
                except CameraError as exc:
                    if not self.source.live:
                        self._finish(error=exc)
                        return
                    with self._cond:
                        self._lost += 1
                        self._connected = False
                    if not self._reconnect(exc):
                        return
                    continue
                except Exception as exc:  # a driver bug must not kill the thread silently
                    self._finish(error=CameraError(f"{self.source.name!r}: unexpected {type(exc).__name__}: "
                                                   f"{' '.join(str(exc).split())[:200]}"))
                    return
                self._publish(frame)
        finally:
            try:
                self.source.close()
            except Exception:
                pass
            with self._cond:
                self._connected = False
                self._cond.notify_all()

    def _reconnect(self, cause: CameraError) -> bool:
        """Reopen with exponential backoff; False when stopped or out of attempts."""
        delay_s = self.backoff_initial_s
        failures = 0
        while not self._stop.is_set():
            self._sleep(delay_s)
            if self._stop.is_set():
                return False
            try:
                self.source.close()
            except Exception:
                pass
            with self._cond:
                self._attempts += 1
            try:
                self.source.open()
            except CameraError as exc:
                failures += 1
                cause = exc
                if self.max_reconnect_attempts is not None and failures >= self.max_reconnect_attempts:
                    self._finish(error=CameraError(f"{self.source.name!r} lost and not reopened after {failures} "
                                                   f"attempts: {cause}"))
                    return False
                delay_s = min(delay_s * 2.0, self.backoff_max_s)
                continue
            with self._cond:
                self._reconnects += 1
                self._connected = True
            return True
        return False

    def _sleep(self, seconds: float) -> None:
        """Backoff on the injected clock, in slices so that stop() is prompt."""
        remaining = seconds
        while remaining > 0 and not self._stop.is_set():
            step = min(0.05, remaining)
            self.clock.sleep(step)
            remaining -= step
