"""``agridrone bench loop``: the flight loop from a recorded video, against a naive sequential loop.

Without ``--video`` a recording is made first (in a child process, so that its memory does not count):
the simulated camera flying a survey line of the first example world at the mission's altitude and
speed, 30 frames/s, 640x480, MJPEG. Both models run (detector on every frame, health tiles when the
footprint moved by half its length). The vehicle is a replay of that flight (poses along the line),
flying AUTO, so projection, tracking, planning and the commander all run; commands go nowhere.

Runs, one after the other in this process (``fps``: frames carried through per second, first to last):

1. ``loop @30`` — the flight loop with the video played at 30 frames/s, as a camera delivers it: the
   sustained rate (frames carried through the loop per second), frame-to-command latency p50/p99
   (capture -> command decided), per-stage latency, frames dropped;
2. ``loop max`` — the same, the video read as fast as it decodes (the loop's throughput);
3. ``naive @30`` / ``naive max`` — capture, detect, health, project, track, plan, one after the other on
   one thread (as in the TFLite examples), every frame; at 30 frames/s a frame's latency runs from when
   the camera would have delivered it, so a naive loop slower than the camera shows its backlog.

Printed: fps, latencies, CPU (process CPU seconds per wall second, 2.0 = both cores) and peak RSS; the
loop/naive ratios (fps and p99 latency at the camera's rate, and maximum throughput). Targets (issue 6): >= 30 frames/s, p99 <= 100 ms, <= 500 MB.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

VIDEO_FPS = 30.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--video", type=Path, default=None, help="recorded video (default: record one with the sim camera)")
    p.add_argument("--world", type=Path, default=None, help="world for the recording and the replayed flight "
                                                             "(default sitl/worlds/rectangular-cereal.yaml)")
    p.add_argument("--frames", type=int, default=450, help="frames to record (default 450: 15 s at 30 frames/s)")
    p.add_argument("--config", type=Path, default=None, help="TOML configuration (models, rates)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")


def run(args: argparse.Namespace) -> int:
    import multiprocessing as mp
    import tempfile

    from agridrone.commands.demo import default_world_path
    from agridrone.config import load_config
    from agridrone.errors import ConfigError

    if args.frames < 30:
        raise ConfigError(f"--frames: expected at least 30, got {args.frames}")
    config = load_config(args.config)
    world = (args.world or default_world_path()).resolve()
    with tempfile.TemporaryDirectory(prefix="agridrone-bench-") as tmp:
        video = args.video
        if video is None:
            video = Path(tmp) / "flight.avi"
            print(f"recording {args.frames} frames of {world.name} at {VIDEO_FPS:g} frames/s to {video} ...",
                  flush=True)
            ctx = mp.get_context("spawn")
            proc = ctx.Process(target=record, args=(str(world), str(video), args.frames,
                                                    (config.capture.width_px, config.capture.height_px)))
            proc.start()
            proc.join(600)
            if proc.exitcode != 0:
                raise ConfigError(f"recording the benchmark video failed (exit code {proc.exitcode})")
        elif not video.is_file():
            raise ConfigError(f"--video: expected a video file, got {video} (not found)")
        figures = measure(video, world, config)
    print_figures(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def _line_track(world_path: str):
    """The replayed flight: the survey line of the world's first obstacle, at the mission's altitude and speed."""
    import math

    from agridrone.mission.compile import compile_mission
    from agridrone.mission.loader import load_mission
    from agridrone.pipeline_run import survey_line_seqs
    from agridrone.sim.world import load_world

    w = load_world(world_path)
    compiled = compile_mission(load_mission(w.mission_path))
    m, frame = compiled.mission, compiled.plan.frame
    target = w.obstacles[0] if w.obstacles else None
    best = None
    for s_seq, e_seq in survey_line_seqs(compiled):
        a = frame.to_enu(compiled.items[s_seq].lat_deg, compiled.items[s_seq].lon_deg)[:2]
        b = frame.to_enu(compiled.items[e_seq].lat_deg, compiled.items[e_seq].lon_deg)[:2]
        d = 0.0
        if target is not None:
            te, tn, _ = frame.to_enu(target.lat_deg, target.lon_deg)
            d = abs((b[0] - a[0]) * (a[1] - tn) - (a[0] - te) * (b[1] - a[1])) / max(1e-6, math.dist(a, b))
        if best is None or d < best[0]:
            best = (d, a, b, e_seq)
    _, a, b, seq = best
    return compiled, frame, a, b, seq, float(m.altitude_agl_m), float(m.speed_m_s)


def _pose_on_line(frame, a, b, alt_m: float, speed_m_s: float, t_s: float, ts_ns: int):
    import math

    from agridrone.types import Pose

    length = math.dist(a, b)
    ux, uy = (b[0] - a[0]) / length, (b[1] - a[1]) / length
    s = (t_s * speed_m_s) % length
    lat, lon, _ = frame.to_geo(a[0] + ux * s, a[1] + uy * s, 0.0)
    yaw = math.degrees(math.atan2(ux, uy)) % 360.0
    return Pose(ts_ns, float(lat), float(lon), alt_m, alt_m, 0.0, 0.0, yaw, uy * speed_m_s, ux * speed_m_s, 0.0)


def record(world_path: str, video_path: str, n_frames: int, size_wh) -> None:
    """Child process: render the line flight with the simulated camera into an MJPEG file."""
    import cv2

    from agridrone.sim.camera import SimCamera

    _, frame, a, b, _, alt, speed = _line_track(world_path)
    cam = SimCamera(world_path, size_wh=tuple(size_wh))
    writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"MJPG"), VIDEO_FPS, tuple(size_wh))
    try:
        for i in range(n_frames):
            t = i / VIDEO_FPS
            writer.write(cam.render_image(_pose_on_line(frame, a, b, alt, speed, t, int(t * 1e9))))
    finally:
        writer.release()


class ReplayVehicle:
    """The recorded flight as a vehicle in AUTO: the pose on the line at the current wall time."""

    def __init__(self, frame, a, b, alt_m, speed_m_s, seq, clock) -> None:
        from agridrone.vehicle.events import EventBus

        self.events = EventBus()
        self._geom = (frame, a, b, alt_m, speed_m_s)
        self._seq = seq
        self._clock = clock
        self._t0 = clock.monotonic_ns()
        self.calls = 0

    @property
    def state(self):
        from agridrone.vehicle.telemetry import VehicleState

        now = self._clock.monotonic_ns()
        pose = _pose_on_line(*self._geom, (now - self._t0) / 1e9, now)
        return VehicleState(pose=pose, mode="AUTO", custom_mode=3, armed=True, mission_seq=self._seq, link_ok=True)

    def set_mode(self, mode: str) -> None:
        self.calls += 1

    def goto(self, *a) -> None:
        self.calls += 1

    def set_speed(self, speed_m_s: float) -> None:
        self.calls += 1

    def resume_auto(self, seq: int) -> None:
        self.calls += 1


def _usage():
    import resource
    import time

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return time.monotonic(), ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0


def _loop_run(video: Path, world: Path, config, models, pace_fps):
    import time

    from agridrone.camera import VideoFileSource
    from agridrone.clock import MonotonicClock
    from agridrone.pipeline import Pipeline
    from agridrone.pipeline_run import flight_context

    compiled, frame, a, b, seq, alt, speed = _line_track(str(world))
    clock = MonotonicClock()
    vehicle = ReplayVehicle(frame, a, b, alt, speed, seq, clock)
    source = VideoFileSource(video, clock, pace_fps=pace_fps)
    detector, health = models
    p = Pipeline(vehicle, source, flight_context(compiled, config), config, detector=detector, health=health,
                 wall_clock=clock)
    w0, c0, _ = _usage()
    p.start()
    try:
        while not any(e.kind in ("camera_eof", "camera_failed", "loop_error") for e in list(p.events)):
            time.sleep(0.02)
        time.sleep(0.2)  # let the control thread finish the last frame
    finally:
        p.stop()
    w1, c1, rss = _usage()
    rep = p.report()
    lat = rep["latency_ms"]
    return {"fps": rep["fps_sustained"], "frames_processed": rep["frames_processed"],
            "frames_captured": rep["frames_captured"], "skipped": rep["skipped"],
            "frame_to_command_p50_ms": lat.get("frame_to_command", {}).get("p50_ms"),
            "frame_to_command_p99_ms": lat.get("frame_to_command", {}).get("p99_ms"),
            "stages_ms": {k: {"p50": v["p50_ms"], "p99": v["p99_ms"], "count": v["count"]} for k, v in lat.items()},
            "cpu_cores": round((c1 - c0) / (w1 - w0), 2), "peak_rss_mb": round(rss, 1), "wall_s": round(w1 - w0, 2),
            "health_runs": rep["health_runs"], "detections": rep["detections"]}


def _naive_run(video: Path, world: Path, config, models, pace_fps: float | None = None):
    import time

    import cv2
    import numpy as np

    from agridrone.clock import MonotonicClock
    from agridrone.pipeline_parts import ObstacleMemory, footprint_centre_and_length, project_detections
    from agridrone.pipeline_run import flight_context
    from agridrone.planning import VehicleState
    from agridrone.tracking import ObstacleTracker

    compiled, frame, a, b, seq, alt, speed = _line_track(str(world))
    ctx = flight_context(compiled, config)
    clock = MonotonicClock()
    vehicle = ReplayVehicle(frame, a, b, alt, speed, seq, clock)
    detector, health = models
    tracker, planner = ObstacleTracker(frame, config.tracking), ctx.planner_factory()
    memory = ObstacleMemory.for_loop(config.loop)
    cap = cv2.VideoCapture(str(video))
    lat_ms, n, health_at, projector = [], 0, None, None
    w0, c0, _ = _usage()
    first_ns = last_ns = 0
    start_ns = time.monotonic_ns()
    while True:
        t0 = time.monotonic_ns()
        ok, image = cap.read()
        if not ok:
            break
        if pace_fps:  # frame n arrives at start + n / fps, as from a camera; a late loop works through the backlog
            t0 = start_ns + int(n * 1e9 / pace_fps)
            wait_ns = t0 - time.monotonic_ns()
            if wait_ns > 0:
                time.sleep(wait_ns / 1e9)
        first_ns = first_ns or t0
        pose = vehicle.state.pose
        dets = detector.detect(image)
        projector = projector or ctx.camera_factory((image.shape[1], image.shape[0]))
        if health is not None:
            fp = footprint_centre_and_length(projector, pose, frame)
            if fp and (health_at is None or np.hypot(fp[0] - health_at[0], fp[1] - health_at[1])
                       > config.perception.health_footprint_fraction * fp[2]):
                health_at = fp[:2]
                health.analyze(image, pose)
        ground = project_detections(dets, pose, projector, frame, pose.ts_ns)
        obstacles = memory.update(tracker.update(ground or None, pose.ts_ns), pose.ts_ns)
        planner.update(obstacles, VehicleState.from_pose(pose, frame, seq), pose.ts_ns)
        last_ns = time.monotonic_ns()
        lat_ms.append((last_ns - t0) / 1e6)
        n += 1
    cap.release()
    w1, c1, rss = _usage()
    arr = np.asarray(lat_ms)
    return {"fps": round(n / max(1e-9, (last_ns - first_ns) / 1e9), 2), "frames_processed": n,
            "frame_to_command_p50_ms": round(float(np.percentile(arr, 50)), 2),
            "frame_to_command_p99_ms": round(float(np.percentile(arr, 99)), 2),
            "cpu_cores": round((c1 - c0) / (w1 - w0), 2), "peak_rss_mb": round(rss, 1), "wall_s": round(w1 - w0, 2)}


def measure(video: Path, world: Path, config) -> dict:
    import cv2

    from agridrone.pipeline_run import load_models

    cap = cv2.VideoCapture(str(video))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    models = load_models(config)
    figures = {"video": str(video), "size_wh": list(size), "frames": count,
               "detector": config.perception.detector_model, "health": config.perception.health_model or None,
               "cpu_count": __import__("os").cpu_count()}
    print(f"video {video.name}: {count} frames {size[0]}x{size[1]}; loop at {VIDEO_FPS:g} frames/s ...", flush=True)
    figures["loop_paced"] = _loop_run(video, world, config, models, VIDEO_FPS)
    print(f"naive sequential loop at {VIDEO_FPS:g} frames/s ...", flush=True)
    figures["naive_paced"] = _naive_run(video, world, config, models, VIDEO_FPS)
    print("loop, video read as fast as it decodes ...", flush=True)
    figures["loop_max"] = _loop_run(video, world, config, models, None)
    print("naive sequential loop, as fast as it goes ...", flush=True)
    figures["naive_max"] = _naive_run(video, world, config, models)
    lp, nv = figures["loop_paced"], figures["naive_paced"]
    figures["ratio_fps_loop_over_naive_at_30"] = round(lp["fps"] / max(1e-9, nv["fps"]), 2)
    figures["ratio_p99_naive_over_loop_at_30"] = round((nv["frame_to_command_p99_ms"] or 0)
                                                       / max(1e-9, lp["frame_to_command_p99_ms"] or 0), 2)
    figures["ratio_max_throughput_loop_over_naive"] = round(figures["loop_max"]["fps"]
                                                            / max(1e-9, figures["naive_max"]["fps"]), 2)
    return figures


def print_figures(f: dict) -> None:
    print(f"\nflight loop benchmark: {f['frames']} frames {f['size_wh'][0]}x{f['size_wh'][1]}, detector "
          f"{f['detector']}, health {f['health']}, {f['cpu_count']} CPUs")
    print(f"{'run':<10} {'fps':>7} {'f2c p50':>9} {'f2c p99':>9} {'CPU':>6} {'peak RSS':>9}  frames")
    for key, name in (("loop_paced", "loop @30"), ("naive_paced", "naive @30"), ("loop_max", "loop max"),
                      ("naive_max", "naive max")):
        r = f[key]
        extra = f"{r['frames_processed']} processed" + (f", skipped {r['skipped']}" if r.get("skipped") else "")
        print(f"{name:<10} {r['fps']:>7.1f} {r['frame_to_command_p50_ms']:>7.1f}ms "
              f"{r['frame_to_command_p99_ms']:>7.1f}ms "
              f"{r['cpu_cores']:>6.2f} {r['peak_rss_mb']:>7.0f}MB  {extra}")
    print(f"loop/naive at {VIDEO_FPS:g} frames/s: fps x{f['ratio_fps_loop_over_naive_at_30']}, frame-to-command p99 "
          f"naive/loop x{f['ratio_p99_naive_over_loop_at_30']}; max throughput loop/naive "
          f"x{f['ratio_max_throughput_loop_over_naive']} (the loop's capture thread decodes frames it then drops)")
    print("per-stage latency, loop @30 (ms, p50 / p99):")
    for stage, v in f["loop_paced"]["stages_ms"].items():
        print(f"  {stage:<22} {v['p50']:>8.2f} / {v['p99']:>8.2f}  ({v['count']})")
    ok_fps = f["loop_paced"]["fps"] >= 0.97 * VIDEO_FPS
    ok_lat = (f["loop_paced"]["frame_to_command_p99_ms"] or 1e9) <= 100.0
    ok_mem = f["loop_paced"]["peak_rss_mb"] <= 500.0
    print(f"targets: >= 30 frames/s {'met' if ok_fps else 'NOT met'}; p99 <= 100 ms {'met' if ok_lat else 'NOT met'}; "
          f"<= 500 MB {'met' if ok_mem else 'NOT met'}")
