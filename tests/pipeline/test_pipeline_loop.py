"""The loop's threads wired together with fakes: frames in, commands out, bad frames counted."""

from __future__ import annotations

import json
import time

import numpy as np
from shapely.geometry import box

from agridrone.clock import MonotonicClock
from agridrone.config import AppConfig
from agridrone.geo import CameraModel, CameraMount, LocalFrame, Projector, offset_deg
from agridrone.pipeline import FlightContext, Pipeline
from agridrone.pipeline_run import JsonlSink
from agridrone.planning import AvoidancePlanner, PlannerConfig, RouteWaypoint
from agridrone.types import Detections

from pipeline_fakes import FakeVehicle, ListSource, grey, pose_at

LAT, LON = 52.0712, 11.3551
FRAME = LocalFrame(LAT, LON)


def _projector(size_wh=(640, 480)) -> Projector:
    return Projector(CameraModel(size_wh[0], size_wh[1], 500.0, 500.0, size_wh[0] / 2, size_wh[1] / 2),
                     CameraMount(pitch_deg=-90.0))


class TreeDetector:
    """Sees one tree at a fixed ground point from the vehicle's (fixed) pose; raises on a poisoned frame."""

    def __init__(self, pose, tree_latlon) -> None:
        u, v = _projector().ground_to_pixel(pose, *tree_latlon)
        self.box = np.array([[u - 20, v - 20, u + 20, v + 20]], np.float32)
        self.calls = 0

    def detect_timed(self, image):
        self.calls += 1
        if image[0, 0, 0] == 255:
            raise RuntimeError("poisoned frame")
        dets = Detections(self.box, np.array([0]), np.array([0.9]), ("tree",), (image.shape[1], image.shape[0]))
        return dets, {"pre": 1000, "infer": 2000, "decode": 500}


class RecordingSink:
    def __init__(self) -> None:
        self.frames, self.events, self.closed = 0, [], False

    def on_frame(self, result) -> None:
        self.frames += 1

    def on_event(self, event) -> None:
        self.events.append(event.kind)

    def close(self) -> None:
        self.closed = True


def _context() -> FlightContext:
    route = (RouteWaypoint(4, 0.0, -20.0, 60.0), RouteWaypoint(5, 0.0, 200.0, 60.0))
    region = box(-100, -100, 100, 300)
    cfg = PlannerConfig(margins_m={"tree": 4.0})
    return FlightContext(FRAME, lambda: AvoidancePlanner(route, region, FRAME, cfg), _projector, ((4, 5),))


def _run(pipeline: Pipeline, until, timeout_s: float = 10.0) -> None:
    pipeline.start()
    try:
        deadline = time.monotonic() + timeout_s
        while not until() and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        pipeline.stop()


def test_a_tree_ahead_turns_into_guided_targets_through_every_stage(tmp_path):
    """Frames -> detector -> projection with the frame's pose -> tracker (confirmed after its confirm_hits) ->
    planner -> commander: the vehicle in AUTO with a tree 15 m ahead on its line is switched to GUIDED and sent targets
    that keep the tree's keep-out; latencies of every stage are recorded; the flight folder's keepouts.jsonl says
    which keep-out the loop flew round, where and how large."""
    pose = pose_at(LAT, LON, time.monotonic_ns())
    vehicle = FakeVehicle(pose, seq=5)
    tree = offset_deg(LAT, LON, 15.0, 0.0)
    clock = MonotonicClock()
    source = ListSource([grey(480, 640) for _ in range(12)], clock)
    sink = RecordingSink()
    p = Pipeline(vehicle, source, _context(), AppConfig(), detector=TreeDetector(pose, tree), wall_clock=clock,
                 sinks=[sink, JsonlSink(tmp_path, FRAME)])
    _run(p, lambda: any(c[0] == "goto" for c in vehicle.calls))
    assert vehicle.commands("set_mode")[0] == ("set_mode", "GUIDED")
    _, lat, lon, alt = vehicle.commands("goto")[0]
    e, n, _ = FRAME.to_enu(lat, lon)
    assert np.hypot(e - 0.0, n - 15.0) >= 4.0 + 1.0  # outside the tree's disc (radius ~1 m) + margin
    assert alt == 60.0
    rep = p.report()
    assert rep["commander"]["detours"] == 1 and rep["error"] is None
    for stage in ("detect_infer", "project", "track", "plan", "frame_to_command"):
        assert rep["latency_ms"][stage]["count"] >= 1, stage
    assert [e.kind for e in p.events][:1] == ["detour"]
    assert sink.closed and sink.frames >= 2 and "detour" in sink.events  # the sinks saw it all, then closed
    held = [json.loads(line) for line in (tmp_path / "keepouts.jsonl").read_text().splitlines()]
    assert held and [k["label"] for k in held[-1]["keepouts"]] == ["tree"], held
    ko = held[-1]["keepouts"][0]
    ob = next(o for o in p.obstacles if o.track_id == ko["id"])  # the tracked tree, placed at its base
    assert np.hypot(ko["east_m"] - ob.east_m, ko["north_m"] - ob.north_m) < 0.01, (ko, ob)
    assert abs(ko["radius_m"] - (ob.radius_m + 4.0)) < 0.01, (ko, ob)  # its radius + the tree's margin
    assert np.hypot(ko["east_m"], ko["north_m"] - 15.0) < 3.0, ko  # ...where the tree stands
    assert np.allclose(FRAME.to_enu(ko["lat"], ko["lon"])[:2], (ko["east_m"], ko["north_m"]), atol=0.02), ko
    assert len(held) < p.frames_done, "keep-outs are recorded when they change, not every frame"


