"""Geofence geometry in local metres: inclusion/exclusion polygons and circles, the default circle
around home and the maximum altitude, as ArduCopter's AC_Fence checks them.

Also holds ``FlatFrame``, the fast local tangent-plane conversion the simulator uses every physics
step (exact enough for a field: the error grows as distance^2 / earth radius, a millimetre at 3 km).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from agridrone.geo import WGS84_A, WGS84_E2

CMD_RETURN_POINT = 5000
CMD_POLY_INCLUSION = 5001
CMD_POLY_EXCLUSION = 5002
CMD_CIRCLE_INCLUSION = 5003
CMD_CIRCLE_EXCLUSION = 5004
FENCE_COMMANDS = frozenset({CMD_RETURN_POINT, CMD_POLY_INCLUSION, CMD_POLY_EXCLUSION, CMD_CIRCLE_INCLUSION,
                            CMD_CIRCLE_EXCLUSION})

TYPE_ALT_MAX, TYPE_CIRCLE, TYPE_POLYGON = 1, 2, 4


class FlatFrame:
    """North/east metres around an origin on the WGS-84 ellipsoid's local radii of curvature."""

    def __init__(self, lat_deg: float, lon_deg: float) -> None:
        self.lat0_deg = lat_deg
        self.lon0_deg = lon_deg
        s = math.sin(math.radians(lat_deg))
        w = 1.0 - WGS84_E2 * s * s
        self._m_per_rad_lat = WGS84_A * (1.0 - WGS84_E2) / w**1.5
        self._m_per_rad_lon = WGS84_A / math.sqrt(w) * math.cos(math.radians(lat_deg))

    def to_en(self, lat_deg: float, lon_deg: float) -> tuple[float, float]:
        north = math.radians(lat_deg - self.lat0_deg) * self._m_per_rad_lat
        east = math.radians(lon_deg - self.lon0_deg) * self._m_per_rad_lon
        return east, north

    def to_latlon(self, east_m: float, north_m: float) -> tuple[float, float]:
        return (self.lat0_deg + math.degrees(north_m / self._m_per_rad_lat),
                self.lon0_deg + math.degrees(east_m / self._m_per_rad_lon))


class FenceInvalid(ValueError):
    """The uploaded fence items do not describe valid shapes; ``str`` is ArduPilot's text."""


def point_in_polygon(x: float, y: float, poly: list[tuple[float, float]]) -> bool:
    inside = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < xc:
                inside = not inside
    return inside


def _ray_segment(px, py, dx, dy, x1, y1, x2, y2) -> float | None:
    ex, ey = x2 - x1, y2 - y1
    den = dx * ey - dy * ex
    if abs(den) < 1e-12:
        return None
    t = ((x1 - px) * ey - (y1 - py) * ex) / den
    u = ((x1 - px) * dy - (y1 - py) * dx) / den
    if t >= 0 and 0 <= u <= 1:
        return t
    return None


def _ray_circle(px, py, dx, dy, cx, cy, r) -> list[float]:
    fx, fy = px - cx, py - cy
    b = fx * dx + fy * dy
    c = fx * fx + fy * fy - r * r
    disc = b * b - c
    if disc < 0:
        return []
    s = math.sqrt(disc)
    return [t for t in (-b - s, -b + s) if t >= 0]


@dataclass
class Fence:
    """Shapes in local east/north metres; ``home_en`` is where the default circle is centred."""

    inclusion_polygons: list[list[tuple[float, float]]] = field(default_factory=list)
    exclusion_polygons: list[list[tuple[float, float]]] = field(default_factory=list)
    inclusion_circles: list[tuple[float, float, float]] = field(default_factory=list)
    exclusion_circles: list[tuple[float, float, float]] = field(default_factory=list)

    @classmethod
    def from_items(cls, items, frame: FlatFrame) -> "Fence":
        """Build from mission items (objects with command, param1, x, y); raise FenceInvalid."""
        fence = cls()
        i = 0
        while i < len(items):
            it = items[i]
            cmd = it.command
            if cmd in (CMD_POLY_INCLUSION, CMD_POLY_EXCLUSION):
                count = int(it.param1)
                if count < 3:
                    raise FenceInvalid(f"Invalid vertex count ({count})")
                group = items[i:i + count]
                if len(group) < count or any(g.command != cmd or int(g.param1) != count for g in group):
                    raise FenceInvalid(f"Invalid vertex count ({count})")
                poly = [frame.to_en(g.x / 1e7, g.y / 1e7) for g in group]
                (fence.inclusion_polygons if cmd == CMD_POLY_INCLUSION else fence.exclusion_polygons).append(poly)
                i += count
                continue
            if cmd in (CMD_CIRCLE_INCLUSION, CMD_CIRCLE_EXCLUSION):
                if not it.param1 > 0:
                    raise FenceInvalid(f"Invalid radius ({it.param1:g})")
                e, n = frame.to_en(it.x / 1e7, it.y / 1e7)
                (fence.inclusion_circles if cmd == CMD_CIRCLE_INCLUSION else fence.exclusion_circles).append(
                    (e, n, float(it.param1)))
            elif cmd != CMD_RETURN_POINT:
                raise FenceInvalid(f"Unknown fence item ({cmd})")
            i += 1
        return fence

    @property
    def has_polygon_shapes(self) -> bool:
        return bool(self.inclusion_polygons or self.exclusion_polygons or self.inclusion_circles
                    or self.exclusion_circles)

    def breaches(self, e: float, n: float, up_m: float, home_en: tuple[float, float], fence_type: int,
                 radius_m: float, alt_max_m: float) -> list[str]:
        """The kinds of fence the point is outside: "Max Alt", "Circle", "Polygon"."""
        out = []
        if fence_type & TYPE_ALT_MAX and up_m > alt_max_m:
            out.append("Max Alt")
        if fence_type & TYPE_CIRCLE and math.hypot(e - home_en[0], n - home_en[1]) > radius_m:
            out.append("Circle")
        if fence_type & TYPE_POLYGON and not self._inside_shapes(e, n):
            out.append("Polygon")
        return out

    def _inside_shapes(self, e: float, n: float) -> bool:
        if any(not point_in_polygon(e, n, p) for p in self.inclusion_polygons):
            return False
        if any(math.hypot(e - cx, n - cy) > r for cx, cy, r in self.inclusion_circles):
            return False
        if any(point_in_polygon(e, n, p) for p in self.exclusion_polygons):
            return False
        return not any(math.hypot(e - cx, n - cy) < r for cx, cy, r in self.exclusion_circles)

    def distance_to_boundary(self, e: float, n: float, dir_e: float, dir_n: float, home_en: tuple[float, float],
                             fence_type: int, radius_m: float) -> float:
        """Metres along the unit direction to the first fence boundary (inf when none is ahead)."""
        best = math.inf
        if fence_type & TYPE_POLYGON:
            for poly in self.inclusion_polygons + self.exclusion_polygons:
                for i in range(len(poly)):
                    (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % len(poly)]
                    t = _ray_segment(e, n, dir_e, dir_n, x1, y1, x2, y2)
                    if t is not None:
                        best = min(best, t)
            for cx, cy, r in self.inclusion_circles + self.exclusion_circles:
                for t in _ray_circle(e, n, dir_e, dir_n, cx, cy, r):
                    best = min(best, t)
        if fence_type & TYPE_CIRCLE:
            for t in _ray_circle(e, n, dir_e, dir_n, home_en[0], home_en[1], radius_m):
                best = min(best, t)
        return best
