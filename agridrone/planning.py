"""The avoidance planner (issue 6, item 5): obstacles + route + allowed region + pose -> Correction.

``AvoidancePlanner.update(obstacles, vehicle, now_ns)`` is pure in the sense that matters on the
drone: no I/O, no clock reads (time comes in as ``now_ns``), no threads. Its only state is the
detour it is flying and the side it chose for each obstacle.

Rules, in the order they are applied each tick:

- **What is an obstacle.** Confirmed obstacles whose label has a safety margin in
  ``PlannerConfig.margins_m`` and whose ``height_m`` is above ``min_obstacle_height_m`` (0); also a
  tentative track of an ``early_classes`` label (people) once a sighting is ``early_min_confidence``
  sure: a needless detour round a person costs a few metres, waiting for the second sighting can
  cost the margin (from 30 m a nadir camera sees 15 m ahead, a person's margin is 15 m). A
  thing with height 0 lies on the ground (a weed patch, a shadow, a puddle) and the ground is never
  an obstacle; neither is a class the margin table does not name (crop, weeds, stressed).
  (``agridrone.tracking`` always reports a height > 0 for obstacle classes.)
  An obstacle the tracker saw under several labels (``Obstacle.labels``: a person the detector also
  called an animal) keeps the largest of their margins.
- **Keep-out discs**: radius + the class margin (people get the largest); a moving obstacle is
  moved to ``now_ns`` along its velocity and swept over ``moving_horizon_s`` ahead (a chain of
  discs), so that detours pass behind it. Each disc is drawn as a regular polygon that *contains*
  the disc.
- **Look-ahead** = v x latency + v^2 / (2 x decel) + lookahead_margin, v = max(configured speed,
  ground speed). When the route ahead within that distance enters a keep-out, a detour is planned.
- **Detour**: the shortest path inside the allowed region (shrunk by ``fence_margin_m``) minus the
  keep-outs, by Dijkstra over a visibility graph (keep-out polygon vertices, region vertices, start,
  goal; an edge exists when the free space ``covers`` it). Where there is room its legs keep
  ``path_clearance_m`` outside the keep-outs (the vehicle cuts corners and the estimates jitter), where
  there is not they may touch them (a narrow strip, a vehicle already close). It follows the line up to
  the *departure point* ``rejoin_offset_m`` before the keep-out, goes round, and ends at the *rejoin point*: the
  first point of the route past the keep-out (+ ``rejoin_offset_m``), on the same survey line, so
  that nothing of the line outside the keep-out is skipped; AUTO then resumes at the mission item
  that ends that line (``resume_seq``).
- **Side**: the left and right detours are computed separately (a barrier from each blocking
  obstacle to the other side forbids passing there); the shorter is chosen *once per obstacle and
  pass* (the route legs it blocks) and kept while the obstacle estimate jitters. Only when the kept
  side has become impossible does the planner switch, and it then keeps the new side. The same
  obstacle met again from another leg (the next survey line) is a new pass: its side is chosen afresh.
- **Hold**: if neither side has a way through, ``HOLD``; each tick the planner looks again and
  resumes (``RESUME`` at the current item) when the way ahead is clear or detours when it can.
- **Resume**: when the vehicle reaches the detour's last waypoint, ``RESUME`` once, then ``None``.
- Every waypoint lies inside the allowed region and every leg inside it minus the keep-outs; this
  is checked again before a detour is returned (a detour that fails the check becomes a HOLD).

Output while a detour is active: the same ``DETOUR`` correction each tick, holding the waypoints
still to fly (``waypoints[0]`` is the current target); a new object only when that list changes.
Altitudes: the detour keeps the altitude of the line it rejoins (relative to home).
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping, Sequence

import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.ops import nearest_points, unary_union

from agridrone.errors import ConfigError, MissionError
from agridrone.geo import LocalFrame
from agridrone.types import AltFrame, Correction, CorrectionKind, GeoPoint, MissionItem, Obstacle, Pose
from agridrone.visgraph import polygon_vertices, project_on_segment, segment_point_distance, shortest_path

DEFAULT_MARGINS_M: Mapping[str, float] = MappingProxyType({"person": 10.0, "animal": 6.0, "vehicle": 6.0, "tree": 4.0,
                                                           "pole": 4.0, "building": 5.0, "obstacle": 5.0})
_POSITION_NAV_COMMANDS = (16, 82)  # MAV_CMD_NAV_WAYPOINT, MAV_CMD_NAV_SPLINE_WAYPOINT
_SIDES = ("left", "right")


@dataclass(frozen=True, slots=True)
class RouteWaypoint:
    """One mission waypoint of the survey route, in the planner's local ENU frame."""

    seq: int
    east_m: float
    north_m: float
    alt_m: float  # relative to home, as in the mission

    def __post_init__(self) -> None:
        for name in ("east_m", "north_m", "alt_m"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")


@dataclass(frozen=True, slots=True)
class VehicleState:
    """Where the vehicle is (ENU metres), how fast it goes, and the mission item it flies to."""

    east_m: float
    north_m: float
    current_seq: int
    ve_m_s: float = 0.0
    vn_m_s: float = 0.0

    @classmethod
    def from_pose(cls, pose: Pose, frame: LocalFrame, current_seq: int) -> "VehicleState":
        e, n, _ = frame.to_enu(pose.lat_deg, pose.lon_deg)
        return cls(e, n, current_seq, pose.ve_m_s, pose.vn_m_s)

    @property
    def speed_m_s(self) -> float:
        return math.hypot(self.ve_m_s, self.vn_m_s)


@dataclass(frozen=True)
class PlannerConfig:
    """Avoidance settings (the mission supplies the margins; the rest are vehicle properties).

    - ``margins_m``: safety margin per class, metres beyond the obstacle's radius; the keys are
      also the list of classes treated as obstacles.
    - ``speed_m_s`` (5), ``latency_s`` (0.3: frame to command), ``decel_m_s2`` (2.5: braking) and
      ``lookahead_margin_m`` (5) give the look-ahead distance.
    - ``fence_margin_m`` (2): how far inside the allowed region detour waypoints stay.
    - ``reentry_m`` (3): a vehicle this close outside the allowed region (a turn flown wide across
      its edge) is led straight back in by the nearest way and the detour planned from there;
      further out there is no detour (hold).
    - ``rejoin_offset_m`` (2): how far past the keep-out the detour rejoins the line.
    - ``min_gap_m`` (5): keep-outs closer than this along the route are passed as one.
    - ``reached_m`` (1.5): a detour waypoint within this distance counts as reached (if the leg
      to the next one is clear from where the vehicle is, and from where it would stop braking at
      ``decel_m_s2`` along its velocity: a corner passed at speed is cut on the inside of the turn;
      within ``node_clearance_m``, always). The
      last one (the rejoin point) needs a quarter of it, or the vehicle stopped (below
      ``settled_speed_m_s``, 0.5) within it, so that AUTO resumes on the line.
    - ``hold_replan_s`` (0.5): while holding, the way ahead is checked every tick but a way round
      is searched for only this often (the search is the expensive part).
    - ``moving_horizon_s`` (4): a moving obstacle's keep-out covers where it will be this far ahead.
    - ``min_obstacle_height_m`` (0): obstacles this tall or less lie on the ground and are ignored.
    - ``early_classes`` (person) / ``early_min_confidence`` (0.6): tentative tracks of these classes are
      avoided from their first sighting this confident, without waiting for confirmation.
    - ``disc_quad_segs`` (4): polygon resolution of the keep-out discs (16 sides).
    - ``node_clearance_m`` (0.25): graph nodes sit this far outside keep-outs / inside the region.
    - ``replan_tolerance_m`` (0.5): a detour being flown is replanned only when the keep-outs, less
      this, reach its legs: estimate jitter does not reshuffle the waypoints every frame.
    - ``path_clearance_m`` (1): detour legs are planned round the keep-outs grown by this much where the
      allowed region leaves room, and round the keep-outs themselves where it does not. A copter flying a
      polyline of GUIDED targets at survey speed runs up to ~1 m inside a leg that skirts a disc (it
      starts turning for the next corner before it reaches this one) and the disc itself moves with each
      new sighting (up to ``replan_tolerance_m`` before a replan); legs planned tangent to the disc were
      flown up to 1.3 m inside it in closed-loop runs.
    """

    margins_m: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MARGINS_M))
    speed_m_s: float = 5.0
    latency_s: float = 0.3
    decel_m_s2: float = 2.5
    lookahead_margin_m: float = 5.0
    fence_margin_m: float = 2.0
    reentry_m: float = 3.0
    rejoin_offset_m: float = 2.0
    min_gap_m: float = 5.0
    reached_m: float = 1.5
    moving_horizon_s: float = 4.0
    min_obstacle_height_m: float = 0.0
    early_classes: tuple[str, ...] = ("person",)
    early_min_confidence: float = 0.6
    disc_quad_segs: int = 4
    node_clearance_m: float = 0.25
    replan_tolerance_m: float = 0.5
    settled_speed_m_s: float = 0.5
    hold_replan_s: float = 0.5
    path_clearance_m: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "margins_m", MappingProxyType(dict(self.margins_m)))  # frozen all the way down
        for name, v in self.margins_m.items():
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"margins_m[{name!r}]: expected a margin >= 0 m, got {v!r}")
        for name in ("speed_m_s", "decel_m_s2", "reached_m", "node_clearance_m"):
            v = getattr(self, name)
            if not v > 0:
                raise ConfigError(f"{name}: expected > 0, got {v}")
        for name in ("latency_s", "lookahead_margin_m", "fence_margin_m", "reentry_m", "rejoin_offset_m", "min_gap_m",
                     "moving_horizon_s", "min_obstacle_height_m", "replan_tolerance_m", "settled_speed_m_s",
                     "hold_replan_s", "path_clearance_m"):
            v = getattr(self, name)
            if not v >= 0:
                raise ConfigError(f"{name}: expected >= 0, got {v}")
        if not 0.0 < self.early_min_confidence <= 1.0:
            raise ConfigError(f"early_min_confidence: expected a confidence in (0, 1], got {self.early_min_confidence}")
        if isinstance(self.early_classes, str) or not all(isinstance(c, str) for c in self.early_classes):
            raise ConfigError(f"early_classes: expected a list of class names, got {self.early_classes!r}")
        object.__setattr__(self, "early_classes", tuple(self.early_classes))
        if not 2 <= self.disc_quad_segs <= 16:
            raise ConfigError(f"disc_quad_segs: expected 2..16, got {self.disc_quad_segs}")

    def lookahead_m(self, ground_speed_m_s: float = 0.0) -> float:
        v = max(self.speed_m_s, ground_speed_m_s)
        return v * self.latency_s + v * v / (2.0 * self.decel_m_s2) + self.lookahead_margin_m


