"""``python -m agridrone.sim --listen tcp:127.0.0.1:5760 [--home LAT,LON,ALT_M] [--speedup N]``."""

from __future__ import annotations

import argparse
import sys

from agridrone.errors import AgriDroneError
from agridrone.sim.app import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agridrone.sim",
                                     description="ArduCopter-like simulated copter speaking MAVLink 2")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AgriDroneError as err:
        print(f"agridrone sim: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
