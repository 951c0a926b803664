"""Scoring a flown track against a world's ground truth (the closed-loop acceptance criteria).

- Survey window: from when the vehicle flies the first survey line (its start reached or skipped) to the
  end of the last line; take-off and the return home belong to the autopilot and the pilot.
- Clearance: the minimum horizontal distance from the track (in the survey window) to each obstacle's
  edge (centre distance - radius) must be >= its safety margin - 1 m. Obstacles whose keep-out disc
  (radius + margin) contains home stand at the take-off site: reported, not judged (no flight can take
  off 7 m from a person and keep 15 m from them).
- Lines: every survey line's start and end is visited within ``tol_m``; a point that lies inside a keep-out
  the loop held then (the flight folder's keepouts.jsonl: what the planner flew round, as large as the loop
  saw the obstacle) is visited when the vehicle reached the keep-out's edge next to it (within tol_m, the
  keep-out taken 3 m wider: the loop's extra margin of 1 m and the planner's rejoin offset of 2 m). A line
  end skipped for a keep-out the loop never held, or held elsewhere, is a skipped line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Score:
    clearance: list        # (class, index, min edge distance m, margin m, judged, ok)
    lines_missed: list     # (line number, "start"/"end", distance m, allowed m)
    window_points: int

    @property
    def clearance_ok(self) -> bool:
        return all(ok for *_, judged, ok in self.clearance if judged)

    def describe(self) -> str:
        rows = [f"{c}[{i}] {d:.1f} m (margin {m:g}{'' if j else ', at home: not judged'})"
                for c, i, d, m, j, _ in self.clearance]
        return "; ".join(rows) + (f"; lines missed: {self.lines_missed}" if self.lines_missed else "")


def held_keepouts(keepouts_jsonl) -> list[tuple[int, float, list[tuple[float, float, float]]]]:
    """The keep-outs the loop planned round, from the flight folder's keepouts.jsonl: (t_ns from, t_ns until,
    [(east_m, north_m, radius_m)]) per record, each valid until the next (the last one for an hour)."""
    recs = []
    with open(keepouts_jsonl) as f:
        for line in f:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a torn last line
                continue
            recs.append((int(r["t_ns"]), [(k["east_m"], k["north_m"], k["radius_m"]) for k in r["keepouts"]]))
    ends = [t for t, _ in recs[1:]] + [recs[-1][0] + 3_600 * 10**9] if recs else []
    return [(t, end, discs) for (t, discs), end in zip(recs, ends) if discs]


def telemetry_positions(tlog_path, min_alt_m: float = 5.0) -> np.ndarray:
    """(lat, lon) of every GLOBAL_POSITION_INT the autopilot sent above ``min_alt_m`` (the flight folder's
    .tlog). The loop's own track samples the same messages from its link thread and can miss a burst of them
    when that thread stalls (on a busy machine it missed 4.6 vehicle seconds at 20x, the seconds in which one
    line end was flown); the .tlog is the autopilot's complete record."""
    from pymavlink import mavutil

    out = []
    log = mavutil.mavlink_connection(str(tlog_path))
    while (msg := log.recv_match(type="GLOBAL_POSITION_INT")) is not None:
        if msg.relative_alt / 1000.0 > min_alt_m:
            out.append((msg.lat / 1e7, msg.lon / 1e7))
    return np.array(out, float).reshape(-1, 2)


