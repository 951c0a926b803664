"""Obstacle tracking in ground coordinates (issue 6, item 4).

``ObstacleTracker.update(detections, now_ns)`` takes the ground observations of one frame (or
``None`` for a frame with nothing in it: the tracker ticks every frame, ARCHITECTURE rule 9) and
returns every live track as an :class:`agridrone.types.Obstacle`, confirmed or not (the planner
uses the confirmed ones).

How it works, per tick:

1. **Filter.** Observations of classes outside ``TrackerConfig.obstacle_classes`` (crop, weeds,
   stressed patches, shadows ...) and observations whose ``height_m`` is known to be 0 (something
   flat on the ground) are ignored: the ground is never an obstacle. So are observations below
   ``min_confidence``.
2. **Forget** confirmed tracks ``forget_after_s`` after their last hit (tentative ones after
   ``tentative_forget_after_s``; those of classes that do not move after their own ``static_*`` times),
   before this tick's observations are associated: a track past its time is not revived.
3. **One frame, one object, one observation.** Observations of one frame of compatible classes whose discs
   are duplicates by the merge rule of step 7 (the detector's boxes of one animal labelled both animal and
   person, or one object cut by two overlapping tiles) become one observation: the disc enclosing them,
   every label's vote kept. Otherwise the two halves could seed two tracks that each go on being fed.
4. **Associate** in ground metres: every (track, observation) pair of compatible classes whose
   distance between the track's position predicted to the observation's time and the observation
   is within ``gate_m`` is a candidate; candidates are taken greedily by increasing distance, one
   observation per track and one track per observation.
5. **Correct.** Static classes (trees, poles ...) average their observations (a running mean for
   the first hits, then an exponential average). Moving classes (person, animal, vehicle) fit a
   constant-velocity line by least squares to their observations of the last ``velocity_window_s`` and
   report its velocity (``ve_m_s``/``vn_m_s``, ``moving``) only where the data show one: a span of at
   least ``min_velocity_span_s`` and a speed above ``moving_speed_m_s`` and ``velocity_k`` standard errors
   clear of zero. Otherwise the object is taken to stand at the median of its observations (one outlier
   does not drag it): most people and animals in a field stand,
   and a velocity read from two noisy sightings (a metre of projection error over 0.7 s is 1.5 m/s) walks
   a standing person's keep-out off the person. A track is predicted along its velocity for at most
   ``max_coast_s`` after its last hit, not on and on while it is out of view.
6. **Create** a tentative track for each observation left over; a track is confirmed after
   ``confirm_hits`` hits.
7. **Merge** duplicates: two tracks of compatible classes whose centres lie within
   ``merge_fraction`` x the larger radius of each other become one (the disc enclosing both, so a
   merge never shrinks a keep-out). So do two tracks of moving classes within ``exclusive_merge_m`` of
   each other that have never been hit in the same frame: one object whose track ran off on a noisy
   velocity (a projection 2 m off from a tilted frame) and was found again beside it under a new track.
   Two real objects close together are seen in the same frame sooner or later and then stay apart.

The tracker never changes its inputs; its state lives in the instance (no module state) and it
must be driven from one thread (ARCHITECTURE rule 8).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np

from agridrone.geo import LocalFrame
from agridrone.types import Obstacle

DEFAULT_OBSTACLE_CLASSES: tuple[str, ...] = ("person", "animal", "vehicle", "tree", "pole", "building", "obstacle")
DEFAULT_MOVING_CLASSES: tuple[str, ...] = ("person", "animal", "vehicle")
# Heights used when no observation says how tall a thing is (a 2-D detector cannot). Any class
# missing here gets ``TrackerConfig.unknown_height_m``; a reported height is never 0.
DEFAULT_HEIGHTS_M: Mapping[str, float] = MappingProxyType({"person": 2.0, "animal": 1.5, "vehicle": 3.0,
                                                           "tree": 10.0, "pole": 10.0, "building": 10.0})


def _check_finite(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class GroundDetection:
    """One object seen in one frame, projected onto the ground (local ENU metres).

    ``height_m`` is None when unknown (the usual case with a 2-D detector); 0 means "flat on the
    ground" and such an observation is never tracked as an obstacle.
    """

    label: str
    east_m: float
    north_m: float
    radius_m: float
    confidence: float
    ts_ns: int
    height_m: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"label: expected a non-empty class name, got {self.label!r}")
        for name in ("east_m", "north_m", "radius_m", "confidence"):
            _check_finite(name, getattr(self, name))
        if self.radius_m < 0:
            raise ValueError(f"radius_m: expected >= 0, got {self.radius_m}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence: expected 0..1, got {self.confidence}")
        if isinstance(self.ts_ns, bool) or not isinstance(self.ts_ns, int):
            raise ValueError(f"ts_ns: expected integer nanoseconds, got {self.ts_ns!r}")
        if self.height_m is not None:
            _check_finite("height_m", self.height_m)
            if self.height_m < 0:
                raise ValueError(f"height_m: expected >= 0 or None, got {self.height_m}")


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker settings; every default is a documented, flight-tested-looking starting point.

    - ``obstacle_classes``: labels that can be obstacles; anything else is ignored (ground).
    - ``moving_classes``: labels tracked with a constant-velocity filter.
    - ``class_groups``: groups of labels that may be associated with each other (e.g. a detector
      that hesitates between "person" and "animal"): one object seen under two labels is one track,
      labelled by its confidence-weighted votes; by default only equal labels associate.
    - ``label_share_floor``: a label with at least this share of a track's votes is listed in the
      obstacle's ``labels`` (the planner keeps the most cautious margin of them) (0.25).
    - ``min_confidence``: observations below this are ignored (0.3).
    - ``gate_m``: association gate, metres between prediction and observation (3 m: ground
      projection error of a 30 m high camera with ~1 deg of attitude error, plus margin).
    - ``confirm_hits``: hits to confirm a track (3).
    - ``forget_after_s`` / ``tentative_forget_after_s``: seconds without a hit before a confirmed /
      tentative track is dropped (3 s / 1 s).
    - ``static_forget_after_s``: seconds without a hit before a confirmed track of a class that does not
      move is dropped, if set (None: ``forget_after_s``). A tree out of view for a while and seen again
      (the survey line turned away from it and back) is then still its old track: its new sightings refine
      the position averaged over the old ones instead of starting a new track that may land 2 m away from
      the keep-out the vehicle is flying round.
    - ``static_tentative_forget_after_s``: the same for a tentative track of a class that does not move
      (not in ``moving_classes``), if set (None: as the others). A tree seen once from one survey line and
      again from the next is confirmed by the second sighting even a minute later: it has not gone
      anywhere, and from a nadir camera a tree in the next line's path is best seen from this line.
    - ``static_gain``: weight of a new observation in a static track's average once past the
      first 1/static_gain hits (0.3).
    - ``velocity_window_s``: a moving-class track's position and velocity are fitted to its observations
      of this many seconds before its last one (4 s: a walker changes course over a few seconds; at the
      simulated loop's 1.5 frames per vehicle second that is 6 sightings, on a real camera dozens).
    - ``min_velocity_span_s``: no velocity from observations spanning less than this (1 s).
    - ``velocity_k``: a fitted speed is reported only when it exceeds this many of its standard errors (3).
    - ``position_noise_m``: the least scatter of one observation assumed in that standard error (0.8 m,
      the median error of a standing person's or animal's single sightings in recorded simulated flights:
      three sightings that happen to lie on a line prove no motion).
    - ``max_coast_s``: a track is predicted along its velocity for at most this long after its last hit (2 s).
    - ``max_speed_m_s``: speeds above this are clipped (15 m/s).
    - ``moving_speed_m_s``: speed above which a moving-class track has a velocity and reports ``moving``
      (0.5 m/s; slower, it is taken to stand).
    - ``merge_fraction``: duplicates merge when their centres are closer than this times the
      larger radius (1.0: one centre inside the other's disc); ``merge_min_m`` is the floor of
      that distance for point-like objects (0.5 m).
    - ``exclusive_merge_m``: tracks of moving classes closer than this that were never hit in the same
      frame are one object (3 m, the association gate; 0: off).
    - ``heights_m`` / ``unknown_height_m``: height reported when no observation gave one.
    """

    obstacle_classes: tuple[str, ...] = DEFAULT_OBSTACLE_CLASSES
    moving_classes: tuple[str, ...] = DEFAULT_MOVING_CLASSES
    class_groups: tuple[tuple[str, ...], ...] = ()
    label_share_floor: float = 0.25
    min_confidence: float = 0.3
    gate_m: float = 3.0
    confirm_hits: int = 3
    forget_after_s: float = 3.0
    tentative_forget_after_s: float = 1.0
    static_forget_after_s: float | None = None
    static_tentative_forget_after_s: float | None = None
    static_gain: float = 0.3
    velocity_window_s: float = 4.0
    min_velocity_span_s: float = 1.0
    velocity_k: float = 3.0
    position_noise_m: float = 0.8
    max_coast_s: float = 2.0
    max_speed_m_s: float = 15.0
    moving_speed_m_s: float = 0.5
    merge_fraction: float = 1.0
    merge_min_m: float = 0.5
    exclusive_merge_m: float = 3.0
    heights_m: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_HEIGHTS_M))
    unknown_height_m: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "heights_m", MappingProxyType(dict(self.heights_m)))  # frozen all the way down
        object.__setattr__(self, "class_groups", tuple(tuple(g) for g in self.class_groups))
        for name in ("min_confidence", "static_gain", "label_share_floor"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}: expected 0..1, got {v}")
        for name in ("gate_m", "forget_after_s", "tentative_forget_after_s", "max_speed_m_s", "unknown_height_m",
                     "velocity_window_s", "velocity_k", "position_noise_m"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"{name}: expected > 0, got {v}")
        for name in ("min_velocity_span_s", "max_coast_s"):
            v = getattr(self, name)
            if not v >= 0:
                raise ValueError(f"{name}: expected >= 0, got {v}")
        if self.static_forget_after_s is not None and not self.static_forget_after_s > 0:
            raise ValueError(f"static_forget_after_s: expected > 0 or None, got {self.static_forget_after_s}")
        if self.static_tentative_forget_after_s is not None and not self.static_tentative_forget_after_s > 0:
            raise ValueError(f"static_tentative_forget_after_s: expected > 0 or None, got "
                             f"{self.static_tentative_forget_after_s}")
        if self.confirm_hits < 1:
            raise ValueError(f"confirm_hits: expected >= 1, got {self.confirm_hits}")
        if self.merge_fraction < 0 or self.merge_min_m < 0:
            raise ValueError(f"merge_fraction/merge_min_m: expected >= 0, got {self.merge_fraction}/{self.merge_min_m}")
        _check_finite("exclusive_merge_m", self.exclusive_merge_m)
        if self.exclusive_merge_m < 0:
            raise ValueError(f"exclusive_merge_m: expected >= 0, got {self.exclusive_merge_m}")
        if any(h <= 0 for h in self.heights_m.values()):
            raise ValueError(f"heights_m: expected heights > 0, got {dict(self.heights_m)}")


