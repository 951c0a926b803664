"""Farmer alerts plugged into the flight loop (a :class:`agridrone.pipeline.LoopSink`).

On every frame: the health tiles, projected to the ground with the frame's pose, go into the plant-health
map (``agridrone.fieldmap``); tracked people, animals and vehicles and the planner's corrections go to the
alert policy (``agridrone.alerts.policy``); every few seconds of vehicle time the map's zones do too. Each
alert the policy lets out is committed to the durable outbox in the flight folder (``outbox.sqlite``) and
delivered from there: STATUSTEXT over the vehicle link always, MQTT when ``--mqtt`` names a broker. Loop
events (link lost, camera lost) become alerts as well. At the end: the health map as GeoJSON
(``healthmap.geojson``), the alerts as GeoJSON (``alerts.geojson``), and the outbox is drained for a few
seconds. Alerts about an object or a zone in view carry a JPEG thumbnail cut from the frame (saved under
``thumbs/`` and referenced by the outbox record and the MQTT payload).

:class:`FlightRecordSink` writes the rest of the flight folder (layout in ``agridrone.flightlog``) as the
flight goes: ``flight.json`` at the start, the autopilot's MAVLink messages to ``telemetry.tlog`` (the
format ground stations open), and the loop's per-stage latency to ``latency.json`` every few seconds.
"""

from __future__ import annotations

import time
from collections import ChainMap
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from agridrone.flightlog import FlightFolder, atomic_write_json, jpeg_thumbnail
from agridrone.pipeline_commander import LoopEvent

ZONES_EVERY_S = 5.0
THUMB_HALF_PX = 40        # an object's thumbnail: this many pixels round the point where it stands, at least
THUMB_EVERY_S = 2.0       # vehicle seconds between new thumbnails of the same object
MIN_MAP_HEIGHT_M = 2.0    # health tiles of frames taken lower than this (take-off, landed) are not mapped
LATENCY_EVERY_S = 5.0     # wall seconds between rewrites of latency.json