def score(track, compiled, world, line_seqs, tol_m: float = 3.0, held=None, around_s: float = 20.0,
          telemetry=None) -> Score:
    """Clearance to every obstacle (from its true size) and the survey line ends not visited. A line end the
    loop could not fly to because it lay inside (or within 3 m of) a keep-out the loop held (``held``, see
    :func:`held_keepouts`) counts as visited when, while that keep-out was held (give or take ``around_s``
    vehicle seconds), the track went round the keep-out's edge next to it, on either side. ``telemetry``
    (:func:`telemetry_positions`): the autopilot's own positions, also counted for visits within ``tol_m``."""
    frame = compiled.plan.frame
    margins = dict(compiled.mission.alerts.safety_margin_m)
    first, last = line_seqs[0][0], line_seqs[-1][1]
    pts = np.array([(t[1], t[2]) for t in track if t[5] is not None and first < t[5] <= last and t[3] > 5.0])
    if len(pts) == 0:
        return Score([], [("all", "window", math.inf, tol_m)], 0)
    e, n, _ = frame.to_enu(pts[:, 0], pts[:, 1])
    xy = np.stack([e, n], axis=1)
    air = [t for t in track if t[3] > 5.0]
    all_t = np.array([t[0] for t in air], np.int64)
    ae, an, _ = frame.to_enu(np.array([t[1] for t in air]), np.array([t[2] for t in air]))
    all_xy = np.stack([ae, an], axis=1)
    tel_xy = np.zeros((0, 2))
    if telemetry is not None and len(telemetry):
        te, tn, _ = frame.to_enu(telemetry[:, 0], telemetry[:, 1])
        tel_xy = np.stack([te, tn], axis=1)
    clearance = []
    for i, o in enumerate(world.obstacles):
        oe, on, _ = frame.to_enu(o.lat_deg, o.lon_deg)
        margin = margins.get(o.cls, 0.0)
        keep = o.radius_m + margin
        d = float(np.min(np.hypot(xy[:, 0] - oe, xy[:, 1] - on))) - o.radius_m
        judged = math.hypot(oe, on) > keep
        clearance.append((o.cls, i, d, margin, judged, d >= margin - 1.0))
    missed = []
    wps = {seq: (it.lat_deg, it.lon_deg) for seq, it in enumerate(compiled.items)}
    pad = int(around_s * 1e9)
    for k, (s_seq, e_seq) in enumerate(line_seqs):
        for which, seq in (("start", s_seq), ("end", e_seq)):
            pe, pn, _ = frame.to_enu(*wps[seq])
            dist_all = np.hypot(all_xy[:, 0] - pe, all_xy[:, 1] - pn)
            d = float(np.min(dist_all))
            if d <= tol_m or (len(tel_xy) and float(np.min(np.hypot(tel_xy[:, 0] - pe, tel_xy[:, 1] - pn))) <= tol_m):
                continue
            excused = False
            for t0, t1, discs in held or ():
                for oe, on, keep in discs:
                    dist = math.hypot(pe - oe, pn - on)
                    if dist >= keep + 3.0:  # not inside it (the loop rejoins a line 2 m past a keep-out's edge)
                        continue
                    # that end could not be flown: the drone went round the keep-out's edge next to it, on either
                    # side (the shorter detour as the loop saw it then), while it held the keep-out
                    when = (all_t >= t0 - pad) & (all_t <= t1 + pad)
                    if when.any() and float(np.min(dist_all[when])) <= dist + keep + 3.0 + tol_m:
                        excused = True
            if not excused:
                missed.append((k + 1, which, round(d, 1), tol_m))
    return Score(clearance, missed, len(pts))


# -- farmer alerts (issue 7) ----------------------------------------------------------------------------------------
FIELD_FINDINGS = {"stressed_zone": "stressed", "weeds": "weeds", "person": "person", "animal": "animal",
                  "vehicle": "vehicle"}
MATCH_RADIUS_M = 10.0  # an alert this close to a truth of its kind is about that truth (5 m is the accuracy asked)


