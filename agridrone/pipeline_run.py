"""One flight with the loop: what ``agridrone fly``, ``agridrone demo`` and the closed-loop tests run.

``flight_context(compiled, config)`` derives what the loop needs from a compiled mission;
``load_models(config)`` opens the detector and the health classifier; ``run_flight(vehicle, compiled,
config, options)`` uploads the mission, starts the loop (capture from ``options.camera``, ``sim://WORLD``
rendered from the vehicle's pose), optionally takes off and starts AUTO itself (``options.start``, for
simulation), watches until the vehicle has landed and disarmed (or held for ``end_on_hold_s``, or
``wall_timeout_s`` passed), stops the loop and writes the output folder.

The route given to the planner is the survey: from the first line's start to the last line's end
(with the transits between lines, and the approach from wherever the vehicle is to the first line).
Take-off and the return home are the autopilot's and the pilot's (home is where the pilot stands).
The allowed region is the geofence's inclusion polygon (the field grown by the mission's fence margin)
minus the exclusion zones grown by their buffer less the planner's ``fence_margin_m``: detour waypoints,
which keep that margin inside the region, stay the zone's full buffer away, while the vehicle flying the
survey route (which keeps the full buffer) is inside the region, not on its edge.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from agridrone import __version__
from agridrone.config import AppConfig
from agridrone.errors import ModelError
from agridrone.pipeline import FlightContext, Pipeline
from agridrone.pipeline_commander import LoopEvent

NAV_WAYPOINT = 16
NAV_TAKEOFF = 22


def project_root() -> Path:
    import agridrone

    return Path(agridrone.__file__).resolve().parents[1]


def resolve_model(path: str) -> Path:
    """A model path from the config: absolute, else relative to the project root, else to the cwd."""
    p = Path(path)
    for cand in ([p] if p.is_absolute() else [project_root() / p, Path.cwd() / p]):
        if cand.is_file():
            return cand
    raise ModelError(f"model file not found: {path} (expected it under {project_root()} or the current folder; "
                     f"set [perception] in the config file)")


def load_models(config: AppConfig):
    """(Detector, HealthAnalyzer or None) from ``config.perception``."""
    from agridrone.perception.detector import Detector

    pc = config.perception
    detector = Detector(resolve_model(pc.detector_model), conf_threshold=pc.conf_threshold,
                        iou_threshold=pc.iou_threshold, num_threads=pc.num_threads)
    if pc.tile_scale:
        from agridrone.perception.tiling import TiledDetector

        detector = TiledDetector(detector, scale=pc.tile_scale, min_overlap_px=pc.tile_overlap_px)
    health = None
    if pc.health_model:
        from agridrone.perception.health import HealthAnalyzer, HealthClassifier

        health = HealthAnalyzer(HealthClassifier(resolve_model(pc.health_model), num_threads=pc.num_threads),
                                rows=pc.health_rows, cols=pc.health_cols)
    return detector, health


def survey_line_seqs(compiled) -> tuple[tuple[int, int], ...]:
    """(start item seq, end item seq) of each survey line, in flight order."""
    nav = [seq for seq, it in enumerate(compiled.items) if seq >= 3 and it.command == NAV_WAYPOINT]
    kinds = [k for _, _, k in compiled.plan.waypoints]
    lines, start = [], None
    for seq, kind in zip(nav, kinds):
        if kind == "line_start":
            start = seq
        elif kind == "line_end" and start is not None:
            lines.append((start, seq))
            start = None
    return tuple(lines)


def flight_context(compiled, config: AppConfig, *, time_scale: float = 1.0) -> FlightContext:
    """The loop's view of a compiled mission (see the module docstring for route and region)."""
    import dataclasses

    from agridrone.geo import CameraMount, Projector
    from agridrone.mission import geometry as g
    from agridrone.planning import AvoidancePlanner, allowed_region, route_from_mission_items
    from agridrone.sim.camera import camera_for_mission

    m, plan = compiled.mission, compiled.plan
    frame = plan.frame
    lines = survey_line_seqs(compiled)
    first, last = (lines[0][0], lines[-1][1]) if lines else (0, len(compiled.items))
    route = tuple(w for w in route_from_mission_items(compiled.items, frame) if first <= w.seq <= last)
    zones = plan.keepout if plan.keepout is not None and not plan.keepout.is_empty else None
    # zones grown by their buffer less the planner's fence margin: detour nodes (which keep that margin inside
    # the region) stay the full buffer away, and a vehicle flying the route (at the full buffer) is inside
    fm = config.planning.fence_margin_m
    holes = [g.keepout(z, frame, max(0.0, 1.0 - fm / z.buffer_m) if z.buffer_m > 0 else 0.0) for z in m.zones]
    region = allowed_region(g.grow(plan.field, m.fence_margin_m), (), holes)
    margins = dict(config.planning.margins_m)
    margins.update(dict(m.alerts.safety_margin_m))
    margins = {k: v + config.loop.margin_extra_m for k, v in margins.items()}
    pcfg = dataclasses.replace(config.planning, margins_m=margins, speed_m_s=float(m.speed_m_s),
                               latency_s=config.planning.latency_s + config.loop.latency_budget_s * time_scale)
    mount = CameraMount(pitch_deg=m.camera.pitch_deg)

    def planner():
        return AvoidancePlanner(route, region, frame, pcfg)

    def camera(size_wh: tuple[int, int]) -> Projector:
        return Projector(camera_for_mission(m.camera, size_wh), mount)

    he, hn, _ = frame.to_enu(m.home_lat_deg, m.home_lon_deg)
    return FlightContext(frame, planner, camera, lines, home_en=(float(he), float(hn)),
                         zones_enu=zones)


