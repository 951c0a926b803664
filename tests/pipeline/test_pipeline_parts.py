"""The loop's parts alone: pose history at frame time, projection wiring, static memory, config file."""

from __future__ import annotations


import math

import numpy as np
import pytest

from agridrone.config import AppConfig, default_config_path, load_config
from agridrone.errors import ConfigError
from agridrone.geo import CameraModel, CameraMount, LocalFrame, Projector, offset_deg
from agridrone.pipeline_parts import ObstacleMemory, PoseHistory, TimeScale, project_detections
from agridrone.types import Detections, Obstacle

from pipeline_fakes import pose_at

LAT, LON = 52.0712, 11.3551


def test_pose_history_interpolates_between_poses_and_dead_reckons_past_the_newest():
    """A frame between two telemetry poses gets the pose in between; past the newest one, the newest
    moved along its velocity (bounded); too far from any pose: None (the frame is skipped)."""
    h = PoseHistory(history_ns=5_000_000_000, max_extrapolation_ns=500_000_000)
    lat1, lon1 = offset_deg(LAT, LON, 0.0, 10.0)
    h.add(pose_at(LAT, LON, 1_000_000_000, ve=10.0))
    h.add(pose_at(lat1, lon1, 2_000_000_000, ve=10.0))
    frame = LocalFrame(LAT, LON)
    mid = h.at(1_500_000_000)
    e, n, _ = frame.to_enu(mid.lat_deg, mid.lon_deg)
    assert e == pytest.approx(5.0, abs=0.01) and n == pytest.approx(0.0, abs=0.01)
    ahead = h.at(2_300_000_000)
    e, _, _ = frame.to_enu(ahead.lat_deg, ahead.lon_deg)
    assert e == pytest.approx(13.0, abs=0.01)
    assert h.at(2_600_000_000) is None
    assert h.at(100_000_000) is None
    assert not h.add(pose_at(LAT, LON, 1_500_000_000))  # older than the newest: ignored
    assert h.out_of_order == 1


def test_time_scale_maps_wall_to_vehicle_time():
    ts = TimeScale(20.0, origin_ns=1_000)
    assert ts.to_vehicle(1_000) == 1_000
    assert ts.to_vehicle(1_000 + 50_000_000) == 1_000 + 1_000_000_000
    assert ts.wall_s(2.0) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        TimeScale(0.0)


def _projector() -> Projector:
    return Projector(CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0), CameraMount(pitch_deg=-90.0))


def test_detections_are_projected_with_the_pose_at_the_frame_time():
    """A tractor standing 20 m north of where the vehicle was when the frame was taken is put there, using the
    pose interpolated at the frame's time: with the vehicle's newest pose instead it would be 8 m off."""
    proj = _projector()
    frame = LocalFrame(LAT, LON)
    h = PoseHistory(5_000_000_000, 500_000_000)
    lat_b, lon_b = offset_deg(LAT, LON, 16.0, 0.0)
    h.add(pose_at(LAT, LON, 0, vn=16.0))
    h.add(pose_at(lat_b, lon_b, 1_000_000_000, vn=16.0))
    t_frame = 500_000_000                        # the vehicle was 8 m north of the origin then
    pose = h.at(t_frame)
    lat, lon = offset_deg(LAT, LON, 20.0, 0.0)
    u, v = proj.ground_to_pixel(pose, lat, lon)
    dets = Detections(np.array([[u - 4, v - 4, u + 4, v + 4]]), np.array([3]), np.array([0.9]), ("vehicle",),
                      (640, 480))
    # a flat box drawn round the point (not a standing object's image): placed at its centre
    ground = project_detections(dets, pose, proj, frame, t_frame, heights_m={})
    assert len(ground) == 1 and ground[0].label == "vehicle" and ground[0].ts_ns == t_frame
    assert math.hypot(ground[0].east_m - 0.0, ground[0].north_m - 20.0) < 0.3
    assert 0.0 < ground[0].radius_m < 1.0
    stale = project_detections(dets, h.latest(), proj, frame, t_frame, heights_m={})
    assert abs(stale[0].north_m - 20.0) > 7.0


