"""Simulated worlds (sitl/worlds/*.yaml): the ground truth under a mission, for the simulated camera and scoring.

A world names its mission file, the ground altitude, the obstacles that stand up (trees, poles,
people, animals, vehicles, buildings) and the crop-health patches (stressed, weeds, bare soil).
``load_world(path)`` returns a frozen :class:`World` or raises MissionFileError with file:line:col,
in the same style as mission files (it reuses the mission reader). See sitl/worlds/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agridrone.mission.yamlnodes import Loc, MissionFileError, MissionWarning, Reader, read_located_text

OBSTACLE_CLASSES = ("tree", "person", "animal", "vehicle", "pole", "building")
PATCH_KINDS = ("stressed", "weeds", "bare_soil")
WORLD_KEYS = ("name", "mission", "ground_alt_amsl_m", "obstacles", "patches")
OBSTACLE_KEYS = ("class", "lat", "lon", "radius_m", "height_m")
PATCH_KEYS = ("kind", "polygon")
MAX_FROM_HOME_M = 3000.0


@dataclass(frozen=True)
class WorldObstacle:
    cls: str
    lat_deg: float
    lon_deg: float
    radius_m: float
    height_m: float
    loc: Loc


@dataclass(frozen=True)
class Patch:
    kind: str
    polygon: tuple[tuple[float, float], ...]  # open ring of (lat, lon)
    area_m2: float
    loc: Loc


@dataclass(frozen=True)
class World:
    name: str
    source: str
    mission_path: Path
    ground_alt_amsl_m: float
    obstacles: tuple[WorldObstacle, ...]
    patches: tuple[Patch, ...]
    warnings: tuple[MissionWarning, ...] = ()


def load_world(path: str | Path) -> World:
    world, errors, _ = read_world(path)
    if errors:
        raise MissionFileError(errors[0].loc, errors[0].key, errors[0].detail, tuple(errors))
    assert world is not None
    return world


def read_world(path: str | Path):
    path = Path(path)
    text, errors = read_located_text(path)
    if text is None:
        return None, errors, []
    r = Reader(str(path), path.parent)
    root = r.compose(text)
    world = _read(r, root, path) if root is not None else None
    if r.errors:
        world = None
    return world, r.errors, r.warnings


def _read(r: Reader, root, path: Path) -> World | None:
    from agridrone.mission.loader import ring

    top = r.mapping(root, "", WORLD_KEYS, ("name", "mission", "ground_alt_amsl_m", "obstacles", "patches"))
    if top is None:
        return None
    name = r.text(top["name"][1], "name") if "name" in top else None
    mission_path = None
    home = None
    if "mission" in top:
        rel = r.text(top["mission"][1], "mission")
        if rel:
            mission_path = (path.parent / rel).resolve()
            if not mission_path.is_file():
                r.error(top["mission"][1], "mission", f"mission file '{rel}' not found (looked for {mission_path})")
            else:
                home = _mission_home(r, top["mission"][1], mission_path)
    ground = r.number(top["ground_alt_amsl_m"][1], "ground_alt_amsl_m", lo=-500, hi=9000, unit="m") \
        if "ground_alt_amsl_m" in top else None
    obstacles = []
    for i, node in enumerate(r.sequence(top["obstacles"][1], "obstacles", what="obstacles") or []
                             if "obstacles" in top else []):
        p = f"obstacles[{i}]"
        o = r.mapping(node, p, OBSTACLE_KEYS, OBSTACLE_KEYS)
        if o is None or len(o) < len(OBSTACLE_KEYS):
            continue
        cls = r.text(o["class"][1], f"{p}.class", choices=OBSTACLE_CLASSES)
        lat = r.number(o["lat"][1], f"{p}.lat", lo=-90, hi=90, unit="degrees")
        lon = r.number(o["lon"][1], f"{p}.lon", lo=-180, hi=180, unit="degrees")
        radius = r.number(o["radius_m"][1], f"{p}.radius_m", lo=0, lo_open=True, hi=100, unit="m")
        height = r.number(o["height_m"][1], f"{p}.height_m", lo=0, lo_open=True, hi=200, unit="m")
        if None in (cls, lat, lon, radius, height):
            continue
        if home is not None and _dist(home, (lat, lon)) > MAX_FROM_HOME_M:
            r.error(node, p, f"obstacle is {_dist(home, (lat, lon)) / 1000:.1f} km from the mission's home; "
                             f"expected it within {MAX_FROM_HOME_M / 1000:g} km")
            continue
        obstacles.append(WorldObstacle(cls, lat, lon, radius, height, r.loc(node)))
    patches = []
    for i, node in enumerate(r.sequence(top["patches"][1], "patches", what="patches") or []
                             if "patches" in top else []):
        p = f"patches[{i}]"
        pm = r.mapping(node, p, PATCH_KEYS, PATCH_KEYS)
        if pm is None or len(pm) < 2:
            continue
        kind = r.text(pm["kind"][1], f"{p}.kind", choices=PATCH_KINDS)
        pts = ring(r, pm["polygon"][1], f"{p}.polygon")
        if kind is None or not pts:
            continue
        area = _area_m2(r, node, p, pts)
        if area is None:
            continue
        if home is not None and _dist(home, pts[0]) > MAX_FROM_HOME_M:
            r.error(node, p, f"patch is {_dist(home, pts[0]) / 1000:.1f} km from the mission's home; expected it "
                             f"within {MAX_FROM_HOME_M / 1000:g} km")
            continue
        patches.append(Patch(kind, pts, area, r.loc(node)))
    if r.errors or name is None or mission_path is None or ground is None:
        return None
    return World(name, r.label, mission_path, ground, tuple(obstacles), tuple(patches), tuple(r.warnings))


def _dist(a, b) -> float:
    from agridrone.geo import distance_m
    return distance_m(a[0], a[1], b[0], b[1])


def _mission_home(r: Reader, node, mission_path: Path):
    from agridrone.mission.loader import read_mission

    mission, errors, _ = read_mission(mission_path)
    if errors:
        r.error(node, "mission", f"the mission file is invalid: {errors[0]}")
        return None
    return mission.home_lat_deg, mission.home_lon_deg


def _area_m2(r: Reader, node, path: str, pts) -> float | None:
    import shapely
    from shapely.geometry import Polygon

    from agridrone.geo import LocalFrame
    from agridrone.mission.geometry import to_enu

    poly = Polygon(to_enu(LocalFrame(pts[0][0], pts[0][1]), pts))
    if not poly.is_valid:
        r.error(node, path, f"patch polygon is not valid: {shapely.is_valid_reason(poly)}")
        return None
    return float(poly.area)