class _OnDemand(Mapping):
    """A read-only mapping whose values ``make(item)`` computes on first access (empty results are absent)."""

    def __init__(self, make, items: dict) -> None:
        self._make, self._items, self._done = make, items, {}

    def __getitem__(self, key):
        if key not in self._done:
            self._done[key] = self._make(self._items[key])
        if not self._done[key]:
            raise KeyError(key)
        return self._done[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class AlertsSink:
    def __init__(self, out_dir: Path, compiled, vehicle, camera_factory, *, flight_id: str,
                 mqtt_url: str | None = None, drone: str = "drone1") -> None:
        from agridrone.alerts.outbox import Outbox
        from agridrone.alerts.policy import AlertPolicy, AlertPolicyConfig
        from agridrone.alerts.statustext import StatusTextSink
        from agridrone.fieldmap import FieldMap

        m = compiled.mission
        self.frame = compiled.plan.frame
        self.out_dir = Path(out_dir)
        self.camera_factory = camera_factory
        self.fieldmap = FieldMap.for_field(self.frame, m.boundary, cell_m=2.0)
        cfg = AlertPolicyConfig(stressed_min_area_m2=float(m.alerts.min_stressed_area_m2),
                                weeds_min_area_m2=float(m.alerts.min_stressed_area_m2))
        self.policy = AlertPolicy(flight_id, cfg, field_boundary_latlon=m.boundary)
        self.problems: list[str] = []
        sinks = [StatusTextSink(getattr(vehicle, "send_statustext", None))]
        if mqtt_url:
            from agridrone.alerts.mqtt import MqttSink, parse_mqtt_url

            sinks.append(MqttSink(parse_mqtt_url(mqtt_url), farm="farm", field=m.name, drone=drone,
                                  report=self._report).start())
        self.folder = FlightFolder(self.out_dir)
        (self.out_dir / FlightFolder.THUMBS).mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(self.folder.outbox_path, sinks, report=self._report)
        self.outbox.start()
        self._thumbs: dict[int, tuple[int, bytes]] = {}  # track id -> (vehicle ns, JPEG)
        self.alerts = 0
        self._projector = None
        self._zones_at_ns: int | None = None
        self._zone_thumbs: dict[str, bytes] = {}   # zone id -> JPEG from when it was last in view
        self._last_pos = (m.home_lat_deg, m.home_lon_deg)
        self._last_ns = 0

    def _report(self, code: str, message: str) -> None:
        self.problems.append(f"{code}: {message}")

    def _commit(self, alerts) -> None:
        for alert in alerts:
            try:
                self.folder.add_alert(self.outbox, alert)  # thumbnail file (if any), then the outbox commit
            except OSError as err:  # the thumbnail could not be written (disk full...): the alert still goes out
                self._report("thumbnail", f"could not save the thumbnail of {alert.alert_id}: {err}")
                self.outbox.add(alert)
            self.alerts += 1

    def _pixel(self, pose, lat_deg: float, lon_deg: float, size_wh) -> tuple[float, float] | None:
        u, v = self._projector.ground_to_pixel(pose, lat_deg, lon_deg)
        u, v = float(u), float(v)
        if not (np.isfinite(u) and np.isfinite(v)) or not (0 <= u < size_wh[0] and 0 <= v < size_wh[1]):
            return None
        return u, v

    def _thumbnail(self, image, uv, half_px: float) -> bytes:
        h, w = image.shape[:2]
        half = float(min(max(half_px, THUMB_HALF_PX), max(w, h) / 2))
        u, v = uv
        box = (max(0.0, u - half), max(0.0, v - half), min(float(w), u + half), min(float(h), v + half))
        try:
            return jpeg_thumbnail(image, box, margin=0.0)
        except ValueError:
            return b""

    def _object_thumbnails(self, r) -> dict[int, bytes]:
        """A thumbnail per tracked person/animal/vehicle seen in this frame (renewed every THUMB_EVERY_S)."""
        out: dict[int, bytes] = {}
        size = (r.frame.image.shape[1], r.frame.image.shape[0])
        for ob in r.obstacles:
            if ob.label.lower() not in self.policy.config.object_labels:
                continue
            old = self._thumbs.get(ob.track_id)
            if old is None or (ob.last_seen_ns >= r.ts_ns and r.ts_ns - old[0] >= THUMB_EVERY_S * 1e9):
                uv = self._pixel(r.pose, ob.lat_deg, ob.lon_deg, size)
                jpeg = self._thumbnail(r.frame.image, uv, 3 * ob.radius_m * self._px_per_m(r.pose)) if uv else b""
                if jpeg:
                    self._thumbs[ob.track_id] = old = (r.ts_ns, jpeg)
            if old is not None:
                out[ob.track_id] = old[1]
        if len(self._thumbs) > 512:  # forget the oldest
            for tid, _ in sorted(self._thumbs.items(), key=lambda kv: kv[1][0])[:256]:
                del self._thumbs[tid]
        return out

    def _zone_thumbnails(self, r, zones) -> "_OnDemand":
        """Thumbnails of the zones in view, each made when the policy asks for it: a field can hold a hundred
        zones, of which the policy alerts a few."""
        size = (r.frame.image.shape[1], r.frame.image.shape[0])
        ppm = self._px_per_m(r.pose)

        def make(z) -> bytes:
            uv = self._pixel(r.pose, z.centroid_lat_deg, z.centroid_lon_deg, size)
            return self._thumbnail(r.frame.image, uv, 0.75 * np.sqrt(max(z.area_m2, 1.0)) * ppm) if uv else b""

        return _OnDemand(make, {z.zone_id: z for z in zones if z.label in ("stressed", "weeds")})

    def _px_per_m(self, pose) -> float:
        """Ground scale at the image centre (pixels per metre), from the vehicle's height above home."""
        return float(self._projector.camera.fx_px) / max(float(pose.alt_rel_home_m or 0.0), 1.0)

    def on_frame(self, r) -> None:
        from agridrone.fieldmap import GroundHealthObservation

        self._last_pos, self._last_ns = (r.pose.lat_deg, r.pose.lon_deg), r.ts_ns
        h, w = r.frame.image.shape[:2]
        if self._projector is None or (self._projector.camera.width_px, self._projector.camera.height_px) != (w, h):
            self._projector = self.camera_factory((w, h))
        if r.tiles and r.pose.alt_rel_home_m > MIN_MAP_HEIGHT_M:   # on the ground the tiles show nothing to place
            pe, pn, _ = self.frame.to_enu(r.pose.lat_deg, r.pose.lon_deg)
            for t in r.tiles:
                x1, y1, x2, y2 = t.box_xyxy
                north, east = self._projector.ground_offsets_m(r.pose, np.array([x1, x2, x2, x1], float),
                                                               np.array([y1, y1, y2, y2], float))
                if not (np.all(np.isfinite(north)) and np.all(np.isfinite(east))):
                    continue
                poly = tuple((float(pe + e), float(pn + n)) for e, n in zip(east, north))
                self.fieldmap.add(GroundHealthObservation(t.label, float(t.probability), r.ts_ns, polygon_enu=poly,
                                                          indices=dict(t.indices)))
        obstacles = {o.track_id: o for o in r.obstacles}
        self._commit(self.policy.on_obstacles(r.obstacles, r.ts_ns, self._object_thumbnails(r)))
        self._commit(self.policy.on_correction(r.correction, r.ts_ns, r.pose.lat_deg, r.pose.lon_deg, obstacles))
        if self._zones_at_ns is None or r.ts_ns - self._zones_at_ns >= ZONES_EVERY_S * 1e9:
            self._zones_at_ns = r.ts_ns
            zones = self.fieldmap.zones(r.ts_ns)
            in_view = self._zone_thumbnails(r, zones)
            for z in zones:  # the newest view of each zone that will be alerted once seen enough
                if self.policy.zone_candidate(z) and in_view.get(z.zone_id):
                    self._zone_thumbs[z.zone_id] = in_view[z.zone_id]
            self._commit(self.policy.on_zones(zones, r.ts_ns, ChainMap(in_view, self._zone_thumbs)))

    def on_event(self, e: LoopEvent) -> None:
        lat, lon = self._last_pos
        if e.kind in ("link_lost", "link_recovered"):
            self._commit(self.policy.on_link(e.kind == "link_recovered", e.ts_ns, lat, lon))
        elif e.kind in ("camera_lost", "camera_recovered"):
            self._commit(self.policy.on_camera(e.kind == "camera_recovered", e.ts_ns, lat, lon))

    def close(self) -> None:
        try:
            now = self._last_ns
            self._commit(self.policy.on_zones(self.fieldmap.zones(now), now, self._zone_thumbs, final=True))
            deadline = time.monotonic() + 5.0
            while self.policy.pending and time.monotonic() < deadline:  # what the rate limit held back
                now += int(5e9)
                self._commit(self.policy.tick(now))
            self.folder.write_health_map(self.fieldmap.to_geojson())
            deadline = time.monotonic() + 5.0
            while self.outbox.pending() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            self.outbox.close()
        try:
            self.folder.export_alerts()
        except Exception as err:  # noqa: BLE001 - the outbox itself is the record; the export is a convenience
            self._report("alerts_geojson", f"could not write alerts.geojson: {err}")


class FlightRecordSink:
    """flight.json, telemetry.tlog and latency.json of the flight folder, written as the flight goes."""

    def __init__(self, out_dir: Path, vehicle, *, meta: dict, latency=None) -> None:
        self.folder = FlightFolder(out_dir)
        self.folder.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.folder.path / FlightFolder.META, {**meta, "started_unix_s": round(time.time(), 3)})
        self._latency = latency  # callable -> {stage: stats}
        self._latency_at = 0.0
        self.problems: list[str] = []
        self._link = getattr(vehicle, "link", None)
        if self._link is not None and hasattr(self._link, "add_handler"):
            self._link.add_handler(self._on_message)

    def _on_message(self, msg, ts_ns: int) -> None:  # on the link's reader thread
        try:
            self.folder.write_telemetry(msg.get_msgbuf(), time.time_ns() // 1000)
        except (OSError, ValueError) as err:
            if not self.problems:  # said once, not per message
                self.problems.append(f"tlog: {err}")

    def on_frame(self, r) -> None:
        now = time.monotonic()
        if self._latency is not None and now - self._latency_at >= LATENCY_EVERY_S:
            self._latency_at = now
            self._write_latency()

    def on_event(self, e: LoopEvent) -> None:
        pass

    def _write_latency(self) -> None:
        try:
            self.folder.write_latency(self._latency())
        except OSError as err:
            self.problems.append(f"latency.json: {err}")

    def close(self) -> None:
        if self._link is not None and hasattr(self._link, "remove_handler"):
            self._link.remove_handler(self._on_message)
        if self._latency is not None:
            self._write_latency()
        self.folder.close()