def test_bad_frames_are_skipped_and_counted_and_the_loop_goes_on():
    """Grey (one channel) and tiny frames, and a frame that makes the detector raise, are skipped with their
    reason; the good frames around them are all processed; the end of the source ends perception cleanly."""
    pose = pose_at(LAT, LON, time.monotonic_ns())
    vehicle = FakeVehicle(pose, mode="GUIDED", seq=5)  # not in AUTO: nothing to command, the frames still flow
    poisoned = grey(480, 640).copy()
    poisoned[0, 0, 0] = 255
    images = [grey(480, 640), np.full((480, 640), 9, np.uint8), grey(4, 4), poisoned, grey(480, 640),
              grey(480, 640)]
    clock = MonotonicClock()

    det = TreeDetector(pose, offset_deg(LAT, LON, 15.0, 0.0))
    p = Pipeline(vehicle, ListSource(images, clock), _context(), AppConfig(), detector=det, wall_clock=clock)
    _run(p, lambda: any(e.kind == "camera_eof" for e in p.events))
    rep = p.report()
    assert rep["skipped"].get("bad_frame") == 2
    assert rep["skipped"].get("detector_error") == 1
    assert rep["frames_processed"] == 3
    assert rep["error"] is None and vehicle.calls == []


class _FallsSilent(ListSource):
    """A camera that delivers its frames and then stops answering for a second (no frame, no error)."""

    def read(self):
        if self._i >= len(self.images):
            time.sleep(1.0)
        return super().read()


def test_a_camera_that_falls_silent_is_reported_lost_and_the_vehicle_holds():
    """No frame for ``[safety] camera_timeout_s`` of wall time while agridrone flies the mission in AUTO: a
    camera_lost event and a hold (BRAKE), not a mission flown blind; frames coming back are reported too."""
    import dataclasses

    from agridrone.config import SafetyConfig

    pose = pose_at(LAT, LON, time.monotonic_ns())
    vehicle = FakeVehicle(pose, seq=5)
    clock = MonotonicClock()
    config = dataclasses.replace(AppConfig(), safety=SafetyConfig(camera_timeout_s=0.3))

    class NothingDetector:
        def detect_timed(self, image):
            return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros(0), (), image.shape[1::-1]), {}

    p = Pipeline(vehicle, _FallsSilent([grey(480, 640) for _ in range(3)], clock), _context(), config,
                 detector=NothingDetector(), wall_clock=clock)
    _run(p, lambda: any(e.kind == "hold" for e in p.events), timeout_s=5.0)
    kinds = [e.kind for e in p.events]
    assert "camera_lost" in kinds and "hold" in kinds, kinds
    assert kinds.index("camera_lost") < kinds.index("hold")
    assert ("set_mode", "BRAKE") in vehicle.calls, vehicle.calls
    assert not vehicle.commands("goto")
