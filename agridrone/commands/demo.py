"""``agridrone demo``: the embedded default — the built-in simulator flying the first example mission.

It starts the simulated copter, plans and uploads the survey (mission, fence, rally), takes off,
flies the survey in AUTO at a speed-up, prints live progress, and ends with a summary and the
path of its output folder (summary.json, the flown track as GeoJSON, the plan as a QGC .plan).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import socket
import sys
from pathlib import Path

DEFAULT_MISSION = "cereal-rectangle.yaml"


def register(sub) -> None:
    p = sub.add_parser("demo", help="fly the demo survey on the built-in simulator (the embedded default)")
    p.add_argument("--mission", type=Path, default=None,
                   help=f"mission file (default: missions/{DEFAULT_MISSION} of this project)")
    p.add_argument("--speedup", type=float, default=30.0, help="simulated seconds per wall second (default 30)")
    p.add_argument("--connect", default=None,
                   help="fly on this vehicle URL instead of starting the built-in simulator (e.g. a SITL at tcp:127.0.0.1:5760)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default flights/demo-<time>)")
    p.add_argument("--timeout", type=float, default=600.0, help="wall-clock limit for the whole flight, s")
    p.set_defaults(func=run)


def default_mission_path() -> Path:
    import agridrone

    candidates = [Path(agridrone.__file__).resolve().parents[1] / "missions" / DEFAULT_MISSION,
                  Path.cwd() / "missions" / DEFAULT_MISSION]
    for path in candidates:
        if path.is_file():
            return path
    from agridrone.errors import ConfigError

    raise ConfigError(f"demo: expected the example mission at {candidates[0]}, got no such file "
                      f"(pass --mission FILE)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: argparse.Namespace) -> int:
    from agridrone.autoflight import fly_auto, prepare
    from agridrone.mission.compile import compile_mission
    from agridrone.mission.formats.export import export
    from agridrone.mission.loader import load_mission
    from agridrone.vehicle import connect

    mission_path = args.mission or default_mission_path()
    mission = load_mission(mission_path)
    compiled = compile_mission(mission)
    plan = compiled.plan
    out = args.out or Path("flights") / f"demo-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    export(compiled, out / "plan.plan")
    say = _printer()
    say(f"mission {mission_path.name}: {mission.name}; {_plan_line(plan)}")

    handle = None
    url = args.connect
    speedup = 1.0
    if url is None:
        from agridrone.sim.launcher import launch_builtin

        speedup = args.speedup
        home = (mission.home_lat_deg, mission.home_lon_deg, mission.home_ground_alt_amsl_m)
        handle = launch_builtin(_free_port(), home=home, speedup=speedup)
        url = handle.url
        say(f"built-in simulator at {url}, home {home[0]:.6f},{home[1]:.6f}, speed-up x{speedup:g}")
    try:
        with connect(url, timeout_s=15.0) as vehicle:
            vehicle.request_streams()
            say("waiting for the vehicle to be ready (EKF, GPS, home)...")
            vehicle.wait_ready(timeout_s=max(10.0, 90.0 / speedup + 5.0))
            prepare(vehicle, compiled)
            say(f"uploaded {len(compiled.items)} mission items, {len(compiled.fence)} fence items, "
                f"{len(compiled.rally)} rally points; fence enabled")
            n_items = len(compiled.items) - 1

            def progress(st) -> None:
                p = st.pose
                if p is None:
                    return
                say(f"  {st.mode:<7} item {st.mission_seq or 0:>3}/{n_items}  {p.lat_deg:.6f},{p.lon_deg:.6f}  "
                    f"alt {p.alt_rel_home_m:5.1f} m  {p.ground_speed_m_s:4.1f} m/s  battery "
                    f"{'?' if st.battery_pct is None else f'{st.battery_pct:.0f}%'}")

            report = fly_auto(vehicle, compiled, wall_timeout_s=args.timeout, on_progress=progress,
                              progress_every_s=max(0.5, 20.0 / speedup), speedup=speedup,
                              climb_timeout_s=max(10.0, 120.0 / speedup))
    finally:
        if handle is not None:
            handle.stop()
    _write_outputs(out, mission_path, compiled, report)
    verdict = "completed" if report.completed and not report.fence_breaches else "NOT completed"
    say(f"mission {verdict}: {report.distance_m / 1000:.2f} km in {report.duration_s / 60:.1f} min of flight "
        f"({report.wall_s:.0f} s wall), {len(report.items_reached)} waypoints reached, "
        f"{report.fence_breaches} fence breaches")
    say(f"output: {out.resolve()}")
    return 0 if verdict == "completed" else 1


def _plan_line(plan) -> str:
    s = plan.summary()
    return (f"{s['lines']} lines at {s['line_angle_deg']} deg, {s['line_spacing_m']} m apart, "
            f"{s['path_length_m'] / 1000:.2f} km, ~{s['flight_time_s'] / 60:.1f} min, "
            f"{s['area_covered_ha']} of {s['field_area_ha']} ha, GSD {s['gsd_cm_px']} cm/px")


def _write_outputs(out: Path, mission_path: Path, compiled, report) -> None:
    track = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"name": "flown track", "mission": str(mission_path)},
        "geometry": {"type": "LineString", "coordinates": [[lon, lat, alt] for lat, lon, alt in report.track]}}]}
    _atomic_write(out / "track.geojson", json.dumps(track))
    summary = {"mission": str(mission_path), "completed": report.completed, "distance_m": round(report.distance_m, 1),
               "flight_s": round(report.duration_s, 1), "wall_s": round(report.wall_s, 1),
               "waypoints_reached": list(report.items_reached), "fence_breaches": report.fence_breaches,
               "max_alt_rel_m": round(report.max_alt_rel_m, 1), "statustexts": list(report.statustexts)}
    _atomic_write(out / "summary.json", json.dumps(summary, indent=2))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _printer():
    def say(line: str) -> None:
        print(line, flush=True)

    return say
