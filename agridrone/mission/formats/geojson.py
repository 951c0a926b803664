"""GeoJSON (RFC 7946): coordinates are [lon, lat(, alt)], exterior rings counter-clockwise and closed.

Export: a FeatureCollection with the field boundary, the exclusion zones (circles as a Point with
``radius_m``, the common convention), the flight path and home, each with a ``role`` property.
Import: every Polygon/MultiPolygon (exterior rings), Points with ``radius_m`` as circles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agridrone.mission.formats import Shape, ShapeFileError, open_ring


def _ring_ccw(points) -> list[list[float]]:
    pts = list(points)
    area2 = sum(pts[i][1] * pts[(i + 1) % len(pts)][0] - pts[(i + 1) % len(pts)][1] * pts[i][0]
                for i in range(len(pts)))  # x = lon, y = lat
    if area2 < 0:
        pts = pts[::-1]
    ring = [[p[1], p[0]] for p in pts]
    return ring + [ring[0]]


def to_feature_collection(compiled) -> dict[str, Any]:
    m = compiled.mission
    feats: list[dict[str, Any]] = [{
        "type": "Feature", "properties": {"role": "boundary", "name": m.name, "crop": m.crop},
        "geometry": {"type": "Polygon", "coordinates": [_ring_ccw(m.boundary)]}}]
    for z in m.zones:
        props = {"role": "exclusion", "name": z.name, "buffer_m": z.buffer_m}
        if z.kind == "circle":
            props["radius_m"] = z.radius_m
            geom = {"type": "Point", "coordinates": [z.center[1], z.center[0]]}
        else:
            geom = {"type": "Polygon", "coordinates": [_ring_ccw(z.points)]}
        feats.append({"type": "Feature", "properties": props, "geometry": geom})
    path = [[lon, lat, alt] for lat, lon, alt in compiled.path_geo()]
    feats.append({"type": "Feature", "properties": {"role": "path", "name": "survey path",
                                                    "altitude_frame": "rel_home"},
                  "geometry": {"type": "LineString", "coordinates": path}})
    feats.append({"type": "Feature", "properties": {"role": "home", "name": "home",
                                                    "ground_alt_amsl_m": m.home_ground_alt_amsl_m},
                  "geometry": {"type": "Point", "coordinates": [m.home_lon_deg, m.home_lat_deg]}})
    return {"type": "FeatureCollection", "name": m.name, "features": feats}


def write(compiled, path: Path) -> None:
    Path(path).write_text(json.dumps(to_feature_collection(compiled), indent=1) + "\n", encoding="utf-8")


def _coords(c, label: str) -> list[tuple[float, float]]:
    try:
        return [(float(p[1]), float(p[0])) for p in c]
    except (TypeError, ValueError, IndexError) as err:
        raise ShapeFileError(f"'{label}': expected [lon, lat] positions, got {str(c)[:60]}") from err


def read_shapes(path: Path) -> list[Shape]:
    label = Path(path).name
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ShapeFileError(f"'{label}' is not GeoJSON: line {err.lineno} column {err.colno}: {err.msg}") from err
    if not isinstance(doc, dict) or "type" not in doc:
        raise ShapeFileError(f"'{label}' is not GeoJSON: expected an object with a 'type', got {type(doc).__name__}")
    if doc["type"] == "FeatureCollection":
        feats = doc.get("features") or []
    elif doc["type"] == "Feature":
        feats = [doc]
    else:
        feats = [{"type": "Feature", "properties": {}, "geometry": doc}]
    shapes: list[Shape] = []
    for i, f in enumerate(feats):
        if not isinstance(f, dict):
            continue
        props = f.get("properties") or {}
        geom = f.get("geometry") or {}
        name = str(props.get("name", f"feature {i + 1}"))
        role = str(props.get("role", ""))
        buf = props.get("buffer_m")
        buf = float(buf) if isinstance(buf, (int, float)) else None
        gtype = geom.get("type")
        coords = geom.get("coordinates")
        if gtype == "Polygon" and coords:
            shapes.append(Shape(name, "polygon", open_ring(_coords(coords[0], label)), role=role, buffer_m=buf))
        elif gtype == "MultiPolygon" and coords:
            for j, poly in enumerate(coords):
                shapes.append(Shape(name if len(coords) == 1 else f"{name} #{j + 1}", "polygon",
                                    open_ring(_coords(poly[0], label)), role=role, buffer_m=buf))
        elif gtype == "Point" and coords:
            pt = _coords([coords], label)[0]
            radius = props.get("radius_m", props.get("radius"))
            if isinstance(radius, (int, float)) and radius > 0:
                shapes.append(Shape(name, "circle", (pt,), radius_m=float(radius), role=role, buffer_m=buf))
            else:
                shapes.append(Shape(name, "point", (pt,), role=role))
        elif gtype == "LineString" and coords:
            shapes.append(Shape(name, "path", tuple(_coords(coords, label)), role=role))
    return shapes