def margin_of(ob: Obstacle, margins_m: Mapping[str, float]) -> float | None:
    """The safety margin of ``ob``: the largest of its labels' (the most cautious reading of what it is), or
    None when no label of it has one (not an obstacle class)."""
    found = [margins_m[lb] for lb in ob.all_labels if lb in margins_m]
    return max(found) if found else None


def route_from_mission_items(items: Sequence[MissionItem], frame: LocalFrame, *,
                             skip_home: bool = True) -> tuple[RouteWaypoint, ...]:
    """The survey route from a mission as uploaded (list index = seq; item 0 is home when ``skip_home``)."""
    route = []
    for seq, item in enumerate(items):
        if (skip_home and seq == 0) or item.command not in _POSITION_NAV_COMMANDS or (item.x == 0 and item.y == 0):
            continue
        e, n, _ = frame.to_enu(item.lat_deg, item.lon_deg)
        route.append(RouteWaypoint(seq, e, n, float(item.z)))
    return tuple(route)


def allowed_region(field_enu: Polygon, inclusions: Sequence[Polygon] = (),
                   exclusions: Sequence[Polygon] = ()) -> Polygon | MultiPolygon:
    """Field boundary, intersected with every geofence inclusion, minus every exclusion (ENU)."""
    region = field_enu
    for inc in inclusions:
        region = region.intersection(inc)
    if exclusions:
        region = region.difference(unary_union(list(exclusions)))
    return region