@dataclass
class FlightOptions:
    camera: str
    out_dir: Path
    time_scale: float = 1.0
    start: bool = False
    upload: bool = True
    wall_timeout_s: float = 3600.0
    end_on_hold_s: float | None = None     # vehicle seconds held before the watch ends (None: wait for the pilot)
    climb_timeout_s: float = 60.0
    say: Callable[[str], None] | None = None
    sinks: list = field(default_factory=list)
    models: tuple | None = None            # (detector, health): already loaded
    alerts: bool = False                   # farmer alerts: outbox in the flight folder, STATUSTEXT (+ MQTT)
    mqtt_url: str | None = None
    test_ground_truth: bool = False        # TEST MODE ONLY: detections from the sim:// world (pipeline_testmode)


@dataclass
class FlightResult:
    completed: bool
    held: bool
    ended: str
    report: dict[str, Any]
    track: list
    events: list[LoopEvent]
    out_dir: Path
    max_seq: int


class JsonlSink:
    """The loop's records as JSON lines, flushed per record: detections (pixels and ground), events, the
    keep-outs the avoidance planner flew round (``keepouts.jsonl``) and the corrections it asked for
    (``corrections.jsonl``)."""

    KEEPOUT_EVERY_S = 1.0  # the same obstacles, moved or grown: at most one record a vehicle second

    def __init__(self, out_dir: Path, frame=None) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self._frame = frame
        self._det = open(out_dir / "detections.jsonl", "a", encoding="utf-8")
        self._ev = open(out_dir / "events.jsonl", "a", encoding="utf-8")
        self._ko = open(out_dir / "keepouts.jsonl", "a", encoding="utf-8")
        self._ko_last: tuple = ((), (), -(1 << 62))  # ids, rounded discs, t_ns of the last record
        self._corr = open(out_dir / "corrections.jsonl", "a", encoding="utf-8")
        self._corr_last = None

    def on_frame(self, r) -> None:
        self._keepouts(r)
        self._correction(r)
        if not len(r.detections):
            return
        rec = {"t_ns": r.ts_ns, "frame": r.frame.index, "lat": round(r.pose.lat_deg, 7),
               "lon": round(r.pose.lon_deg, 7),
               "alt_m": round(r.pose.alt_rel_home_m, 2), "detections": r.detections.to_dicts(),
               "ground": [{"label": g.label, "east_m": round(g.east_m, 2), "north_m": round(g.north_m, 2),
                           "radius_m": round(g.radius_m, 2), "confidence": round(g.confidence, 3)} for g in r.ground]}
        self._det.write(json.dumps(rec) + "\n")
        self._det.flush()

    def _keepouts(self, r) -> None:
        """One line each time the set of keep-outs changes: ``{"t_ns", "keepouts": [{"id", "label", "east_m",
        "north_m", "radius_m", "lat", "lon"}]}`` (local ENU of the mission's home, and WGS84), valid until the
        next line; an empty list when none is held. A moving obstacle is a chain of discs along its way."""
        kos = getattr(r, "keepouts", ())
        ids = tuple(sorted({k[0] for k in kos}))
        discs = tuple((k[0], round(k[2] * 2) / 2, round(k[3] * 2) / 2, round(k[4] * 4) / 4) for k in kos)
        last_ids, last_discs, last_t = self._ko_last
        if discs == last_discs or (ids == last_ids and r.ts_ns - last_t < self.KEEPOUT_EVERY_S * 1e9):
            return
        rows = []
        for tid, label, e, n, radius in kos:
            row = {"id": int(tid), "label": label, "east_m": round(e, 2), "north_m": round(n, 2),
                   "radius_m": round(radius, 2)}
            if self._frame is not None:
                lat, lon, _ = self._frame.to_geo(e, n)
                row.update(lat=round(float(lat), 7), lon=round(float(lon), 7))
            rows.append(row)
        self._ko.write(json.dumps({"t_ns": r.ts_ns, "keepouts": rows}) + "\n")
        self._ko.flush()
        self._ko_last = (ids, discs, r.ts_ns)

    def _correction(self, r) -> None:
        """One line per new correction the planner asks for (a detour's waypoints, a hold, a resume), with where
        the vehicle was: ``{"t_ns", "kind", "side", "obstacles", "resume_seq", "reason", "vehicle": [lat, lon],
        "waypoints": [[lat, lon, alt_m], ...]}`` (and ``"vehicle_en"``/``"waypoints_en"`` in the local frame)."""
        c = r.correction
        if c is None or c == self._corr_last:
            return
        self._corr_last = c
        rec = {"t_ns": r.ts_ns, "kind": c.kind.value, "side": c.side, "obstacles": list(c.obstacle_ids),
               "resume_seq": c.resume_seq, "reason": c.reason,
               "vehicle": [round(r.pose.lat_deg, 7), round(r.pose.lon_deg, 7)],
               "waypoints": [[round(w.lat_deg, 7), round(w.lon_deg, 7), round(w.alt_m, 1)] for w in c.waypoints]}
        if self._frame is not None:
            rec["vehicle_en"] = [round(v, 2) for v in self._frame.to_enu(r.pose.lat_deg, r.pose.lon_deg)[:2]]
            rec["waypoints_en"] = [[round(v, 2) for v in self._frame.to_enu(w.lat_deg, w.lon_deg)[:2]]
                                   for w in c.waypoints]
        self._corr.write(json.dumps(rec) + "\n")
        self._corr.flush()

    def on_event(self, e: LoopEvent) -> None:
        self._ev.write(json.dumps({"t_ns": e.ts_ns, "kind": e.kind, "text": e.text}) + "\n")
        self._ev.flush()

    def close(self) -> None:
        self._det.close()
        self._ev.close()
        self._ko.close()
        self._corr.close()


