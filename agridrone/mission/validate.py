"""Checks that need geometry: polygons that cross themselves, swapped coordinates, zones outside the
field, home outside the fence; and the warnings (overlap, GSD, field size). Problems are recorded on
the :class:`Reader` with the location of the offending node.
"""

from __future__ import annotations

import math
import re

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon

from agridrone.geo import distance_m
from agridrone.mission import geometry as g
from agridrone.mission.model import Mission
from agridrone.mission.yamlnodes import Reader

FAR_M = 20_000.0
WARN_OVERLAP_PCT = 60.0
WARN_GSD_CM = 5.0
WARN_AREA_HA = 500.0


def gsd_cm_px(m: Mission) -> float:
    c = m.camera
    return 100.0 * m.altitude_agl_m * c.sensor_width_mm / (c.focal_length_mm * c.image_width_px)


def check_ring(r: Reader, pts, path: str, node_loc, frame) -> Polygon | None:
    """Swapped coordinates and self-intersection; returns the ENU polygon or None."""
    nodes = r.ring_nodes.get(path)
    lat = np.array([p[0] for p in pts])
    lon = np.array([p[1] for p in pts])
    far = distance_m(float(lat.mean()), float(lon.mean()), frame.origin_lat_deg, frame.origin_lon_deg)
    if far > FAR_M:
        swapped = distance_m(float(lon.mean()), float(lat.mean()), frame.origin_lat_deg, frame.origin_lon_deg) \
            if np.all(np.abs(lon) <= 90) else math.inf
        if swapped < FAR_M:
            _err(r, path, node_loc, "coordinates look swapped: the points read as [lon, lat]; write each point "
                                    "as [lat, lon]")
        else:
            _err(r, path, node_loc, f"the polygon is {far / 1000:.0f} km from home "
                                    f"({frame.origin_lat_deg:.5f}, {frame.origin_lon_deg:.5f}); expected it "
                                    f"within {FAR_M / 1000:.0f} km")
        return None
    xy = g.to_enu(frame, pts)
    poly = Polygon(xy)
    reason = shapely.is_valid_reason(poly)
    if reason == "Valid Geometry":
        if poly.area < 1.0:
            _err(r, path, node_loc, "the polygon has no area (its points lie on a line)")
            return None
        return poly
    m = re.search(r"\[([-\d.eE+]+) ([-\d.eE+]+)\]", reason)
    where_xy = (float(m.group(1)), float(m.group(2))) if m else tuple(xy[0])
    ll = g.to_latlon(frame, [where_xy])[0]
    # point at the first vertex of an edge that passes through the crossing
    vertex = 0
    for i in range(len(xy)):
        if LineString([xy[i], xy[(i + 1) % len(xy)]]).distance(Point(where_xy)) < 1e-3:
            vertex = i
            break
    node = nodes[vertex] if nodes and vertex < len(nodes) else None
    what = "crosses itself" if "Self-intersection" in reason else reason.split("[")[0].lower()
    msg = f"polygon {what} near ({ll[0]:.5f}, {ll[1]:.5f}) (edge from point {vertex + 1}); are two points out of order?"
    if node is not None:
        r.error(node, path, msg)
    else:
        _err(r, path, node_loc, msg)
    return None


def _err(r: Reader, path: str, loc, message: str) -> None:
    from agridrone.mission.yamlnodes import MissionFileError
    r.errors.append(MissionFileError(loc, path, message))


def _warn(r: Reader, path: str, loc, message: str) -> None:
    from agridrone.mission.yamlnodes import MissionWarning
    r.warnings.append(MissionWarning(loc, path, message))


def check_mission(r: Reader, m: Mission) -> None:
    frame = g.frame_of(m)
    field = check_ring(r, m.boundary, "field.boundary", m.boundary_loc, frame)
    if field is None:
        return
    field = g.field_polygon(m, frame)
    area_ha = field.area / 1e4
    if area_ha > WARN_AREA_HA:
        _warn(r, "field.boundary", m.boundary_loc, f"the field is {area_ha:.0f} ha, over {WARN_AREA_HA:.0f} ha: "
                                                   "one battery will not cover it; split it")
    for i, z in enumerate(m.zones):
        path = f"exclusion_zones[{i}]"
        if z.kind == "polygon":
            zp = check_ring(r, z.points, f"{path}.polygon", z.loc, frame)
            if zp is None:
                continue
        else:
            far = distance_m(z.center[0], z.center[1], m.home_lat_deg, m.home_lon_deg)
            if far > FAR_M:
                _err(r, path, z.loc, f"zone '{z.name}' is {far / 1000:.0f} km from home; expected it near the field")
                continue
        shape = g.zone_shape(z, frame)
        if not shape.intersects(field):
            _err(r, path, z.loc, f"zone '{z.name}' lies outside the field boundary "
                                 f"({shape.distance(field):.0f} m away); expected it to overlap the field")
    home = Point(0.0, 0.0)
    fence = g.grow(field, m.fence_margin_m)
    if not fence.buffer(-5.0).contains(home):
        _err(r, "home", m.home_loc, f"home is {field.exterior.distance(home):.0f} m from the field; the take-off "
                                    f"point must lie at least 5 m inside the fence (boundary + "
                                    f"{m.fence_margin_m:g} m)")
    for i, z in enumerate(m.zones):
        if g.keepout(z, frame).contains(home):
            _err(r, "home", m.home_loc, f"home lies inside exclusion zone '{z.name}' or its {z.buffer_m:g} m "
                                        "buffer; take off elsewhere")
    for i, (lat, lon) in enumerate(m.rally_points):
        if not fence.contains(Point(g.to_enu(frame, [(lat, lon)])[0])):
            _err(r, f"rally_points[{i}]", m.loc_of(f"rally_points[{i}]", m.home_loc),
                 f"rally point lies outside the fence (boundary + {m.fence_margin_m:g} m); expected it inside")
    # warnings
    for key, value in (("front_overlap_pct", m.front_overlap_pct), ("side_overlap_pct", m.side_overlap_pct)):
        if m.line_spacing_m is None or key == "front_overlap_pct":
            if value < WARN_OVERLAP_PCT:
                _warn(r, f"survey.{key}", m.loc_of(f"survey.{key}", m.spacing_loc), f"{value:g} % is below {WARN_OVERLAP_PCT:g} %: "
                                                         "photogrammetry needs more overlap to stitch")
    gsd = gsd_cm_px(m)
    if gsd > WARN_GSD_CM:
        _warn(r, "survey.altitude_agl_m", m.loc_of("survey.altitude_agl_m", m.spacing_loc), f"ground sampling distance {gsd:.1f} cm/px is coarser "
                                                         f"than {WARN_GSD_CM:g} cm/px: fly lower or use a "
                                                         "longer lens to see plants")
    along_m = m.altitude_agl_m * m.camera.sensor_height_mm / m.camera.focal_length_mm
    interval_s = along_m * (1 - m.front_overlap_pct / 100) / m.speed_m_s
    if interval_s < 1.0:
        _warn(r, "survey.speed_m_s", m.loc_of("survey.speed_m_s", m.spacing_loc), f"one photo every {interval_s:.2f} s at {m.speed_m_s:g} m/s; "
                                                    "most cameras need at least 1 s: fly slower")
