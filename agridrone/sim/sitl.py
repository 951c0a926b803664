"""Run a real ArduCopter SITL binary (``arducopter``) for the same tests the built-in simulator runs.

``launch_sitl(binary, workdir=..., home=..., speedup=...)`` starts::

    arducopter --model + --speedup N --home LAT,LON,ALT,HEADING -I INSTANCE
               --defaults copter.parm,sitl/agridrone.parm[,...] -w --serial0 tcp:0

in its own working directory (SITL writes eeprom.bin and logs/ into its current directory), waits
until its MAVLink TCP port accepts connections and returns a handle with ``.url``, ``.running`` and
``.stop()``. The standard copter defaults (Tools/autotest/default_params/copter.parm) are found next
to the binary in the ArduPilot tree it was built in (build/sitl/bin/arducopter), or given with
``base_defaults=``. SITL exits when its parent process exits.

Signing (``signing_key_path=``): the key is stored on the vehicle with SETUP_SIGNING over SERIAL0,
and the handle's URL is then SERIAL1 (port 5762 + 10 * instance), because ArduPilot always accepts
unsigned messages on its first MAVLink channel (it assumes that one is USB).

By hand: ``sitl/run-sitl.sh /path/to/arducopter`` (or ``python -m agridrone.sim.sitl``).
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

from agridrone.errors import ConfigError, LinkError
from agridrone.sim.launcher import ProcessHandle

BASE_PORT = 5760
_KNOWN_EXTRA = {"boot_s", "wind", "startup_timeout_s", "model", "base_defaults", "heading_deg"}


class SitlHandle(ProcessHandle):
    """A running ``arducopter`` process; its log stays in ``workdir``."""

    def __init__(self, proc: subprocess.Popen, url: str, instance: int, workdir: Path, log_path: Path) -> None:
        super().__init__(proc, url, log_path, keep_log=True)
        self.instance = instance
        self.workdir = workdir


def copter_defaults_for(binary: Path) -> Path | None:
    """Tools/autotest/default_params/copter.parm of the ArduPilot tree ``binary`` was built in, if any."""
    for parent in Path(binary).resolve().parents:
        candidate = parent / "Tools" / "autotest" / "default_params" / "copter.parm"
        if candidate.is_file():
            return candidate
    return None


def _port_free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_instance(start: int = 0, stop: int = 60) -> int:
    """The first SITL instance whose MAVLink TCP ports (5760/5762/5763 + 10 N) and RC UDP port are free."""
    for n in range(start, stop):
        base = BASE_PORT + 10 * n
        if all(_port_free(p, socket.SOCK_STREAM) for p in (base, base + 2, base + 3)) \
                and _port_free(5501 + 10 * n, socket.SOCK_DGRAM):
            return n
    raise LinkError(f"SITL: expected a free instance among {start}..{stop - 1}, got all their ports in use")


def _wind_parm(workdir: Path, wind: Sequence[float]) -> Path:
    """A parameter file for a steady wind given as the air's (north, east) velocity in m/s."""
    north, east = float(wind[0]), float(wind[1])
    speed = math.hypot(north, east)
    from_deg = math.degrees(math.atan2(-east, -north)) % 360.0 if speed > 0 else 0.0
    path = workdir / "agridrone-wind.parm"
    path.write_text(f"SIM_WIND_SPD {speed:.3f}\nSIM_WIND_DIR {from_deg:.1f}\nSIM_WIND_TURB 0\n")
    return path


def _setup_signing(url: str, key_path, timeout_s: float) -> None:
    """Store the key on the vehicle with SETUP_SIGNING (there is no answer to it; signed traffic follows)."""
    from agridrone.vehicle.link import Link
    from agridrone.vehicle.signing import read_key_file, signing_timestamp_now

    key = read_key_file(key_path)
    link = Link.open(url, timeout_s=timeout_s, reconnect=False)
    try:
        sysid, compid = link.wait_autopilot(timeout_s)
        msg = link.mav.setup_signing_encode(sysid, compid, list(key), signing_timestamp_now(time.time()))
        for _ in range(3):  # no ACK exists: send it a few times
            link.send(msg)
            time.sleep(0.1)
    finally:
        link.close()