def _standing_box(proj, pose, frame, east_m, north_m, radius_m, height_m, low_m=0.0) -> np.ndarray:
    """The image box of a body of ``radius_m`` seen from ``low_m`` up to ``height_m`` (circles projected)."""
    ang = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    us, vs = [], []
    for z in (low_m, height_m):
        for a in ang:
            lat, lon, _ = frame.to_geo(east_m + radius_m * np.cos(a), north_m + radius_m * np.sin(a), 0.0)
            u, v = proj.ground_to_pixel(pose, lat, lon, z)
            us.append(u)
            vs.append(v)
    return np.array([[min(us), min(vs), max(us), max(vs)]])


WIDE = Projector(CameraModel(640, 480, 320.0, 320.0, 320.0, 240.0), CameraMount(pitch_deg=-90.0))  # 90 deg wide


@pytest.mark.parametrize("alt_m, height_m, east_m, north_m", [(30.0, 12.0, 10.0, 0.0), (30.0, 10.0, -9.0, -4.0),
                                                               (70.0, 10.0, 15.0, 20.0)])
def test_a_tall_object_is_placed_at_its_base_not_where_it_leans(alt_m, height_m, east_m, north_m):
    """A 4 m-wide standing body 10-25 m from below a nadir camera leans away from the vehicle in the image.
    Seen down to its foot (a pole, a person) and placed with its height, it is found within 0.5 m of its
    base's centre (1.5 m with the class's 10 m for a 12 m one); by the foot fraction alone (no height) a
    12 m one under a camera at 30 m is placed over 1.5 m away."""
    frame = LocalFrame(LAT, LON)
    pose = pose_at(LAT, LON, alt_m=alt_m)
    box = _standing_box(WIDE, pose, frame, east_m, north_m, 4.0, height_m)
    assert box.min() > 2 and box[0, 2] < 638 and box[0, 3] < 478, "the whole body in the image"
    dets = Detections(box, np.array([0]), np.array([0.9]), ("pole",), (640, 480))
    own = project_detections(dets, pose, WIDE, frame, 0, heights_m={"pole": height_m})[0]
    assert math.hypot(own.east_m - east_m, own.north_m - north_m) < 0.5
    cls = project_detections(dets, pose, WIDE, frame, 0)[0]
    assert math.hypot(cls.east_m - east_m, cls.north_m - north_m) < 1.5
    if (alt_m, height_m) == (30.0, 12.0):
        foot = project_detections(dets, pose, WIDE, frame, 0, heights_m={})[0]
        assert math.hypot(foot.east_m - east_m, foot.north_m - north_m) > 1.5


@pytest.mark.parametrize("alt_m, east_m, north_m", [(30.0, 10.0, 0.0), (30.0, -9.0, -4.0), (70.0, 15.0, 20.0)])
def test_a_tree_is_placed_from_its_crown(alt_m, east_m, north_m):
    """A tree's crown hides its trunk: its box runs from the crown's near edge, high up, to the top's far
    edge. A 10 m tree whose crown (radius 4 m) is seen from 7 m up is placed within 0.5 m of its trunk;
    taking the crown's near edge for the foot puts it over 0.7 m off (from 30 m)."""
    frame = LocalFrame(LAT, LON)
    pose = pose_at(LAT, LON, alt_m=alt_m)
    box = _standing_box(WIDE, pose, frame, east_m, north_m, 4.0, 10.0, low_m=7.0)
    assert box.min() > 2 and box[0, 2] < 638 and box[0, 3] < 478
    dets = Detections(box, np.array([0]), np.array([0.9]), ("tree",), (640, 480))
    crown = project_detections(dets, pose, WIDE, frame, 0)[0]
    assert math.hypot(crown.east_m - east_m, crown.north_m - north_m) < 0.5
    if alt_m == 30.0:
        base = project_detections(dets, pose, WIDE, frame, 0, near_fraction={})[0]
        assert math.hypot(base.east_m - east_m, base.north_m - north_m) > 0.7


def test_a_tree_whose_top_is_cut_by_the_image_border_is_placed_from_its_crown_edge_and_width():
    """Under a narrower camera at 30 m the same tree 10 m east has its top outside the image: it is placed
    from the crown's near edge and the box's width (within 0.5 m), closer than by the foot rule."""
    proj = _projector()
    frame = LocalFrame(LAT, LON)
    pose = pose_at(LAT, LON, alt_m=30.0)
    box = _standing_box(proj, pose, frame, 10.0, 0.0, 4.0, 10.0, low_m=7.0)
    assert box[0, 2] > 640 and box[0, 0] > 2
    box[0, 2] = 640.0
    dets = Detections(box, np.array([0]), np.array([0.9]), ("tree",), (640, 480))
    crown = project_detections(dets, pose, proj, frame, 0)[0]
    foot = project_detections(dets, pose, proj, frame, 0, heights_m={})[0]
    print(f"tree 10 m east, top cut: crown rule {crown.east_m:.2f}, foot rule {foot.east_m:.2f}")
    assert abs(crown.east_m - 10.0) < 0.5 and abs(crown.north_m) < 0.3
    assert abs(foot.east_m - 10.0) > abs(crown.east_m - 10.0)