@dataclass(frozen=True)
class _KeepOut:
    track_id: int
    label: str
    east_m: float
    north_m: float
    radius_m: float        # the true disc: obstacle radius + margin (+ motion)
    poly_radius_m: float   # circumradius of the polygon that contains the disc
    quad_segs: int

    @functools.cached_property
    def poly(self) -> Polygon:
        return Point(self.east_m, self.north_m).buffer(self.poly_radius_m, quad_segs=self.quad_segs)


@dataclass(frozen=True)
class _Seg:
    ax: float
    ay: float
    bx: float
    by: float
    s0: float
    length: float
    end_seq: int
    alt_m: float


@dataclass
class _Detour:
    waypoints_xy: list[tuple[float, float]]
    idx: int
    resume_seq: int
    side: str
    ids: tuple[int, ...]
    anchor_xy: tuple[float, float]
    anchor_route_idx: int
    alt_m: float
    correction: Correction | None = None


class AvoidancePlanner:
    """Keeps the vehicle out of obstacle keep-outs and on its survey lines; see the module docstring."""

    def __init__(self, route: Sequence[RouteWaypoint], region: Polygon | MultiPolygon, frame: LocalFrame,
                 config: PlannerConfig | None = None) -> None:
        self.config = config or PlannerConfig()
        self.frame = frame
        route = tuple(route)
        if not route:
            raise MissionError("route: expected at least one survey waypoint, got none")
        for a, b in zip(route, route[1:]):
            if b.seq <= a.seq:
                raise MissionError(f"route: expected increasing mission seq numbers, got {a.seq} then {b.seq}")
        if not isinstance(region, (Polygon, MultiPolygon)) or region.is_empty or not region.is_valid:
            raise MissionError(f"allowed region: expected a valid non-empty polygon in local ENU, got "
                               f"{getattr(region, 'geom_type', type(region).__name__)}"
                               f"{' (empty)' if getattr(region, 'is_empty', False) else ''}")
        self.route = route
        self.region = region
        self._prepared_region = shapely.from_wkb(shapely.to_wkb(region))  # a copy: the caller's stays unprepared
        shapely.prepare(self._prepared_region)
        cfg = self.config
        self._inner = region.buffer(-cfg.fence_margin_m) if cfg.fence_margin_m > 0 else region
        node_region = region.buffer(-(cfg.fence_margin_m + cfg.node_clearance_m))
        self._region_nodes = polygon_vertices(node_region)
        minx, miny, maxx, maxy = region.bounds
        self._far_m = 2.0 * math.hypot(maxx - minx, maxy - miny) + 100.0
        self._circum = 1.0 / math.cos(math.pi / (4 * cfg.disc_quad_segs))
        self._mode = "follow"
        self._detour: _Detour | None = None
        self._hold: Correction | None = None
        self._hold_planned_ns = 0
        self._sides: OrderedDict[int, tuple[str, frozenset[int]]] = OrderedDict()  # side, legs of that pass
        self.side_switches = 0
        self.corners_slowed = 0  # ticks a detour corner was not yet passed because the vehicle was too fast
        self.held: tuple[tuple[int, str, float, float, float], ...] = ()  # keep-outs of the last update()

    # -- public -----------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """"follow", "detour" or "hold"."""
        return self._mode

    def side_of(self, track_id: int) -> str | None:
        """The side chosen the last time this obstacle was passed (None: never passed)."""
        kept = self._sides.get(track_id)
        return kept[0] if kept else None

    def keepouts(self, obstacles: Sequence[Obstacle], now_ns: int) -> list[tuple[int, float, float, float]]:
        """(track_id, east_m, north_m, radius_m) of the keep-out discs of the obstacles that count
        (one per static obstacle; a chain along its velocity for a moving one)."""
        return [(k.track_id, k.east_m, k.north_m, k.radius_m) for k in self._keepouts(obstacles, now_ns)]

    def update(self, obstacles: Sequence[Obstacle], vehicle: VehicleState, now_ns: int) -> Correction | None:
        """One tick; see the module docstring for what comes back. The keep-out discs it planned with are
        left in :attr:`held` as (track_id, label, east_m, north_m, radius_m)."""
        kos = self._keepouts(obstacles, now_ns)
        self.held = tuple((k.track_id, k.label, k.east_m, k.north_m, k.radius_m) for k in kos)
        pos = (float(vehicle.east_m), float(vehicle.north_m))
        if self._mode == "detour" and self._detour is not None:
            return self._tick_detour(kos, vehicle, pos)
        idx = self._route_index(vehicle.current_seq)
        if idx is None:  # mission over: nothing left to protect
            self._mode, self._hold = "follow", None
            return None
        segs = self._polyline(pos, idx)
        group = self._first_group(segs, kos, self.config.lookahead_m(vehicle.speed_m_s))
        if group is None:
            if self._mode == "hold":
                self._mode, self._hold = "follow", None
                return Correction(CorrectionKind.RESUME, resume_seq=self.route[idx].seq,
                                  reason="way ahead clear again")
            return None
        if self._mode == "hold" and self._hold is not None \
                and now_ns - self._hold_planned_ns < int(self.config.hold_replan_s * 1e9):
            return self._hold  # still blocked; the search for a way round is repeated every hold_replan_s
        self._hold_planned_ns = now_ns
        return self._start_detour(kos, pos, pos, idx, segs, group, on_route=True)

    # -- ticks ------------------------------------------------------------------------------
    def _tick_detour(self, kos: list[_KeepOut], vehicle: VehicleState, pos: tuple[float, float]) -> Correction:
        d = self._detour
        assert d is not None
        cfg = self.config
        for j in range(len(d.waypoints_xy) - 1, d.idx - 1, -1):
            dist_m = math.dist(pos, d.waypoints_xy[j])
            if dist_m > cfg.reached_m:
                continue
            last = j + 1 == len(d.waypoints_xy)
            if last and dist_m > cfg.reached_m / 4.0 and vehicle.speed_m_s > cfg.settled_speed_m_s:
                continue  # the rejoin point: on the line itself, or stopped near it, so AUTO flies the line
            # a waypoint counts as reached within reached_m only if the leg to the next one is clear from here,
            # and from where the vehicle's momentum carries it: a copter does not turn on the spot, it runs on
            # about v^2 / 2a along its velocity while it turns, so switching at a corner at speed cuts the inside
            # of the turn, into the keep-out the next leg skirts. Not switching, it keeps slowing down for the
            # corner; within node_clearance_m the switch is always made.
            if not last and dist_m > cfg.node_clearance_m:
                nxt = d.waypoints_xy[j + 1]
                if not self._legs_clear(kos, [pos, nxt], tolerance_m=0.0):
                    continue
                run_on = self._run_on_point(pos, vehicle)
                if run_on != pos and not self._legs_clear(kos, [pos, run_on, nxt], tolerance_m=0.0):
                    self.corners_slowed += 1
                    continue
            d.idx = j + 1
            d.correction = None
            break
        if d.idx >= len(d.waypoints_xy):
            self._mode, self._detour = "follow", None
            return Correction(CorrectionKind.RESUME, resume_seq=d.resume_seq, side=d.side,
                              reason=f"detour done, line rejoined; resume at item {d.resume_seq}", obstacle_ids=d.ids)
        if self._legs_clear(kos, [pos] + d.waypoints_xy[d.idx:]):
            if d.correction is None:
                d.correction = self._correction(d.waypoints_xy[d.idx:], d.alt_m, d.resume_seq, d.side, d.ids,
                                                f"detour {d.side} of obstacle(s) {list(d.ids)}")
            return d.correction
        # the obstacles moved or grew into the detour: plan again from here, along the same route
        segs = self._polyline(d.anchor_xy, d.anchor_route_idx)
        group = self._first_group(segs, kos, math.inf)
        if group is None:  # the keep-out has gone: go straight back to the rejoin point
            rejoin = d.waypoints_xy[-1]
            if self._legs_clear(kos, [pos, rejoin]):
                path, why = [rejoin], "keep-out gone: straight to the rejoin point"
            else:  # another keep-out lies between here and the rejoin point (off the route): round it,
                # leaving it first if the vehicle is inside it (it appeared or grew round the vehicle)
                free_outer, free_inner = self._free_spaces(kos)
                start, prefix = self._leave_keepouts(pos, free_outer) or (pos, [])
                found = self._shortest(kos, kos, start, rejoin, free_outer, free_inner, None)
                if found is None:
                    return self._to_hold(d.ids, "no clear way back to the rejoin point")
                path, why = prefix + found[0], "keep-out gone: back to the rejoin point"
            d.waypoints_xy, d.idx = path, 0
            d.correction = self._correction(d.waypoints_xy, d.alt_m, d.resume_seq, d.side, d.ids, why)
            return d.correction
        # on the side already being flown: the obstacle estimate moved, grew, or its track was lost and found
        # again under a new id (which has no side of its own yet), and turning round to the other side from
        # here would carry the vehicle, at speed, across the keep-out's front
        return self._start_detour(kos, pos, d.anchor_xy, d.anchor_route_idx, segs, group, on_route=False,
                                  prefer_side=d.side)

    def _run_on_point(self, pos: tuple[float, float], vehicle: VehicleState) -> tuple[float, float]:
        """Where the vehicle would stop braking at ``decel_m_s2`` along its velocity (``pos`` when settled)."""
        v = vehicle.speed_m_s
        if v <= self.config.settled_speed_m_s:
            return pos
        run_m = v * v / (2.0 * self.config.decel_m_s2)
        return (pos[0] + vehicle.ve_m_s / v * run_m, pos[1] + vehicle.vn_m_s / v * run_m)

    def _legs_clear(self, kos: list[_KeepOut], legs: list[tuple[float, float]],
                    tolerance_m: float | None = None) -> bool:
        """Legs inside the region and out of the keep-out discs less ``tolerance_m`` (default: the
        replan tolerance, a hysteresis so estimate jitter does not replan every frame)."""
        tol = self.config.replan_tolerance_m if tolerance_m is None else tolerance_m
        for a, b in zip(legs, legs[1:]):
            for k in kos:
                if segment_point_distance(a, b, (k.east_m, k.north_m)) < k.radius_m - tol:
                    return False
        return bool(self._prepared_region.covers(LineString(legs)))

    def _start_detour(self, kos, pos, anchor, route_idx, segs, group, *, on_route: bool,
                      prefer_side: str | None = None) -> Correction:
        s_in, s_out, members = group
        ids = tuple(sorted({kos[i].track_id for i in members}))
        result = self._plan(kos, pos, segs, group, on_route=on_route, prefer_side=prefer_side)
        for _ in range(2):
            # no way to the line just past these keep-outs (it may lie in a pocket closed by the next ones
            # and the field's edge): rejoin past the next group too, rather than hold for good
            if not (isinstance(result, str) and result.startswith("no way around")):
                break
            nxt = self._first_group(segs, kos, math.inf, after_m=group[1])
            if nxt is None:
                break
            group = (s_in, nxt[1], group[2] | nxt[2])
            retry = self._plan(kos, pos, segs, group, on_route=on_route, prefer_side=prefer_side)
            if not isinstance(retry, str):
                result = retry
                ids = tuple(sorted({kos[i].track_id for i in group[2]}))
        if isinstance(result, str):
            return self._to_hold(ids, result)
        path, side, resume_seq, alt = result
        self._mode = "detour"
        self._hold = None
        self._detour = _Detour(path, 0, resume_seq, side, ids, anchor, route_idx, alt)
        self._detour.correction = self._correction(path, alt, resume_seq, side, ids,
                                                   f"detour {side} of obstacle(s) {list(ids)}")
        return self._detour.correction

    def _to_hold(self, ids: tuple[int, ...], reason: str) -> Correction:
        self._mode, self._detour = "hold", None
        if self._hold is None or self._hold.reason != reason or self._hold.obstacle_ids != ids:
            self._hold = Correction(CorrectionKind.HOLD, reason=reason, obstacle_ids=ids)
        return self._hold

    # -- geometry ---------------------------------------------------------------------------
    def _keepouts(self, obstacles: Sequence[Obstacle], now_ns: int) -> list[_KeepOut]:
        cfg = self.config
        out = []
        for ob in obstacles:
            if not isinstance(ob, Obstacle):
                raise ValueError(f"obstacles: expected agridrone.types.Obstacle items, got {type(ob).__name__}")
            margin = margin_of(ob, cfg.margins_m)
            if margin is None or ob.height_m <= cfg.min_obstacle_height_m:
                continue
            if not ob.confirmed and not (any(lb in cfg.early_classes for lb in ob.all_labels)
                                         and ob.confidence >= cfg.early_min_confidence):
                continue
            e, n, r = float(ob.east_m), float(ob.north_m), float(ob.radius_m) + float(margin)
            centres = [(e, n)]
            if ob.moving:
                # where it is now, and the way it is going over the horizon: a chain of discs spaced at most
                # half a radius apart, so that detours pass behind a walker rather than across its path
                dt_s = min(max(0.0, (now_ns - ob.last_seen_ns) / 1e9), cfg.moving_horizon_s)
                e, n = e + ob.ve_m_s * dt_s, n + ob.vn_m_s * dt_s
                sweep_m = math.hypot(ob.ve_m_s, ob.vn_m_s) * cfg.moving_horizon_s
                steps = min(16, max(1, math.ceil(sweep_m / max(r / 2.0, 0.1))))
                centres = [(e + ob.ve_m_s * cfg.moving_horizon_s * i / steps,
                            n + ob.vn_m_s * cfg.moving_horizon_s * i / steps) for i in range(steps + 1)]
            for ce, cn in centres:
                out.append(_KeepOut(ob.track_id, ob.label, ce, cn, r, r * self._circum, cfg.disc_quad_segs))
        return out

    def _free_spaces(self, kos: list[_KeepOut]):
        """(the allowed region minus the keep-outs, the same inside the fence margin)."""
        if not kos:
            return self.region, self._inner
        blocked = unary_union([k.poly for k in kos])
        return self.region.difference(blocked), self._inner.difference(blocked)

    def _route_index(self, current_seq: int) -> int | None:
        for i, wp in enumerate(self.route):
            if wp.seq >= current_seq:
                return i
        return None

    def _polyline(self, start: tuple[float, float], idx: int) -> list[_Seg]:
        """The route still to fly from ``start`` (on or near the leg into route[idx]) to the end."""
        route = self.route
        pts: list[tuple[float, float, int, float]] = [(start[0], start[1], route[idx].seq, route[idx].alt_m)]
        if idx > 0:
            a, b = route[idx - 1], route[idx]
            px, py = project_on_segment(start, (a.east_m, a.north_m), (b.east_m, b.north_m))
            pts.append((px, py, b.seq, b.alt_m))
        for wp in route[idx:]:
            pts.append((wp.east_m, wp.north_m, wp.seq, wp.alt_m))
        segs = []
        s = 0.0
        for (ax, ay, _, _), (bx, by, seq, alt) in zip(pts, pts[1:]):
            length = math.hypot(bx - ax, by - ay)
            if length < 1e-6:
                continue
            segs.append(_Seg(ax, ay, bx, by, s, length, seq, alt))
            s += length
        return segs

    def _first_group(self, segs: list[_Seg], kos: list[_KeepOut], lookahead_m: float, after_m: float = -1.0):
        """(s_in, s_out, keep-out indices) of the first keep-out group along the route (starting past
        ``after_m``), if within look-ahead."""
        hits = []
        for ki, k in enumerate(kos):
            for seg in segs:
                span = _circle_span(seg, k.east_m, k.north_m, k.poly_radius_m)
                if span is not None and span[0] > after_m:
                    hits.append((span[0], span[1], ki))
        if not hits:
            return None
        hits.sort()
        s_in, s_out, members = hits[0][0], hits[0][1], {hits[0][2]}
        for a, b, ki in hits[1:]:
            if a <= s_out + self.config.min_gap_m:
                s_out = max(s_out, b)
                members.add(ki)
            else:
                break
        if s_in > lookahead_m:
            return None
        return s_in, s_out, members

    def _plan(self, kos, start, segs, group, *, on_route: bool, prefer_side: str | None = None):
        """A detour (path, side, resume_seq, alt_m) around ``group``, or the reason there is none.

        ``on_route``: the route polyline starts at the vehicle, so the detour can follow it up to the
        departure point ``rejoin_offset_m`` before the keep-out (the mirror of the rejoin point).
        ``prefer_side``: the side of the detour being flown, kept when none of these obstacles has a side of
        its own for this pass (the other side only when there is no way round on this one)."""
        cfg = self.config
        s_in, s_out, members = group
        total = segs[-1].s0 + segs[-1].length
        if s_out >= total - 1e-6:
            return "the route ends inside a keep-out: no rejoin point"
        free_outer, free_inner = self._free_spaces(kos)
        if not self.region.covers(Point(start)) and self.region.distance(Point(start)) > cfg.reentry_m:
            return "vehicle outside the allowed region"
        s_r = min(s_out + cfg.rejoin_offset_m, total)
        seg_out = _point_at(segs, s_out)[2]
        if s_out < seg_out.s0 + seg_out.length - 1e-6 < s_r:
            s_r = seg_out.s0 + seg_out.length  # do not skip a mission waypoint that is clear of the keep-out
        goal = None
        while s_r <= total + 1e-9:
            gx, gy, seg = _point_at(segs, s_r)
            if free_outer.covers(Point(gx, gy)):
                goal = (gx, gy, seg)
                break
            s_r += 1.0
        if goal is None:
            return "no free point on the route past the keep-out"
        gx, gy, gseg = goal
        prefix: list[tuple[float, float]] = []
        if not free_outer.covers(Point(start)):  # inside a keep-out (it grew or appeared late), or just outside
            # the region (a turn flown wide): leave it first, by the nearest way
            left = self._leave_keepouts(start, free_outer)
            if left is None:
                return "vehicle inside a keep-out with no free way out"
            start, prefix = left
        else:
            # follow the route up to the departure point: through the mission waypoints still ahead of the
            # vehicle (a survey line's start or end must not be cut off by a detour round a keep-out further
            # on), also when replanning mid-detour from off the route (then from the vehicle's progress)
            s_pos = 0.0 if on_route else _progress(segs, start)
            s_dep = s_in - cfg.rejoin_offset_m
            if s_dep - s_pos > cfg.reached_m:
                dx_, dy_, _ = _point_at(segs, s_dep)
                along = [(sg.bx, sg.by) for sg in segs if s_pos < sg.s0 + sg.length < s_dep] + [(dx_, dy_)]
                if (on_route or len(along) > 1) and free_outer.covers(LineString([start] + along)):
                    prefix, start = along, (dx_, dy_)
        barriers = {side: self._barrier(segs, kos, members, side, (s_in, s_out)) for side in _SIDES}
        ids = sorted({kos[i].track_id for i in members})
        # the side is kept for this pass of the route by these obstacles (its legs), not for ever: passed again
        # from another survey line, "left" is another place, and the old side may lead round far worse
        legs = frozenset(sg.end_seq for sg in segs if sg.s0 < s_out and sg.s0 + sg.length > s_in)
        kept = next((self._sides[i][0] for i in ids if i in self._sides and self._sides[i][1] & legs), None) \
            or prefer_side
        wide = self._widened(kos)
        paths = {}
        for side in ([kept] if kept else list(_SIDES)):
            paths[side] = self._shortest_clear(kos, wide, start, (gx, gy), free_outer, free_inner, barriers[side])
        if kept and paths[kept] is None:
            other = "right" if kept == "left" else "left"
            paths[other] = self._shortest_clear(kos, wide, start, (gx, gy), free_outer, free_inner,
                                                barriers[other])
        found = {s: p for s, p in paths.items() if p is not None}
        if not found:
            # The side barriers are a rule for passing one obstacle on a straight line. Where the route turns
            # inside the keep-outs, or a cluster straddles it, rays from several chords can fence in every
            # way round although the free space has one: then take the shortest path there is, and name its
            # side by where it passes the first obstacle.
            free_path = self._shortest_clear(kos, wide, start, (gx, gy), free_outer, free_inner, None)
            if free_path is None:
                return f"no way around obstacle(s) {ids} inside the allowed region"
            found = {self._side_of_path(segs, kos, members, start, free_path[0]): free_path}
        side = min(found, key=lambda s: (found[s][1], _SIDES.index(s)))
        if kept and side != kept:
            self.side_switches += 1
        for i in ids:
            self._sides[i] = (side, legs)
            self._sides.move_to_end(i)
        while len(self._sides) > 1024:
            self._sides.popitem(last=False)
        path = prefix + found[side][0]
        legs = LineString([start] + found[side][0])
        if not all(self.region.covers(Point(p)) for p in path) or not free_outer.covers(legs) \
                or (len(prefix) > 1 and not free_outer.covers(LineString(prefix))):
            return "internal check failed: detour leaves the free region"
        return path, side, gseg.end_seq, gseg.alt_m

    def _leave_keepouts(self, start, free_outer):
        """(where a path from ``start`` begins, the waypoints that lead there): ``start`` itself when it is
        free, else the escape point out of the keep-out round it; None when there is no way out."""
        if free_outer.covers(Point(start)):
            return start, []
        esc = self._escape(start, free_outer)
        return (esc, [esc]) if esc is not None else None

    def _escape(self, start, free_outer) -> tuple[float, float] | None:
        """The nearest point from inside a keep-out that lies a little way into the free space (None: none)."""
        for clearance_m in (4.0 * self.config.node_clearance_m, self.config.node_clearance_m, 0.05):
            room = free_outer.buffer(-clearance_m)
            if room.is_empty:
                continue
            near = nearest_points(room, Point(start))[0]
            if free_outer.covers(near):
                return (near.x, near.y)
        return None

    def _side_of_path(self, segs, kos, members, start, path) -> str:
        """"left" or "right": the side of the route on which ``path`` passes the first blocking obstacle."""
        first = min(members, key=lambda ki: min((sp[0] for seg in segs
                                                 if (sp := _circle_span(seg, kos[ki].east_m, kos[ki].north_m,
                                                                        kos[ki].poly_radius_m))), default=math.inf))
        k = kos[first]
        line = LineString([start] + list(path))
        near = line.interpolate(line.project(Point(k.east_m, k.north_m)))
        seg = min(segs, key=lambda sg: segment_point_distance((sg.ax, sg.ay), (sg.bx, sg.by), (k.east_m, k.north_m)))
        ux, uy = (seg.bx - seg.ax) / seg.length, (seg.by - seg.ay) / seg.length
        cross = ux * (near.y - k.north_m) - uy * (near.x - k.east_m)
        return "left" if cross > 0 else "right"

    def _barrier(self, segs, kos, members, side, group_span=None):
        """Rays from each blocking obstacle's chord on the route towards ``side``'s opposite.

        Only chords within the group's stretch of route (``group_span``) count: after a turn the route may
        cross the same keep-out again, and rays from that later pass would block both sides of this one."""
        rays = []
        for ki in members:
            k = kos[ki]
            for seg in segs:
                span = _circle_span(seg, k.east_m, k.north_m, k.poly_radius_m)
                if span is None:
                    continue
                if group_span is not None and (span[1] < group_span[0] - 1e-6 or span[0] > group_span[1] + 1e-6):
                    continue
                mx, my, _ = _point_at(segs, (span[0] + span[1]) / 2.0)
                ux, uy = (seg.bx - seg.ax) / seg.length, (seg.by - seg.ay) / seg.length
                # passing on the left means the right is blocked, and vice versa
                nx, ny = (uy, -ux) if side == "left" else (-uy, ux)
                rays.append(LineString([(mx, my), (mx + nx * self._far_m, my + ny * self._far_m)]))
        return unary_union(rays).buffer(0.05) if rays else None

    def _widened(self, kos: list[_KeepOut]):
        """(keep-outs grown by ``path_clearance_m``, free space outside them, the same inside the fence
        margin), or None when the clearance is 0."""
        c = self.config.path_clearance_m
        if c <= 0 or not kos:
            return None
        grown = [replace(k, radius_m=k.radius_m + c, poly_radius_m=k.poly_radius_m + c * self._circum) for k in kos]
        return (grown, *self._free_spaces(grown))

    def _shortest_clear(self, kos, wide, start, goal, free_outer, free_inner, barrier):
        """The shortest path on one side, its legs ``path_clearance_m`` clear of the keep-outs where there is
        room: every leg but one from a start (or to a goal) already inside the grown keep-outs (the vehicle
        is near one, or the line rejoins close to one); where even that finds no way, as close as the
        keep-outs allow."""
        if wide is not None:
            grown, wide_outer, wide_inner = wide
            found = self._shortest(grown, kos, start, goal,
                                   wide_outer if wide_outer.covers(Point(start)) else free_outer, wide_inner,
                                   barrier, wide_outer if wide_outer.covers(Point(goal)) else free_outer)
            if found is not None:
                return found
        return self._shortest(kos, kos, start, goal, free_outer, free_inner, barrier)

    def _shortest(self, node_kos, disc_kos, start, goal, free_ends, free_middle, barrier, free_goal=None):
        """The shortest path on one side (``barrier`` blocks the other): (path without start, length) or None.

        Nodes ring ``node_kos``; no leg enters ``disc_kos``. Edges touching start must lie in ``free_ends``
        (the unshrunk region, so that a route near the fence can still be left and rejoined), edges touching
        the goal in ``free_goal`` (default ``free_ends``), the rest in ``free_middle`` (``fence_margin_m``
        inside)."""
        cfg = self.config
        if barrier is not None:
            goal_own = free_goal is not None and free_goal is not free_ends
            free_ends = free_ends.difference(barrier)
            free_middle = free_middle.difference(barrier)
            free_goal = free_goal.difference(barrier) if goal_own else None
        cand = list(self._region_nodes)
        for k in node_kos:
            ring = Point(k.east_m, k.north_m).buffer(k.poly_radius_m + cfg.node_clearance_m,
                                                     quad_segs=cfg.disc_quad_segs)
            cand.extend(ring.exterior.coords[:-1])
        discs = [(k.east_m, k.north_m, k.radius_m) for k in disc_kos]
        return shortest_path(start, goal, cand, free_ends, free_middle, discs, free_goal=free_goal)

    def _correction(self, waypoints_xy, alt_m, resume_seq, side, ids, reason) -> Correction:
        pts = []
        for e, n in waypoints_xy:
            lat, lon, _ = self.frame.to_geo(e, n, 0.0)
            pts.append(GeoPoint(lat, lon, alt_m, AltFrame.REL_HOME))
        return Correction(CorrectionKind.DETOUR, waypoints=tuple(pts), resume_seq=resume_seq, side=side,
                          reason=reason, obstacle_ids=tuple(ids))