def launch_sitl(binary: str | os.PathLike, *, workdir: str | os.PathLike, home: Sequence[float],
                speedup: float = 5.0, defaults: Iterable[str | os.PathLike] = (), instance: int | None = None,
                signing_key_path: str | os.PathLike | None = None, **extra) -> SitlHandle:
    """Start ``arducopter`` and wait until its MAVLink TCP port accepts connections.

    ``home``: (lat, lon, alt_m AMSL[, heading_deg]). ``defaults``: parameter files applied on top of
    copter.parm. Extra options: ``wind`` (north, east m/s), ``startup_timeout_s`` (default 30),
    ``model`` (default "+"), ``base_defaults`` (copter.parm path, default: found in the binary's
    tree), ``heading_deg``; ``boot_s`` is accepted and ignored (SITL's EKF takes ~42 s, longer than
    any boot the built-in simulator is asked for).
    """
    unknown = set(extra) - _KNOWN_EXTRA
    if unknown:
        raise ConfigError(f"launch_sitl: expected options among {sorted(_KNOWN_EXTRA | {'signing_key_path'})}, "
                          f"got {sorted(unknown)}")
    exe = Path(binary)
    if not exe.is_file() or not os.access(exe, os.X_OK):
        raise ConfigError(f"SITL: expected an executable arducopter binary at {exe}, got "
                          f"{'a file that is not executable' if exe.is_file() else 'nothing there'}")
    if not speedup > 0:
        raise ConfigError(f"SITL speedup: expected > 0, got {speedup}")
    if len(home) not in (3, 4):
        raise ConfigError(f"SITL home: expected (lat, lon, alt_m[, heading_deg]), got {home!r}")
    heading = float(home[3]) if len(home) == 4 else float(extra.get("heading_deg", 0.0))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    base = extra.get("base_defaults", "auto")
    files: list[Path] = []
    if base == "auto":
        found = copter_defaults_for(exe)
        if found is None:
            raise ConfigError(f"SITL: expected Tools/autotest/default_params/copter.parm in the ArduPilot tree of "
                              f"{exe}, got none (pass base_defaults=PATH, or use the binary from build/sitl/bin)")
        files.append(found)
    elif base is not None:
        files.append(Path(base))
    files += [Path(p) for p in defaults]
    if extra.get("wind") is not None:
        files.append(_wind_parm(workdir, extra["wind"]))
    for f in files:
        if not f.is_file():
            raise ConfigError(f"SITL defaults: expected a parameter file at {f}, got nothing there")

    n = free_instance() if instance is None else int(instance)
    port = BASE_PORT + 10 * n
    cmd = [str(exe.resolve()), "--model", str(extra.get("model", "+")), "--speedup", f"{float(speedup):g}",
           "--home", f"{home[0]!r},{home[1]!r},{float(home[2])!r},{heading:g}", "-I", str(n),
           "--defaults", ",".join(str(f.resolve()) for f in files), "-w", "--serial0", "tcp:0"]
    if signing_key_path is not None:
        cmd += ["--serial1", "tcp:2"]
    log_path = workdir / "arducopter.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    handle = SitlHandle(proc, f"tcp:127.0.0.1:{port}", n, workdir, log_path)
    timeout_s = float(extra.get("startup_timeout_s", 30.0))
    handle.wait_listening(port, timeout_s, "SITL", poll_s=0.1)
    if signing_key_path is not None:
        try:
            _setup_signing(handle.url, signing_key_path, timeout_s)
            handle.url = f"tcp:127.0.0.1:{port + 2}"
            handle.wait_listening(port + 2, timeout_s, "SITL", poll_s=0.1)
        except BaseException:
            handle.stop()
            raise
    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agridrone.sim.sitl",
                                     description="start ArduCopter SITL with agridrone's parameters and wait")
    parser.add_argument("binary", help="path to the arducopter SITL binary (ardupilot/build/sitl/bin/arducopter)")
    parser.add_argument("--workdir", default="sitl-run", help="its working directory (eeprom.bin, logs)")
    parser.add_argument("--home", default="-35.363261,149.165230,584,353", help="LAT,LON,ALT_M[,HEADING]")
    parser.add_argument("--speedup", type=float, default=1.0)
    parser.add_argument("--instance", type=int, default=None)
    parser.add_argument("--defaults", action="append", default=None,
                        help="parameter file on top of copter.parm (default sitl/agridrone.parm)")
    args = parser.parse_args(argv)
    try:
        home = tuple(float(v) for v in args.home.split(","))
    except ValueError:
        print(f"run-sitl: error: --home: expected LAT,LON,ALT_M[,HEADING], got {args.home!r}", file=sys.stderr)
        return 2
    defaults = args.defaults or [Path(__file__).resolve().parents[2] / "sitl" / "agridrone.parm"]
    try:
        handle = launch_sitl(args.binary, workdir=args.workdir, home=home, speedup=args.speedup,
                             defaults=defaults, instance=args.instance)
    except (ConfigError, LinkError) as err:
        print(f"run-sitl: error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"ArduCopter SITL instance {handle.instance} on {handle.url} (log {handle.log_path}); Ctrl-C stops it")
    try:
        while handle.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