def test_a_box_whose_near_side_is_cut_by_the_image_border_is_left_out():
    """Looking 45 degrees down, a box cut by the bottom border (the side nearest the vehicle, where the
    object's foot would be) is left out; the same box clear of the border is kept."""
    proj = Projector(CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0), CameraMount(pitch_deg=-45.0))
    dets = Detections(np.array([[300, 440, 340, 480], [300, 400, 340, 440]]), np.array([0, 0]), np.array([0.8, 0.8]),
                      ("tree", "tree"), (640, 480))
    ground = project_detections(dets, pose_at(LAT, LON), proj, LocalFrame(LAT, LON), 0)
    assert len(ground) == 1 and 20.0 < ground[0].north_m < 60.0  # 45 degrees down from 60 m: ahead, not below


def test_a_detection_in_the_sky_is_not_projected():
    proj = Projector(CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0), CameraMount(pitch_deg=0.0))  # looking ahead
    dets = Detections(np.array([[300, 10, 340, 40]]), np.array([0]), np.array([0.8]), ("tree",), (640, 480))
    assert project_detections(dets, pose_at(LAT, LON), proj, LocalFrame(LAT, LON), 0) == []


def _obstacle(tid: int, label: str, e: float, confirmed: bool = True) -> Obstacle:
    return Obstacle(tid, label, LAT, LON, e, 0.0, 2.0, 0.9, 5, 0, 0, confirmed=confirmed)


def test_static_obstacles_are_remembered_after_the_tracker_drops_them_moving_ones_are_not():
    """A tree is remembered 10 s, a person who stood still 2 s, a walking person not at all."""
    mem = ObstacleMemory(("tree", "pole"), memory_ns=10_000_000_000, still_memory_ns=2_000_000_000)
    walker = Obstacle(3, "person", LAT, LON, 60.0, 0.0, 0.4, 0.9, 5, 0, 0, confirmed=True, moving=True, ve_m_s=1.4)
    out = mem.update([_obstacle(1, "tree", 0.0), _obstacle(2, "person", 30.0), walker], 0)
    assert {o.track_id for o in out} == {1, 2, 3}
    out = mem.update([], 1_000_000_000)
    assert [o.track_id for o in out] == [1, 2]
    out = mem.update([], 2_500_000_000)
    assert [o.track_id for o in out] == [1]
    out = mem.update([_obstacle(7, "tree", 0.5)], 3_000_000_000)  # the same tree seen again: a new track replaces it
    assert [o.track_id for o in out] == [7]
    out = mem.update([], 13_500_000_000)  # remembered for 10 s after it was last reported
    assert out == ()


def test_a_still_person_of_two_hits_is_not_remembered_one_of_three_is():
    """Two agreeing projection outliers make a confirmed 2-hit track; it is not kept once the tracker drops it."""
    mem = ObstacleMemory(("tree",), memory_ns=10_000_000_000, still_memory_ns=10_000_000_000, still_min_hits=3)
    two = Obstacle(4, "person", LAT, LON, 8.0, 0.0, 0.4, 0.7, 2, 0, 0, confirmed=True)
    three = Obstacle(5, "animal", LAT, LON, 40.0, 0.0, 0.7, 0.7, 3, 0, 0, confirmed=True)
    assert {o.track_id for o in mem.update([two, three], 0)} == {4, 5}
    assert [o.track_id for o in mem.update([], 1_000_000_000)] == [5]


