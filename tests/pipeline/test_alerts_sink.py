"""The loop's alert sink: loop results become committed, delivered alerts (issue 7's pieces plugged in)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from agridrone.config import AppConfig
from agridrone.mission.compile import compile_mission
from agridrone.mission.loader import load_mission
from agridrone.pipeline import FrameResult
from agridrone.pipeline_alerts import AlertsSink
from agridrone.pipeline_commander import LoopEvent
from agridrone.pipeline_run import flight_context
from agridrone.types import Correction, CorrectionKind, Detections, Frame, Obstacle

from pipeline_fakes import pose_at

MISSION = Path(__file__).resolve().parents[2] / "missions" / "cereal-rectangle.yaml"


class TextVehicle:
    def __init__(self) -> None:
        self.texts: list[tuple[str, int]] = []

    def send_statustext(self, text: str, severity: int = 6) -> None:
        self.texts.append((text, severity))


def test_a_person_in_the_field_and_an_avoidance_stop_reach_the_ground_station_once(tmp_path):
    """A confirmed person inside the field, seen on 5 frames, gives one person alert; a HOLD gives one
    avoidance-stop alert; both are committed to the outbox in the flight folder and sent as STATUSTEXT;
    a lost link is alerted too; the health map is written at the end."""
    compiled = compile_mission(load_mission(MISSION))
    ctx = flight_context(compiled, AppConfig())
    vehicle = TextVehicle()
    sink = AlertsSink(tmp_path, compiled, vehicle, ctx.camera_factory, flight_id="t1")
    frame_enu = compiled.plan.frame
    lat, lon, _ = frame_enu.to_geo(200.0, 100.0, 0.0)  # inside the field
    person = Obstacle(4, "person", float(lat), float(lon), 200.0, 100.0, 0.5, 0.9, 6, 0, 0, confirmed=True)
    img = np.zeros((48, 64, 3), np.uint8)
    hold = Correction(CorrectionKind.HOLD, reason="no way around obstacle(s) [4]", obstacle_ids=(4,))
    for i in range(5):
        ts = (i + 1) * 1_000_000_000
        sink.on_frame(FrameResult(ts, Frame(ts, img), pose_at(float(lat), float(lon), ts), Detections.empty((64, 48)),
                                  (), (), (person,), hold if i == 3 else None))
    sink.on_event(LoopEvent("link_lost", 6_000_000_000, "link lost"))
    sink.close()
    rows = sqlite3.connect(tmp_path / "outbox.sqlite").execute("SELECT kind FROM alerts").fetchall()
    kinds = sorted(k for (k,) in rows)
    assert kinds.count("person") == 1 and kinds.count("avoidance_stop") == 1 and kinds.count("link_lost") == 1, kinds
    assert len(vehicle.texts) == len(rows)
    assert (tmp_path / "healthmap.geojson").is_file()
    # the person stood below the camera: their alert carries a JPEG cut from the frame, saved in the folder
    thumbs = sqlite3.connect(tmp_path / "outbox.sqlite").execute(
        "SELECT thumbnail, thumbnail_file FROM alerts WHERE kind = 'person'").fetchall()
    assert thumbs and thumbs[0][0][:2] == b"\xff\xd8" and thumbs[0][1].startswith("thumbs/")
    assert (tmp_path / thumbs[0][1]).read_bytes() == thumbs[0][0]
    features = json.loads((tmp_path / "alerts.geojson").read_text())["features"]
    assert sorted(f["properties"]["kind"] for f in features) == kinds


def test_a_weed_patch_under_the_camera_on_two_frames_is_alerted_once_with_its_thumbnail(tmp_path):
    """Three frames whose centre tiles say weeds (the rest healthy): one weeds alert, committed with a JPEG of the
    patch cut from the frame while it was in view; the zones the policy would not alert get no thumbnail made."""
    from agridrone.types import HealthTile

    compiled = compile_mission(load_mission(MISSION))
    sink = AlertsSink(tmp_path, compiled, TextVehicle(), flight_context(compiled, AppConfig()).camera_factory,
                      flight_id="t2")
    made = []
    real = sink._thumbnail
    sink._thumbnail = lambda *a: made.append(a[1]) or real(*a)
    lat, lon, _ = compiled.plan.frame.to_geo(200.0, 100.0, 0.0)
    img = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    tiles = tuple(HealthTile(r, c, (c * 80, r * 80, (c + 1) * 80, (r + 1) * 80), 2 if 2 <= r <= 3 and 3 <= c <= 4
                             else 0, "weeds" if 2 <= r <= 3 and 3 <= c <= 4 else "healthy", 0.9)
                  for r in range(6) for c in range(8))
    for i in range(3):
        ts = (i + 1) * 6_000_000_000        # zones are made every 5 s of vehicle time
        sink.on_frame(FrameResult(ts, Frame(ts, img), pose_at(float(lat), float(lon), ts), Detections.empty((640, 480)),
                                  (), tiles, (), None))
    sink.close()
    rows = sqlite3.connect(tmp_path / "outbox.sqlite").execute(
        "SELECT kind, thumbnail FROM alerts WHERE kind = 'weeds'").fetchall()
    assert len(rows) == 1 and rows[0][1][:2] == b"\xff\xd8", rows
    # the zone is alerted at the survey's end (three looks; nothing newer came), long after it was in view: the
    # JPEG was cut while it was, once per map update, and only for it
    assert len(made) == 2 and len(set(made)) == 1


def test_frames_taken_on_the_ground_map_no_crop_and_still_alert_objects(tmp_path):
    """Frames at take-off or after landing (camera at ground level) hold health tiles that look at nothing
    the map can place: they are left out of the map, and the frame's objects are still alerted (a flight
    raised 'camera above the ground' from the sink on every such frame and lost their alerts)."""
    from agridrone.types import HealthTile

    compiled = compile_mission(load_mission(MISSION))
    sink = AlertsSink(tmp_path, compiled, TextVehicle(), flight_context(compiled, AppConfig()).camera_factory,
                      flight_id="t3")
    lat, lon, _ = compiled.plan.frame.to_geo(200.0, 100.0, 0.0)
    img = np.zeros((480, 640, 3), np.uint8)
    tiles = tuple(HealthTile(r, c, (c * 80, r * 80, (c + 1) * 80, (r + 1) * 80), 2, "weeds", 0.9)
                  for r in range(6) for c in range(8))
    person = Obstacle(4, "person", float(lat), float(lon), 200.0, 100.0, 0.5, 0.9, 6, 0, 0, confirmed=True)
    for i in range(3):
        ts = (i + 1) * 6_000_000_000
        sink.on_frame(FrameResult(ts, Frame(ts, img), pose_at(float(lat), float(lon), ts, alt_m=0.0),
                                  Detections.empty((640, 480)), (), tiles, (person,), None))
    sink.close()
    kinds = [k for (k,) in sqlite3.connect(tmp_path / "outbox.sqlite").execute("SELECT kind FROM alerts")]
    assert kinds == ["person"], kinds
