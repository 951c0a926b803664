"""Stage-boundary types refuse malformed values with 'expected ..., got ...'."""

import numpy as np
import pytest

from agridrone.types import Alert, AlertKind, Detections, Frame, GeoPoint, HealthTile, MissionItem, MissionType


def test_geopoint_rejects_swapped_coordinates():
    with pytest.raises(ValueError, match="lat_deg: expected -90..90, got 149"):
        GeoPoint(149.16, -35.36)


def test_mission_item_keeps_wire_integers():
    item = MissionItem.at(16, -35.3632611, 149.1652301, 20.0)
    assert (item.x, item.y) == (-353632611, 1491652301)
    assert item.lat_deg == pytest.approx(-35.3632611)
    assert item.mission_type is MissionType.MISSION
    with pytest.raises(ValueError, match="int32"):
        MissionItem(command=16, x=2**31)


def test_frame_checks_dtype_and_channels():
    Frame(0, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        Frame(0, np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="channels"):
        Frame(0, np.zeros((4, 4, 2), np.uint8))


def test_detections_are_read_only_and_consistent():
    d = Detections([[1, 2, 3, 4]], [0], [0.9], ("tree",), (10, 10))
    assert len(d) == 1 and d.to_dicts()[0]["label"] == "tree"
    with pytest.raises(ValueError):
        d.boxes_xyxy[0, 0] = 5
    with pytest.raises(ValueError, match="as many boxes"):
        Detections([[1, 2, 3, 4]], [0, 1], [0.9])
    assert len(Detections.empty()) == 0


def test_health_tile_and_alert_validation():
    with pytest.raises(ValueError, match="probability"):
        HealthTile(0, 0, (0, 0, 8, 8), 0, "healthy", 1.5)
    with pytest.raises(ValueError, match="severity"):
        Alert("a", AlertKind.WEEDS, 9, 0, 0.0, 0.0, "weeds", 0.9, "x")