def test_a_remembered_person_covered_by_a_short_lived_new_track_comes_back_when_that_track_goes():
    """A vineyard flight lost its person this way: the remembered track was replaced by a new 2-hit track on
    the same spot, which the tracker dropped and the memory did not keep; the drone came back along the next
    line with no keep-out. The memory hides what a live track covers but keeps it."""
    mem = ObstacleMemory(("tree",), memory_ns=10_000_000_000, still_memory_ns=60_000_000_000, still_min_hits=3)
    seen = Obstacle(12, "person", LAT, LON, 30.0, 0.0, 0.4, 0.7, 6, 0, 0, confirmed=True)
    mem.update([seen], 0)
    again = Obstacle(14, "person", LAT, LON, 30.5, 0.0, 0.4, 0.7, 2, 0, 0, confirmed=True)
    assert [o.track_id for o in mem.update([again], 5_000_000_000)] == [14]        # one keep-out, not two
    assert [o.track_id for o in mem.update([], 9_000_000_000)] == [12]             # 14 dropped: 12 is back
    later = Obstacle(20, "person", LAT, LON, 30.2, 0.0, 0.4, 0.7, 5, 0, 0, confirmed=True)
    mem.update([later], 20_000_000_000)
    assert [o.track_id for o in mem.update([], 21_000_000_000)] == [20]            # the later memory stands for both


def test_the_documented_default_file_matches_the_built_in_defaults():
    loaded = load_config(default_config_path())
    defaults = AppConfig()
    for name in ("capture", "perception", "pose", "tracking", "planning", "commander", "safety", "loop"):
        assert getattr(loaded, name) == getattr(defaults, name), name


def test_config_overrides_and_bad_input(tmp_path):
    good = tmp_path / "a.toml"
    good.write_text('[commander]\nhold_mode = "LOITER"\n[tracking]\nconfirm_hits = 2\n[planning]\nmargins_m = {tree = 7}\n')
    cfg = load_config(good)
    assert cfg.commander.hold_mode == "LOITER" and cfg.tracking.confirm_hits == 2 and cfg.planning.margins_m["tree"] == 7.0
    assert cfg.capture == AppConfig().capture
    cases = {"[nope]\nx = 1\n": "unknown table [nope]", "[commander]\nspeed = 1\n": "unknown key 'speed'",
             "[commander]\ntarget_rate_hz = \"fast\"\n": "expected a number", "[commander]\ntarget_rate_hz = 1.0\n":
             "expected >= 2 Hz", "[commander\n": "expected valid TOML", "[tracking]\nconfirm_hits = 0\n": "confirm_hits",
             "[loop]\nstill_memory_min_hits = 2.5\n": "still_memory_min_hits"}
    for text, needle in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_config(bad)
        assert needle in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_obstacles_at_the_take_off_site_count_once_the_vehicle_is_out_of_their_keep_out():
    """A person 7 m from home (keep-out 15 m): ignored while the vehicle is still within 15 m of them after
    take-off, planned around from the moment the vehicle is out; a tree away from home always counts."""
    from agridrone.pipeline_parts import outside_takeoff_site

    person = Obstacle(1, "person", LAT, LON, 6.0, 4.0, 0.4, 0.9, 5, 0, 0, confirmed=True)
    tree = Obstacle(2, "tree", LAT, LON, 100.0, 0.0, 4.0, 0.9, 5, 0, 0, confirmed=True)
    margins = {"person": 15.0, "tree": 5.0}
    near = outside_takeoff_site([person, tree], (0.0, 0.0), (0.0, 0.0), margins)
    assert [o.track_id for o in near] == [2]
    away = outside_takeoff_site([person, tree], (30.0, 0.0), (0.0, 0.0), margins)
    assert [o.track_id for o in away] == [1, 2]
    tree_at_vehicle = outside_takeoff_site([tree], (98.0, 0.0), (0.0, 0.0), margins)
    assert [o.track_id for o in tree_at_vehicle] == [2]  # not at home: the planner handles it (escape, hold)


def test_obstacles_inside_an_exclusion_zone_are_left_to_the_zone():
    """A hut inside the mission's exclusion zone (which the route already keeps clear with the zone's buffer)
    is not planned around again; a tree outside the zone is."""
    from shapely.geometry import Point

    from agridrone.pipeline_parts import outside_zones

    zone = Point(100.0, 200.0).buffer(14.0)
    hut = Obstacle(1, "building", LAT, LON, 101.0, 199.0, 5.0, 0.9, 5, 0, 0, confirmed=True)
    tree = Obstacle(2, "tree", LAT, LON, 150.0, 200.0, 4.0, 0.9, 5, 0, 0, confirmed=True)
    assert [o.track_id for o in outside_zones([hut, tree], zone)] == [2]
    assert [o.track_id for o in outside_zones([hut, tree], None)] == [1, 2]
