"""Speed and memory of the simulated camera (a script, not a test: ``.venv/bin/python tests/simcam/bench_simcam.py``).

1. A survey pass at the mission's altitude and speed, 30 frames/s, 640x480, across the first
   obstacle of a world (default: sitl/worlds/rectangular-cereal.yaml): per-frame render time.
2. ``--big``: a 50 ha square field (a copy of the cereal mission with a 707 m boundary, written to a
   temporary folder) swept end to end: memory held by the camera and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import math
import re
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from agridrone.geo import offset_deg
from agridrone.sim.camera import SimCamera
from agridrone.types import Pose

REPO = Path(__file__).resolve().parents[2]


def survey_pass(world: Path, frames: int, source: bool) -> None:
    """Direct ``SimCamera.render`` calls, or (``source``) the sim:// source paced at 30 frames/s on the
    real clock, prefetching one tile per frame (timed: rendering plus prefetch, not the pacing wait)."""
    from agridrone.clock import MonotonicClock
    from agridrone.sim.camera_source import SimCameraSource

    t0 = time.perf_counter()
    cam = SimCamera(world)
    init_s = time.perf_counter() - t0
    alt = cam.mission.altitude_agl_m + cam.ground_alt_m
    e0, n0 = cam._obs_xy[0] if len(cam._obs_xy) else (0.0, 0.0)
    fps, speed = 30.0, cam.mission.speed_m_s
    poses = []
    for i in range(frames):
        lat, lon, _ = cam.frame.to_geo(e0 - 60 + speed * i / fps, n0 + 5.0, 0.0)
        poses.append(Pose(int(i * 1e9 / fps), lat, lon, cam.mission.home_ground_alt_amsl_m + alt, alt,
                          math.sin(i / 20), 0.5, 90.0, 0.0, speed))
    ts = []
    if source:
        it = iter(poses)
        clock = MonotonicClock()
        src = SimCameraSource(world, lambda: next(it), clock, fps=fps)
        src.camera = cam  # the fresh camera made above (empty tile cache)
        with src:
            for _ in poses:
                if src._next_ns is not None:  # wait for the frame time here, so read() is only work
                    clock.sleep(max(0.0, (src._next_ns - clock.monotonic_ns()) / 1e9))
                t = time.perf_counter()
                src.read()
                ts.append(time.perf_counter() - t)
    else:
        for pose in poses:
            t = time.perf_counter()
            cam.render(pose)
            ts.append(time.perf_counter() - t)
    ms = np.array(ts[1:]) * 1e3
    what = "sim:// source read() at 30 fps, one tile prefetched every 4th frame" if source else "render() back to back"
    print(f"{cam.world.name} [{what}]: init {init_s:.2f} s, first frame {ts[0] * 1e3:.0f} ms, then {len(ms)} "
          f"frames {cam.size_wh[0]}x{cam.size_wh[1]} at {alt:.0f} m, {speed:g} m/s: median {np.median(ms):.1f} ms, "
          f"p90 {np.percentile(ms, 90):.1f}, p99 {np.percentile(ms, 99):.1f}, max {ms.max():.0f} ms; "
          f"{cam.tiles.rendered} tiles rendered; {cam.memory_bytes() / 1e6:.0f} MB held")


def big_field() -> None:
    src = (REPO / "missions" / "cereal-rectangle.yaml").read_text()
    home = (52.071210, 11.355140)
    ring = [offset_deg(*home, n, e) for n, e in ((10, 10), (10, 717), (717, 717), (717, 10), (10, 10))]
    boundary = "".join(f"    - [{a:.7f}, {b:.7f}]\n" for a, b in ring)
    src = re.sub(r"  boundary:.*?\nhome:", "  boundary:\n" + boundary + "home:", src, flags=re.S)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "m.yaml").write_text(src)
        (d / "w.yaml").write_text("name: big\nmission: m.yaml\nground_alt_amsl_m: 112.0\nobstacles: []\n"
                                  "patches: []\n")
        cam = SimCamera(d / "w.yaml")
        for i in range(400):  # the whole field at 60 m, 35 m steps
            lat, lon, _ = cam.frame.to_geo(30 + (i % 20) * 35, 30 + (i // 20) * 35, 0.0)
            cam.render(Pose(i, lat, lon, 172.0, 60.0))
        print(f"50 ha field: {cam.memory_bytes() / 1e6:.0f} MB held by the camera (ground maps "
              f"{cam.ground.nbytes() / 1e6:.0f} MB, tile cache budget {cam.tiles.budget_bytes / 1e6:.0f} MB), "
              f"peak RSS of the process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "sitl" / "worlds" / "rectangular-cereal.yaml")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--big", action="store_true", help="also sweep a 50 ha field and report memory")
    ap.add_argument("--source", action="store_true", help="also run the sim:// source with its prefetch thread")
    args = ap.parse_args()
    survey_pass(args.world, args.frames, source=False)
    if args.source:
        survey_pass(args.world, args.frames, source=True)
    if args.big:
        big_field()


if __name__ == "__main__":
    main()
