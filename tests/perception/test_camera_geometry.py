"""Camera model and pixel <-> ground projection on exact synthetic geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agridrone.geo import CameraModel, CameraMount, LocalFrame, Projector, interpolate_pose
from agridrone.types import Pose

HOME = (-35.363261, 149.165230)


def _pose(alt=50.0, roll=0.0, pitch=0.0, yaw=0.0, ts=0):
    return Pose(ts, HOME[0], HOME[1], 584.0 + alt, alt, roll, pitch, yaw)


def _ground(north, east):
    lat, lon, _ = LocalFrame(HOME[0], HOME[1], 0.0).to_geo(east, north, 0.0)
    return lat, lon


def test_intrinsics_from_sensor():
    cam = CameraModel.from_sensor(6.4, 4.8, 4.0, 640, 480)
    assert (cam.fx_px, cam.fy_px, cam.cx_px, cam.cy_px) == (400.0, 400.0, 320.0, 240.0)


def test_nadir_known_point_to_known_pixel_and_back():
    """50 m up, looking down, nose north: a point 10 m north, 5 m east is at (320 + 40, 240 - 80)."""
    proj = Projector(CameraModel.from_sensor(6.4, 4.8, 4.0, 640, 480))
    lat, lon = _ground(10.0, 5.0)
    u, v = proj.ground_to_pixel(_pose(), lat, lon)
    assert (u, v) == pytest.approx((320 + 400 * 5 / 50, 240 - 400 * 10 / 50), abs=1e-6)
    back = proj.pixel_to_ground(_pose(), u, v)
    assert back == pytest.approx((lat, lon), abs=1e-10)
    n, e = proj.ground_offsets_m(_pose(), u, v)
    assert (float(n), float(e)) == pytest.approx((10.0, 5.0), abs=1e-6)


def test_yaw_rotates_the_view():
    """Nose east (yaw 90): the top of the image points east, its right side south."""
    proj = Projector(CameraModel.from_sensor(6.4, 4.8, 4.0, 640, 480))
    n, e = proj.ground_offsets_m(_pose(yaw=90.0), np.array([320.0, 640.0]), np.array([0.0, 240.0]))
    np.testing.assert_allclose(n, [0.0, -40.0], atol=1e-9)
    np.testing.assert_allclose(e, [30.0, 0.0], atol=1e-9)


def test_oblique_mount_and_vehicle_attitude():
    """Mount pitched 45 deg down at 20 m: the image centre is on the ground 20 m ahead; vehicle pitch adds up."""
    proj = Projector(CameraModel.from_sensor(6.4, 4.8, 4.0, 640, 480), CameraMount(pitch_deg=-45.0))
    n, e = proj.ground_offsets_m(_pose(alt=20.0), 320.0, 240.0)
    assert (float(n), float(e)) == pytest.approx((20.0, 0.0), abs=1e-9)
    n, e = proj.ground_offsets_m(_pose(alt=20.0, pitch=-15.0), 320.0, 240.0)  # nose down 15 deg: 60 deg below
    assert float(n) == pytest.approx(20.0 / math.tan(math.radians(60)), abs=1e-9)
    # right wing down: the belly, and a camera under it, turns to the left (west with the nose north)
    nadir = Projector(CameraModel.from_sensor(6.4, 4.8, 4.0, 640, 480))
    n, e = nadir.ground_offsets_m(_pose(alt=20.0, roll=10.0), 320.0, 240.0)
    assert (float(n), float(e)) == pytest.approx((0.0, -20.0 * math.tan(math.radians(10))), abs=1e-9)


@pytest.mark.parametrize("dist", [(), (-0.25, 0.08, 0.001, -0.0015, -0.01)])
def test_round_trip_with_and_without_distortion(dist):
    """Any pixel -> ground -> the same pixel, with a tilted vehicle and an oblique, yawed mount."""
    cam = CameraModel(640, 480, 510.0, 505.0, 322.5, 236.0, dist)
    proj = Projector(cam, CameraMount(roll_deg=2.0, pitch_deg=-60.0, yaw_deg=15.0))
    pose = _pose(alt=35.0, roll=4.0, pitch=-3.0, yaw=200.0)
    u = np.array([0.0, 100.0, 320.0, 639.0, 500.0])
    v = np.array([479.0, 50.0, 240.0, 400.0, 479.0])
    lat, lon = proj.pixel_to_ground(pose, u, v)
    assert np.isfinite(lat).all()
    u2, v2 = proj.ground_to_pixel(pose, lat, lon)
    np.testing.assert_allclose(u2, u, atol=1e-5)
    np.testing.assert_allclose(v2, v, atol=1e-5)


def test_distortion_moves_pixels_the_right_way():
    """Barrel distortion (k1 < 0) pulls a point off-axis towards the centre."""
    ideal = CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0)
    barrel = CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0, (-0.3, 0.0, 0.0, 0.0))
    u0, _ = ideal.normalized_to_pixel(0.5, 0.0)
    u1, _ = barrel.normalized_to_pixel(0.5, 0.0)
    assert u0 == pytest.approx(570.0) and u1 == pytest.approx(320 + 500 * 0.5 * (1 - 0.3 * 0.25))


def test_sky_pixels_do_not_hit_the_ground():
    proj = Projector(CameraModel.from_sensor(6.4, 4.8, 4.0, 640, 480), CameraMount(pitch_deg=-10.0))
    lat, lon = proj.pixel_to_ground(_pose(), np.array([320.0, 320.0]), np.array([0.0, 479.0]))
    assert math.isnan(lat[0]) and math.isfinite(lat[1])
    assert float(proj.depression_deg(_pose(), 320.0, 240.0)) == pytest.approx(10.0)


def test_footprint_of_a_nadir_frame_is_the_known_rectangle():
    """At 50 m with a 77x62 deg view the footprint is 80 m x 60 m centred under the vehicle."""
    proj = Projector(CameraModel.from_sensor(6.4, 4.8, 4.0, 640, 480))
    poly = proj.footprint(_pose(), samples_per_side=2)
    frame = LocalFrame(HOME[0], HOME[1], 0.0)
    pts = [frame.to_enu(p.lat_deg, p.lon_deg, 0.0)[:2] for p in poly]
    east = [p[0] for p in pts]
    north = [p[1] for p in pts]
    assert min(east) == pytest.approx(-40, abs=1e-3) and max(east) == pytest.approx(40, abs=1e-3)
    assert min(north) == pytest.approx(-30, abs=1e-3) and max(north) == pytest.approx(30, abs=1e-3)
    assert pts[0] == pytest.approx((-40, 30), abs=1e-3)  # top-left of the image: north-west


def test_oblique_footprint_is_clipped_at_max_range():
    proj = Projector(CameraModel.from_sensor(6.4, 4.8, 4.0, 640, 480), CameraMount(pitch_deg=0.0))
    poly = proj.footprint(_pose(), max_range_m=300.0)
    frame = LocalFrame(HOME[0], HOME[1], 0.0)
    ranges = [math.hypot(*frame.to_enu(p.lat_deg, p.lon_deg, 0.0)[:2]) for p in poly]
    assert max(ranges) == pytest.approx(300.0, abs=0.01)


def test_ground_size_of_a_box():
    """At 50 m nadir, 400 px focal: an 80 x 40 px box is 10 m wide and 5 m deep."""
    proj = Projector(CameraModel.from_sensor(6.4, 4.8, 4.0, 640, 480))
    w, d = proj.box_ground_size_m(_pose(), (100, 100, 180, 140))
    assert (w, d) == pytest.approx((10.0, 5.0), abs=1e-9)


def test_pose_interpolated_at_the_frame_time():
    """Linear in position, shortest way round for yaw (350 -> 10 passes through 0)."""
    a = Pose(1_000_000_000, -35.0, 149.0, 600.0, 20.0, 0.0, 0.0, 350.0, 1.0)
    b = Pose(1_100_000_000, -35.0002, 149.0004, 610.0, 30.0, 2.0, -4.0, 10.0, 3.0)
    p = interpolate_pose([a, b], 1_025_000_000)
    assert p.lat_deg == pytest.approx(-35.00005) and p.lon_deg == pytest.approx(149.0001)
    assert p.alt_rel_home_m == pytest.approx(22.5) and p.vn_m_s == pytest.approx(1.5)
    assert p.yaw_deg == pytest.approx(355.0) and p.pitch_deg == pytest.approx(-1.0)
    assert interpolate_pose([a, b], 1_075_000_000).yaw_deg == pytest.approx(5.0)
    assert interpolate_pose([a, b], 1_150_000_000).alt_rel_home_m == 30.0  # 50 ms past the end: nearest
    with pytest.raises(ValueError, match="expected a time within"):
        interpolate_pose([a, b], 2_000_000_000)
    with pytest.raises(ValueError, match="expected a pose history"):
        interpolate_pose([], 0)


def test_opencv_calibration_file(tmp_path):
    import cv2

    path = tmp_path / "cam.yaml"
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", 1280)
    fs.write("image_height", 720)
    fs.write("camera_matrix", np.array([[900.0, 0, 641.0], [0, 905.0, 359.0], [0, 0, 1]]))
    fs.write("distortion_coefficients", np.array([[-0.1, 0.02, 0.0, 0.001, 0.0]]))
    fs.release()
    cam = CameraModel.from_opencv_file(path)
    assert (cam.width_px, cam.height_px, cam.fx_px, cam.fy_px, cam.cx_px, cam.cy_px) == (1280, 720, 900, 905, 641, 359)
    assert cam.dist == pytest.approx((-0.1, 0.02, 0.0, 0.001, 0.0))
    # agrees with OpenCV's own projection
    pts = np.array([[[0.3, -0.2, 1.0]], [[-0.5, 0.4, 1.0]]])
    want, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), np.array([[900.0, 0, 641], [0, 905, 359], [0, 0, 1]]),
                                np.array(cam.dist))
    u, v = cam.normalized_to_pixel(pts[:, 0, 0], pts[:, 0, 1])
    np.testing.assert_allclose(np.stack([u, v], 1), want[:, 0], atol=1e-9)
    (tmp_path / "bad.yaml").write_text("%YAML:1.0\nfoo: 1\n")
    with pytest.raises(ValueError, match="camera_matrix"):
        CameraModel.from_opencv_file(tmp_path / "bad.yaml")