@dataclass
class AlertScore:
    patch_errors_m: list    # (kind, index, error of its alert's position m, alerts for it)
    patches_missed: list    # (kind, index, area m2)
    objects: list           # (class, index, alerts for it)
    false_alerts: list      # (kind, lat, lon) of field alerts about nothing in the world
    other: dict             # operational alerts (route blocked, avoidance stop, lost link/camera) by kind

    @property
    def patches_ok(self) -> bool:
        """Every stressed or weed patch above the threshold alerted exactly once, within 5 m of its centroid."""
        return not self.patches_missed and all(n == 1 and err <= 5.0 for _, _, err, n in self.patch_errors_m)

    @property
    def objects_ok(self) -> bool:
        """Every person/animal/vehicle in the field alerted once, at most one false alert."""
        return all(n == 1 for _, _, n in self.objects) and len(self.false_alerts) <= 1

    @property
    def ok(self) -> bool:
        return self.patches_ok and self.objects_ok

    def describe(self) -> str:
        errs = [e for _, _, e, _ in self.patch_errors_m]
        stats = (f"position error mean {np.mean(errs):.1f} m, max {np.max(errs):.1f} m" if errs else "no patch alerted")
        return (f"patches {[(k, i, round(e, 1), n) for k, i, e, n in self.patch_errors_m]} ({stats}), missed "
                f"{self.patches_missed}; objects {self.objects}; false {self.false_alerts}; other {self.other}")


def score_alerts(rows, compiled, world) -> AlertScore:
    """The flight's alerts (``agridrone.alerts.records.read_alerts`` rows) against the world's truth: every
    stressed or weed patch above the mission's area threshold, and every person, animal or vehicle standing in
    the field (not at the take-off site), alerted once; field alerts about nothing are false."""
    from shapely.geometry import Point, Polygon

    frame = compiled.plan.frame
    field = Polygon([frame.to_enu(lat, lon)[:2] for lat, lon in compiled.mission.boundary])
    threshold = float(compiled.mission.alerts.min_stressed_area_m2)
    alerts, other = [], {}
    for row in rows:
        a = row["alert"]
        if "merged_into" in a.get("properties", {}):
            continue
        kind = a["kind"]
        if kind not in FIELD_FINDINGS:
            other[kind] = other.get(kind, 0) + 1
            continue
        e, n, _ = frame.to_enu(a["lat_deg"], a["lon_deg"])
        alerts.append((FIELD_FINDINGS[kind], float(e), float(n), a))
    used = set()
    patch_errors, missed = [], []
    for i, p in enumerate(world.patches):
        if p.kind not in ("stressed", "weeds"):
            continue
        poly = Polygon([frame.to_enu(lat, lon)[:2] for lat, lon in p.polygon])
        c = poly.centroid
        near = [k for k, (kind, e, n, _) in enumerate(alerts)
                if kind == p.kind and (math.hypot(e - c.x, n - c.y) <= MATCH_RADIUS_M or poly.buffer(5.0).covers(Point(e, n)))]
        used.update(near)
        if p.area_m2 < threshold:
            continue
        if not near:
            missed.append((p.kind, i, round(p.area_m2)))
            continue
        err = min(math.hypot(alerts[k][1] - c.x, alerts[k][2] - c.y) for k in near)
        patch_errors.append((p.kind, i, err, len(near)))
    objects = []
    for i, o in enumerate(world.obstacles):
        if o.cls not in ("person", "animal", "vehicle"):
            continue
        oe, on, _ = frame.to_enu(o.lat_deg, o.lon_deg)
        near = [k for k, (kind, e, n, _) in enumerate(alerts)
                if kind == o.cls and math.hypot(e - oe, n - on) <= MATCH_RADIUS_M]
        used.update(near)
        margin = dict(compiled.mission.alerts.safety_margin_m).get(o.cls, 0.0)
        if not field.covers(Point(oe, on)) or math.hypot(oe, on) <= o.radius_m + margin:
            continue  # outside the field, or at the take-off site (seen before the flight's survey)
        objects.append((o.cls, i, len(near)))
    false = [(kind, round(e, 1), round(n, 1)) for k, (kind, e, n, _) in enumerate(alerts) if k not in used]
    return AlertScore(patch_errors, missed, objects, false, other)
