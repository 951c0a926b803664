"""``agridrone bench NAME``: benchmarks that print figures (no pass/fail timing in tests).

Each benchmark is a module with ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import importlib

BENCHMARKS = {
    "mission": ("agridrone.mission.bench", "survey planning on a large concave field with many exclusion zones"),
    "perception": ("agridrone.perception.bench", "per-stage latency of detector + health classifier"),
    "loop": ("agridrone.pipeline_bench", "the real-time flight loop from a recorded video"),
    "sim": ("agridrone.sim.bench", "simulated seconds per wall second of the built-in simulator with clients"),
}


def register(sub) -> None:
    p = sub.add_parser("bench", help="run a benchmark and print its figures")
    bsub = p.add_subparsers(dest="bench", metavar="NAME", required=True)
    for name, (module_name, help_text) in BENCHMARKS.items():
        bp = bsub.add_parser(name, help=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if not err.name or not module_name.startswith(err.name):
                raise
            bp.set_defaults(func=_missing(name))
            continue
        module.add_arguments(bp)
        bp.set_defaults(func=module.run)


def _missing(name: str):
    def run(args) -> int:
        from agridrone.errors import AgriDroneError

        raise AgriDroneError(f"benchmark '{name}' is not part of this build yet")

    return run
