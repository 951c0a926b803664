"""``agridrone demo``: the embedded default, everything at once on this computer.

The built-in simulator flies the first example mission (missions/cereal-rectangle.yaml) at a speed-up;
the simulated camera renders its world (sitl/worlds/rectangular-cereal.yaml: trees on the survey lines,
a person and a tractor at the gate, a deer, a pole, stressed and weedy patches) from the vehicle's
pose; the shipped models (models/detector.tflite, models/health.tflite) look at every frame; the
tracker, the avoidance planner and the commander steer round what is in the way. Live progress
(position, current line, detections, corrections) while it flies; a short summary and the path of the
output folder (summary.json, track.geojson, detections.jsonl, events.jsonl, keepouts.jsonl,
corrections.jsonl, plan.plan) at the end.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import socket
from pathlib import Path

DEFAULT_WORLD = "rectangular-cereal.yaml"


def register(sub) -> None:
    p = sub.add_parser("demo", help="fly the demo survey with avoidance on the built-in simulator (the embedded default)")
    p.add_argument("--world", type=Path, default=None,
                   help=f"world file (default: sitl/worlds/{DEFAULT_WORLD}); its mission is flown")
    p.add_argument("--speedup", type=float, default=20.0,
                   help="simulated seconds per wall second (default 20: about one camera frame per simulated "
                        "second at 20 frames/s)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default flights/demo-<time>)")
    p.add_argument("--config", type=Path, default=None, help="TOML configuration (default: the documented defaults)")
    p.add_argument("--mqtt", default=None, metavar="URL", help="MQTT broker for farmer alerts")
    p.add_argument("--timeout", type=float, default=900.0, help="wall-clock limit for the whole flight, s")
    p.set_defaults(func=run)


def default_world_path() -> Path:
    from agridrone.errors import ConfigError
    from agridrone.pipeline_run import project_root

    candidates = [project_root() / "sitl" / "worlds" / DEFAULT_WORLD, Path.cwd() / "sitl" / "worlds" / DEFAULT_WORLD]
    for path in candidates:
        if path.is_file():
            return path
    raise ConfigError(f"demo: expected the example world at {candidates[0]}, got no such file (pass --world FILE)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: argparse.Namespace) -> int:
    from agridrone.commands.fly import print_summary
    from agridrone.config import load_config
    from agridrone.errors import ConfigError
    from agridrone.mission.compile import compile_mission
    from agridrone.mission.formats.export import export
    from agridrone.mission.loader import load_mission
    from agridrone.pipeline_run import FlightOptions, load_models, run_flight
    from agridrone.sim.launcher import launch_builtin
    from agridrone.sim.world import load_world
    from agridrone.vehicle import connect

    if not args.speedup > 0:
        raise ConfigError(f"--speedup: expected a number > 0, got {args.speedup}")
    config = load_config(args.config)
    if args.mqtt:
        from agridrone.alerts.mqtt import parse_mqtt_url

        parse_mqtt_url(args.mqtt)  # a wrong URL stops here, in one line, before anything flies
    world_path = (args.world or default_world_path()).resolve()
    world = load_world(world_path)
    mission = load_mission(world.mission_path)
    compiled = compile_mission(mission)
    models = load_models(config)  # before anything starts: a missing model is one line, not a half-started flight
    out = args.out or Path("flights") / f"demo-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    export(compiled, out / "plan.plan")
    say = _say
    s = compiled.plan.summary()
    say(f"mission {world.mission_path.name}: {mission.name}; {s['lines']} lines, {s['path_length_m'] / 1000:.2f} km, "
        f"~{s['flight_time_s'] / 60:.1f} min of flight; world {world.name}: {len(world.obstacles)} obstacles, "
        f"{len(world.patches)} crop-health patches")
    speedup = float(args.speedup)
    home = (mission.home_lat_deg, mission.home_lon_deg, mission.home_ground_alt_amsl_m)
    with launch_builtin(_free_port(), home=home, speedup=speedup) as sim:
        say(f"built-in simulator at {sim.url}, speed-up x{speedup:g}; camera sim://{world_path.name} "
            f"{config.capture.width_px}x{config.capture.height_px}")
        with connect(sim.url, timeout_s=15.0) as vehicle:
            vehicle.request_streams()
            say("waiting for the vehicle to be ready (EKF, GPS, home)...")
            vehicle.wait_ready(timeout_s=max(10.0, 90.0 / speedup + 10.0))
            opts = FlightOptions(camera=f"sim://{world_path}", out_dir=out, time_scale=speedup, start=True,
                                 wall_timeout_s=args.timeout, end_on_hold_s=60.0,
                                 climb_timeout_s=max(10.0, 120.0 / speedup + 10.0), say=say, alerts=True,
                                 mqtt_url=args.mqtt,
                                 models=models)
            result = run_flight(vehicle, compiled, config, opts)
    for ev in result.events:
        if ev.kind in ("detour", "hold", "resume", "pilot_takeover", "camera_lost", "link_lost", "fence_breach"):
            say(f"  event {ev.kind}: {ev.text}")
    print_summary(result, say)
    return 0 if result.completed else 1


def _say(line: str) -> None:
    print(line, flush=True)
