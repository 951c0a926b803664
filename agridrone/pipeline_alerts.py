"""Farmer alerts plugged into the flight loop (a :class:`agridrone.pipeline.LoopSink`).

On every frame: the health tiles, projected to the ground with the frame's pose, go into the plant-health
map (``agridrone.fieldmap``); tracked people, animals and vehicles and the planner's corrections go to the
alert policy (``agridrone.alerts.policy``); every few seconds of vehicle time the map's zones do too. Each
alert the policy lets out is committed to the durable outbox in the flight folder (``outbox.sqlite``) and
delivered from there: STATUSTEXT over the vehicle link always, MQTT when ``--mqtt`` names a broker. Loop
events (link lost, camera lost) become alerts as well. At the end: the health map as GeoJSON
(``healthmap.geojson``), and the outbox is drained for a few seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from agridrone.pipeline_commander import LoopEvent

ZONES_EVERY_S = 5.0


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
        self.outbox = Outbox(self.out_dir / "outbox.sqlite", sinks, report=self._report)
        self.outbox.start()
        self.alerts = 0
        self._projector = None
        self._zones_at_ns: int | None = None
        self._last_pos = (m.home_lat_deg, m.home_lon_deg)
        self._last_ns = 0

    def _report(self, code: str, message: str) -> None:
        self.problems.append(f"{code}: {message}")

    def _commit(self, alerts) -> None:
        for alert in alerts:
            self.outbox.add(alert)
            self.alerts += 1

    def on_frame(self, r) -> None:
        from agridrone.fieldmap import GroundHealthObservation

        self._last_pos, self._last_ns = (r.pose.lat_deg, r.pose.lon_deg), r.ts_ns
        if r.tiles:
            h, w = r.frame.image.shape[:2]
            if self._projector is None or (self._projector.camera.width_px, self._projector.camera.height_px) != (w, h):
                self._projector = self.camera_factory((w, h))
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
        self._commit(self.policy.on_obstacles(r.obstacles, r.ts_ns))
        self._commit(self.policy.on_correction(r.correction, r.ts_ns, r.pose.lat_deg, r.pose.lon_deg, obstacles))
        if self._zones_at_ns is None or r.ts_ns - self._zones_at_ns >= ZONES_EVERY_S * 1e9:
            self._zones_at_ns = r.ts_ns
            self._commit(self.policy.on_zones(self.fieldmap.zones(r.ts_ns), r.ts_ns))

    def on_event(self, e: LoopEvent) -> None:
        lat, lon = self._last_pos
        if e.kind in ("link_lost", "link_recovered"):
            self._commit(self.policy.on_link(e.kind == "link_recovered", e.ts_ns, lat, lon))
        elif e.kind in ("camera_lost", "camera_recovered"):
            self._commit(self.policy.on_camera(e.kind == "camera_recovered", e.ts_ns, lat, lon))

    def close(self) -> None:
        try:
            now = self._last_ns
            self._commit(self.policy.on_zones(self.fieldmap.zones(now), now, final=True))
            deadline = time.monotonic() + 5.0
            while self.policy.pending and time.monotonic() < deadline:  # what the rate limit held back
                now += int(5e9)
                self._commit(self.policy.tick(now))
            (self.out_dir / "healthmap.geojson").write_text(json.dumps(self.fieldmap.to_geojson()))
            deadline = time.monotonic() + 5.0
            while self.outbox.pending() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            self.outbox.close()
