"""Frame sources and the newest-frame-only grabber, on files written into tmp_path and on fakes."""

from __future__ import annotations

import sys
import threading
import time
import types

import cv2
import numpy as np
import pytest

from agridrone.camera import (DeviceSource, EndOfStream, ImageFolderSource, LatestFrameGrabber, Picamera2Source,
                              StreamSource, VideoFileSource, open_source, parse_source)
from agridrone.clock import ManualClock
from agridrone.errors import CameraError, WaitTimeout
from agridrone.types import Frame

W, H = 64, 48


def write_video(path, n_frames, fps=10):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened()
    for i in range(n_frames):
        writer.write(np.full((H, W, 3), i * 20, np.uint8))
    writer.release()
    return path


def wait_until(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


class FakeLiveSource:
    """A live source driven by the test: read() hands out a frame per permit; failures and reopen failures
    are scripted."""

    live = True

    def __init__(self, clock, *, fail_reads_at=(), failing_opens=0):
        self.name = "fake://live"
        self.clock = clock
        self.gate = threading.Semaphore(0)
        self.index = 0
        self.fail_reads_at = set(fail_reads_at)
        self.failing_opens = failing_opens
        self.opens = 0
        self.is_open = False
        self.closed = 0

    def open(self):
        self.opens += 1
        if self.opens > 1 and self.failing_opens > 0:
            self.failing_opens -= 1
            raise CameraError("fake: device busy")
        self.is_open = True

    def read(self):
        if not self.gate.acquire(timeout=5):
            raise CameraError("fake: no permit within 5 s")
        i = self.index
        self.index += 1
        if i in self.fail_reads_at:
            self.is_open = False
            raise CameraError("fake: stream dropped")
        return Frame(self.clock.monotonic_ns(), np.full((4, 4, 3), i % 256, np.uint8), i, self.name)

    def close(self):
        self.closed += 1
        self.is_open = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -- sources --------------------------------------------------------------------------------------

def test_video_file_frames_in_order_stamped_by_the_clock_then_eof(tmp_path):
    """A file written with cv2.VideoWriter is read frame by frame, BGR uint8, read-only, stamped with the
    injected clock at capture, and its end is EndOfStream (a CameraError), not a failure to retry."""
    path = write_video(tmp_path / "clip.avi", 6)
    clock = ManualClock(start_ns=1_000)
    with open_source(str(path), clock) as src:
        assert isinstance(src, VideoFileSource) and not src.live
        frames = []
        for _ in range(6):
            frames.append(src.read())
            clock.advance(0.1)
        with pytest.raises(EndOfStream, match="ended after 6 frames"):
            src.read()
    assert [f.index for f in frames] == list(range(6))
    assert [f.ts_ns for f in frames] == [1_000 + i * 100_000_000 for i in range(6)]
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [round(float(f.image.mean()) / 20) for f in frames] == list(range(6))
    assert not frames[0].image.flags.writeable
    assert issubclass(EndOfStream, CameraError)


def test_image_folder_sorted_known_suffixes_only_grey_made_bgr(tmp_path):
    """An image folder yields its .png/.jpg/.bmp/.tif files in name order (others ignored), grey images as BGR."""
    (tmp_path / "b.png").write_bytes(cv2.imencode(".png", np.full((H, W), 7, np.uint8))[1].tobytes())
    cv2.imwrite(str(tmp_path / "a.JPG"), np.full((H, W, 3), 100, np.uint8))
    cv2.imwrite(str(tmp_path / "c.bmp"), np.full((H, W, 3), 200, np.uint8))
    cv2.imwrite(str(tmp_path / "d.tif"), np.full((H, W, 4), 50, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    clock = ManualClock()
    with open_source(str(tmp_path) + "/", clock) as src:
        assert isinstance(src, ImageFolderSource)
        frames = [src.read() for _ in range(4)]
        with pytest.raises(EndOfStream):
            src.read()
    assert [round(float(f.image.mean())) for f in frames] == [100, 7, 200, 50]
    assert all(f.image.shape == (H, W, 3) for f in frames)


def test_empty_folder_and_unreadable_image_are_clear_errors(tmp_path):
    """A folder without images fails at open; a corrupt image fails at its read, naming the file."""
    with pytest.raises(CameraError, match="expected .jpg/.jpeg/.png/.bmp/.tif/.tiff files, got none"):
        open_source(str(tmp_path), ManualClock())
    (tmp_path / "x.png").write_bytes(b"not a png")
    src = open_source(str(tmp_path), ManualClock())
    with pytest.raises(CameraError, match="unreadable"):
        src.read()


@pytest.mark.parametrize("spec, message", [
    ("/dev/video97", "camera device /dev/video97 not found"),
    ("97", "camera device /dev/video97 not found"),
    ("no/such/clip.mp4", "video file not found: 'no/such/clip.mp4'"),
    ("no/such/folder/", "image folder not found"),
    ("sim://field1", "simulated camera needs the flight loop"),
    ("ftp://host/x", "unknown scheme 'ftp'"),
    ("", "expected a device index"),
])
def test_missing_or_unknown_sources_give_one_clear_camera_error(spec, message):
    """Each bad spec raises exactly one CameraError whose one-line message says what was wrong."""
    if spec in ("/dev/video97", "97") and not sys.platform.startswith("linux"):
        pytest.skip("V4L2 device paths exist on Linux only")
    with pytest.raises(CameraError, match=message) as info:
        open_source(spec, ManualClock())
    assert "\n" not in str(info.value)


def test_spec_parsing_picks_the_right_source_and_scheme_factories():
    """Each spec form maps to its source; a factory passed for "sim" is how the flight loop registers it."""
    clock = ManualClock()
    assert isinstance(parse_source("0", clock), DeviceSource)
    assert parse_source("/dev/video2", clock).name == "/dev/video2"
    assert parse_source("3", clock).name == "/dev/video3"
    assert isinstance(parse_source("rtsp://10.0.0.2:8554/cam", clock), StreamSource)
    assert isinstance(parse_source("http://cam.local/video.mjpg", clock), StreamSource)
    assert isinstance(parse_source("flight.mp4", clock), VideoFileSource)
    pi = parse_source("picamera2:1", clock)
    assert isinstance(pi, Picamera2Source) and pi.camera_num == 1
    assert parse_source("picamera2", clock).camera_num == 0
    made = []
    src = parse_source("sim://field1", clock, schemes={"sim": lambda spec, c: made.append((spec, c)) or "SIM"})
    assert src == "SIM" and made == [("sim://field1", clock)]


def test_unreachable_stream_is_a_camera_error_within_its_timeout():
    """A stream URL nobody serves fails at open with a CameraError, bounded by the open timeout."""
    src = StreamSource("rtsp://127.0.0.1:9/none", ManualClock(), open_timeout_s=1.0, read_timeout_s=1.0)
    with pytest.raises(CameraError, match="cannot open stream"):
        src.open()


def test_picamera2_missing_is_a_clear_error(monkeypatch):
    """Without picamera2 the spec fails with one line saying how to get it."""
    monkeypatch.setitem(sys.modules, "picamera2", None)  # makes the import fail, installed or not
    with pytest.raises(CameraError, match="picamera2 is not installed"):
        open_source("picamera2:0", ManualClock())


def test_picamera2_buffers_are_copied_and_released_at_once(monkeypatch):
    """With a fake picamera2: each capture request is released before read() returns, and the frame owns a
    copy (the driver may reuse its buffer)."""
    log = []
    buffer = np.zeros((H, W, 3), np.uint8)

    class Request:
        def make_array(self, stream):
            log.append(("make_array", stream))
            return buffer

        def release(self):
            log.append(("release",))

    class Picamera2:
        def __init__(self, camera_num):
            log.append(("init", camera_num))

        def create_video_configuration(self, main):
            return main

        def configure(self, config):
            log.append(("configure", config["format"], config["size"]))

        def start(self):
            log.append(("start",))

        def capture_request(self):
            buffer[:] += 1
            return Request()

        def stop(self):
            log.append(("stop",))

        def close(self):
            log.append(("close",))

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=Picamera2))
    with open_source("picamera2:1", ManualClock()) as src:
        a = src.read()
        b = src.read()
    assert log[0] == ("init", 1) and log[1] == ("configure", "RGB888", (640, 480))
    assert log.count(("release",)) == 2 and log[-2:] == [("stop",), ("close",)]
    assert (a.image == 1).all() and (b.image == 2).all()  # a was not overwritten by the second capture


# -- grabber --------------------------------------------------------------------------------------

def test_grabber_delivers_every_frame_of_a_file_then_eof(tmp_path):
    """A consumer that keeps up gets the file's frames in order (some may be dropped, never repeated), then
    EndOfStream."""
    path = write_video(tmp_path / "clip.avi", 8)
    clock = ManualClock()
    grabber = LatestFrameGrabber(VideoFileSource(path, clock), clock)
    got = []
    with grabber:
        with pytest.raises(EndOfStream):
            while True:
                got.append(grabber.get(timeout_s=5.0).index)
    stats = grabber.stats
    assert got == sorted(set(got)) and got[-1] == 7
    assert stats.captured == 8 and stats.delivered == len(got) and stats.dropped == 8 - len(got)
    assert stats.eof and stats.reconnects == 0


def test_slow_consumer_gets_only_the_newest_frame_and_drops_are_counted():
    """Five frames captured while nobody reads: get() returns the fifth, four are counted dropped, the same
    frame is never returned twice, and the next capture is delivered next."""
    clock = ManualClock()
    src = FakeLiveSource(clock)
    with LatestFrameGrabber(src, clock) as grabber:
        src.gate.release(5)
        wait_until(lambda: grabber.stats.captured == 5)
        assert grabber.get(timeout_s=1.0).index == 4
        assert grabber.stats.dropped == 4
        with pytest.raises(WaitTimeout, match="no new frame"):
            grabber.get(timeout_s=0.05)
        src.gate.release(1)
        assert grabber.get(timeout_s=5.0).index == 5
        assert grabber.stats.dropped == 4 and grabber.stats.delivered == 2
        src.gate.release(10)  # let the thread finish quickly
    assert src.closed >= 1
    with pytest.raises(CameraError, match="stopped"):
        grabber.get(timeout_s=0.01)


@pytest.mark.parametrize("failing_opens", [0, 1, 4])
def test_lost_live_stream_is_reopened_with_exponential_backoff(failing_opens):
    """The stream drops at frame 2; reopening fails ``failing_opens`` times; the grabber waits 0.1, 0.2, 0.4 ...
    s of (injected) clock between attempts, counts the loss, the attempts and the reconnection, and frames flow
    again."""
    clock = ManualClock()
    src = FakeLiveSource(clock, fail_reads_at={2}, failing_opens=failing_opens)
    with LatestFrameGrabber(src, clock, backoff_initial_s=0.1, backoff_max_s=0.3) as grabber:
        src.gate.release(2)
        wait_until(lambda: grabber.stats.captured == 2)
        assert grabber.get(timeout_s=5.0).index == 1
        src.gate.release(1)  # frame 2: the stream drops
        wait_until(lambda: grabber.stats.reconnects == 1)
        src.gate.release(1)
        frame = grabber.get(timeout_s=5.0)
        stats = grabber.stats
        src.gate.release(10)
    assert frame.index == 3
    assert (stats.lost, stats.reconnects, stats.reconnect_attempts) == (1, 1, failing_opens + 1)
    expected_sleep_s = sum(min(0.1 * 2 ** k, 0.3) for k in range(failing_opens + 1))
    assert clock.monotonic_ns() == pytest.approx(expected_sleep_s * 1e9, abs=1e3)


def test_gives_up_after_max_reconnect_attempts_with_a_camera_error():
    """With a bound on attempts, a source that never comes back ends in a CameraError naming the cause."""
    clock = ManualClock()
    src = FakeLiveSource(clock, fail_reads_at={0}, failing_opens=100)
    with LatestFrameGrabber(src, clock, max_reconnect_attempts=3) as grabber:
        src.gate.release(1)
        with pytest.raises(CameraError, match="not reopened after 3 attempts: fake: device busy"):
            grabber.get(timeout_s=5.0)
        assert grabber.stats.reconnect_attempts == 3 and not grabber.stats.connected


def test_grabber_on_a_missing_device_fails_at_start_and_get_needs_start():
    """A missing camera fails in start(), in the caller's thread; get() before start() is refused."""
    clock = ManualClock()
    grabber = LatestFrameGrabber(parse_source("/dev/video96", clock), clock)
    with pytest.raises(CameraError, match="get"):
        grabber.get(0.01)
    if sys.platform.startswith("linux"):
        with pytest.raises(CameraError, match="/dev/video96 not found"):
            grabber.start()
