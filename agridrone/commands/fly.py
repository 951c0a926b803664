"""``agridrone fly MISSION --connect URL --camera SOURCE``: fly a mission with the flight loop.

Loads and plans the mission, connects to the autopilot, uploads mission, fence and rally, and runs
the loop (capture, detection, health tiles, tracking, avoidance, course corrections) until the vehicle
has landed and disarmed. By default the pilot starts the mission (arms, takes off, selects AUTO) and
agridrone corrects the course while it runs in AUTO; ``--start`` makes agridrone take off and start
AUTO itself (simulation, bench tests). Results go to ``--out`` (default flights/<mission>-<time>).
"""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("fly", help="fly a mission with obstacle avoidance (real vehicle or simulator)")
    p.add_argument("mission", type=Path, help="mission file (missions/*.yaml)")
    p.add_argument("--connect", required=True, metavar="URL",
                   help="autopilot link: tcp:HOST:PORT, udp:HOST:PORT, udpin:0.0.0.0:14550, serial:/dev/ttyAMA0:921600")
    p.add_argument("--camera", required=True, metavar="SOURCE",
                   help="frame source: device index (0), /dev/video0, video file, image folder, rtsp:// or http:// URL, "
                        "picamera2[:N], or sim://WORLD (rendered from the vehicle's pose)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default flights/<mission>-<time>)")
    p.add_argument("--config", type=Path, default=None,
                   help="TOML configuration (defaults: agridrone/data/agridrone.toml)")
    p.add_argument("--mqtt", default=None, metavar="URL",
                   help="MQTT broker for farmer alerts: mqtt[s]://user@host:port/prefix")
    p.add_argument("--start", action="store_true",
                   help="arm, take off and start AUTO from here (simulation); default: the pilot starts the mission")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="the simulator's speed-up, so the loop works in the vehicle's time (1 on a real vehicle)")
    p.add_argument("--timeout", type=float, default=4 * 3600.0, metavar="S", help="wall-clock limit, s")
    p.add_argument("--signing-key", metavar="FILE", help="MAVLink 2 signing key")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from agridrone.config import load_config
    from agridrone.errors import ConfigError
    from agridrone.mission.compile import compile_mission
    from agridrone.mission.loader import load_mission
    from agridrone.pipeline_run import FlightOptions, run_flight
    from agridrone.vehicle import connect

    if not args.time_scale > 0:
        raise ConfigError(f"--time-scale: expected a number > 0, got {args.time_scale}")
    config = load_config(args.config)
    if args.mqtt:
        from agridrone.alerts.mqtt import parse_mqtt_url

        parse_mqtt_url(args.mqtt)  # a wrong URL stops here, in one line, before anything flies
    mission = load_mission(args.mission)
    compiled = compile_mission(mission)
    check_camera_spec(args.camera)
    out = args.out or Path("flights") / f"{args.mission.stem}-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    say = _say
    say(f"mission {args.mission.name}: {mission.name}; {len(compiled.plan.lines)} lines; output {out}")
    with connect(args.connect, timeout_s=15.0, signing=args.signing_key) as vehicle:
        vehicle.request_streams()
        say("waiting for the vehicle to be ready (EKF, GPS, home)...")
        vehicle.wait_ready(timeout_s=max(30.0, 600.0 / args.time_scale))  # GPS lock after boot can take minutes
        opts = FlightOptions(camera=args.camera, out_dir=out, time_scale=args.time_scale, start=args.start,
                             wall_timeout_s=args.timeout, climb_timeout_s=max(10.0, 120.0 / args.time_scale),
                             say=say, alerts=True, mqtt_url=args.mqtt)
        result = run_flight(vehicle, compiled, config, opts)
    print_summary(result, say)
    return 0 if result.completed else 1


def check_camera_spec(spec: str) -> None:
    """Refuse a camera spec that cannot work before anything connects or flies (one line, CameraError)."""
    from agridrone.camera import parse_source
    from agridrone.clock import MonotonicClock
    from agridrone.errors import AgriDroneError, CameraError

    if isinstance(spec, str) and spec.strip().lower().startswith("sim://"):
        from agridrone.sim.world import load_world

        try:
            load_world(spec.strip()[len("sim://"):])
        except AgriDroneError as err:
            raise CameraError(f"--camera {spec}: expected sim://WORLD with a world file (sitl/worlds/*.yaml), "
                              f"got: {err}") from None
        return
    parse_source(spec, MonotonicClock())  # syntax only: the source is opened when the loop starts


def print_summary(result, say) -> None:
    rep = result.report
    lat = rep["latency_ms"].get("frame_to_command", {})
    cmd = rep["commander"]
    verdict = "completed" if result.completed else f"NOT completed ({result.ended})"
    say(f"mission {verdict}: {rep['frames_processed']} frames at {rep['fps']} fps "
        f"({rep['frames_per_vehicle_s']} per vehicle second), {rep['detections']} detections, "
        f"{len(rep['obstacles_confirmed'])} obstacles, {cmd['detours']} detours, {cmd['holds']} holds, "
        f"{cmd['pilot_takeovers']} pilot take-overs; frame-to-command p50 {lat.get('p50_ms', 0):.0f} ms, "
        f"p99 {lat.get('p99_ms', 0):.0f} ms; skipped {rep['skipped']}")
    if "alerts" in rep:
        a = rep["alerts"]
        say(f"alerts: {a['committed']} committed to the outbox, delivered {a['delivered']}"
            + (f"; problems: {a['problems']}" if a["problems"] else ""))
    say(f"output: {result.out_dir.resolve()}")


def _say(line: str) -> None:
    print(line, flush=True)
