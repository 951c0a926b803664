"""``agridrone sim``: run the built-in ArduCopter-like simulator."""

from __future__ import annotations


def register(sub) -> None:
    from agridrone.sim.app import add_arguments

    p = sub.add_parser("sim", help="run the built-in ArduCopter-like simulator (MAVLink 2 over TCP)")
    add_arguments(p)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from agridrone.sim.app import run

    return run(args)
