"""The flight loop's small parts, each testable alone: time scale, pose history, latency statistics,
skip counters, the projection of detections to the ground, and the memory of static obstacles.

All of them are used from the loop's threads as ``agridrone.pipeline`` documents; the ones shared
between threads (``PoseHistory``, ``SkipCounter``, ``LatencyBook``) lock.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Iterable, Sequence

import numpy as np

from agridrone.geo import LocalFrame, interpolate_pose, offset_deg
from agridrone.planning import margin_of
from agridrone.tracking import DEFAULT_HEIGHTS_M, GroundDetection
from agridrone.types import Detections, Obstacle, Pose


class TimeScale:
    """Vehicle time from wall time: ``vehicle_ns = origin + (wall_ns - origin) x scale``.

    On a real vehicle the scale is 1 (identity). Under the built-in simulator it is the simulator's
    speed-up, so that the tracker's velocities, the planner's look-ahead and the command rates are in
    the vehicle's seconds, which is what they mean.
    """

    def __init__(self, scale: float = 1.0, origin_ns: int = 0) -> None:
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"time scale: expected a number > 0, got {scale!r}")
        self.scale = float(scale)
        self.origin_ns = int(origin_ns)

    def to_vehicle(self, wall_ns: int) -> int:
        if self.scale == 1.0:
            return int(wall_ns)
        return self.origin_ns + int(round((wall_ns - self.origin_ns) * self.scale))

    def wall_s(self, vehicle_s: float) -> float:
        return vehicle_s / self.scale


class PoseHistory:
    """Telemetry poses (vehicle-time ``ts_ns``) for the pose at a frame's capture time. Thread-safe.

    ``at(ts_ns)`` interpolates between the two poses around ``ts_ns``; past the newest pose it dead-
    reckons with the newest velocity for up to ``max_extrapolation_ns``; before the oldest, the oldest
    pose within the same limit; otherwise None (the frame is skipped).
    """

    def __init__(self, history_ns: int, max_extrapolation_ns: int) -> None:
        self.history_ns = int(history_ns)
        self.max_extrapolation_ns = int(max_extrapolation_ns)
        self._poses: deque[Pose] = deque()
        self._lock = threading.Lock()
        self.out_of_order = 0

    def add(self, pose: Pose) -> bool:
        """Keep ``pose``; False (ignored) if it is not newer than the newest one."""
        with self._lock:
            if self._poses and pose.ts_ns <= self._poses[-1].ts_ns:
                if pose.ts_ns < self._poses[-1].ts_ns:
                    self.out_of_order += 1
                return False
            self._poses.append(pose)
            while len(self._poses) > 2 and pose.ts_ns - self._poses[0].ts_ns > self.history_ns:
                self._poses.popleft()
            return True

    def latest(self) -> Pose | None:
        with self._lock:
            return self._poses[-1] if self._poses else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._poses)

    def at(self, ts_ns: int) -> Pose | None:
        with self._lock:
            poses = list(self._poses)
        if not poses:
            return None
        newest = poses[-1]
        if ts_ns > newest.ts_ns:
            dt_ns = ts_ns - newest.ts_ns
            if dt_ns > self.max_extrapolation_ns:
                return None
            return dead_reckon(newest, ts_ns)
        if ts_ns < poses[0].ts_ns and poses[0].ts_ns - ts_ns > self.max_extrapolation_ns:
            return None
        try:
            return interpolate_pose(poses, int(ts_ns), self.max_extrapolation_ns)
        except ValueError:
            return None


def dead_reckon(pose: Pose, ts_ns: int) -> Pose:
    """``pose`` moved along its velocity to ``ts_ns``."""
    dt = (ts_ns - pose.ts_ns) / 1e9
    if dt == 0:
        return pose
    lat, lon = offset_deg(pose.lat_deg, pose.lon_deg, pose.vn_m_s * dt, pose.ve_m_s * dt)
    return replace(pose, ts_ns=int(ts_ns), lat_deg=lat, lon_deg=lon, alt_amsl_m=pose.alt_amsl_m - pose.vd_m_s * dt,
                   alt_rel_home_m=pose.alt_rel_home_m - pose.vd_m_s * dt)


class LatencyBook:
    """Per-stage latency in wall nanoseconds: count, mean and max over the flight; median and p99 over
    the last ``window`` samples. Thread-safe."""

    def __init__(self, window: int = 4096) -> None:
        self.window = int(window)
        self._lock = threading.Lock()
        self._stages: dict[str, dict] = {}

    def add(self, stage: str, latency_ns: int) -> None:
        with self._lock:
            s = self._stages.get(stage)
            if s is None:
                s = self._stages[stage] = {"count": 0, "sum": 0, "max": 0, "recent": deque(maxlen=self.window)}
            s["count"] += 1
            s["sum"] += int(latency_ns)
            s["max"] = max(s["max"], int(latency_ns))
            s["recent"].append(int(latency_ns))

    def stats(self) -> dict[str, dict[str, float]]:
        """{stage: {count, mean_ms, p50_ms, p99_ms, max_ms}}."""
        with self._lock:
            items = [(k, v["count"], v["sum"], v["max"], list(v["recent"])) for k, v in self._stages.items()]
        out = {}
        for stage, count, total, top, recent in items:
            arr = np.asarray(recent, dtype=np.float64)
            out[stage] = {"count": count, "mean_ms": round(total / count / 1e6, 3),
                          "p50_ms": round(float(np.percentile(arr, 50)) / 1e6, 3),
                          "p99_ms": round(float(np.percentile(arr, 99)) / 1e6, 3),
                          "max_ms": round(top / 1e6, 3)}
        return out


class SkipCounter:
    """Frames not carried through the loop, by reason. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + n

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())


