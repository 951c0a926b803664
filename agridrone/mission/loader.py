"""Mission file -> :class:`Mission`, every problem located at file:line:col.

``load_mission(path)`` raises :class:`MissionFileError` (its ``problems`` lists all of them);
``read_mission(path)`` returns (mission or None, errors, warnings) for ``mission check``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from agridrone.mission import schema
from agridrone.mission.model import Alerts, Camera, Mission, Zone
from agridrone.mission.yamlnodes import (Loc, MissionFileError, MissionWarning, Reader, describe,
                                         read_located_text)


def load_mission(path: str | Path) -> Mission:
    mission, errors, _ = read_mission(path)
    if errors:
        raise MissionFileError(errors[0].loc, errors[0].key, errors[0].detail, tuple(errors))
    assert mission is not None
    return mission


def read_mission(path: str | Path) -> tuple[Mission | None, list[MissionFileError], list[MissionWarning]]:
    path = Path(path)
    text, errors = read_located_text(path)
    if text is None:
        return None, errors, []
    return parse_mission(text, str(path), path.parent)


def parse_mission(text: str, label: str, base_dir: Path | None = None):
    r = Reader(label, base_dir)
    root = r.compose(text)
    mission = None
    if root is not None:
        mission = _read(r, root)
        if mission is not None and not r.errors:
            from agridrone.mission.validate import check_mission  # shapely: only once the file parsed
            check_mission(r, mission)
            mission = _with_warnings(mission, r.warnings)
    if r.errors:
        mission = None
    return mission, r.errors, r.warnings


def _with_warnings(m: Mission, warnings) -> Mission:
    from dataclasses import replace
    return replace(m, warnings=tuple(warnings))


def _opt(r: Reader, fields, key, path, fn, default=None, **kw):
    if key not in fields:
        return default
    v = fn(fields[key][1], f"{path}.{key}" if path else key, **kw)
    return default if v is None else v


def _read(r: Reader, root: yaml.Node) -> Mission | None:
    known, required = schema.keys()
    top = r.mapping(root, "", known, required)
    if top is None:
        return None
    if "version" in top:
        v = r.number(top["version"][1], "version", integer=True)
        if v is not None and v != 1:
            r.error(top["version"][1], "version", f"expected format version 1, got {v}")
    # field
    name = crop = None
    boundary: tuple = ()
    label = r.label
    boundary_loc = Loc(label)
    if "field" in top:
        known, required = schema.keys("field")
        f = r.mapping(top["field"][1], "field", known, required)
        if f is not None:
            name = _opt(r, f, "name", "field", r.text)
            crop = _opt(r, f, "crop", "field", r.text)
            if "boundary" in f:
                boundary_loc = r.loc(f["boundary"][1])
                boundary = _ring_or_file(r, f["boundary"][1], "field.boundary", role="boundary") or ()
    # home
    home = None
    home_loc = Loc(label)
    if "home" in top:
        known, required = schema.keys("home")
        h = r.mapping(top["home"][1], "home", known, required)
        home_loc = r.loc(top["home"][1])
        if h is not None:
            lat = _opt(r, h, "lat", "home", r.number, lo=-90, hi=90, unit="degrees")
            lon = _opt(r, h, "lon", "home", r.number, lo=-180, hi=180, unit="degrees")
            alt = _opt(r, h, "ground_alt_amsl_m", "home", r.number, 0.0, lo=-500, hi=9000, unit="m")
            if lat is not None and lon is not None:
                home = (lat, lon, alt)
    # survey
    sv: dict = {}
    spacing_loc = Loc(label)
    if "survey" in top:
        known, required = schema.keys("survey")
        s = r.mapping(top["survey"][1], "survey", known, required)
        spacing_loc = r.loc(top["survey"][1])
        if s is not None:
            sv["altitude_agl_m"] = _opt(r, s, "altitude_agl_m", "survey", r.number, lo=0, lo_open=True,
                                        hi=schema.ALTITUDE_CEILING_M, unit="m",
                                        hi_message="{v:g} exceeds the ceiling of {hi:g} m")
            sv["speed_m_s"] = _opt(r, s, "speed_m_s", "survey", r.number, 8.0, lo=0, lo_open=True, hi=20, unit="m/s")
            sv["front_overlap_pct"] = _opt(r, s, "front_overlap_pct", "survey", r.number, 75.0, lo=0, hi=95, unit="%")
            sv["side_overlap_pct"] = _opt(r, s, "side_overlap_pct", "survey", r.number, 70.0, lo=0, hi=95, unit="%")
            sv["line_spacing_m"] = _opt(r, s, "line_spacing_m", "survey", r.number, lo=0.5, unit="m")
            sv["headland_m"] = _opt(r, s, "headland_m", "survey", r.number, 5.0, lo=0, hi=200, unit="m")
            if "line_spacing_m" in s:
                spacing_loc = r.loc(s["line_spacing_m"][1])
            if "line_angle_deg" in s:
                node = s["line_angle_deg"][1]
                if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str") and node.value == "auto":
                    sv["line_angle_deg"] = None
                elif isinstance(node, yaml.ScalarNode) and node.tag.endswith(("int", "float")):
                    sv["line_angle_deg"] = r.number(node, "survey.line_angle_deg", lo=-360, hi=360, unit="degrees")
                else:
                    r.error(node, "survey.line_angle_deg", f"expected 'auto' or degrees clockwise from north, "
                                                          f"got {describe(node)}")
    # camera
    camera = None
    if "camera" in top:
        known, required = schema.keys("camera")
        c = r.mapping(top["camera"][1], "camera", known, required)
        if c is not None:
            vals = {k: _opt(r, c, k, "camera", r.number, lo=0, lo_open=True, unit="mm")
                    for k in ("sensor_width_mm", "sensor_height_mm", "focal_length_mm")}
            for k in ("image_width_px", "image_height_px"):
                vals[k] = _opt(r, c, k, "camera", r.number, lo=1, integer=True, unit="px")
            pitch = _opt(r, c, "pitch_deg", "camera", r.number, -90.0, lo=-90, hi=-45, unit="degrees")
            model = _opt(r, c, "model", "camera", r.text, "")
            if all(v is not None for v in vals.values()):
                camera = Camera(**vals, pitch_deg=pitch, model=model)
                if pitch != -90.0:
                    r.warn(c["pitch_deg"][1], "camera.pitch_deg", f"{pitch:g}: the footprint is computed for a "
                                                                  "nadir camera (-90); an oblique one sees more")
    zones = _zones(r, top["exclusion_zones"][1]) if "exclusion_zones" in top else ()
    sf: dict = {}
    if "safety" in top:
        known, required = schema.keys("safety")
        s = r.mapping(top["safety"][1], "safety", known, required)
        if s is not None:
            sf["end_action"] = _opt(r, s, "end_action", "safety", r.text, "rtl", choices=schema.END_ACTIONS)
            sf["fence_margin_m"] = _opt(r, s, "fence_margin_m", "safety", r.number, 20.0, lo=5, hi=500, unit="m")
            sf["fence_alt_max_m"] = _opt(r, s, "fence_alt_max_m", "safety", r.number, lo=0, lo_open=True,
                                         hi=schema.ALTITUDE_CEILING_M + 30, unit="m")
            if sf["fence_alt_max_m"] is not None and sv.get("altitude_agl_m") is not None \
                    and sf["fence_alt_max_m"] < sv["altitude_agl_m"] + 5:
                r.error(s["fence_alt_max_m"][1], "safety.fence_alt_max_m",
                        f"expected at least altitude_agl_m + 5 = {sv['altitude_agl_m'] + 5:g} m, "
                        f"got {sf['fence_alt_max_m']:g}")
    rally: list = []
    rally_locs: list = []
    if "rally_points" in top:
        nodes = r.sequence(top["rally_points"][1], "rally_points", what="[lat, lon] points") or []
        for i, n in enumerate(nodes):
            p = r.latlon(n, f"rally_points[{i}]")
            if p is not None:
                rally.append(p)
                rally_locs.append((f"rally_points[{i}]", r.loc(n)))
    alerts = _alerts(r, top["alerts"][1]) if "alerts" in top else Alerts()
    notes = _opt(r, top, "notes", "", r.text, "", allow_empty=True)
    key_locs = tuple((f"{sec}.{k}", r.loc(vn)) for sec in ("survey", "camera", "safety") if sec in top
                     and isinstance(top[sec][1], yaml.MappingNode)
                     for kn, vn in top[sec][1].value if isinstance(kn, yaml.ScalarNode) for k in [kn.value])
    key_locs += tuple(rally_locs)
    if r.errors or home is None or camera is None or not boundary or sv.get("altitude_agl_m") is None:
        return None
    return Mission(source=r.label, name=name or "", crop=crop or "", boundary=tuple(boundary),
                   home_lat_deg=home[0], home_lon_deg=home[1], home_ground_alt_amsl_m=home[2],
                   camera=camera, zones=tuple(zones), rally_points=tuple(rally), alerts=alerts, notes=notes,
                   boundary_loc=boundary_loc, home_loc=home_loc, spacing_loc=spacing_loc, key_locs=key_locs,
                   **sv, **sf)


def _ring_or_file(r: Reader, node: yaml.Node, path: str, *, role: str, file_name: str | None = None):
    """An inline closed ring, or a ``{file, name}`` reference; returns an open ring of (lat, lon) or None."""
    if isinstance(node, yaml.MappingNode):
        known, required = list(schema.SCHEMA["$defs"]["file_ref"]["properties"]), ["file"]
        ref = r.mapping(node, path, known, required)
        if ref is None or "file" not in ref:
            return None
        fname = r.text(ref["file"][1], f"{path}.file")
        name = _opt(r, ref, "name", path, r.text)
        return _from_file(r, ref["file"][1], path, fname, name, role) if fname else None
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str"):
        return _from_file(r, node, path, node.value, file_name, role)  # a bare path is accepted too
    return ring(r, node, path)


def _from_file(r: Reader, node, path, fname, name, role):
    from agridrone.mission.formats import ShapeFileError, pick_polygon, read_shapes

    target = (r.base_dir / fname)
    if not target.exists():
        r.error(node, path, f"file '{fname}' not found (looked for {target.resolve()})")
        return None
    try:
        shape = pick_polygon(read_shapes(target), name, fname, role=role)
    except ShapeFileError as err:
        r.error(node, path, str(err))
        return None
    if shape.kind == "circle":
        return shape  # zones only
    pts = list(shape.points)
    if len(set(pts)) < 3:
        r.error(node, path, f"polygon {shape.name!r} in '{fname}' has {len(set(pts))} distinct points; "
                            "expected at least 3")
        return None
    return tuple(pts)


def ring(r: Reader, node: yaml.Node, path: str):
    """A closed ring of [lat, lon] points written inline; returns it open (without the closing point)."""
    items = r.sequence(node, path, what="[lat, lon] points")
    if items is None:
        return None
    pts = []
    for i, n in enumerate(items):
        p = r.latlon(n, f"{path}[{i}]")
        if p is None:
            return None
        pts.append(p)
    distinct = {p for p in pts}
    if len(distinct) < 3:
        r.error(node, path, f"a polygon needs at least 3 distinct points, got {len(distinct)}")
        return None
    if pts[0] != pts[-1]:
        r.error(items[-1], path, f"polygon is open: the last point [{pts[-1][0]}, {pts[-1][1]}] is not the first "
                                 f"[{pts[0][0]}, {pts[0][1]}]; repeat the first point at the end to close it")
        return None
    out = tuple(pts[:-1])
    r.ring_nodes[path] = items[:-1]
    return out


def _zones(r: Reader, node: yaml.Node) -> list[Zone]:
    items = r.sequence(node, "exclusion_zones", what="zones") or []
    zones = []
    known, required = schema.keys("exclusion_zones", "items")
    for i, zn in enumerate(items):
        path = f"exclusion_zones[{i}]"
        z = r.mapping(zn, path, known, required)
        if z is None:
            continue
        name = _opt(r, z, "name", path, r.text, f"zone {i + 1}")
        buffer_m = _opt(r, z, "buffer_m", path, r.number, 5.0, lo=0, hi=500, unit="m")
        shapes = [k for k in ("polygon", "circle", "file") if k in z]
        if len(shapes) != 1:
            r.error(zn, path, f"expected exactly one of polygon, circle or file, got "
                              f"{', '.join(shapes) if shapes else 'none'}")
            continue
        loc = r.loc(zn)
        kind = shapes[0]
        if kind == "polygon":
            pts = ring(r, z["polygon"][1], f"{path}.polygon")
            if pts:
                zones.append(Zone(name, "polygon", points=pts, buffer_m=buffer_m, loc=loc))
        elif kind == "circle":
            c = r.mapping(z["circle"][1], f"{path}.circle", ["center", "radius_m"], ["center", "radius_m"])
            if c and "center" in c and "radius_m" in c:
                center = r.latlon(c["center"][1], f"{path}.circle.center")
                radius = r.number(c["radius_m"][1], f"{path}.circle.radius_m", lo=0, lo_open=True, hi=5000, unit="m")
                if center and radius:
                    zones.append(Zone(name, "circle", center=center, radius_m=radius, buffer_m=buffer_m, loc=loc))
        else:
            fname = r.text(z["file"][1], f"{path}.file")
            wanted = _opt(r, z, "file_name", path, r.text)
            got = _from_file(r, z["file"][1], f"{path}.file", fname, wanted, "exclusion") if fname else None
            if got is not None and hasattr(got, "kind"):
                zones.append(Zone(name, "circle", center=got.points[0], radius_m=got.radius_m, buffer_m=buffer_m,
                                  loc=loc))
            elif got:
                zones.append(Zone(name, "polygon", points=got, buffer_m=buffer_m, loc=loc))
    return zones


def _alerts(r: Reader, node: yaml.Node) -> Alerts:
    known, required = schema.keys("alerts")
    a = r.mapping(node, "alerts", known, required)
    if a is None:
        return Alerts()
    area = _opt(r, a, "min_stressed_area_m2", "alerts", r.number, 50.0, lo=0, unit="m²")
    classes = Alerts().classes
    if "classes" in a:
        nodes = r.sequence(a["classes"][1], "alerts.classes", what="object classes") or []
        got = [r.text(n, f"alerts.classes[{i}]", choices=schema.OBJECT_CLASSES) for i, n in enumerate(nodes)]
        classes = tuple(c for c in got if c)
    margins = []
    if "safety_margin_m" in a:
        m = r.mapping(a["safety_margin_m"][1], "alerts.safety_margin_m", schema.OBJECT_CLASSES) or {}
        for cls, (_, vn) in m.items():
            v = r.number(vn, f"alerts.safety_margin_m.{cls}", lo=0, hi=500, unit="m")
            if v is not None:
                margins.append((cls, v))
    return Alerts(area, classes, tuple(margins))