def start_mission(vehicle, compiled, climb_timeout_s: float) -> None:
    """GUIDED, arm, take off to the mission's altitude, then AUTO (for simulation and bench tests)."""
    alt = next((float(it.z) for it in compiled.items if it.command == NAV_TAKEOFF), None)
    if alt is None:
        from agridrone.errors import MissionError

        raise MissionError("compiled mission: expected a NAV_TAKEOFF item, got none")
    vehicle.set_mode("GUIDED")
    vehicle.arm()
    vehicle.takeoff(alt)
    vehicle.wait_until(lambda st: st.alt_rel_home_m is not None and st.alt_rel_home_m >= 0.9 * alt,
                       climb_timeout_s, f"take-off to {0.9 * alt:.0f} m above home")
    vehicle.set_mode("AUTO")


def run_flight(vehicle, compiled, config: AppConfig, opts: FlightOptions) -> FlightResult:
    from agridrone.autoflight import prepare
    from agridrone.camera import parse_source
    from agridrone.clock import MonotonicClock
    from agridrone.sim.camera_source import sim_scheme

    say = opts.say or (lambda line: None)
    if opts.upload:
        prepare(vehicle, compiled)
        say(f"uploaded {len(compiled.items)} mission items, {len(compiled.fence)} fence items, "
            f"{len(compiled.rally)} rally points; fence enabled")
    cap = config.capture
    if opts.test_ground_truth:
        from agridrone.pipeline_testmode import GroundTruthDetectorForTests

        detector, health = GroundTruthDetectorForTests(opts.camera, (cap.width_px, cap.height_px)), None
    else:
        detector, health = opts.models or load_models(config)
    context = flight_context(compiled, config, time_scale=opts.time_scale)
    wall = MonotonicClock()
    holder: dict[str, Pipeline] = {}
    provider = lambda: holder["p"].pose_now()  # noqa: E731
    if opts.test_ground_truth:
        provider = detector.wrap_pose_provider(provider)
    scheme = sim_scheme(provider, fps=cap.sim_fps, size_wh=(cap.width_px, cap.height_px))
    source = parse_source(opts.camera, wall, schemes={"sim": scheme})
    from agridrone.pipeline_alerts import FlightRecordSink

    records = FlightRecordSink(opts.out_dir, vehicle, latency=lambda: holder["p"].latency.stats(),
                               meta={"flight_id": opts.out_dir.name, "mission": compiled.mission.name,
                                     "mission_file": str(compiled.mission.source), "camera": opts.camera,
                                     "time_scale": opts.time_scale, "agridrone": __version__})
    sinks = [JsonlSink(opts.out_dir, context.frame), records, *opts.sinks]
    if opts.alerts or opts.mqtt_url:
        from agridrone.pipeline_alerts import AlertsSink

        flight_id = opts.out_dir.name.replace("/", "-") or "flight"
        sinks.append(AlertsSink(opts.out_dir, compiled, vehicle, context.camera_factory, flight_id=flight_id,
                                mqtt_url=opts.mqtt_url))
    pipeline = Pipeline(vehicle, source, context, config, detector=detector, health=health,
                        time_scale=opts.time_scale, sinks=sinks, wall_clock=wall)
    holder["p"] = pipeline
    n_last = len(compiled.items) - 1
    ended = "timeout"
    t0 = time.monotonic()
    try:
        pipeline.start()
        if opts.start:
            start_mission(vehicle, compiled, opts.climb_timeout_s)
        say(f"flight loop running: camera {opts.camera}, time scale x{opts.time_scale:g}")
        ended = _watch(vehicle, pipeline, opts, say, t0)
    finally:
        try:
            pipeline.stop()
        finally:
            result = _finish(pipeline, compiled, opts, ended, n_last, time.monotonic() - t0)
    return result