EDGE_PX = 2.0
# Where a class stands in its box, from the box's point nearest the nadir (0) to the box centre (1): poles
# are thin and lean away from the nadir (their foot is the near point); tree crowns and people sit a little
# further in; vehicles and buildings are wide and low (the centre). The fallback of the standing-object
# placement below (the object under the camera, its box's far side cut by the image border, no height).
FOOT_FRACTION = MappingProxyType({"pole": 0.0, "tree": 0.25, "person": 0.5, "animal": 0.5, "vehicle": 1.0,
                                  "building": 1.0})
# Heights of the classes placed as standing objects (the tracker's defaults), buildings left out: wide and
# flat-topped, they are no standing body (placed so from 30 m, their median error with the detector's boxes
# went from 0.8 to 2.0 m; from 60-70 m it fell from 2.6 to 1.3 m, six views each: too few to split on).
STANDING_HEIGHTS_M = MappingProxyType({k: v for k, v in DEFAULT_HEIGHTS_M.items() if k != "building"})
# The height, as a fraction of the object's, at which the box's near edge is seen: 0 (the foot) for most;
# a tree's crown hides its trunk, so its box begins at the crown's near edge, high up (0.7 fits best the
# simulated camera's trees: median error 0.73 m, p90 1.6 m, against 1.17 / 2.6 m with the foot).
NEAR_EDGE_HEIGHT_FRACTION = MappingProxyType({"tree": 0.7})
MAX_HEIGHT_FRACTION = 0.8   # an object as tall as the camera is high leans without bound: cap h at 0.8 x H