class _Track:
    """Mutable state of one track; private to the tracker."""

    __slots__ = ("track_id", "votes", "east_m", "north_m", "ve_m_s", "vn_m_s", "radius_m", "confidence",
                 "height_m", "hits", "first_seen_ns", "last_seen_ns", "state_ns", "seen_with", "history",
                 "line")

    def __init__(self, track_id: int, det: GroundDetection, votes: Mapping[str, float] | None = None) -> None:
        self.track_id = track_id
        self.votes: dict[str, float] = dict(votes) if votes else {det.label: det.confidence}
        self.seen_with: set[int] = set()   # ids of tracks hit in the same frame as this one
        self.east_m = float(det.east_m)
        self.north_m = float(det.north_m)
        self.ve_m_s = 0.0
        self.vn_m_s = 0.0
        self.radius_m = float(det.radius_m)
        self.confidence = float(det.confidence)
        self.height_m = det.height_m
        self.hits = 1
        self.first_seen_ns = det.ts_ns
        self.last_seen_ns = det.ts_ns
        self.state_ns = det.ts_ns
        # (ts_ns, east, north) of a moving-class track's recent observations, oldest first
        self.history: list[tuple[int, float, float]] = [(det.ts_ns, self.east_m, self.north_m)]
        self.line: tuple[float, float, float, float] | None = None   # unconstrained fit: east, north, ve, vn

    @property
    def label(self) -> str:
        return max(sorted(self.votes), key=lambda k: self.votes[k])

    def labels(self, share_floor: float) -> tuple[str, ...]:
        """The labels holding at least ``share_floor`` of the votes, the winner first."""
        if len(self.votes) == 1:
            return (self.label,)
        total = sum(self.votes.values()) or 1.0
        first = self.label
        rest = sorted((k for k, v in self.votes.items() if k != first and v / total >= share_floor),
                      key=lambda k: (-self.votes[k], k))
        return (first, *rest)

    def share(self, label: str) -> float:
        """``label``'s share of the votes (0..1)."""
        total = sum(self.votes.values())
        return self.votes.get(label, 0.0) / total if total > 0 else 1.0

    def predict(self, ts_ns: int, max_coast_s: float = math.inf, line: bool = False) -> tuple[float, float]:
        """Where the track is at ``ts_ns``; ``line``: along the fitted line even where its velocity is not
        significant (for association: an object that did move the last frames is looked for further on)."""
        dt = min((ts_ns - self.state_ns) / 1e9, max_coast_s)
        if line and self.line is not None:
            e, n, ve, vn = self.line
            return e + ve * dt, n + vn * dt
        return self.east_m + self.ve_m_s * dt, self.north_m + self.vn_m_s * dt

    def fit_motion(self, cfg: "TrackerConfig") -> None:
        """Position (at ``state_ns``) and velocity from ``history``, by the rule of the module docstring."""
        h = self.history
        ts = np.array([p[0] for p in h], dtype=np.float64)
        e = np.array([p[1] for p in h])
        n = np.array([p[2] for p in h])
        t = (ts - ts[-1]) / 1e9                      # seconds, 0 at the newest observation
        tm = t.mean()
        stt = float(((t - tm) ** 2).sum())
        self.line, self.ve_m_s, self.vn_m_s = None, 0.0, 0.0
        # standing: the median of the observations
        self.east_m, self.north_m = float(np.median(e)), float(np.median(n))
        if stt == 0:
            return
        be = float(((t - tm) * (e - e.mean())).sum() / stt)
        bn = float(((t - tm) * (n - n.mean())).sum() / stt)
        speed = math.hypot(be, bn)
        cap = min(1.0, cfg.max_speed_m_s / speed) if speed > 0 else 1.0
        # the line's value at the newest observation (t = 0) and its slope
        self.line = (float(e.mean() - be * tm), float(n.mean() - bn * tm), be * cap, bn * cap)
        if len(h) < 3 or t[-1] - t[0] < cfg.min_velocity_span_s or speed <= cfg.moving_speed_m_s:
            return
        resid = (e - e.mean() - be * (t - tm)) ** 2 + (n - n.mean() - bn * (t - tm)) ** 2
        sigma = max(math.sqrt(float(resid.sum()) / (2 * (len(h) - 2))), cfg.position_noise_m)
        if speed > cfg.velocity_k * sigma / math.sqrt(stt):   # moving: on the line
            self.east_m, self.north_m, self.ve_m_s, self.vn_m_s = self.line


