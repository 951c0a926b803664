"""Mission shapes in the local ENU frame around home (metres), as shapely geometries.

Circles become circumscribed polygons and keep-out buffers use mitred joins, so an approximated
keep-out region always contains the exact one: a path outside it is outside the true buffered zone.
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from shapely.geometry import Point, Polygon
from shapely.geometry.polygon import orient

from agridrone.geo import LocalFrame
from agridrone.mission.model import Mission, Zone

CIRCLE_SIDES = 16


def frame_of(m: Mission) -> LocalFrame:
    return LocalFrame(m.home_lat_deg, m.home_lon_deg, m.home_ground_alt_amsl_m)


def to_enu(frame: LocalFrame, points) -> np.ndarray:
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    e, n, _ = frame.to_enu(pts[:, 0], pts[:, 1], np.full(len(pts), frame.origin_alt_m))
    return np.column_stack([e, n])


def to_latlon(frame: LocalFrame, xy) -> np.ndarray:
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    lat, lon, _ = frame.to_geo(xy[:, 0], xy[:, 1], np.zeros(len(xy)))
    return np.column_stack([lat, lon])


def circle(center_xy, radius_m: float, sides: int = CIRCLE_SIDES) -> Polygon:
    """A regular polygon that contains the circle (circumscribed)."""
    r = radius_m / math.cos(math.pi / sides)
    a = np.arange(sides) * 2 * math.pi / sides + math.pi / sides
    return Polygon(np.column_stack([center_xy[0] + r * np.cos(a), center_xy[1] + r * np.sin(a)]))


def grow(geom, distance_m: float):
    """Grow by ``distance_m`` with mitred corners: every new edge is at least ``distance_m`` away."""
    if distance_m <= 0:
        return geom
    return geom.buffer(distance_m, join_style="mitre", mitre_limit=3.0)


def field_polygon(m: Mission, frame: LocalFrame) -> Polygon:
    return orient(Polygon(to_enu(frame, m.boundary)), 1.0)


def zone_shape(z: Zone, frame: LocalFrame) -> Polygon:
    if z.kind == "circle":
        c = to_enu(frame, [z.center])[0]
        return circle(c, z.radius_m)
    return orient(Polygon(to_enu(frame, z.points)), 1.0)


def zone_circle_exact(z: Zone, frame: LocalFrame):
    """(centre xy, radius) of a circle zone."""
    return to_enu(frame, [z.center])[0], z.radius_m


def keepout(z: Zone, frame: LocalFrame, fraction: float = 1.0) -> Polygon:
    """The zone grown by ``fraction`` of its buffer (the planner keeps out of fraction 1, the fence sits at 0.5)."""
    if z.kind == "circle":
        c = to_enu(frame, [z.center])[0]
        return circle(c, z.radius_m + fraction * z.buffer_m)
    return grow(zone_shape(z, frame), fraction * z.buffer_m)


def keepout_union(m: Mission, frame: LocalFrame, fraction: float = 1.0):
    if not m.zones:
        return Polygon()
    return shapely.union_all([keepout(z, frame, fraction) for z in m.zones])


def point(xy) -> Point:
    return Point(float(xy[0]), float(xy[1]))