def _watch(vehicle, pipeline: Pipeline, opts: FlightOptions, say, t0: float) -> str:
    airborne = False
    held_since_ns = None
    next_progress = 0.0
    every = pipeline.config.loop.progress_every_s
    while True:
        st = vehicle.state
        alt = st.alt_rel_home_m or 0.0
        airborne |= st.armed and alt > 2.0
        if pipeline.error is not None:
            return "loop_error"
        if airborne and not st.armed and alt < 1.0:
            return "landed"
        if pipeline.commander.state == "hold":
            held_since_ns = held_since_ns or pipeline.now_ns()
            if opts.end_on_hold_s is not None and pipeline.now_ns() - held_since_ns > opts.end_on_hold_s * 1e9:
                return "held"
        else:
            held_since_ns = None
        now = time.monotonic()
        if now >= next_progress:
            say(progress_line(pipeline.snapshot()))
            next_progress = now + every
        if now - t0 > opts.wall_timeout_s:
            return "timeout"
        time.sleep(0.05)


def progress_line(s: dict[str, Any]) -> str:
    pos = "no position" if s["lat"] is None else f"{s['lat']:.6f},{s['lon']:.6f} alt {s['alt_m']:5.1f} m"
    line = f"line {s['line']}/{s['lines']}" if s["line"] else f"item {s['seq']}"
    return (f"  {s['mode']:<7} {line:<11} {pos}  {s['fps']:4.1f} fps  {s['detections']} detections  "
            f"{s['obstacles']} obstacles  {s['corrections']} corrections  [{s['state']}/{s['planner']}]")


def _finish(pipeline: Pipeline, compiled, opts: FlightOptions, ended: str, n_last: int, wall_s: float) -> FlightResult:
    report = pipeline.report()
    with pipeline._lock:
        track = list(pipeline.track)
        events = list(pipeline.events)
    max_seq = max((t[5] for t in track if t[5] is not None), default=0)
    completed = ended == "landed" and max_seq >= n_last - 1
    for sink in pipeline.sinks:
        if hasattr(sink, "policy") and hasattr(sink, "outbox"):
            report["alerts"] = {"committed": sink.alerts, "delivered": dict(sink.outbox.delivered_count),
                                "problems": sink.problems[:10]}
    report.update({"ended": ended, "completed": completed, "max_mission_seq": max_seq, "mission_items": n_last + 1,
                   "watch_wall_s": round(wall_s, 1)})
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    _atomic(out / "summary.json", json.dumps(report, indent=2, default=str))
    geo = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": "flown track", "mission": compiled.mission.source},
        "geometry": {"type": "LineString", "coordinates": [[t[2], t[1], round(t[3], 2)] for t in track]}}]}
    if track:  # vehicle seconds of each point, and its mode and mission item, for reading the flight back
        geo["features"][0]["properties"].update({"t_s": [round((t[0] - track[0][0]) / 1e9, 2) for t in track],
                                                 "mode": [t[4] for t in track], "seq": [t[5] for t in track]})
    _atomic(out / "track.geojson", json.dumps(geo))
    return FlightResult(completed, pipeline.commander.holds > 0, ended, report, track, events, out, max_seq)


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


__all__ = ["FlightOptions", "FlightResult", "flight_context", "load_models", "run_flight", "start_mission",
           "survey_line_seqs"]