def project_detections(dets: Detections, pose: Pose, projector, frame: LocalFrame, ts_ns: int,
                       ground_alt_m: float = 0.0, edge_px: float = EDGE_PX,
                       foot_fraction=FOOT_FRACTION, heights_m=STANDING_HEIGHTS_M,
                       near_fraction=NEAR_EDGE_HEIGHT_FRACTION) -> list[GroundDetection]:
    """Detections of one frame -> ground observations in ``frame``'s ENU metres.

    Tall things lean away from the image of the vertical below the camera (the nadir). An object of a class
    with a height h in ``heights_m`` is taken for a standing body of radius r at ground distance d from
    below a camera H above the ground: along the line from the nadir, its box's near point is its near
    edge seen at height k h (k from ``near_fraction``: 0, the foot, for most; 0.7 for a tree's crown),
    which the camera puts at a = (d - r) H / (H - k h) on the ground, and its far point (the near one
    mirrored through the box centre) is its top's far edge, at b = (d + r) H / (H - h); so it stands at
    d = (a (H - k h) + b (H - h)) / 2H in the direction of the box centre. Where the image border cuts the
    far side of a class with k > 0 (a tall tree under a low camera), r is the box's width across that line
    instead. On the example worlds' obstacles seen by the simulated camera, with the shipped detector's
    boxes, this places trees at 0.7 m median, p90 1.6 m, against 2.1 m median for the foot fraction
    alone (a 12 m tree under a camera at 30 m was placed 2-3 m too far, away from the vehicle, which is
    the side the vehicle then passes on), and poles, people, animals and vehicles a little better.
    Otherwise (no height, the nadir inside the box, the far side cut) the object stands at its box's
    point nearest the nadir, moved towards the box centre by the class's ``foot_fraction`` (0.5 for
    classes not in the table). The radius is half the larger of the box's ground width and depth
    (generous: lean stretches the depth). A box whose near side is the image border (within ``edge_px``)
    does not show the object's foot and is left out, as are boxes whose rays miss the ground (sky). Heights are unknown to a
    2-D detector (None).
    """
    n = len(dets)
    if n == 0:
        return []
    cam = projector.camera
    boxes = np.asarray(dets.boxes_xyxy, dtype=np.float64)
    labels = dets.labels or tuple(str(int(c)) for c in dets.class_ids)
    x1, y1, x2, y2 = boxes.T
    cut = [x1 <= edge_px, y1 <= edge_px, x2 >= cam.width_px - edge_px, y2 >= cam.height_px - edge_px]
    nu, nv = projector.ground_to_pixel(pose, pose.lat_deg, pose.lon_deg, ground_alt_m)
    cu, cv = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    if math.isfinite(nu) and math.isfinite(nv):
        iu, iv = np.clip(nu, x1, x2), np.clip(nv, y1, y2)
        f = np.array([foot_fraction.get(lab, 0.5) for lab in labels])
        u, v = iu + f * (cu - iu), iv + f * (cv - iv)
        # the object's foot is on the box's near side: usable unless the image border cut that side
        inside = ~((cut[0] & (iu <= x1)) | (cut[1] & (iv <= y1)) | (cut[2] & (iu >= x2)) | (cut[3] & (iv >= y2)))
        fu, fv = 2.0 * cu - iu, 2.0 * cv - iv    # the far point: the near one mirrored through the centre
        h = np.array([float(heights_m.get(lab, 0.0)) for lab in labels])
        kf = np.array([float(near_fraction.get(lab, 0.0)) for lab in labels])
        far_cut = (cut[0] & (fu <= x1)) | (cut[1] & (fv <= y1)) | (cut[2] & (fu >= x2)) | (cut[3] & (fv >= y2))
        standing = (h > 0) & ~((iu == nu) & (iv == nv)) & (~far_cut | (kf > 0))
    else:  # the vertical is not in front of the camera (a forward-looking mount): the bottom edge
        u, v = cu, y2
        inside = ~(cut[0] | cut[1] | cut[2] | cut[3])
        standing = np.zeros(n, bool)
    north, east = projector.ground_offsets_m(pose, u, v, ground_alt_m)
    if standing.any():
        north, east = north.copy(), east.copy()
        _place_standing(np.flatnonzero(standing), north, east, boxes, (iu, iv), (fu, fv), (cu, cv), h, kf,
                        far_cut, pose, projector, ground_alt_m)
    pe, pn, _ = frame.to_enu(pose.lat_deg, pose.lon_deg)
    out = []
    for i in range(n):
        if not inside[i] or not (math.isfinite(north[i]) and math.isfinite(east[i])):
            continue
        w_m, d_m = projector.box_ground_size_m(pose, boxes[i], ground_alt_m)
        sizes = [s for s in (w_m, d_m) if math.isfinite(s)]
        radius = max(sizes) / 2.0 if sizes else 0.0
        out.append(GroundDetection(label=labels[i], east_m=float(pe + east[i]), north_m=float(pn + north[i]),
                                   radius_m=float(radius), confidence=float(min(1.0, max(0.0, dets.scores[i]))),
                                   ts_ns=int(ts_ns)))
    return out


