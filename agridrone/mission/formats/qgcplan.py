"""QGroundControl .plan files (JSON), as QGC documents them.

Top level: ``fileType: "Plan"``, ``version: 1``, ``groundStation``, ``mission`` (version 2: items as
SimpleItems, ``plannedHomePosition`` [lat, lon, alt AMSL]), ``geoFence`` (version 2: polygons and
circles with ``inclusion``) and ``rallyPoints`` (version 2: [lat, lon, alt]). QGC ignores keys it does
not know; the extra ``agridrone`` object keeps the field boundary and zones so a .plan re-imports
into the same mission. The home item (item 0 on the vehicle) is not in ``items``: QGC keeps it in
``plannedHomePosition``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agridrone.mission import mav
from agridrone.mission.formats import Shape, ShapeFileError, open_ring
from agridrone.types import MissionItem, MissionType

QGC_VEHICLE_MULTIROTOR = 2
QGC_FIRMWARE_ARDUPILOT = 3


@dataclass(frozen=True)
class PlanFile:
    """What a .plan holds, as MissionItems (mission item 0 = home from plannedHomePosition)."""

    items: tuple[MissionItem, ...]
    fence: tuple[MissionItem, ...]
    rally: tuple[MissionItem, ...]
    shapes: tuple[Shape, ...]
    cruise_speed_m_s: float | None = None


def _num(v: float) -> float | None:
    return None if isinstance(v, float) and math.isnan(v) else v


def _simple_item(item: MissionItem, jump_id: int) -> dict[str, Any]:
    return {"autoContinue": bool(item.autocontinue), "command": item.command, "doJumpId": jump_id,
            "frame": item.frame,
            "params": [_num(item.param1), _num(item.param2), _num(item.param3), _num(item.param4),
                       item.x / 1e7, item.y / 1e7, item.z],
            "type": "SimpleItem"}


def _fence_json(fence: tuple[MissionItem, ...]) -> dict[str, Any]:
    polygons, circles = [], []
    i = 0
    while i < len(fence):
        it = fence[i]
        if it.command in (mav.FENCE_POLYGON_VERTEX_INCLUSION, mav.FENCE_POLYGON_VERTEX_EXCLUSION):
            n = int(it.param1)
            verts = fence[i:i + n]
            polygons.append({"inclusion": it.command == mav.FENCE_POLYGON_VERTEX_INCLUSION,
                             "polygon": [[v.x / 1e7, v.y / 1e7] for v in verts], "version": 1})
            i += max(n, 1)
        elif it.command in (mav.FENCE_CIRCLE_INCLUSION, mav.FENCE_CIRCLE_EXCLUSION):
            circles.append({"circle": {"center": [it.x / 1e7, it.y / 1e7], "radius": it.param1},
                            "inclusion": it.command == mav.FENCE_CIRCLE_INCLUSION, "version": 1})
            i += 1
        else:
            i += 1
    return {"circles": circles, "polygons": polygons, "version": 2}


def to_plan(compiled) -> dict[str, Any]:
    m = compiled.mission
    home = compiled.items[0]
    zones = []
    for z in m.zones:
        zone: dict[str, Any] = {"name": z.name, "buffer_m": z.buffer_m}
        if z.kind == "circle":
            zone["circle"] = {"center": list(z.center), "radius_m": z.radius_m}
        else:
            zone["polygon"] = [list(p) for p in z.points]
        zones.append(zone)
    return {
        "fileType": "Plan",
        "geoFence": _fence_json(compiled.fence),
        "groundStation": "QGroundControl",
        "mission": {
            "cruiseSpeed": m.speed_m_s,
            "firmwareType": QGC_FIRMWARE_ARDUPILOT,
            "globalPlanAltitudeMode": 1,
            "hoverSpeed": m.speed_m_s,
            "items": [_simple_item(it, i + 1) for i, it in enumerate(compiled.items[1:])],
            "plannedHomePosition": [home.x / 1e7, home.y / 1e7, home.z],
            "vehicleType": QGC_VEHICLE_MULTIROTOR,
            "version": 2,
        },
        "rallyPoints": {"points": [[r.x / 1e7, r.y / 1e7, r.z] for r in compiled.rally], "version": 2},
        "version": 1,
        "agridrone": {"field": m.name, "crop": m.crop, "boundary": [list(p) for p in m.boundary],
                      "exclusion_zones": zones, "fence_alt_max_m": compiled.params.get("FENCE_ALT_MAX")},
    }


def write(compiled, path: Path) -> None:
    Path(path).write_text(json.dumps(to_plan(compiled), indent=4) + "\n", encoding="utf-8")


def _deg_e7(v: Any) -> int:
    return int(round(float(v) * 1e7))


def _f(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _load(path: Path) -> dict[str, Any]:
    label = Path(path).name
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ShapeFileError(f"'{label}' is not a QGC plan: line {err.lineno} column {err.colno}: {err.msg}") from err
    if not isinstance(doc, dict) or doc.get("fileType") != "Plan":
        got = doc.get("fileType") if isinstance(doc, dict) else type(doc).__name__
        raise ShapeFileError(f"'{label}' is not a QGC plan: expected fileType 'Plan', got {got!r}")
    return doc


def read_plan(path: Path) -> PlanFile:
    doc = _load(path)
    label = Path(path).name
    mission = doc.get("mission") or {}
    try:
        hlat, hlon, halt = (mission.get("plannedHomePosition") or [0, 0, 0])[:3]
        items = [MissionItem(command=mav.NAV_WAYPOINT, frame=mav.FRAME_GLOBAL, x=_deg_e7(hlat), y=_deg_e7(hlon),
                             z=float(halt))]
        for raw in mission.get("items") or []:
            if raw.get("type") != "SimpleItem":
                continue  # complex items (survey, corridor scan) are QGC's own; their polygon is read as a shape
            p = raw["params"]
            items.append(MissionItem(command=int(raw["command"]), frame=int(raw["frame"]), param1=_f(p[0]),
                                     param2=_f(p[1]), param3=_f(p[2]), param4=_f(p[3]), x=_deg_e7(p[4] or 0),
                                     y=_deg_e7(p[5] or 0), z=float(p[6] or 0),
                                     autocontinue=int(bool(raw.get("autoContinue", True)))))
        fence: list[MissionItem] = []
        for poly in (doc.get("geoFence") or {}).get("polygons") or []:
            cmd = mav.FENCE_POLYGON_VERTEX_INCLUSION if poly.get("inclusion", True) else mav.FENCE_POLYGON_VERTEX_EXCLUSION
            verts = poly["polygon"]
            fence += [MissionItem(command=cmd, frame=mav.FRAME_GLOBAL, param1=float(len(verts)), x=_deg_e7(v[0]),
                                  y=_deg_e7(v[1]), mission_type=MissionType.FENCE) for v in verts]
        for circ in (doc.get("geoFence") or {}).get("circles") or []:
            cmd = mav.FENCE_CIRCLE_INCLUSION if circ.get("inclusion", True) else mav.FENCE_CIRCLE_EXCLUSION
            c = circ["circle"]
            fence.append(MissionItem(command=cmd, frame=mav.FRAME_GLOBAL, param1=float(c["radius"]),
                                     x=_deg_e7(c["center"][0]), y=_deg_e7(c["center"][1]),
                                     mission_type=MissionType.FENCE))
        rally = [MissionItem(command=mav.NAV_RALLY_POINT, frame=mav.FRAME_GLOBAL_RELATIVE_ALT, x=_deg_e7(p[0]),
                             y=_deg_e7(p[1]), z=float(p[2]), mission_type=MissionType.RALLY)
                 for p in (doc.get("rallyPoints") or {}).get("points") or []]
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise ShapeFileError(f"'{label}': malformed QGC plan ({type(err).__name__}: {err})") from err
    speed = mission.get("cruiseSpeed")
    return PlanFile(tuple(items), tuple(fence), tuple(rally), tuple(_shapes(doc, label)),
                    float(speed) if isinstance(speed, (int, float)) else None)


def _shapes(doc: dict[str, Any], label: str) -> list[Shape]:
    shapes: list[Shape] = []
    ext = doc.get("agridrone")
    if isinstance(ext, dict) and ext.get("boundary"):
        shapes.append(Shape(str(ext.get("field", "field")), "polygon", open_ring(ext["boundary"]), role="boundary"))
        for z in ext.get("exclusion_zones") or []:
            if "circle" in z:
                shapes.append(Shape(z["name"], "circle", (tuple(z["circle"]["center"]),),
                                    radius_m=float(z["circle"]["radius_m"]), role="exclusion",
                                    buffer_m=z.get("buffer_m")))
            else:
                shapes.append(Shape(z["name"], "polygon", open_ring(z["polygon"]), role="exclusion",
                                    buffer_m=z.get("buffer_m")))
    for i, raw in enumerate((doc.get("mission") or {}).get("items") or []):
        if raw.get("type") == "ComplexItem" and raw.get("polygon"):
            shapes.append(Shape(f"{raw.get('complexItemType', 'survey')} {i + 1}", "polygon",
                                open_ring(raw["polygon"]), role="boundary" if not shapes else ""))
    fence = doc.get("geoFence") or {}
    for i, poly in enumerate(fence.get("polygons") or []):
        role = "inclusion" if poly.get("inclusion", True) else "exclusion"
        shapes.append(Shape(f"fence polygon {i + 1}", "polygon", open_ring(poly.get("polygon") or []), role=role))
    for i, circ in enumerate(fence.get("circles") or []):
        c = circ.get("circle") or {}
        role = "inclusion" if circ.get("inclusion", True) else "exclusion"
        shapes.append(Shape(f"fence circle {i + 1}", "circle", (tuple(c.get("center", (0, 0))),),
                            radius_m=float(c.get("radius", 0)), role=role))
    # with no explicit boundary, the fence inclusion polygon is the best guess at the field
    if not any(s.role == "boundary" for s in shapes):
        shapes = [Shape(s.name, s.kind, s.points, s.radius_m, "boundary" if s.role == "inclusion" else s.role,
                        s.buffer_m) for s in shapes]
    return shapes


def read_shapes(path: Path) -> list[Shape]:
    return list(read_plan(path).shapes)
