"""The real-time flight loop (issue 6): the only place where the stages are wired together.

Threads and what travels between them::

    capture (LatestFrameGrabber: newest frame only, stale ones dropped and counted)
        │ Frame
    perception thread: detector on every frame; health tiles when the footprint moved by more than
        │ PerceptionResult      `health_footprint_fraction` of its length (1-slot inbox: newest only)
    control thread: pose at the frame's capture time (interpolated in the telemetry pose history) ->
        project detections to the ground -> tracker.update (every frame, also empty ones) -> static
        obstacle memory -> planner.update -> Commander -> sinks; between frames it ticks for the
        detour's position targets, the safety monitor and vehicle events.

Time: every stage works in *vehicle* time (``TimeScale``: wall time x the simulator's speed-up; 1 on a
real drone); latencies are wall nanoseconds (``time.monotonic_ns``). Bad frames and failing stages are
skipped and counted by reason (``skipped``), never allowed to end the loop.

Sinks (the place where issue 7's alerts and flight records plug in) receive every processed frame
(:class:`FrameResult`) and every :class:`LoopEvent`, in order, on a thread of their own fed by a bounded
queue (a frame the sinks are too busy to take is counted as ``sinks_busy``; the control thread never
waits for them). A sink that raises is reported once and counted.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from agridrone.camera import EndOfStream, LatestFrameGrabber
from agridrone.clock import MonotonicClock
from agridrone.config import AppConfig
from agridrone.errors import CameraError, WaitTimeout
from agridrone.geo import LocalFrame, Projector
from agridrone.pipeline_commander import Commander, LoopEvent
from agridrone.pipeline_parts import (LatencyBook, ObstacleMemory, PoseHistory, SkipCounter, TimeScale,
                                      dead_reckon, footprint_centre_and_length, outside_takeoff_site, outside_zones,
                                      project_detections)
from agridrone.tracking import GroundDetection, ObstacleTracker
from agridrone.types import Correction, Detections, Frame, HealthTile, Obstacle, Pose

VEHICLE_EVENT_KINDS = ("mode", "link_lost", "link_recovered", "fence_breach")


@dataclass(frozen=True)
class FrameResult:
    """One frame carried through the loop (vehicle-time ``ts_ns``), as sinks receive it."""

    ts_ns: int
    frame: Frame
    pose: Pose
    detections: Detections
    ground: tuple[GroundDetection, ...]
    tiles: tuple[HealthTile, ...]
    obstacles: tuple[Obstacle, ...]
    correction: Correction | None
    # the avoidance planner's keep-out discs after this frame: (track_id, label, east_m, north_m, radius_m);
    # empty while agridrone is not commanding (before AUTO, after a pilot take-over)
    keepouts: tuple[tuple[int, str, float, float, float], ...] = ()


class LoopSink(Protocol):
    """Where alerts and flight records plug in (issue 7). Called in order on the loop's sink thread; ``close``
    once, after the loop's threads have ended."""

    def on_frame(self, result: FrameResult) -> None: ...

    def on_event(self, event: LoopEvent) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Perceived:
    frame: Frame
    ts_ns: int                  # vehicle time of capture
    detections: Detections
    tiles: tuple[HealthTile, ...]
    pose: Pose | None
    wall_capture_ns: int


@dataclass
class FlightContext:
    """What the loop needs of the mission: the ENU frame, the route and allowed region for the planner,
    the camera (mission camera block at the frame size) and the survey lines' mission items."""

    frame: LocalFrame
    planner_factory: Callable[[], Any]
    camera_factory: Callable[[tuple[int, int]], Projector]
    line_seqs: tuple[tuple[int, int], ...] = ()     # (start item, end item) of each survey line
    ground_alt_m: float = 0.0
    home_en: tuple[float, float] = (0.0, 0.0)       # the take-off site in ``frame``
    zones_enu: Any = None                           # the mission's exclusion zones with their buffers (shapely)

    def line_of(self, seq: int | None) -> int | None:
        """1-based number of the survey line the vehicle is flying to or along at mission item ``seq``."""
        if seq is None:
            return None
        for i, (a, b) in enumerate(self.line_seqs):
            if a <= seq <= b:
                return i + 1
        return None


