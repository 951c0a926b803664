"""The lawnmower survey planner (shapely + numpy, in the ENU frame around home).

1. Allowed region = field shrunk by the headland, minus every zone grown by its keep-out buffer.
2. Spacing = swath * (1 - side overlap), swath = H * sensor_width / focal_length (or the explicit
   spacing); camera trigger distance = along-track footprint * (1 - front overlap).
3. Line angle: given, or the one (the field's long edges first, then every 5 degrees) with the fewest
   turns (line segments, short ones counted twice); ties go to the earlier candidate.
4. Sweep lines cut the allowed region into segments (an even-odd scan of its edges, exact for
   concave fields and holes); consecutive lines whose segments overlap one-to-one form a *block* that
   is flown as a snake; blocks are chained greedily from home.
5. Every connection (turns, moves between blocks, home legs) is the shortest path inside the field
   minus the buffered zones (:class:`Router`): lines split around a zone are rejoined around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon

from agridrone.geo import LocalFrame
from agridrone.mission import geometry as g
from agridrone.mission.model import Mission
from agridrone.mission.routing import Router
from agridrone.mission.yamlnodes import MissionFileError

TURN_TIME_S = 6.0          # cost of a turn, for choosing the line angle
ACCEL_M_S2 = 2.5           # WPNAV_ACCEL-like: every corner costs a stop and a start
CLIMB_M_S = 2.5
DESCENT_M_S = 1.5
MIN_SEGMENT_M = 2.0
TRANSIT_INSET_M = 1.0      # transits keep this far inside the field edge


@dataclass(frozen=True)
class SurveyPlan:
    """A planned survey. Coordinates are ENU metres in ``frame`` (origin = home)."""

    frame: LocalFrame
    field: Polygon
    allowed: object            # Polygon or MultiPolygon: where survey lines may run
    transit: object            # where connections may run (field minus buffered zones)
    keepout: object            # union of zones grown by their buffers
    angle_deg: float           # line direction, degrees clockwise from north
    spacing_m: float
    swath_m: float
    footprint_along_m: float
    trigger_distance_m: float
    gsd_cm_px: float
    altitude_agl_m: float
    speed_m_s: float
    lines: tuple               # ((x0, y0), (x1, y1)) survey segments in flight order
    waypoints: tuple           # (x, y, kind): kind "line_start", "line_end" or "transit"; home excluded
    path_length_m: float
    flight_time_s: float
    area_covered_m2: float

    @property
    def path_xy(self) -> list[tuple[float, float]]:
        """The full horizontal path, from home back to home."""
        return [(0.0, 0.0), *[(x, y) for x, y, _ in self.waypoints], (0.0, 0.0)]

    @property
    def field_area_m2(self) -> float:
        return float(self.field.area)

    def summary(self) -> dict[str, float]:
        return {"lines": len(self.lines), "line_angle_deg": round(self.angle_deg, 1),
                "line_spacing_m": round(self.spacing_m, 2), "trigger_distance_m": round(self.trigger_distance_m, 2),
                "path_length_m": round(self.path_length_m, 1), "flight_time_s": round(self.flight_time_s, 1),
                "field_area_ha": round(self.field_area_m2 / 1e4, 3),
                "area_covered_ha": round(self.area_covered_m2 / 1e4, 3), "gsd_cm_px": round(self.gsd_cm_px, 2)}


# ---- geometry helpers --------------------------------------------------------------------------

def _edges(region) -> np.ndarray:
    """All ring edges of a (multi)polygon, shape (E, 2, 2)."""
    out = []
    for poly in (region.geoms if hasattr(region, "geoms") else [region]):
        if poly.is_empty or poly.geom_type != "Polygon":
            continue
        for ring in [poly.exterior, *poly.interiors]:
            c = np.asarray(ring.coords)
            out.append(np.stack([c[:-1], c[1:]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2, 2))


def _rotate(xy: np.ndarray, angle_deg: float) -> np.ndarray:
    """ENU -> (along, across) for lines with bearing ``angle_deg``."""
    t = math.radians(angle_deg)
    s, c = math.sin(t), math.cos(t)
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([x * s + y * c, -x * c + y * s], axis=-1)


def _unrotate(uv: np.ndarray, angle_deg: float) -> np.ndarray:
    t = math.radians(angle_deg)
    s, c = math.sin(t), math.cos(t)
    u, v = uv[..., 0], uv[..., 1]
    return np.stack([u * s - v * c, u * c + v * s], axis=-1)


def _line_offsets(vmin: float, vmax: float, spacing: float) -> np.ndarray:
    span = vmax - vmin
    n = max(1, math.ceil(span / spacing - 1e-3))
    first = vmin + (span - (n - 1) * spacing) / 2
    return first + spacing * np.arange(n)


def sweep(edges_uv: np.ndarray, offsets: np.ndarray, min_len: float = MIN_SEGMENT_M) -> list[list[tuple[float, float]]]:
    """For each line v = offset, the (u0, u1) intervals inside the region (even-odd rule, half-open at vertices)."""
    if len(edges_uv) == 0:
        return [[] for _ in offsets]
    u1, v1 = edges_uv[:, 0, 0], edges_uv[:, 0, 1]
    u2, v2 = edges_uv[:, 1, 0], edges_uv[:, 1, 1]
    vv = offsets[:, None]
    crosses = (v1[None, :] <= vv) != (v2[None, :] <= vv)
    dv = np.where(v2 - v1 == 0, 1.0, v2 - v1)
    u = u1[None, :] + (vv - v1[None, :]) * ((u2 - u1) / dv)[None, :]
    out = []
    for k in range(len(offsets)):
        xs = np.sort(u[k, crosses[k]])
        segs = [(float(xs[i]), float(xs[i + 1])) for i in range(0, len(xs) - 1, 2) if xs[i + 1] - xs[i] >= min_len]
        out.append(segs)
    return out


def _score(edges: np.ndarray, angle: float, spacing: float, turn_m: float) -> float:
    uv = _rotate(edges, angle)
    offsets = _line_offsets(uv[..., 1].min(), uv[..., 1].max(), spacing)
    segs = sweep(uv, offsets)
    n = sum(len(s) for s in segs)
    # the flown length is about area / spacing whatever the angle; what changes is turns (and cut corners,
    # which a length term would wrongly reward), so count segment ends, plus the lines that are short
    short = sum(1 for s in segs for a, b in s if b - a < 2 * spacing)
    return (n + short) * turn_m if n else math.inf


def choose_angle(region, field: Polygon, spacing: float, turn_m: float) -> float:
    edges = _edges(region)
    ring = np.asarray(field.exterior.coords)
    d = np.diff(ring, axis=0)
    lengths = np.hypot(d[:, 0], d[:, 1])
    edge_angles = [math.degrees(math.atan2(d[i, 0], d[i, 1])) % 180.0 for i in np.argsort(-lengths)[:6]]
    candidates = [round(a, 3) for a in edge_angles] + [float(a) for a in range(0, 180, 5)]
    best, best_cost = candidates[0], math.inf
    for a in candidates:
        cost = _score(edges, a, spacing, turn_m)
        if cost < best_cost * 0.999:
            best, best_cost = a, cost
    return best


def _blocks(segs_per_line: list[list[tuple[float, float]]]) -> list[list[tuple[int, float, float]]]:
    """Group segments of consecutive lines that overlap one-to-one into snake-able blocks."""
    blocks: list[list[tuple[int, float, float]]] = []
    prev: list[tuple[tuple[float, float], int]] = []  # (segment, block index) on the previous line
    for k, segs in enumerate(segs_per_line):
        cur = []
        for s in segs:
            over = [i for i, (p, _) in enumerate(prev) if min(p[1], s[1]) - max(p[0], s[0]) > 0]
            bi = None
            if len(over) == 1:
                p, pb = prev[over[0]]
                back = [t for t in segs if min(p[1], t[1]) - max(p[0], t[0]) > 0]
                if len(back) == 1:
                    bi = pb
            if bi is None:
                blocks.append([])
                bi = len(blocks) - 1
            blocks[bi].append((k, s[0], s[1]))
            cur.append((s, bi))
        prev = cur
    return blocks


def _snake(block, forward_lines: bool, start_left: bool):
    rows = block if forward_lines else block[::-1]
    out, left = [], start_left
    for k, u0, u1 in rows:
        out.append((k, u0, u1) if left else (k, u1, u0))
        left = not left
    return out


# ---- the planner ---------------------------------------------------------------------------------

def plan_survey(m: Mission) -> SurveyPlan:
    frame = g.frame_of(m)
    field = g.field_polygon(m, frame)
    keep = g.keepout_union(m, frame)
    H = m.altitude_agl_m
    cam = m.camera
    swath = H * cam.sensor_width_mm / cam.focal_length_mm
    along = H * cam.sensor_height_mm / cam.focal_length_mm
    spacing = m.line_spacing_m if m.line_spacing_m is not None else swath * (1 - m.side_overlap_pct / 100)
    trigger = along * (1 - m.front_overlap_pct / 100)
    gsd = 100.0 * H * cam.sensor_width_mm / (cam.focal_length_mm * cam.image_width_px)

    inset = field.buffer(-m.headland_m, join_style="mitre") if m.headland_m > 0 else field
    allowed = inset.difference(keep) if not keep.is_empty else inset
    dims = _dims(field)
    if allowed.is_empty or allowed.area < 1.0:
        raise MissionFileError(m.boundary_loc, "field.boundary",
                               f"the field is too small for one survey line: after the {m.headland_m:g} m headland "
                               f"and the exclusion zones nothing is left (field {dims})")
    turn_m = TURN_TIME_S * m.speed_m_s
    angle = (m.line_angle_deg % 180.0) if m.line_angle_deg is not None else choose_angle(allowed, field, spacing,
                                                                                         turn_m)
    edges_uv = _rotate(_edges(allowed), angle)
    offsets = _line_offsets(edges_uv[..., 1].min(), edges_uv[..., 1].max(), spacing)
    segs = sweep(edges_uv, offsets)
    if not any(segs):
        raise MissionFileError(m.boundary_loc, "field.boundary",
                               f"the field is too small for one survey line: no line of at least {MIN_SEGMENT_M:g} m "
                               f"fits inside the {m.headland_m:g} m headland (field {dims})")
    transit_region = field.buffer(-min(TRANSIT_INSET_M, m.headland_m), join_style="mitre")
    transit_region = transit_region.difference(keep) if not keep.is_empty else transit_region
    fence_inner = g.grow(field, m.fence_margin_m - 4.0)
    outer_region = fence_inner.difference(keep) if not keep.is_empty else fence_inner
    routers = _Routers(transit_region, outer_region)

    blocks = _blocks(segs)
    ends = []  # per block: ENU of (first line left, first line right, last line left, last line right)
    for b in blocks:
        (k0, a0, b0), (k1, a1, b1) = b[0], b[-1]
        ends.append(_unrotate(np.array([[a0, offsets[k0]], [b0, offsets[k0]], [a1, offsets[k1]], [b1, offsets[k1]]]),
                              angle))
    pos = (0.0, 0.0)
    lines, waypoints = [], []
    remaining = list(range(len(blocks)))
    while remaining:
        best = None
        for bi in remaining:
            d = np.hypot(ends[bi][:, 0] - pos[0], ends[bi][:, 1] - pos[1])
            j = int(np.argmin(d))
            if best is None or d[j] < best[0]:
                best = (float(d[j]), bi, j < 2, j % 2 == 0)
        _, bi, fwd, left = best
        remaining.remove(bi)
        for k, u0, u1 in _snake(blocks[bi], fwd, left):
            a = tuple(_unrotate(np.array([u0, offsets[k]]), angle))
            b = tuple(_unrotate(np.array([u1, offsets[k]]), angle))
            leg = routers.connect(pos, a, m, home_leg=not lines)
            waypoints += [(x, y, "transit") for x, y in leg[1:-1]]
            waypoints += [(a[0], a[1], "line_start"), (b[0], b[1], "line_end")]
            lines.append((a, b))
            pos = b
    leg = routers.connect(pos, (0.0, 0.0), m, home_leg=True)
    waypoints += [(x, y, "transit") for x, y in leg[1:-1]]

    pts = np.array([(0.0, 0.0), *[(x, y) for x, y, _ in waypoints], (0.0, 0.0)])
    length = float(np.hypot(*np.diff(pts, axis=0).T).sum())
    corners = len(waypoints)
    flight_time = length / m.speed_m_s + corners * m.speed_m_s / ACCEL_M_S2 + H / CLIMB_M_S + H / DESCENT_M_S
    covered = shapely.union_all(shapely.buffer(shapely.linestrings(np.array(lines)), swath / 2, cap_style="flat"))
    area = float(covered.intersection(field).area)
    return SurveyPlan(frame=frame, field=field, allowed=allowed, transit=transit_region, keepout=keep,
                      angle_deg=angle, spacing_m=spacing, swath_m=swath, footprint_along_m=along,
                      trigger_distance_m=trigger, gsd_cm_px=gsd, altitude_agl_m=H, speed_m_s=m.speed_m_s,
                      lines=tuple(lines), waypoints=tuple(waypoints), path_length_m=length,
                      flight_time_s=flight_time, area_covered_m2=area)


def _dims(field: Polygon) -> str:
    rect = field.minimum_rotated_rectangle
    c = np.asarray(rect.exterior.coords)
    a, b = math.dist(c[0], c[1]), math.dist(c[1], c[2])
    return f"about {min(a, b):.0f} x {max(a, b):.0f} m"


class _Routers:
    """Transits stay inside the field; only legs to and from home may use the fence margin."""

    def __init__(self, inner, outer) -> None:
        self._regions = (inner, outer)
        self._routers: list[Router | None] = [None, None]

    def _get(self, i: int) -> Router:
        if self._routers[i] is None:
            self._routers[i] = Router(self._regions[i])
        return self._routers[i]

    def connect(self, a, b, m: Mission, home_leg: bool = False) -> list[tuple[float, float]]:
        """Between lines: inside the field only. To and from home: inside the field if home is, else the fence."""
        a = (float(a[0]), float(a[1]))
        b = (float(b[0]), float(b[1]))
        for i in ((0, 1) if home_leg else (0,)):
            r = self._get(i)
            if r.contains(a) and r.contains(b):
                path = r.route(a, b)
                if path is not None:
                    return path
        frame = g.frame_of(m)
        la, lb = g.to_latlon(frame, [a, b])
        raise MissionFileError(m.zones[0].loc if m.zones else m.boundary_loc,
                               "exclusion_zones" if m.zones else "field.boundary",
                               f"the zones cut the field apart: there is no way from ({la[0]:.5f}, {la[1]:.5f}) "
                               f"to ({lb[0]:.5f}, {lb[1]:.5f}) inside the fence without crossing a buffered zone; "
                               "split the field into separate missions or shrink the zones")
