"""Scoring a flown track against a world's ground truth (the closed-loop acceptance criteria).

- Survey window: from when the vehicle flies the first survey line (its start reached or skipped) to the
  end of the last line; take-off and the return home belong to the autopilot and the pilot.
- Clearance: the minimum horizontal distance from the track (in the survey window) to each obstacle's
  edge (centre distance - radius) must be >= its safety margin - 1 m. Obstacles whose keep-out disc
  (radius + margin) contains home stand at the take-off site: reported, not judged (no flight can take
  off 7 m from a person and keep 15 m from them).
- Lines: every survey line's start and end is visited within ``tol_m``; a point that lies inside an
  obstacle's keep-out is visited when the vehicle reached the keep-out's edge next to it (within tol_m, the
  keep-out taken 3 m wider: the loop's extra margin of 1 m and the planner's rejoin offset of 2 m).
"""

from __future__ import annotations

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


def score(track, compiled, world, line_seqs, tol_m: float = 3.0) -> Score:
    frame = compiled.plan.frame
    margins = dict(compiled.mission.alerts.safety_margin_m)
    first, last = line_seqs[0][0], line_seqs[-1][1]
    pts = np.array([(t[1], t[2]) for t in track if t[5] is not None and first < t[5] <= last and t[3] > 5.0])
    if len(pts) == 0:
        return Score([], [("all", "window", math.inf, tol_m)], 0)
    e, n, _ = frame.to_enu(pts[:, 0], pts[:, 1])
    xy = np.stack([e, n], axis=1)
    all_pts = np.array([(t[1], t[2]) for t in track if t[3] > 5.0])
    ae, an, _ = frame.to_enu(all_pts[:, 0], all_pts[:, 1])
    all_xy = np.stack([ae, an], axis=1)
    obstacles = []
    clearance = []
    for i, o in enumerate(world.obstacles):
        oe, on, _ = frame.to_enu(o.lat_deg, o.lon_deg)
        margin = margins.get(o.cls, 0.0)
        keep = o.radius_m + margin
        obstacles.append((oe, on, keep))
        d = float(np.min(np.hypot(xy[:, 0] - oe, xy[:, 1] - on))) - o.radius_m
        judged = math.hypot(oe, on) > keep
        clearance.append((o.cls, i, d, margin, judged, d >= margin - 1.0))
    missed = []
    wps = {seq: (it.lat_deg, it.lon_deg) for seq, it in enumerate(compiled.items)}
    for k, (s_seq, e_seq) in enumerate(line_seqs):
        for which, seq in (("start", s_seq), ("end", e_seq)):
            pe, pn, _ = frame.to_enu(*wps[seq])
            allowed = tol_m
            for oe, on, keep in obstacles:
                inside = keep + 3.0 - math.hypot(pe - oe, pn - on)  # the loop adds 1 m, rejoins 2 m past it
                if inside > 0:
                    allowed = max(allowed, inside + tol_m)
            d = float(np.min(np.hypot(all_xy[:, 0] - pe, all_xy[:, 1] - pn)))
            if d > allowed:
                missed.append((k + 1, which, round(d, 1), round(allowed, 1)))
    return Score(clearance, missed, len(pts))