class Pipeline:
    """The loop; ``start()``, then ``stop()`` (or use it as a context manager). ``snapshot()`` and
    ``report()`` are safe from any thread."""

    def __init__(self, vehicle, source, context: FlightContext, config: AppConfig, *, detector, health=None,
                 time_scale: float = 1.0, sinks: Sequence[LoopSink] = (), wall_clock=None) -> None:
        self.vehicle = vehicle
        self.source = source
        self.context = context
        self.config = config
        self.detector = detector
        self.health = health
        self.sinks = list(sinks)
        self.wall = wall_clock or MonotonicClock()
        self.time = TimeScale(time_scale, self.wall.monotonic_ns())
        self.latency = LatencyBook(config.loop.latency_window)
        self.skipped = SkipCounter()
        self.poses = PoseHistory(int(config.pose.history_s * 1e9), int(config.pose.max_extrapolation_s * 1e9))
        self.tracker = ObstacleTracker(context.frame, config.tracking)
        self.memory = ObstacleMemory.for_loop(config.loop)
        self.planner = context.planner_factory()
        self.events: list[LoopEvent] = []
        self.commander = Commander(vehicle, config.commander, self._emit, speed_m_s=self.planner.config.speed_m_s)
        self.track: list[tuple[int, float, float, float, str, int | None]] = []
        self.obstacles: tuple[Obstacle, ...] = ()
        self.keepouts: tuple[tuple[int, str, float, float, float], ...] = ()  # what the planner last planned round
        self.projector: Projector | None = None
        self.frames_in = 0
        self.frames_done = 0
        self.detections_total = 0
        self.health_runs = 0
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._inbox: queue.Queue[_Perceived] = queue.Queue(maxsize=1)
        self._sink_q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=256)
        self._sinks_done = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._grabber: LatestFrameGrabber | None = None
        self._sink_thread: threading.Thread | None = None
        self._events_q = None
        self._last_frame_wall_ns: int | None = None
        self._camera_ok = True
        self._health_at: tuple[float, float] | None = None
        self._sink_errors: dict[int, int] = {}
        self._last_tick_ns = 0
        self._control_error_reported = False
        self._done_wall_ns: tuple[int, int] = (0, 0)   # first and last frame carried through (wall)
        self._t0_wall_ns = self.wall.monotonic_ns()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "Pipeline":
        self._feed_pose()
        events = getattr(self.vehicle, "events", None)
        if events is not None:
            self._events_q = events.subscribe(set(VEHICLE_EVENT_KINDS))
        link = getattr(self.vehicle, "link", None)
        if link is not None and hasattr(link, "add_handler"):
            link.add_handler(self._on_message)
        cfg = self.config.capture
        self._grabber = LatestFrameGrabber(self.source, self.wall, backoff_initial_s=cfg.backoff_initial_s,
                                           backoff_max_s=cfg.backoff_max_s).start()
        self._last_frame_wall_ns = self.wall.monotonic_ns()
        self._sink_thread = threading.Thread(target=self._sink_loop, name="agridrone-sinks", daemon=True)
        self._sink_thread.start()
        for name, target in (("perception", self._perception_loop), ("control", self._control_loop)):
            t = threading.Thread(target=self._guard(target), name=f"agridrone-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)
        alive = [t.name for t in self._threads if t.is_alive()]
        if self._grabber is not None:
            try:
                self._grabber.stop(timeout_s)
            except WaitTimeout:
                alive.append("camera")
        if self._events_q is not None:
            self._events_q.close()
        self._sinks_done.set()  # the sink thread empties its queue, then ends
        if self._sink_thread is not None:
            self._sink_thread.join(timeout_s)
            if self._sink_thread.is_alive():
                alive.append(self._sink_thread.name)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - a sink's bug must not hide the flight's result
                self._sink_errors[id(sink)] = self._sink_errors.get(id(sink), 0) + 1
        if alive:
            raise WaitTimeout(f"flight loop threads {alive} did not stop within {timeout_s} s", origin="pipeline.stop",
                              timeout_s=timeout_s)

    def __enter__(self) -> "Pipeline":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads) and not self._stop.is_set()

    def _guard(self, target):
        def run() -> None:
            try:
                target()
            except BaseException as exc:  # noqa: BLE001 - recorded and reported; the other thread stops too
                self.error = exc
                self._emit(LoopEvent("loop_error", self.now_ns(), f"{type(exc).__name__}: {exc}"))
                self._stop.set()
        return run

    def now_ns(self) -> int:
        return self.time.to_vehicle(self.wall.monotonic_ns())

    # -- telemetry ------------------------------------------------------------------------------
    def _on_message(self, msg, ts_ns: int) -> None:
        """Link reader thread: keep every position the autopilot sends (the state is already updated)."""
        if msg.get_type() == "GLOBAL_POSITION_INT" and not self._stop.is_set():
            self._feed_pose()

    def _feed_pose(self) -> Pose | None:
        st = self.vehicle.state
        pose = st.pose
        if pose is None:
            return None
        vpose = Pose(self.time.to_vehicle(pose.ts_ns), pose.lat_deg, pose.lon_deg, pose.alt_amsl_m,
                     pose.alt_rel_home_m, pose.roll_deg, pose.pitch_deg, pose.yaw_deg, pose.vn_m_s, pose.ve_m_s,
                     pose.vd_m_s)
        if self.poses.add(vpose):
            with self._lock:
                self.track.append((vpose.ts_ns, vpose.lat_deg, vpose.lon_deg, vpose.alt_rel_home_m, st.mode,
                                   st.mission_seq))
        return vpose

    def pose_now(self) -> Pose | None:
        """The vehicle's pose now, dead-reckoned from the newest telemetry, in *wall* ts_ns (for a
        simulated camera that renders what the camera sees at this instant)."""
        latest = self.poses.latest()
        if latest is None:
            self._feed_pose()
            latest = self.poses.latest()
            if latest is None:
                return None
        now_wall = self.wall.monotonic_ns()
        now_v = self.time.to_vehicle(now_wall)
        ahead = min(now_v, latest.ts_ns + self.poses.max_extrapolation_ns)
        p = dead_reckon(latest, ahead) if ahead > latest.ts_ns else latest
        return Pose(now_wall, p.lat_deg, p.lon_deg, p.alt_amsl_m, p.alt_rel_home_m, p.roll_deg, p.pitch_deg,
                    p.yaw_deg, p.vn_m_s, p.ve_m_s, p.vd_m_s)

    # -- perception thread ------------------------------------------------------------------------
    def _perception_loop(self) -> None:
        assert self._grabber is not None
        timeout = self.config.capture.get_timeout_s
        while not self._stop.is_set():
            try:
                frame = self._grabber.get(timeout)
            except WaitTimeout:
                continue
            except EndOfStream:
                self._emit(LoopEvent("camera_eof", self.now_ns(), "the frame source ended"))
                return
            except CameraError as err:
                self._emit(LoopEvent("camera_failed", self.now_ns(), str(err)))
                return
            self.frames_in += 1
            self._last_frame_wall_ns = self.wall.monotonic_ns()
            try:
                self._perceive(frame)
            except Exception:  # noqa: BLE001 - whatever one frame does, it is skipped and counted, never fatal
                self.skipped.add("perception_error")

    def _perceive(self, frame: Frame) -> None:
        """Detector and health tiles on one frame; the result goes to the control thread's 1-slot inbox."""
        t_got = time.monotonic_ns()
        image = frame.image
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 8 or image.shape[1] < 8:
            self.skipped.add("bad_frame")
            return
        ts_v = self.time.to_vehicle(frame.ts_ns)
        try:
            if hasattr(self.detector, "detect_frame_timed"):  # the test mode's ground truth needs the frame
                dets, timings = self.detector.detect_frame_timed(frame)
            else:
                dets, timings = self.detector.detect_timed(image)
        except Exception:  # noqa: BLE001 - one bad frame is skipped and counted, never fatal
            self.skipped.add("detector_error")
            return
        for stage, ns in timings.items():
            self.latency.add(f"detect_{stage}", ns)
        pose = self.poses.at(ts_v)
        tiles: tuple[HealthTile, ...] = ()
        if self.health is not None and pose is not None and self._health_due_safe(pose, image):
            try:
                found, htimes = self.health.analyze_timed(image, pose)
                tiles = tuple(found)
                self.health_runs += 1
                for stage, ns in htimes.items():
                    self.latency.add(f"health_{stage}", ns)
            except Exception:  # noqa: BLE001
                self.skipped.add("health_error")
        self.latency.add("perception", time.monotonic_ns() - t_got)
        item = _Perceived(frame, ts_v, dets, tiles, pose, frame.ts_ns)
        try:
            self._inbox.put_nowait(item)
        except queue.Full:
            try:
                self._inbox.get_nowait()
                self.skipped.add("control_busy")
            except queue.Empty:
                pass
            self._inbox.put_nowait(item)

    def _projector_for(self, image) -> Projector:
        h, w = image.shape[:2]
        p = self.projector
        if p is None or (p.camera.width_px, p.camera.height_px) != (w, h):
            p = self.projector = self.context.camera_factory((w, h))
        return p

    def _health_due_safe(self, pose: Pose, image) -> bool:
        try:
            return self._health_due(pose, image)
        except ValueError:  # e.g. the camera at ground level
            return False

    def _health_due(self, pose: Pose, image) -> bool:
        fp = footprint_centre_and_length(self._projector_for(image), pose, self.context.frame,
                                         self.context.ground_alt_m)
        if fp is None:
            return self._health_at is None
        e, n, length = fp
        moved_m = math.inf if self._health_at is None else math.hypot(e - self._health_at[0], n - self._health_at[1])
        if moved_m <= self.config.perception.health_footprint_fraction * length:
            return False
        self._health_at = (e, n)
        return True

    # -- control thread ---------------------------------------------------------------------------
    def _control_loop(self) -> None:
        get_timeout = self.config.capture.get_timeout_s
        while not self._stop.is_set():
            wait_s = get_timeout
            due = self.commander.next_due_ns()
            if due is not None:
                wait_s = max(0.0, min(wait_s, self.time.wall_s((due - self.now_ns()) / 1e9)))
            try:
                item = self._inbox.get(timeout=wait_s)
            except queue.Empty:
                item = None
            self._drain_vehicle_events()
            self._feed_pose()
            self._safety()
            try:
                if item is None:
                    self._tick_without_frame()
                else:
                    self._tick_frame(item)
            except Exception as exc:  # noqa: BLE001 - counted and reported once; the loop goes on
                self.skipped.add("control_error")
                if not self._control_error_reported:
                    self._control_error_reported = True
                    self._emit(LoopEvent("control_error", self.now_ns(), f"{type(exc).__name__}: {exc}"))

    def _drain_vehicle_events(self) -> None:
        if self._events_q is None:
            return
        for ev in self._events_q.drain():
            now = self.time.to_vehicle(ev.ts_ns)
            if ev.kind == "fence_breach":
                self._emit(LoopEvent("fence_breach", now, f"the autopilot reports a fence breach ({ev.value})"))
                continue
            before = self.commander.state
            self.commander.on_vehicle_event(ev.kind, ev.value, now)
            if ev.kind == "mode" and self.commander.state == "auto" and before == "waiting":
                self.planner = self.context.planner_factory()  # the pilot flew elsewhere: plan afresh

    def _vehicle_state(self, now_v: int):
        from agridrone.planning import VehicleState

        st = self.vehicle.state
        latest = self.poses.latest()
        seq = self.commander.mission_seq(st.mission_seq)
        if latest is None or seq is None:
            return None
        if (now_v - latest.ts_ns) / self.time.scale > self.config.safety.pose_timeout_s * 1e9:
            return None  # no telemetry for pose_timeout_s of wall time: no planning, no command
        pose = dead_reckon(latest, min(now_v, latest.ts_ns + self.poses.max_extrapolation_ns))
        return VehicleState.from_pose(pose, self.context.frame, int(seq))

    def _plan_and_command(self, now_v: int, t0_wall: int) -> Correction | None:
        vs = self._vehicle_state(now_v)
        if vs is None or not self.commander.engaged:
            self.keepouts = ()
            return None  # nothing to plan from (or for): the commander is not ticked with a made-up "no correction"
        t = time.monotonic_ns()
        obstacles = outside_takeoff_site(outside_zones(self.obstacles, self.context.zones_enu),
                                         (vs.east_m, vs.north_m), self.context.home_en, self.planner.config.margins_m)
        correction = self.planner.update(obstacles, vs, now_v)
        self.keepouts = getattr(self.planner, "held", ())
        self.latency.add("plan", time.monotonic_ns() - t)
        t = time.monotonic_ns()
        sent = self.commander.tick(correction, now_v)
        self.latency.add("command", time.monotonic_ns() - t)
        if sent:
            self.latency.add("frame_to_command_sent", time.monotonic_ns() - t0_wall)
        return correction

    def _tick_without_frame(self) -> None:
        now_v = self.now_ns()
        if self.commander.engaged:
            self._plan_and_command(now_v, time.monotonic_ns())

    def _tick_frame(self, item: _Perceived) -> None:
        t0 = time.monotonic_ns()
        self.latency.add("capture_to_control", t0 - item.wall_capture_ns)
        pose = item.pose or self.poses.at(item.ts_ns)
        now_v = self.now_ns()
        ground: list[GroundDetection] = []
        if pose is None:
            self.skipped.add("no_pose")
        else:
            try:
                ground = project_detections(item.detections, pose, self._projector_for(item.frame.image),
                                            self.context.frame, item.ts_ns, self.context.ground_alt_m)
            except ValueError:  # e.g. the camera at or below the ground: nothing to project
                self.skipped.add("projection_failed")
        t1 = time.monotonic_ns()
        self.latency.add("project", t1 - t0)
        tick_ns = self._last_tick_ns = max(item.ts_ns, self._last_tick_ns)  # the tracker's clock never goes back
        tracks = self.tracker.update(ground if ground else None, tick_ns)
        self.obstacles = self.memory.update(tracks, tick_ns)
        self.latency.add("track", time.monotonic_ns() - t1)
        correction = self._plan_and_command(now_v, item.wall_capture_ns)
        self.latency.add("frame_to_command", time.monotonic_ns() - item.wall_capture_ns)
        self.frames_done += 1
        self._done_wall_ns = (self._done_wall_ns[0] or t0, time.monotonic_ns())
        self.detections_total += len(item.detections)
        if pose is not None and self.sinks:
            result = FrameResult(item.ts_ns, item.frame, pose, item.detections, tuple(ground), item.tiles,
                                 self.obstacles, correction, self.keepouts)
            try:
                self._sink_q.put_nowait(("on_frame", result))
            except queue.Full:  # the sinks are behind: this frame's record is skipped, the flight is not slowed
                self.skipped.add("sinks_busy")

    # -- safety monitor -------------------------------------------------------------------------
    def _safety(self) -> None:
        now_wall = self.wall.monotonic_ns()
        silent_s = (now_wall - (self._last_frame_wall_ns or now_wall)) / 1e9
        limit_s = self.config.safety.camera_timeout_s
        if self._camera_ok and silent_s > limit_s:
            self._camera_ok = False
            self._emit(LoopEvent("camera_lost", self.now_ns(), f"no frame for {silent_s:.1f} s (wall)"))
            if self.config.safety.on_camera_lost == "hold":
                self.commander.hold("camera lost: flying blind", self.now_ns())
        elif not self._camera_ok and silent_s <= limit_s:
            self._camera_ok = True
            self._emit(LoopEvent("camera_recovered", self.now_ns(), "frames again"))

    # -- events and sinks -----------------------------------------------------------------------
    def _emit(self, event: LoopEvent) -> None:
        with self._lock:
            self.events.append(event)
        if self.sinks:
            try:
                self._sink_q.put(("on_event", event), timeout=1.0)  # events are few: worth a short wait
            except queue.Full:
                self.skipped.add("sink_event_dropped")

    def _sink_loop(self) -> None:
        """The sinks' own thread: alerts and records never hold up the control thread."""
        while True:
            try:
                item = self._sink_q.get(timeout=0.1)
            except queue.Empty:
                if self._sinks_done.is_set():
                    return
                continue
            for sink in self.sinks:
                self._call_sink(sink, item[0], item[1])

    def _call_sink(self, sink, method: str, arg) -> None:
        try:
            getattr(sink, method)(arg)
        except Exception as exc:  # noqa: BLE001 - reported once per sink, then counted
            n = self._sink_errors.get(id(sink), 0)
            self._sink_errors[id(sink)] = n + 1
            if n == 0:
                with self._lock:
                    self.events.append(LoopEvent("sink_error", self.now_ns(), f"{type(sink).__name__}.{method}: "
                                                                              f"{type(exc).__name__}: {exc}"))

    # -- reporting --------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        st = self.vehicle.state
        pose = st.pose
        wall_s = max(1e-9, (self.wall.monotonic_ns() - self._t0_wall_ns) / 1e9)
        confirmed = [o for o in self.obstacles if o.confirmed]
        return {"mode": st.mode, "armed": st.armed, "seq": st.mission_seq, "line": self.context.line_of(st.mission_seq),
                "lines": len(self.context.line_seqs),
                "lat": None if pose is None else pose.lat_deg, "lon": None if pose is None else pose.lon_deg,
                "alt_m": None if pose is None else pose.alt_rel_home_m,
                "fps": self.frames_done / wall_s, "frames": self.frames_done, "detections": self.detections_total,
                "obstacles": len(confirmed), "corrections": self.commander.detours + self.commander.holds,
                "state": self.commander.state, "planner": getattr(self.planner, "mode", "?")}

    def _sustained_fps(self) -> float:
        """Frames carried through per second, from the first to the last (start-up and shut-down left out)."""
        first, last = self._done_wall_ns
        if self.frames_done < 2 or last <= first:
            return 0.0
        return round((self.frames_done - 1) / ((last - first) / 1e9), 2)

    def report(self) -> dict[str, Any]:
        grab = self._grabber.stats if self._grabber is not None else None
        skipped = self.skipped.counts()
        if grab is not None and grab.dropped:
            skipped["stale"] = grab.dropped
        wall_s = max(1e-9, (self.wall.monotonic_ns() - self._t0_wall_ns) / 1e9)
        with self._lock:
            events = [{"kind": e.kind, "t_s": round((e.ts_ns - self.time.to_vehicle(self._t0_wall_ns)) / 1e9, 2),
                       "text": e.text} for e in self.events]
        return {"wall_s": round(wall_s, 1), "time_scale": self.time.scale,
                "frames_captured": grab.captured if grab else 0,
                "frames_processed": self.frames_done, "fps": round(self.frames_done / wall_s, 2),
                "fps_sustained": self._sustained_fps(),
                "frames_per_vehicle_s": round(self.frames_done / wall_s / self.time.scale, 3),
                "skipped": skipped, "detections": self.detections_total, "health_runs": self.health_runs,
                "obstacles_confirmed": sorted({o.track_id for o in self.obstacles if o.confirmed}),
                "remembered_static": len(self.memory), "commander": self.commander.summary(),
                "latency_ms": self.latency.stats(), "events": events,
                "sink_errors": sum(self._sink_errors.values()),
                "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}"}
