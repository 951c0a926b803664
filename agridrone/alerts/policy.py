"""Alert policy: which zones, objects and events deserve an alert, once each, rate-limited.

* One alert per zone or object. The alert id is the idempotency key, stable for the whole flight:
  ``FLIGHT/KIND/REF`` (``REF`` is the zone id, ``track-N`` for an object, or the episode number of an
  event). A zone that grows (by ``zone_growth_fraction``) or swallows another updates its alert: same
  id, ``revision + 1``. A new track of the same kind close to an already-alerted object (within
  ``object_same_radius_m``, seen in the last ``object_memory_s``; of a kind in the same
  ``same_object_kinds`` group: a cow the detector called an animal, lost, and found again as a person) is
  taken for the same object, unless
  the two are seen at once under their own tracks (two animals of a herd) more than
  ``object_min_separation_m`` apart: closer than that they are one object the tracker split in two (a
  detection on each of two overlapping detector tiles). An object is alerted once its track has
  ``object_min_hits`` sightings (its label is a vote over them); while its votes disagree on the kind
  (labels of two kinds each hold a share of the votes: a deer read as a person in two of its first three
  frames), once it has ``object_settle_hits``. A track keeps its alert when later votes relabel it (a cow the
  detector also called a person is one alert); once a track of ``object_relabel_hits`` sightings gives a
  kin kind ``object_relabel_share`` of its votes, its alert is revised to that kind (same id, next revision:
  the farmer sees it corrected, not a second alert).
  A vehicle standing against a building confirmed at any time in the flight (buildings do not move; within
  its radius + ``vehicle_at_building_m``) is not a
  vehicle in the field: farm vehicles are parked by barns, and from survey altitude the detector reads a
  building's eaves and corners as vehicles. People and animals there are still alerted.
* A zone is alerted once the map has seen it enough to be sure of it, not on its first look: an early
  estimate from one or two frames is noisy (a closed canopy's dark blotches look like weeds from one
  angle and like crop from the next). It is *ready* when the median of its cells' looks reaches
  ``zone_settled_looks``, or reaches ``zone_min_looks`` and either no new look came for ``zone_settle_s``
  (the survey moved on) or the survey ended; only then are its area and confidence held against the
  thresholds. Only the part of a zone inside the field counts towards its area (the map reaches a little
  beyond the boundary, where verges, tracks and hedges are no crop).
* Rate limiting: a token bucket (``rate_per_min``, ``burst``) over all alerts, and at most one update per
  alert every ``min_update_interval_s``. Nothing is dropped: what cannot go now waits in a queue (a
  newer revision replaces a queued older one) and leaves on a later call (every call ticks the queue).
  Critical events (severity <= ``bypass_severity``: avoidance stop, lost link) bypass the bucket.

All times are ``now_ns`` from the caller's monotonic clock. One policy per flight, used from one thread
(the flight loop's); it never blocks and never touches the disk.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from agridrone.errors import ConfigError
from agridrone.types import Alert, AlertKind, Correction, CorrectionKind, Obstacle

# MAV_SEVERITY
EMERGENCY, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO, DEBUG = range(8)

SEVERITY = MappingProxyType({
    AlertKind.STRESSED_ZONE: NOTICE, AlertKind.WEEDS: NOTICE,
    AlertKind.PERSON: WARNING, AlertKind.ANIMAL: WARNING, AlertKind.VEHICLE: WARNING,
    AlertKind.ROUTE_BLOCKED: WARNING, AlertKind.AVOIDANCE_STOP: CRITICAL,
    AlertKind.LINK_LOST: CRITICAL, AlertKind.CAMERA_LOST: ERROR,
})

ZONE_KINDS: Mapping[str, AlertKind] = MappingProxyType({"stressed": AlertKind.STRESSED_ZONE,
                                                      "weeds": AlertKind.WEEDS})

DEFAULT_OBJECT_LABELS: Mapping[str, str] = MappingProxyType({
    **{k: "person" for k in ("person", "pedestrian", "human", "people")},
    **{k: "animal" for k in ("animal", "cow", "cattle", "sheep", "horse", "dog", "cat", "deer", "goat", "pig",
                             "bird", "boar")},
    **{k: "vehicle" for k in ("vehicle", "car", "truck", "tractor", "bus", "motorcycle", "bicycle", "sedan",
                              "pickup_suv_van", "large_veh_bus", "van")},
})


@dataclass(frozen=True)
class AlertPolicyConfig:
    """Thresholds, normally taken from the mission file's ``alerts`` section (:meth:`from_mapping`)."""

    stressed_min_area_m2: float = 25.0
    weeds_min_area_m2: float = 10.0
    # a zone's confidence is its class's mean probability over every look at its cells (other verdicts count
    # 0); each of its cells already had the class win with a share >= 0.5 (FieldMap). 0.4 keeps the example
    # worlds' weed patches (0.46-0.52 with the shipped classifier) and none of the cereal canopy's false ones.
    min_zone_confidence: float = 0.4
    zone_min_looks: float = 3.0
    zone_settled_looks: float = 8.0
    zone_settle_s: float = 120.0
    zone_growth_fraction: float = 0.25
    min_object_confidence: float = 0.5
    object_min_hits: int = 3
    object_settle_hits: int = 6
    object_relabel_hits: int = 12
    object_relabel_share: float = 0.65
    vehicle_at_building_m: float = 2.0
    object_same_radius_m: float = 8.0
    object_min_separation_m: float = 1.5
    object_memory_s: float = 300.0
    object_move_update_m: float = 15.0
    min_update_interval_s: float = 10.0
    rate_per_min: float = 12.0
    burst: int = 6
    bypass_severity: int = CRITICAL
    object_labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_OBJECT_LABELS))
    same_object_kinds: tuple[tuple[str, ...], ...] = (("person", "animal"),)

    def __post_init__(self) -> None:
        for name in ("stressed_min_area_m2", "weeds_min_area_m2", "object_min_separation_m", "vehicle_at_building_m",
                     "zone_min_looks",
                     "zone_settled_looks", "zone_settle_s", "zone_growth_fraction", "object_same_radius_m",
                     "object_memory_s", "object_move_update_m", "min_update_interval_s"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"alerts.{name}: expected a number >= 0, got {v!r}")
        for name in ("min_zone_confidence", "min_object_confidence", "object_relabel_share"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ConfigError(f"alerts.{name}: expected 0..1, got {v!r}")
        if not isinstance(self.rate_per_min, (int, float)) or self.rate_per_min <= 0:
            raise ConfigError(f"alerts.rate_per_min: expected a number > 0, got {self.rate_per_min!r}")
        for name in ("object_min_hits", "object_settle_hits", "object_relabel_hits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"alerts.{name}: expected an integer >= 1, got {v!r}")
        if not isinstance(self.burst, int) or self.burst < 1:
            raise ConfigError(f"alerts.burst: expected an integer >= 1, got {self.burst!r}")
        groups = self.same_object_kinds
        if isinstance(groups, str) or not all(not isinstance(g, str) and all(k in ("person", "animal", "vehicle")
                                                                             for k in g) for g in groups):
            raise ConfigError(f"alerts.same_object_kinds: expected groups of person/animal/vehicle, got {groups!r}")
        object.__setattr__(self, "same_object_kinds", tuple(tuple(g) for g in groups))
        bad = {k: v for k, v in dict(self.object_labels).items() if v not in ("person", "animal", "vehicle")}
        if bad:
            raise ConfigError(f"alerts.object_labels: expected values person/animal/vehicle, got {bad}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "AlertPolicyConfig":
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"alerts: expected keys among {sorted(names)}, got unknown {unknown}")
        if "object_labels" in data:
            data["object_labels"] = {**DEFAULT_OBJECT_LABELS, **dict(data["object_labels"])}
        return cls(**data)


@dataclass
class _Tracked:
    alert_id: str
    kind: AlertKind
    revision: int = 0            # last emitted revision (0: never emitted)
    last_emit_ns: int | None = None
    area_m2: float = 0.0
    lat_deg: float = 0.0
    lon_deg: float = 0.0
    last_seen_ns: int = 0


class AlertPolicy:
    """Turns zones, tracked obstacles, corrections and link/camera state into alerts."""

    def __init__(self, flight_id: str, config: AlertPolicyConfig | None = None, *,
                 field_boundary_latlon: Iterable[tuple[float, float]] | None = None) -> None:
        if not flight_id or "/" in flight_id:
            raise ConfigError(f"flight_id: expected a non-empty id without '/', got {flight_id!r}")
        self.flight_id = flight_id
        self.config = config or AlertPolicyConfig()
        self._field = None
        if field_boundary_latlon is not None:
            from shapely.geometry import Polygon

            self._field = Polygon([(lon, lat) for lat, lon in field_boundary_latlon])
        self._tracked: dict[str, _Tracked] = {}          # alert_id -> state
        self._zone_alert: dict[str, str] = {}            # zone id -> alert id
        self._track_alert: dict[tuple[str, int], str] = {}  # (kind, track id) -> alert id
        self._track_kind: dict[int, tuple[AlertKind, str]] = {}  # track id -> (kind, label) it was alerted as
        self._buildings: dict[int, tuple[float, float, float]] = {}  # track id -> (east, north, radius) m
        self._queue: dict[str, Alert] = {}               # alert_id -> newest not-yet-emitted version
        self._tokens = float(self.config.burst)
        self._tokens_ns: int | None = None
        self._episode: dict[AlertKind, int] = {}
        self._active: set[AlertKind] = set()             # events in progress (stopped, link lost, camera lost)
        self.deferred = 0                                # how many times something had to wait

    def key(self, kind: AlertKind, ref: str) -> str:
        return f"{self.flight_id}/{kind.value}/{ref}"

    # -- inputs ------------------------------------------------------------------------------------------------------

    def on_zones(self, zones: Iterable[Any], now_ns: int, thumbnails: Mapping[str, bytes] | None = None, *,
                 final: bool = False) -> list[Alert]:
        """Zones from :meth:`agridrone.fieldmap.FieldMap.zones`. ``final`` (end of the survey): every alerted zone
        whose area changed at all since its last alert gets a last update, whatever the growth fraction."""
        cfg = self.config
        growth = 0.0 if final else cfg.zone_growth_fraction
        thumbnails = thumbnails or {}
        for z in zones:
            kind = ZONE_KINDS.get(z.label)
            if kind is None:
                continue
            alert_id = self._zone_alert.get(z.zone_id)
            if alert_id is None:  # did it swallow an alerted zone? keep that alert
                alert_id = next((self._zone_alert[m] for m in z.merged_ids if m in self._zone_alert), None)
            st = self._tracked.get(alert_id) if alert_id else None
            if st is None and not (self._zone_ready(z, now_ns, final) and self._zone_worth_alerting(z, kind)):
                continue
            newly_merged = [m for m in z.merged_ids if m in self._zone_alert and self._zone_alert[m] != alert_id]
            grown = z.area_m2 > st.area_m2 * (1 + growth) if st is not None else True
            if st is not None and not grown and not newly_merged:
                continue
            if st is None:
                alert_id = alert_id or self.key(kind, z.zone_id)
                st = self._tracked[alert_id] = _Tracked(alert_id, kind)
            self._zone_alert[z.zone_id] = alert_id
            for m in newly_merged:  # the swallowed zone's alert says where it went, once
                old = self._tracked[self._zone_alert[m]]
                self._zone_alert[m] = alert_id
                self._enqueue(old, now_ns, label=z.label, confidence=z.confidence, lat=old.lat_deg, lon=old.lon_deg,
                              text=f"{z.label} zone merged into {z.zone_id}", area_m2=old.area_m2,
                              properties={"merged_into": alert_id, "zone_id": m})
            st.area_m2 = z.area_m2
            st.lat_deg, st.lon_deg = z.centroid_lat_deg, z.centroid_lon_deg
            polygon = tuple(self._zone_polygon_latlon(z))
            self._enqueue(st, now_ns, label=z.label, confidence=z.confidence, lat=z.centroid_lat_deg,
                          lon=z.centroid_lon_deg, area_m2=z.area_m2, polygon=polygon,
                          text=f"{'Weeds' if kind is AlertKind.WEEDS else 'Stressed crop'} {z.area_m2:.0f} m2",
                          thumbnail=thumbnails.get(z.zone_id, b""),
                          properties={"zone_id": z.zone_id, "mean_indices": dict(z.mean_indices),
                                      "cells": z.cells, "looks": z.looks})
        return self.tick(now_ns)

    def on_obstacles(self, obstacles: Iterable[Obstacle], now_ns: int,
                     thumbnails: Mapping[int, bytes] | None = None) -> list[Alert]:
        """Tracked objects: a person, animal or vehicle confirmed in the field is alerted once."""
        cfg = self.config
        thumbnails = thumbnails or {}
        obstacles = list(obstacles)
        for b in obstacles:   # buildings do not move: every one confirmed in this flight is kept
            if b.confirmed and b.label == "building":
                self._buildings[b.track_id] = (b.east_m, b.north_m, b.radius_m)
        buildings = list(self._buildings.values())
        for ob in obstacles:
            category = cfg.object_labels.get(ob.label.lower())
            if category is None or not ob.confirmed or ob.confidence < cfg.min_object_confidence \
                    or ob.hits < cfg.object_min_hits:
                continue
            if not self._in_field(ob.lat_deg, ob.lon_deg):
                continue
            if ob.track_id not in self._track_kind and ob.hits < cfg.object_settle_hits and \
                    len({cfg.object_labels.get(lb.lower(), lb) for lb in ob.all_labels}) > 1:
                continue   # not sure yet what it is: a few more sightings settle the vote
            if ob.track_id not in self._track_kind and category == "vehicle" and any(
                    math.hypot(ob.east_m - e, ob.north_m - n) <= r + cfg.vehicle_at_building_m for e, n, r in buildings):
                continue
            kind, label = self._track_kind.get(ob.track_id, (AlertKind(category), ob.label))
            # when the camera last saw it: the loop also lists obstacles it only remembers (out of view), and
            # those must not make a new track of the same object look like a second one standing beside it
            seen_ns = _seen_ns(ob, now_ns)
            st = self._object_state(kind, ob.track_id, ob.lat_deg, ob.lon_deg, seen_ns)
            if st.kind is not kind:   # an object already alerted under a kin kind: the same one
                kind, label = st.kind, st.kind.value
            self._track_kind.setdefault(ob.track_id, (kind, label))
            relabelled = self._relabel(st, ob, category)
            if relabelled:
                kind, label = st.kind, ob.label
            category = kind.value
            moved = _dist_m(st.lat_deg, st.lon_deg, ob.lat_deg, ob.lon_deg)
            st.last_seen_ns = max(st.last_seen_ns, seen_ns)
            if st.revision and moved < cfg.object_move_update_m and st.alert_id not in self._queue and not relabelled:
                continue
            if not st.revision or moved >= cfg.object_move_update_m:
                st.lat_deg, st.lon_deg = ob.lat_deg, ob.lon_deg
            self._enqueue(st, now_ns, label=label, confidence=ob.confidence, lat=st.lat_deg, lon=st.lon_deg,
                          text=f"{category.capitalize()} in field ({label})",
                          thumbnail=thumbnails.get(ob.track_id, b""),
                          properties={"track_id": ob.track_id, "moving": ob.moving,
                                      **({"relabelled_from": relabelled} if relabelled else {})})
        return self.tick(now_ns)

    def _relabel(self, st: _Tracked, ob: Obstacle, category: str) -> str:
        """An alerted object whose track has long and clearly said a kin kind (``object_relabel_hits``,
        ``object_relabel_share``) is revised to that kind; returns the kind it was, or "" when nothing changed."""
        cfg = self.config
        if not st.revision or category == st.kind.value or ob.hits < cfg.object_relabel_hits \
                or ob.label_share < cfg.object_relabel_share:
            return ""
        if not any(category in g and st.kind.value in g for g in cfg.same_object_kinds):
            return ""
        was = st.kind.value
        st.kind = AlertKind(category)
        for track_id, (k, _) in list(self._track_kind.items()):
            if self._track_alert.get((k.value, track_id)) == st.alert_id:
                self._track_kind[track_id] = (st.kind, ob.label)
                self._track_alert[(st.kind.value, track_id)] = st.alert_id
        return was

    def on_correction(self, correction: Correction | None, now_ns: int, lat_deg: float, lon_deg: float,
                      obstacles: Mapping[int, Obstacle] | None = None) -> list[Alert]:
        """The avoidance planner's output: obstacles blocking the route, and avoidance stops (HOLD)."""
        obstacles = obstacles or {}
        if correction is None or correction.kind is CorrectionKind.RESUME:
            self._active.discard(AlertKind.AVOIDANCE_STOP)
            return self.tick(now_ns)
        for oid in correction.obstacle_ids:
            ob = obstacles.get(oid)
            lat, lon = (ob.lat_deg, ob.lon_deg) if ob else (lat_deg, lon_deg)
            st = self._object_state(AlertKind.ROUTE_BLOCKED, oid, lat, lon, now_ns,
                                    same_within_m=ob.radius_m if ob else 0.0)
            # when the camera last saw it (as in on_obstacles): the planner also goes round obstacles the loop only
            # remembers, and a remembered one must not make a new track of the same thing look like a second one
            st.last_seen_ns = max(st.last_seen_ns, _seen_ns(ob, now_ns) if ob else now_ns)
            if st.revision or st.alert_id in self._queue:
                continue
            st.lat_deg, st.lon_deg = lat, lon
            label = ob.label if ob else "obstacle"
            self._enqueue(st, now_ns, label=label, confidence=ob.confidence if ob else 1.0, lat=lat, lon=lon,
                          text=f"Route blocked by {label}",
                          properties={"track_id": oid, "correction": correction.kind.value, "side": correction.side})
        if correction.kind is CorrectionKind.HOLD:
            self._event(AlertKind.AVOIDANCE_STOP, True, now_ns, lat_deg, lon_deg,
                        f"Avoidance stop: {correction.reason or 'no way around'}")
        else:
            self._active.discard(AlertKind.AVOIDANCE_STOP)
        return self.tick(now_ns)

    def on_link(self, ok: bool, now_ns: int, lat_deg: float, lon_deg: float) -> list[Alert]:
        self._event(AlertKind.LINK_LOST, not ok, now_ns, lat_deg, lon_deg, "Link to autopilot lost")
        return self.tick(now_ns)

    def on_camera(self, ok: bool, now_ns: int, lat_deg: float, lon_deg: float) -> list[Alert]:
        self._event(AlertKind.CAMERA_LOST, not ok, now_ns, lat_deg, lon_deg, "Camera stopped delivering frames")
        return self.tick(now_ns)

    # -- queue and rate limit ----------------------------------------------------------------------------------------

    def tick(self, now_ns: int) -> list[Alert]:
        """Emit what the rate limit allows now; call every frame (the input methods call it too)."""
        cfg = self.config
        if self._tokens_ns is not None:
            self._tokens = min(float(cfg.burst),
                               self._tokens + (now_ns - self._tokens_ns) / 60e9 * cfg.rate_per_min)
        self._tokens_ns = now_ns
        out: list[Alert] = []
        for alert in sorted(self._queue.values(), key=lambda a: (a.severity, a.revision > 1, a.ts_ns)):
            st = self._tracked[alert.alert_id]
            if st.last_emit_ns is not None and now_ns - st.last_emit_ns < cfg.min_update_interval_s * 1e9:
                self.deferred += 1
                continue
            bypass = alert.severity <= cfg.bypass_severity
            if not bypass and self._tokens < 1.0:
                self.deferred += 1
                continue
            if not bypass:
                self._tokens -= 1.0
            st.revision += 1
            st.last_emit_ns = now_ns
            del self._queue[alert.alert_id]
            out.append(dataclasses.replace(alert, revision=st.revision))
        return out

    @property
    def pending(self) -> int:
        return len(self._queue)

    # -- helpers -----------------------------------------------------------------------------------------------------

    def _enqueue(self, st: _Tracked, now_ns: int, *, label: str, confidence: float, lat: float, lon: float, text: str,
                 area_m2: float = 0.0, polygon: tuple = (), thumbnail: bytes = b"",
                 properties: dict[str, Any] | None = None) -> None:
        queued = self._queue.get(st.alert_id)
        if not thumbnail and queued is not None:
            thumbnail = queued.thumbnail_jpeg
        props = {"flight_id": self.flight_id, **(properties or {})}
        self._queue[st.alert_id] = Alert(
            alert_id=st.alert_id, kind=st.kind, severity=SEVERITY[st.kind], ts_ns=int(now_ns), lat_deg=float(lat),
            lon_deg=float(lon), label=label, confidence=round(float(confidence), 4), text=text,
            revision=st.revision + 1, area_m2=float(area_m2), polygon=polygon, thumbnail_jpeg=thumbnail,
            properties=props)

    def _object_state(self, kind: AlertKind, track_id: int, lat: float, lon: float, now_ns: int, *,
                      same_within_m: float = 0.0) -> _Tracked:
        """The alert state of ``track_id``: its own, or that of the object it is (see the module docstring).
        ``same_within_m``: closer than this (or ``object_min_separation_m``) to an object seen at the same time
        it is that object all the same (a blocking tree's radius: a centre inside its disc is the tree)."""
        alert_id = self._track_alert.get((kind.value, track_id))
        if alert_id is None:  # the same object under a new track id?
            separation_m = max(self.config.object_min_separation_m, same_within_m)
            memory_ns = self.config.object_memory_s * 1e9
            kin = {kind.value}.union(*(g for g in self.config.same_object_kinds if kind.value in g))
            near = [st for st in self._tracked.values()
                    if st.kind.value in kin and (st.revision or st.alert_id in self._queue)
                    and now_ns - st.last_seen_ns <= memory_ns
                    and _dist_m(st.lat_deg, st.lon_deg, lat, lon) <= self.config.object_same_radius_m
                    and (st.alert_id not in {a for (k, t), a in self._track_alert.items() if k in kin
                                             and t != track_id and self._recent(a, now_ns)}
                         or _dist_m(st.lat_deg, st.lon_deg, lat, lon) < separation_m)]
            if near:
                alert_id = min(near, key=lambda s: _dist_m(s.lat_deg, s.lon_deg, lat, lon)).alert_id
            else:
                alert_id = self.key(kind, f"track-{track_id}")
                self._tracked[alert_id] = _Tracked(alert_id, kind, lat_deg=lat, lon_deg=lon, last_seen_ns=now_ns)
            self._track_alert[(kind.value, track_id)] = alert_id
        return self._tracked[alert_id]

    def _recent(self, alert_id: str, now_ns: int) -> bool:
        """Is the object behind ``alert_id`` still being seen (under its own track) right now?"""
        return now_ns - self._tracked[alert_id].last_seen_ns < 1e9

    def _event(self, kind: AlertKind, active: bool, now_ns: int, lat: float, lon: float, text: str) -> None:
        if not active:
            self._active.discard(kind)
            return
        if kind in self._active:
            return
        self._active.add(kind)
        n = self._episode[kind] = self._episode.get(kind, 0) + 1
        alert_id = self.key(kind, str(n))
        st = self._tracked[alert_id] = _Tracked(alert_id, kind, lat_deg=lat, lon_deg=lon, last_seen_ns=now_ns)
        self._enqueue(st, now_ns, label=kind.value, confidence=1.0, lat=lat, lon=lon, text=text,
                      properties={"episode": n})

    def zone_candidate(self, zone: Any) -> bool:
        """Would this zone be alerted once ready (and is it not alerted yet)? The flight loop keeps a thumbnail of
        such zones while they are in view: by the time they are ready the camera has usually moved on."""
        kind = ZONE_KINDS.get(zone.label)
        if kind is None or zone.zone_id in self._zone_alert or any(m in self._zone_alert for m in zone.merged_ids):
            return False
        return self._zone_worth_alerting(zone, kind)

    def _zone_worth_alerting(self, zone: Any, kind: AlertKind) -> bool:
        """Confident enough, and large enough inside the field (thresholds of the zone's kind)."""
        cfg = self.config
        threshold = cfg.stressed_min_area_m2 if kind is AlertKind.STRESSED_ZONE else cfg.weeds_min_area_m2
        return zone.confidence >= cfg.min_zone_confidence and self._area_in_field(zone) >= threshold

    def _zone_ready(self, zone: Any, now_ns: int, final: bool) -> bool:
        cfg = self.config
        if zone.looks >= cfg.zone_settled_looks:
            return True
        return zone.looks >= cfg.zone_min_looks and (final or now_ns - zone.last_look_ns >= cfg.zone_settle_s * 1e9)

    def _area_in_field(self, zone: Any) -> float:
        ring = self._zone_polygon_latlon(zone)
        if self._field is None or len(ring) < 3:
            return float(zone.area_m2)
        from shapely.geometry import Polygon

        poly = Polygon([(lon, lat) for lat, lon in ring])
        if not poly.is_valid:
            poly = poly.buffer(0)
        if poly.is_empty or poly.area <= 0:
            return float(zone.area_m2)
        return float(zone.area_m2) * poly.intersection(self._field).area / poly.area

    def _in_field(self, lat: float, lon: float) -> bool:
        if self._field is None:
            return True
        from shapely.geometry import Point

        return self._field.covers(Point(lon, lat))

    @staticmethod
    def _zone_polygon_latlon(zone: Any) -> list[tuple[float, float]]:
        ring = getattr(zone, "polygon_latlon", None)
        return list(ring) if ring else []


def _seen_ns(ob: Obstacle, now_ns: int) -> int:
    """When the camera last saw ``ob`` (never after ``now_ns``; ``now_ns`` when unknown)."""
    return min(int(ob.last_seen_ns), now_ns) if ob.last_seen_ns else now_ns


def _dist_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    from agridrone.geo import distance_m

    return distance_m(lat1, lon1, lat2, lon2)