def _place_standing(k, north, east, boxes, near, far, centre, h, kf, far_cut, pose, projector,
                    ground_alt_m: float) -> None:
    """``north``/``east`` of boxes ``k`` by the standing-object rule of :func:`project_detections` (in place)."""
    H = pose.alt_rel_home_m - ground_alt_m
    m = len(k)
    x1, y1, x2, y2 = boxes[k].T
    us = np.concatenate([near[0][k], far[0][k], centre[0][k], x1, x2, x1, x2])
    vs = np.concatenate([near[1][k], far[1][k], centre[1][k], y1, y1, y2, y2])
    gn, ge = projector.ground_offsets_m(pose, us, vs, ground_alt_m)
    gn, ge = gn.reshape(7, m), ge.reshape(7, m)
    hh = np.minimum(h[k], MAX_HEIGHT_FRACTION * H)
    a = np.hypot(gn[0], ge[0]) * (H - kf[k] * hh) / H
    b = np.hypot(gn[1], ge[1]) * (H - hh) / H
    c = np.hypot(gn[2], ge[2])
    with np.errstate(invalid="ignore", divide="ignore"):
        un, ue = gn[2] / c, ge[2] / c
        across = gn[3:] * -ue + ge[3:] * un          # the corners across the line from the nadir
        r = 0.5 * (across.max(axis=0) - across.min(axis=0)) * (H - 0.5 * (1.0 + kf[k]) * hh) / H
    d = np.where(far_cut[k], a + r, 0.5 * (a + b))
    ok = np.isfinite(d) & np.isfinite(un) & np.isfinite(ue) & (c > 1e-6)
    north[k[ok]] = d[ok] * un[ok]
    east[k[ok]] = d[ok] * ue[ok]


@dataclass
class _Remembered:
    obstacle: Obstacle
    until_ns: int


class ObstacleMemory:
    """Confirmed obstacles remembered after the tracker dropped them: those of static classes for
    ``memory_ns``, others (people, animals, vehicles) that were standing still for ``still_memory_ns``.

    The tracker forgets a track a few seconds after its last hit, which is right for what is in view;
    but a tree or a person seen from the previous survey line is out of view until the vehicle comes back,
    and must still be avoided then (seen again only on the way in, it would be confirmed too late to go
    round). ``update(tracks, now_ns)`` returns the tracker's obstacles plus the remembered ones that no
    current track covers (a confirmed track of the same class whose disc contains the remembered centre,
    or a later memory). A moving track is not remembered: where it was says little about where it is. Nor
    is a still one of fewer than ``still_min_hits`` hits: a person or animal placed twice a few metres off
    (two frames' projection outliers agreeing) makes a confirmed track the tracker soon drops, and kept two
    minutes it would bend detours round a place where nobody stands (the detections of 44 recorded simulated
    flights replayed through tracker and memory: 3 hits cut the ticks with a person/animal keep-out 3-15 m
    from any person or animal from 367 to 155, and added 1 to the 161 ticks without a keep-out on one seen
    before within 30 m of the vehicle). A remembered obstacle that a live confirmed track of its class
    covers is hidden, not forgotten: the covering track may be dropped unremembered while the object stays.
    """

    def __init__(self, static_classes: Sequence[str], memory_ns: int, still_memory_ns: int = 0,
                 still_min_hits: int = 0) -> None:
        self.static_classes = frozenset(static_classes)
        self.memory_ns = int(memory_ns)
        self.still_memory_ns = int(still_memory_ns)
        self.still_min_hits = int(still_min_hits)
        self._mem: dict[int, _Remembered] = {}

    @classmethod
    def for_loop(cls, loop) -> "ObstacleMemory":
        """The memory a flight loop's ``[loop]`` settings (agridrone.config.LoopConfig) describe."""
        return cls(loop.static_classes, int(loop.static_memory_s * 1e9), int(loop.still_memory_s * 1e9),
                   loop.still_memory_min_hits)

    def __len__(self) -> int:
        return len(self._mem)

    def update(self, tracks: Iterable[Obstacle], now_ns: int) -> tuple[Obstacle, ...]:
        tracks = tuple(tracks)
        live_ids = {t.track_id for t in tracks}
        for t in tracks:
            keep_ns = self.memory_ns if t.label in self.static_classes else self.still_memory_ns
            if t.confirmed and keep_ns > 0 and (t.label in self.static_classes or t.hits >= self.still_min_hits):
                if t.moving:
                    self._mem.pop(t.track_id, None)
                else:
                    self._mem[t.track_id] = _Remembered(t, now_ns + keep_ns)
        out = list(tracks)
        shown: list[Obstacle] = []
        # newest memories first: of two remembered at one place, the later sighting stands for both
        for tid in sorted(self._mem, key=lambda i: -self._mem[i].until_ns):
            rem = self._mem[tid]
            if now_ns > rem.until_ns:
                del self._mem[tid]
                continue
            if tid in live_ids:
                continue
            o = rem.obstacle
            # covered by a confirmed track (or a later memory) of its class: not shown, but kept, because the
            # covering track may be dropped without being remembered (too few hits) while the object stays
            if not any(_covers(t, o) for t in tracks if t.confirmed) and not any(_covers(m, o) for m in shown):
                shown.append(o)
        return tuple(out + shown)