def _circle_span(seg: _Seg, cx: float, cy: float, r: float) -> tuple[float, float] | None:
    """Arc-length interval of ``seg`` inside the circle, or None."""
    ux, uy = (seg.bx - seg.ax) / seg.length, (seg.by - seg.ay) / seg.length
    fx, fy = seg.ax - cx, seg.ay - cy
    b = fx * ux + fy * uy
    c = fx * fx + fy * fy - r * r
    disc = b * b - c
    if disc <= 0:
        return None
    root = math.sqrt(disc)
    t1, t2 = max(-b - root, 0.0), min(-b + root, seg.length)
    if t1 >= t2:
        return None
    return seg.s0 + t1, seg.s0 + t2


def _progress(segs: list[_Seg], p: tuple[float, float]) -> float:
    """Arc length of the point of the route nearest ``p``."""
    best, best_s = math.inf, 0.0
    for seg in segs:
        qx, qy = project_on_segment(p, (seg.ax, seg.ay), (seg.bx, seg.by))
        d = math.hypot(p[0] - qx, p[1] - qy)
        if d < best:
            best, best_s = d, seg.s0 + math.hypot(qx - seg.ax, qy - seg.ay)
    return best_s


def _point_at(segs: list[_Seg], s: float) -> tuple[float, float, _Seg]:
    for seg in segs:
        if s <= seg.s0 + seg.length + 1e-9:
            t = max(0.0, min(1.0, (s - seg.s0) / seg.length))
            return seg.ax + t * (seg.bx - seg.ax), seg.ay + t * (seg.by - seg.ay), seg
    last = segs[-1]
    return last.bx, last.by, last
