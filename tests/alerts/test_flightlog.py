"""The flight folder: a .tlog pymavlink reads, append-only JSON lines, atomic JSON files, thumbnails."""

from __future__ import annotations

import json
import os

import pytest
from pymavlink.dialects.v20 import ardupilotmega as mav2

from agridrone.flightlog import (FlightFolder, TlogWriter, atomic_write_json, jpeg_thumbnail,
                                 read_jsonl)


def _packets():
    enc = mav2.MAVLink(None, srcSystem=1, srcComponent=1)
    enc.robust_parsing = True
    hb = enc.heartbeat_encode(2, 3, 0x81, 4, 4).pack(enc)
    pos = enc.global_position_int_encode(1000, -353632610, 1491652300, 600000, 15000, 10, -20, 0, 9000).pack(enc)
    st = enc.statustext_encode(4, b"WEEDS 42m2 -35.363261,149.165230").pack(enc)
    return [hb, pos, st]


def test_tlog_is_readable_by_pymavlink(tmp_path):
    """Records written as 8-byte big-endian microseconds + raw packet come back from
    mavutil.mavlink_connection with their messages and timestamps."""
    from pymavlink import mavutil

    path = tmp_path / "telemetry.tlog"
    t0_us = 1_764_093_600_000_000
    with TlogWriter(path) as tlog:
        for i, pkt in enumerate(_packets()):
            tlog.write(pkt, t0_us + i * 250_000)
    conn = mavutil.mavlink_connection(str(path), dialect="ardupilotmega")
    got = []
    while True:
        msg = conn.recv_match(blocking=False)
        if msg is None:
            break
        got.append((msg.get_type(), round(msg._timestamp, 3)))
    conn.close()
    assert got == [("HEARTBEAT", 1_764_093_600.0), ("GLOBAL_POSITION_INT", 1_764_093_600.25),
                   ("STATUSTEXT", 1_764_093_600.5)]


def test_tlog_rejects_what_is_not_a_packet(tmp_path):
    with TlogWriter(tmp_path / "t.tlog") as tlog:
        with pytest.raises(ValueError, match="expected a raw MAVLink packet"):
            tlog.write(b"hello world", 1)
        with pytest.raises(ValueError, match="unix_us"):
            tlog.write(_packets()[0], -5)


def test_flight_folder_survives_a_torn_write(tmp_path):
    """Everything written before a power loss is readable: a half-written last JSON line is skipped, JSON files are
    whole, the tlog holds every complete record."""
    folder = FlightFolder.create(tmp_path, "F20261125-01", meta={"farm": "green"})
    for i in range(3):
        folder.write_detection({"frame": i, "boxes": [[1, 2, 3, 4]]})
        folder.write_telemetry(_packets()[0], 1_000_000 + i)
    from agridrone.pipeline_parts import LatencyBook

    book = LatencyBook()
    book.add("detector", 12_000_000)
    book.add("detector", 20_000_000)
    folder.write_latency(book.stats())
    rel = folder.save_thumbnail("F1/weeds/weeds-1#2", b"\xff\xd8\xff\xe0jpegdata")
    folder.write_health_map({"type": "FeatureCollection", "features": []})
    # power loss: no close(); the last detection line was being written
    with open(folder.path / FlightFolder.DETECTIONS, "a") as fh:
        fh.write('{"frame": 3, "bo')
    assert [r["frame"] for r in read_jsonl(folder.path / FlightFolder.DETECTIONS)] == [0, 1, 2]
    assert json.loads((folder.path / "flight.json").read_text()) == {"flight_id": "F20261125-01", "farm": "green"}
    lat = json.loads((folder.path / "latency.json").read_text())["detector"]
    assert lat["count"] == 2 and lat["mean_ms"] == 16.0 and lat["max_ms"] == 20.0
    assert rel == "thumbs/F1_weeds_weeds-1_2.jpg" and (folder.path / rel).read_bytes().startswith(b"\xff\xd8")
    assert (folder.path / FlightFolder.TLOG).stat().st_size == 3 * (8 + len(_packets()[0]))
    folder.close()


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "doc.json"
    atomic_write_json(path, {"v": 1})

    def boom(*a, **k):
        raise OSError("power loss")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["doc.json"]


def test_latency_percentiles():
    from agridrone.pipeline_parts import LatencyBook

    stats = LatencyBook(window=100)
    for ms in range(1, 201):
        stats.add("health", ms * 1_000_000)
    d = stats.stats()["health"]
    assert d["count"] == 200 and d["max_ms"] == 200.0 and d["mean_ms"] == 100.5
    assert d["p50_ms"] == pytest.approx(150.5)  # over the last 100 samples (101..200)


def test_bad_flight_id(tmp_path):
    with pytest.raises(ValueError, match="flight_id"):
        FlightFolder.create(tmp_path, "../escape")


def test_jpeg_thumbnail_crops_around_the_box():
    import cv2
    import numpy as np

    img = np.zeros((480, 640, 4), np.uint8)
    img[200:260, 300:340] = (0, 0, 255, 9)   # a red object, with a NIR channel
    jpeg = jpeg_thumbnail(img, (300, 200, 340, 260), max_side_px=64)
    assert jpeg.startswith(b"\xff\xd8")
    thumb = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert max(thumb.shape[:2]) == 64 and thumb.shape[0] > thumb.shape[1]  # 90 x 60 px crop, scaled down
    assert thumb[32, 21, 2] > 200 and thumb[32, 21, 0] < 60                 # the middle is the red object
    with pytest.raises(ValueError, match="box_xyxy"):
        jpeg_thumbnail(img, (700, 500, 800, 600))
    with pytest.raises(ValueError, match="uint8"):
        jpeg_thumbnail(np.zeros((4, 4), np.float32))
