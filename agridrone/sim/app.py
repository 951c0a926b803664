"""Command-line front end shared by ``agridrone sim`` and ``python -m agridrone.sim``.

Top-level imports stay light: pymavlink is only imported when the simulator runs.
"""

from __future__ import annotations

import argparse
import math
import re

from agridrone.errors import ConfigError


def _floats(text: str, n: int, what: str) -> tuple[float, ...]:
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != n or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"{what}: expected {n} comma-separated numbers, got {text!r}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    # let "--home -35.36,149.16,584" through: argparse would take "-35.36,..." for an option
    p._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[\d.]+(,-?[\d.]+)+$")
    p.add_argument("--listen", default="tcp:127.0.0.1:5760",
                   help="where to serve MAVLink: tcp:HOST:PORT (default tcp:127.0.0.1:5760) or udpin:HOST:PORT")
    p.add_argument("--home", default="-35.363261,149.165230,584",
                   help="home as LAT,LON,ALT_M (AMSL); default the ArduPilot SITL home -35.363261,149.165230,584")
    p.add_argument("--speedup", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    p.add_argument("--boot-s", type=float, default=None,
                   help="simulated seconds until the EKF uses GPS and arming is possible (default 10; SITL ~42)")
    p.add_argument("--wind", default=None, help="steady wind as NORTH,EAST m/s (e.g. 3,-1)")
    p.add_argument("--signing-key", default=None,
                   help="file with a MAVLink 2 signing key (32 raw bytes or 64 hex digits): "
                        "sign everything sent and require signatures")
    p.add_argument("--physics-hz", type=float, default=50.0, help="physics steps per simulated second (default 50)")
    p.add_argument("--wait-client", action="store_true",
                   help="hold simulated time at 0 until a client sends its first MAVLink message "
                        "(like SITL's tcp:0:wait)")
    p.add_argument("--duration-s", type=float, default=None, help="stop after this many simulated seconds")


def run(args) -> int:
    import signal

    from agridrone.sim.autopilot import DEFAULT_BOOT_S, Autopilot, SimConfig
    from agridrone.sim.server import Endpoint, SimServer, load_signing_key

    home = _floats(args.home, 3, "--home")
    wind_ne = _floats(args.wind, 2, "--wind") if args.wind else (0.0, 0.0)
    endpoint = Endpoint.parse(args.listen)
    key = load_signing_key(args.signing_key) if args.signing_key else None
    try:
        config = SimConfig(home=home, boot_s=args.boot_s if args.boot_s is not None else DEFAULT_BOOT_S,
                           wind_en=(wind_ne[1], wind_ne[0]), physics_hz=args.physics_hz)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    server = SimServer(Autopilot(config), endpoint, args.speedup, signing_key=key, wait_client=args.wait_client)
    previous = {}

    def _stop(_signum, _frame):
        server.stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, _stop)
    server.log(f"listening on {server.url} (speedup {args.speedup:g}, boot {config.boot_s:g} s"
               f"{', signing on' if key else ''})")
    try:
        server.serve(args.duration_s)
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    server.log("stopped")
    return 0