def _covers(t: Obstacle, o: Obstacle) -> bool:
    """Does obstacle ``t`` stand for ``o`` (same class, one centre within the other's disc or 1 m)?"""
    return t.label == o.label and math.hypot(t.east_m - o.east_m, t.north_m - o.north_m) <= max(t.radius_m,
                                                                                                o.radius_m, 1.0)


def footprint_centre_and_length(projector, pose: Pose, frame: LocalFrame,
                                ground_alt_m: float = 0.0) -> tuple[float, float, float] | None:
    """(east_m, north_m) of where the image centre meets the ground and the footprint's length along the
    image's vertical axis (top-centre to bottom-centre), or None when those rays miss the ground."""
    if pose.alt_rel_home_m - ground_alt_m <= 0.1:
        return None  # on the ground: no footprint
    cam = projector.camera
    u = np.array([cam.width_px / 2.0, cam.width_px / 2.0, cam.width_px / 2.0])
    v = np.array([cam.height_px / 2.0, 0.0, float(cam.height_px)])
    north, east = projector.ground_offsets_m(pose, u, v, ground_alt_m)
    if not np.all(np.isfinite(north)):
        return None
    pe, pn, _ = frame.to_enu(pose.lat_deg, pose.lon_deg)
    return float(pe + east[0]), float(pn + north[0]), float(math.hypot(north[1] - north[2], east[1] - east[2]))



def outside_takeoff_site(obstacles: Sequence[Obstacle], vehicle_en: tuple[float, float], home_en: tuple[float, float],
                         margins_m) -> tuple[Obstacle, ...]:
    """The obstacles to plan around: all, except those standing at the take-off site while the vehicle is
    still within their keep-out (radius + margin), i.e. whose keep-out contains both home and the vehicle.

    The pilot chose the take-off site next to them; the vehicle leaves it along the mission's route, and
    from the moment it is out of their keep-out they count like any other obstacle. (Planning from inside
    a keep-out that also holds the route's start has no good answer: it would stop the mission at take-off.)
    """
    out = []
    for o in obstacles:
        keep = o.radius_m + (margin_of(o, margins_m) or 0.0)
        at_home = math.hypot(o.east_m - home_en[0], o.north_m - home_en[1]) < keep
        if at_home and math.hypot(o.east_m - vehicle_en[0], o.north_m - vehicle_en[1]) < keep:
            continue
        out.append(o)
    return tuple(out)


def outside_zones(obstacles: Sequence[Obstacle], zones) -> tuple[Obstacle, ...]:
    """The obstacles that no exclusion zone of the mission already covers (``zones``: a shapely geometry in
    the same ENU frame, the zones grown by their buffers, or None). An obstacle standing inside a zone is what
    the zone is for: the survey route keeps the zone's buffer, which the agronomist set for it, and the
    geofence forbids the zone; planning round it again with the class margin would only fight the route."""
    if zones is None or zones.is_empty:
        return tuple(obstacles)
    from shapely.geometry import Point

    return tuple(o for o in obstacles if not zones.covers(Point(o.east_m, o.north_m)))
