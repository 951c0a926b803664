"""agridrone: survey flights, onboard perception, avoidance and alerts for farm drones.

Each sub-command lives in ``agridrone/commands/<name>.py`` and exposes ``register(subparsers)``;
registration only declares arguments, so heavy imports (OpenCV, TensorFlow, a model runtime) happen
inside the command that needs them. This module maps errors to one line and an exit code: a user
never sees a traceback unless they ask for one with ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from agridrone import __version__
from agridrone.errors import AgriDroneError

EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agridrone", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"agridrone {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import agridrone.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"agridrone.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
        return int(rc or 0)
    except AgriDroneError as err:
        print(f"agridrone: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("agridrone: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as err:  # noqa: BLE001 - the last line of defence for the user
        if args.debug:
            raise
        print(f"agridrone: internal error: {type(err).__name__}: {err} (run with --debug for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
