"""``agridrone bench mission``: plan a generated 200 ha concave field with 20 exclusion zones, print the timing.

Top-level imports stay light (the bench dispatcher imports this module to build its parser).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=int, default=5, help="plans to time (default 5); the median is printed")
    parser.add_argument("--zones", type=int, default=20, help="exclusion zones (default 20)")
    parser.add_argument("--area-ha", type=float, default=200.0, help="field area (default 200 ha)")
    parser.add_argument("--seed", type=int, default=7)


def generated_mission(area_ha: float = 200.0, n_zones: int = 20, seed: int = 7):
    """A concave (U-shaped) field of ``area_ha`` near Magdeburg with ``n_zones`` zones, half circles, half polygons."""
    import math

    import numpy as np
    from shapely.geometry import Point, Polygon

    from agridrone.geo import LocalFrame
    from agridrone.mission.model import Camera, Mission, Zone
    from agridrone.mission.yamlnodes import Loc

    rng = np.random.default_rng(seed)
    frame = LocalFrame(52.05, 11.40, 100.0)
    # U shape: a W x H rectangle minus a notch from the north, scaled to the area asked for
    base = [(0, 0), (1.6, 0), (1.6, 1.0), (1.05, 1.0), (1.05, 0.45), (0.55, 0.45), (0.55, 1.0), (0, 1.0)]
    k = math.sqrt(area_ha * 1e4 / Polygon(base).area)
    ring = [(5 + x * k, 5 + y * k) for x, y in base]
    field = Polygon(ring)
    zones, shapes = [], []
    while len(zones) < n_zones:
        x, y = rng.uniform(0, 1.6 * k), rng.uniform(0, k)
        r = rng.uniform(8, 30)
        c = Point(x, y)
        if not field.buffer(-60).contains(c) or any(s.distance(c) < r + 80 for s in shapes):
            continue
        lat, lon, _ = frame.to_geo(x, y, 0.0)
        if len(zones) % 2:
            zones.append(Zone(f"tree {len(zones)}", "circle", center=(lat, lon), radius_m=r, buffer_m=8.0,
                              loc=Loc("generated")))
        else:
            angles = np.sort(rng.uniform(0, 2 * math.pi, 7))
            pts = [(x + r * 1.3 * math.cos(a), y + r * math.sin(a)) for a in angles]
            la, lo, _ = frame.to_geo(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]), np.zeros(7))
            zones.append(Zone(f"pond {len(zones)}", "polygon", points=tuple(zip(la.tolist(), lo.tolist())),
                              buffer_m=10.0, loc=Loc("generated")))
        shapes.append(c.buffer(r * 1.3))
    la, lo, _ = frame.to_geo(np.array([p[0] for p in ring]), np.array([p[1] for p in ring]), np.zeros(len(ring)))
    cam = Camera(13.2, 8.8, 8.8, 5472, 3648)
    return Mission(source="generated", name=f"bench {area_ha:g} ha", crop="wheat",
                   boundary=tuple(zip(la.tolist(), lo.tolist())), home_lat_deg=52.05, home_lon_deg=11.40,
                   home_ground_alt_amsl_m=100.0, altitude_agl_m=60.0, camera=cam, zones=tuple(zones), speed_m_s=10.0)


def run(args: argparse.Namespace) -> int:
    import statistics
    import time

    from agridrone.mission.compile import compile_mission
    from agridrone.mission.survey import plan_survey

    mission = generated_mission(args.area_ha, args.zones, args.seed)
    times = []
    plan = None
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter_ns()
        plan = plan_survey(mission)
        times.append((time.perf_counter_ns() - t0) / 1e9)
    t0 = time.perf_counter_ns()
    compiled = compile_mission(mission, plan)
    compile_s = (time.perf_counter_ns() - t0) / 1e9
    s = plan.summary()
    print(f"field {s['field_area_ha']:.1f} ha (concave), {len(mission.zones)} exclusion zones, "
          f"{s['lines']} lines at {s['line_angle_deg']:g} deg, path {s['path_length_m'] / 1000:.1f} km, "
          f"{len(compiled.items)} mission items, {len(compiled.fence)} fence items")
    print(f"plan: median {statistics.median(times):.3f} s, min {min(times):.3f} s, max {max(times):.3f} s "
          f"over {len(times)} runs (target < 1 s); compile {compile_s:.3f} s")
    return 0