class ObstacleTracker:
    """Associates ground observations over frames into obstacle tracks (see the module docstring)."""

    def __init__(self, frame: LocalFrame, config: TrackerConfig | None = None) -> None:
        if not isinstance(frame, LocalFrame):
            raise ValueError(f"frame: expected an agridrone.geo.LocalFrame, got {type(frame).__name__}")
        self.frame = frame
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._next_id = 1
        self._now_ns: int | None = None
        self.merges = 0        # duplicate tracks merged so far
        self.fused = 0         # duplicate observations of one frame fused so far
        self.ignored = 0       # observations ignored (ground, other classes, low confidence)

    # -- public -----------------------------------------------------------------------------
    def update(self, detections: Iterable[GroundDetection] | None, now_ns: int) -> tuple[Obstacle, ...]:
        """One tick: observations of one frame (or None), the time of the tick; returns all tracks."""
        if isinstance(now_ns, bool) or not isinstance(now_ns, int):
            raise ValueError(f"now_ns: expected integer nanoseconds, got {now_ns!r}")
        if self._now_ns is not None and now_ns < self._now_ns:
            raise ValueError(f"now_ns: expected a non-decreasing tick time, got {now_ns} after {self._now_ns}")
        self._now_ns = now_ns
        dets = self._accepted(detections)
        self._forget(now_ns)    # first: a track past its time is not revived by this tick's observations
        self._associate_and_correct(dets)
        self._merge()
        tracks = sorted(self._tracks, key=lambda t: t.track_id)
        if not tracks:
            return ()
        positions = [self._position(t, now_ns) for t in tracks]
        lats, lons, _ = self.frame.to_geo(np.array([p[0] for p in positions]), np.array([p[1] for p in positions]),
                                          np.zeros(len(positions)))  # one vectorised conversion per tick
        return tuple(self._to_obstacle(t, e, n, float(lat), float(lon))
                     for t, (e, n), lat, lon in zip(tracks, positions, lats, lons))

    @property
    def track_count(self) -> int:
        return len(self._tracks)

    # -- steps ------------------------------------------------------------------------------
    def _accepted(self, detections: Iterable[GroundDetection] | None) -> list[GroundDetection]:
        if detections is None:
            return []
        cfg = self.config
        out = []
        for d in detections:
            if not isinstance(d, GroundDetection):
                raise ValueError(f"detections: expected GroundDetection items, got {type(d).__name__}")
            if d.label not in cfg.obstacle_classes or d.confidence < cfg.min_confidence \
                    or (d.height_m is not None and d.height_m == 0.0):
                self.ignored += 1
                continue
            out.append(d)
        return out

    def _compatible(self, a: str, b: str) -> bool:
        return a == b or any(a in g and b in g for g in self.config.class_groups)

    def _is_moving_class(self, track: _Track) -> bool:
        return track.label in self.config.moving_classes

    def _is_duplicate(self, dist_m: float, radius_a: float, radius_b: float) -> bool:
        """Are two discs this far apart one object (one centre inside the other's disc)?"""
        cfg = self.config
        return dist_m <= max(cfg.merge_fraction * max(radius_a, radius_b), cfg.merge_min_m)

    def _one_per_object(self, dets: list[GroundDetection]) -> list[tuple[GroundDetection, dict[str, float]]]:
        """Fuse observations of one frame that are duplicates of each other; each comes with its votes."""
        order = sorted(range(len(dets)), key=lambda i: -dets[i].confidence)
        out: list[tuple[GroundDetection, dict[str, float]]] = []
        for i in order:
            d = dets[i]
            for k, (m, votes) in enumerate(out):
                dist = math.hypot(d.east_m - m.east_m, d.north_m - m.north_m)
                if m.ts_ns == d.ts_ns and self._compatible(m.label, d.label) \
                        and self._is_duplicate(dist, m.radius_m, d.radius_m):
                    e, n, r = _enclosing(m.east_m, m.north_m, m.radius_m, d.east_m, d.north_m, d.radius_m, dist)
                    votes[d.label] = votes.get(d.label, 0.0) + d.confidence
                    out[k] = (GroundDetection(m.label, e, n, r, m.confidence, m.ts_ns, _taller(m.height_m, d.height_m)),
                              votes)
                    self.fused += 1
                    break
            else:
                out.append((d, {d.label: d.confidence}))
        return out

    def _associate_and_correct(self, raw: list[GroundDetection]) -> None:
        cfg = self.config
        dets = self._one_per_object(raw)
        pairs: list[tuple[float, int, int]] = []
        for ti, tr in enumerate(self._tracks):
            label = tr.label
            for di, (d, votes) in enumerate(dets):
                if not any(self._compatible(label, lb) for lb in votes):
                    continue
                pe, pn = tr.predict(d.ts_ns, cfg.max_coast_s, line=True)
                dist = math.hypot(d.east_m - pe, d.north_m - pn)
                if dist <= cfg.gate_m:
                    pairs.append((dist, ti, di))
        pairs.sort()
        used_t: set[int] = set()
        used_d: set[int] = set()
        hit: list[_Track] = []
        for _, ti, di in pairs:
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            self._correct(self._tracks[ti], *dets[di])
            hit.append(self._tracks[ti])
        for di, (d, votes) in enumerate(dets):
            if di not in used_d:
                self._tracks.append(_Track(self._next_id, d, votes))
                hit.append(self._tracks[-1])
                self._next_id += 1
        if len(hit) > 1:  # what was seen together is not one object
            ids = {t.track_id for t in hit}
            for t in hit:
                t.seen_with |= ids - {t.track_id}

    def _correct(self, tr: _Track, d: GroundDetection, votes: Mapping[str, float]) -> None:
        cfg = self.config
        for label, v in votes.items():
            tr.votes[label] = tr.votes.get(label, 0.0) + v
        gain = max(cfg.static_gain, 1.0 / (tr.hits + 1))
        if self._is_moving_class(tr):
            # in time order: an out-of-order observation takes its place
            bisect.insort(tr.history, (d.ts_ns, float(d.east_m), float(d.north_m)))
            _trim_history(tr, cfg.velocity_window_s)
            tr.fit_motion(cfg)
        else:
            tr.east_m += gain * (d.east_m - tr.east_m)
            tr.north_m += gain * (d.north_m - tr.north_m)
            tr.ve_m_s = tr.vn_m_s = 0.0
        tr.state_ns = max(tr.state_ns, d.ts_ns)
        tr.radius_m += gain * (d.radius_m - tr.radius_m)
        tr.confidence += gain * (d.confidence - tr.confidence)
        tr.height_m = _taller(tr.height_m, d.height_m)
        tr.hits += 1
        tr.last_seen_ns = max(tr.last_seen_ns, d.ts_ns)

    def _forget(self, now_ns: int) -> None:
        cfg = self.config
        keep = []
        for tr in self._tracks:
            if tr.hits >= cfg.confirm_hits:
                limit_s = cfg.forget_after_s
                if cfg.static_forget_after_s is not None and tr.label not in cfg.moving_classes:
                    limit_s = cfg.static_forget_after_s
            elif cfg.static_tentative_forget_after_s is not None and tr.label not in cfg.moving_classes:
                limit_s = cfg.static_tentative_forget_after_s
            else:
                limit_s = cfg.tentative_forget_after_s
            if (now_ns - tr.last_seen_ns) / 1e9 <= limit_s:
                keep.append(tr)
        self._tracks = keep

    def _merge(self) -> None:
        cfg = self.config
        exclusive_m = cfg.exclusive_merge_m
        merged = True
        while merged:
            merged = False
            tracks = self._tracks
            for i in range(len(tracks)):
                for j in range(i + 1, len(tracks)):
                    a, b = tracks[i], tracks[j]
                    if not self._compatible(a.label, b.label):
                        continue
                    d = math.hypot(a.east_m - b.east_m, a.north_m - b.north_m)
                    if self._is_duplicate(d, a.radius_m, b.radius_m) or (
                            d <= exclusive_m and self._is_moving_class(a) and self._is_moving_class(b)
                            and b.track_id not in a.seen_with):
                        keep, drop = (a, b) if (a.hits, -a.track_id) >= (b.hits, -b.track_id) else (b, a)
                        self._absorb(keep, drop, d)
                        self._tracks = [t for t in tracks if t is not drop]
                        for t in self._tracks:   # whatever was seen with the dropped one was seen with the kept
                            if drop.track_id in t.seen_with:
                                t.seen_with.discard(drop.track_id)
                                if t is not keep:
                                    t.seen_with.add(keep.track_id)
                        self.merges += 1
                        merged = True
                        break
                if merged:
                    break

    @staticmethod
    def _absorb(keep: _Track, drop: _Track, dist_m: float) -> None:
        w1, w2 = keep.hits, drop.hits
        total = w1 + w2
        # the disc enclosing both discs: a merge never shrinks what the planner keeps out of
        ce, cn, r = _enclosing(keep.east_m, keep.north_m, keep.radius_m, drop.east_m, drop.north_m, drop.radius_m,
                               dist_m)
        keep.east_m, keep.north_m, keep.radius_m = ce, cn, r
        keep.ve_m_s = (keep.ve_m_s * w1 + drop.ve_m_s * w2) / total
        keep.vn_m_s = (keep.vn_m_s * w1 + drop.vn_m_s * w2) / total
        keep.confidence = max(keep.confidence, drop.confidence)
        for k, v in drop.votes.items():
            keep.votes[k] = keep.votes.get(k, 0.0) + v
        keep.height_m = _taller(keep.height_m, drop.height_m)
        keep.hits = total
        keep.first_seen_ns = min(keep.first_seen_ns, drop.first_seen_ns)
        keep.last_seen_ns = max(keep.last_seen_ns, drop.last_seen_ns)
        keep.state_ns = max(keep.state_ns, drop.state_ns)
        keep.seen_with |= drop.seen_with - {keep.track_id}
        keep.history = sorted(keep.history + drop.history, key=lambda p: p[0])

    def _position(self, tr: _Track, now_ns: int) -> tuple[float, float]:
        """Where the track is at ``now_ns``: moving classes are predicted along their velocity."""
        if tr.label in self.config.moving_classes and tr.hits >= 2:
            return tr.predict(now_ns, self.config.max_coast_s)
        return tr.east_m, tr.north_m

    def _to_obstacle(self, tr: _Track, east: float, north: float, lat: float, lon: float) -> Obstacle:
        cfg = self.config
        label = tr.label
        moving_class = label in cfg.moving_classes
        speed = math.hypot(tr.ve_m_s, tr.vn_m_s)
        height = tr.height_m if tr.height_m else cfg.heights_m.get(label, cfg.unknown_height_m)
        return Obstacle(track_id=tr.track_id, label=label, lat_deg=lat, lon_deg=lon, east_m=east, north_m=north,
                        radius_m=max(0.0, tr.radius_m), confidence=min(1.0, max(0.0, tr.confidence)), hits=tr.hits,
                        first_seen_ns=tr.first_seen_ns, last_seen_ns=tr.last_seen_ns,
                        confirmed=tr.hits >= cfg.confirm_hits,
                        moving=moving_class and tr.hits >= 2 and speed > cfg.moving_speed_m_s,
                        ve_m_s=tr.ve_m_s, vn_m_s=tr.vn_m_s, height_m=float(height),
                        labels=tr.labels(cfg.label_share_floor), label_share=tr.share(label))


def _trim_history(tr: _Track, window_s: float) -> None:
    """Drop a track's observations older than ``window_s`` before its newest one."""
    oldest = tr.history[-1][0] - int(window_s * 1e9)
    while tr.history[0][0] < oldest:
        tr.history.pop(0)


def _taller(a: float | None, b: float | None) -> float | None:
    """The larger of two heights, either of which may be unknown (None)."""
    return a if b is None else b if a is None else max(a, b)


def _enclosing(ae: float, an: float, ar: float, be: float, bn: float, br: float,
               dist_m: float) -> tuple[float, float, float]:
    """The smallest disc enclosing disc a and disc b, their centres ``dist_m`` apart: (east, north, radius)."""
    if dist_m + br <= ar:
        return ae, an, ar
    if dist_m + ar <= br:
        return be, bn, br
    r = (dist_m + ar + br) / 2.0
    shift = r - ar
    return ae + (be - ae) / dist_m * shift, an + (bn - an) / dist_m * shift, r
