"""The simulated camera (agridrone.sim.camera) over the shipped world sitl/worlds/rectangular-cereal.yaml.

Geometry is checked against agridrone.geo.Projector, the projection the perception stages use to
place what they see: if the picture and the Projector disagree, detections land in the wrong place.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from agridrone.errors import CameraError
from agridrone.geo import CameraModel, CameraMount
from agridrone.sim.camera import SimCamera
from agridrone.sim.camera_source import SimCameraSource, sim_scheme
from agridrone.types import Frame, Pose

REPO = Path(__file__).resolve().parents[2]
WORLD = REPO / "sitl" / "worlds" / "rectangular-cereal.yaml"


@pytest.fixture(scope="module")
def cam() -> SimCamera:
    return SimCamera(WORLD)


@pytest.fixture(scope="module")
def oblique(cam) -> SimCamera:
    """The same world seen by a camera pitched 8 degrees below the horizon."""
    return SimCamera(cam.world, mount=CameraMount(pitch_deg=-8.0), cache_mb=32)


def pose_over(cam: SimCamera, east_m: float, north_m: float, height_m: float, *, ts_ns: int = 1_000_000_000,
              yaw_deg: float = 0.0, roll_deg: float = 0.0, pitch_deg: float = 0.0) -> Pose:
    lat, lon, _ = cam.frame.to_geo(east_m, north_m, 0.0)
    rel = cam.ground_alt_m + height_m
    return Pose(ts_ns, lat, lon, cam.mission.home_ground_alt_amsl_m + rel, rel, roll_deg, pitch_deg, yaw_deg)


def obstacle_en(cam: SimCamera, cls: str) -> tuple[int, np.ndarray]:
    i = next(k for k, o in enumerate(cam.world.obstacles) if o.cls == cls)
    return i, cam._obs_xy[i]


def test_frame_is_bgr_uint8_at_the_camera_size_with_the_pose_time(cam):
    pose = pose_over(cam, 200.0, 150.0, 60.0, ts_ns=123_456_789)
    frame = cam.render(pose)
    assert isinstance(frame, Frame)
    assert frame.image.shape == (480, 640, 3) and frame.image.dtype == np.uint8
    assert frame.ts_ns == 123_456_789
    small = SimCamera(cam.world, size_wh=(320, 240), cache_mb=8)
    img = small.render(pose).image
    assert img.shape == (240, 320, 3)
    # same mission camera at another size: the same field of view
    assert small.camera.fx_px == pytest.approx(cam.camera.fx_px / 2)


def test_same_pose_gives_the_same_frame_whatever_was_rendered_before(cam):
    """Determinism: a frame is a function of the pose (tiles and noise do not depend on history)."""
    pose = pose_over(cam, 120.0, 80.0, 55.0, yaw_deg=33.0, ts_ns=5_000_000_000)
    a = cam.render(pose).image
    cam.render(pose_over(cam, 400.0, 300.0, 70.0, yaw_deg=200.0))
    b = cam.render(pose).image
    fresh = SimCamera(WORLD, cache_mb=4).render(pose).image
    assert np.array_equal(a, b) and np.array_equal(a, fresh)
    later = cam.render(Pose(6_000_000_033, *[getattr(pose, f) for f in ("lat_deg", "lon_deg", "alt_amsl_m",
                                                                         "alt_rel_home_m", "roll_deg", "pitch_deg",
                                                                         "yaw_deg")])).image
    diff = np.abs(later.astype(int) - a.astype(int))
    assert diff.max() > 0 and diff.mean() < 6  # only the sensor noise differs


@pytest.mark.parametrize("attitude", [dict(), dict(yaw_deg=47.0, roll_deg=4.0, pitch_deg=-3.0)])
def test_pole_base_and_top_appear_where_the_projector_puts_them(cam, attitude):
    """A 9 m pole off the image centre: pixels change (pole painted) at the Projector's base and top."""
    i, (e, n) = obstacle_en(cam, "pole")
    o = cam.world.obstacles[i]
    pose = pose_over(cam, e - 14.0, n + 9.0, 40.0, **attitude)
    with_obj = cam.render_image(pose, effects=False).astype(int)
    without = cam.render_image(pose, obstacles=False, effects=False).astype(int)
    changed = np.abs(with_obj - without).sum(axis=2) > 30
    proj = cam.projector
    bu, bv = proj.ground_to_pixel(pose, o.lat_deg, o.lon_deg, cam.ground_alt_m)
    tu, tv = proj.ground_to_pixel(pose, o.lat_deg, o.lon_deg, cam.ground_alt_m + o.height_m)
    for u, v in ((bu, bv), (tu, tv)):
        assert 0 <= u < 640 and 0 <= v < 480
        win = changed[max(0, round(v) - 2):round(v) + 3, max(0, round(u) - 2):round(u) + 3]
        assert win.any(), f"nothing painted within 2 px of ({u:.1f}, {v:.1f})"
    gt = next(g for g in cam.ground_truth_in_view(pose) if g.kind == "obstacle" and g.index == i)
    assert gt.base_px == pytest.approx((bu, bv), abs=0.05) and gt.top_px == pytest.approx((tu, tv), abs=0.05)
    x0, y0, x1, y1 = gt.box_xyxy
    assert x0 - 2 <= bu <= x1 + 2 and y0 - 2 <= bv <= y1 + 2


def test_lens_distortion_moves_the_picture_with_the_projector(cam):
    """With a distorted lens the pole still appears at the (distorted) pixel the Projector gives."""
    c = cam.camera
    lens = CameraModel(c.width_px, c.height_px, c.fx_px, c.fy_px, c.cx_px, c.cy_px, (-0.25, 0.08, 0.0, 0.0))
    dcam = SimCamera(cam.world, camera=lens, cache_mb=16)
    i, (e, n) = obstacle_en(dcam, "pole")
    o = dcam.world.obstacles[i]
    pose = pose_over(dcam, e - 22.0, n + 14.0, 40.0)
    changed = np.abs(dcam.render_image(pose, effects=False).astype(int)
                     - dcam.render_image(pose, obstacles=False, effects=False).astype(int)).sum(axis=2) > 30
    bu, bv = dcam.projector.ground_to_pixel(pose, o.lat_deg, o.lon_deg, dcam.ground_alt_m)
    iu, iv = cam.projector.ground_to_pixel(pose, o.lat_deg, o.lon_deg, cam.ground_alt_m)  # without distortion
    assert math.hypot(bu - iu, bv - iv) > 5  # the lens matters here
    win = changed[round(bv) - 2:round(bv) + 3, round(bu) - 2:round(bu) + 3]
    assert win.any()


def test_ground_texture_lies_where_the_projector_says(cam):
    """Footprint: each pixel shows the ground texture at the point Projector.pixel_to_ground gives."""
    pose = pose_over(cam, 250.0, 200.0, 30.0, yaw_deg=71.0, roll_deg=3.0)
    img = cam.render_image(pose, obstacles=False, effects=False).astype(int)
    hom, _ = cam.homography(pose)
    level = cam._level(pose, hom)
    from agridrone.sim.camera_ground import LEVEL_PX_PER_M, TILE_M
    r = LEVEL_PX_PER_M[level]
    rng = np.random.default_rng(3)
    u, v = rng.uniform(5, 635, 300), rng.uniform(5, 475, 300)
    lat, lon = cam.projector.pixel_to_ground(pose, u, v, cam.ground_alt_m)
    e, n, _ = cam.frame.to_enu(lat, lon, np.full(len(lat), cam.frame.origin_alt_m))
    ix, iy = np.floor(e / TILE_M).astype(int), np.floor(n / TILE_M).astype(int)
    col = np.clip(((e - ix * TILE_M) * r).astype(int), 0, int(TILE_M * r) - 1)
    row = np.clip((((iy + 1) * TILE_M - n) * r).astype(int), 0, int(TILE_M * r) - 1)
    tex = np.array([cam.tiles.tile(level, a, b)[rr, cc] for a, b, rr, cc in zip(ix, iy, row, col)], int)
    got = img[np.round(v).astype(int), np.round(u).astype(int)]
    err = np.abs(got - tex).sum(axis=1)
    shuffled = np.abs(got - tex[rng.permutation(len(tex))]).sum(axis=1)
    assert np.median(err) < 0.4 * np.median(shuffled)
    # the footprint's corners: the homography maps the Projector's footprint onto the image border
    fp = cam.projector.footprint(pose, cam.ground_alt_m, samples_per_side=2)
    fe, fn, _ = cam.frame.to_enu([p.lat_deg for p in fp], [p.lon_deg for p in fp], cam.frame.origin_alt_m)
    q = np.column_stack([fe, fn, np.ones(len(fe))]) @ hom.T
    corners = q[:, :2] / q[:, 2:3]
    want = np.array([[0, 0], [320, 0], [640, 0], [640, 240], [640, 480], [320, 480], [0, 480], [0, 240]], float)
    assert np.abs(corners - want).max() < 1.0


def patch_contrast(cam: SimCamera, k: int, height_m: float):
    """(frame, inside mask, surrounding ring mask, projected u, v) for patch ``k`` seen from above."""
    c = cam._patches[k][1].mean(axis=0)
    pose = pose_over(cam, c[0] + 6.0, c[1] - 4.0, height_m, yaw_deg=20.0)
    img = cam.render(pose).image.astype(np.float32)
    lat, lon = np.array(cam.world.patches[k].polygon).T
    u, v = cam.projector.ground_to_pixel(pose, lat, lon, cam.ground_alt_m)
    mask = np.zeros((480, 640), np.uint8)
    cv2.fillPoly(mask, [np.round(np.column_stack([u, v])).astype(np.int32)], 1)
    inside = cv2.erode(mask, np.ones((7, 7), np.uint8)).astype(bool)
    ring = (cv2.dilate(mask, np.ones((41, 41), np.uint8)) - cv2.dilate(mask, np.ones((9, 9), np.uint8))).astype(bool)
    assert inside.sum() > 500 and ring.sum() > 500
    return pose, img, inside, ring, u, v


def test_a_stressed_patch_appears_where_the_world_says(cam):
    """The stressed patch's polygon, projected, is yellower (less green) inside than around it, and
    ground truth reports it with its box and area."""
    k = next(i for i, p in enumerate(cam.world.patches) if p.kind == "stressed")
    pose, img, inside, ring, u, v = patch_contrast(cam, k, 50.0)
    green = img[..., 1] - img[..., 2]  # G - R
    assert green[inside].mean() < green[ring].mean() - 8
    truth = [g for g in cam.ground_truth_in_view(pose) if g.kind == "patch" and g.index == k]
    assert len(truth) == 1 and truth[0].cls == "stressed"
    assert truth[0].visible_area_m2 == pytest.approx(cam.world.patches[k].area_m2, rel=0.02)
    x0, y0, x1, y1 = truth[0].box_xyxy
    assert (x0, y0, x1, y1) == pytest.approx((u.min(), v.min(), u.max(), v.max()), abs=1.0)


def test_weed_and_bare_soil_patches_appear_where_the_world_says():
    """In the maize world, the weed patch is greener than the crop rows on soil around it (weeds fill
    the inter-rows) and the bare-soil patch is browner (no crop)."""
    maize = SimCamera(REPO / "sitl" / "worlds" / "l-shaped-maize.yaml", cache_mb=32)
    kinds = [p.kind for p in maize.world.patches]
    _, img, inside, ring, _, _ = patch_contrast(maize, kinds.index("weeds"), 80.0)
    green = img[..., 1] - img[..., 2]
    assert green[inside].mean() > green[ring].mean() + 8
    _, img, inside, ring, _, _ = patch_contrast(maize, kinds.index("bare_soil"), 80.0)
    green = img[..., 1] - img[..., 2]
    assert green[inside].mean() < green[ring].mean() - 8


def test_oblique_view_has_sky_above_the_horizon(oblique):
    """A camera pitched 8 degrees down sees sky above the Projector's horizon and ground below it."""
    pose = pose_over(oblique, 150.0, 100.0, 30.0, yaw_deg=60.0, roll_deg=5.0)
    img = oblique.render(pose).image.astype(np.float32)
    uu, vv = np.meshgrid(np.arange(0, 640, 8), np.arange(0, 480, 8))
    dep = oblique.projector.depression_deg(pose, uu, vv)
    sky, ground = dep < -2.0, dep > 12.0
    assert sky.sum() > 100 and ground.sum() > 100
    px = img[vv, uu]
    b, g, r = px[..., 0], px[..., 1], px[..., 2]
    assert (b[sky] > r[sky] + 20).mean() > 0.95          # blue sky
    assert (g[ground] > b[ground]).mean() > 0.9          # green field
    assert px[sky].std(axis=0).mean() < px[ground].std(axis=0).mean()


def test_obstacles_lean_outward_in_a_nadir_view(cam):
    """A 12 m tree near the image edge: its top projects farther from the nadir point than its base,
    by exactly H / (H - h), and the painted crown lies outward of the base."""
    i, (e, n) = obstacle_en(cam, "tree")
    o = cam.world.obstacles[i]
    height = 50.0
    pose = pose_over(cam, e - 18.0, n - 11.0, height)
    gt = next(g for g in cam.ground_truth_in_view(pose) if g.kind == "obstacle" and g.index == i)
    centre = np.array([cam.camera.cx_px, cam.camera.cy_px])
    rb = np.linalg.norm(np.array(gt.base_px) - centre)
    rt = np.linalg.norm(np.array(gt.top_px) - centre)
    assert rt / rb == pytest.approx(height / (height - o.height_m), rel=1e-3)
    x0, y0, x1, y1 = gt.box_xyxy
    box_centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    assert np.linalg.norm(box_centre - centre) > rb + 5
    # the crown has the world's radius (the painter drew a 4 m tree, not one of its random sizes)
    s = cam.camera.fx_px / height
    assert 1.6 * o.radius_m * s <= (x1 - x0) <= 3.2 * o.radius_m * s


def test_ground_truth_lists_only_what_is_in_the_frame(cam):
    i, (e, n) = obstacle_en(cam, "tree")
    pose = pose_over(cam, e, n, 60.0)
    truth = cam.ground_truth_in_view(pose)
    obs = [g for g in truth if g.kind == "obstacle"]
    assert i in [g.index for g in obs]
    for g in obs:
        x0, y0, x1, y1 = g.box_xyxy
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
    far = [k for k, xy in enumerate(cam._obs_xy) if np.hypot(*(xy - [e, n])) > 150]
    assert far and not set(far) & {g.index for g in obs}


def test_bad_input_raises_camera_error_on_one_line(tmp_path, cam):
    with pytest.raises(CameraError) as err:
        SimCamera(tmp_path / "nowhere.yaml")
    assert "nowhere.yaml" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CameraError, match="expected a world file"):
        SimCamera("")
    with pytest.raises(CameraError, match="got None"):
        cam.render(None)
    with pytest.raises(CameraError, match="expected an agridrone.types.Pose"):
        cam.render((52.0, 11.0, 60.0))
    # a vehicle standing on the ground (before take-off) is no error: the camera sits 0.3 m up
    landed = cam.render(pose_over(cam, 10.0, 10.0, -0.4)).image
    assert np.array_equal(landed, cam.render(pose_over(cam, 10.0, 10.0, 0.3)).image)


def test_sim_source_renders_the_provided_pose_through_parse_source(cam):
    """sim://WORLD through agridrone.camera.parse_source: frames carry the provider's pose time."""
    from agridrone.camera import parse_source
    from agridrone.clock import ManualClock

    poses = iter([pose_over(cam, 100.0, 100.0, 60.0, ts_ns=10), pose_over(cam, 101.0, 100.0, 60.0, ts_ns=20)])
    clock = ManualClock()
    src = parse_source(f"sim://{WORLD}", clock, schemes={"sim": sim_scheme(lambda: next(poses), fps=10.0,
                                                                            cache_mb=16)})
    with src:
        a, b = src.read(), src.read()
    assert (a.ts_ns, b.ts_ns) == (10, 20) and (a.index, b.index) == (0, 1)
    assert clock.monotonic_ns() == 100_000_000  # paced at 10 fps on the injected clock
    none = SimCameraSource(cam, lambda: None)
    with none, pytest.raises(CameraError, match="got None"):
        none.read()
    broken = SimCameraSource(cam, lambda: 1 / 0)
    with broken, pytest.raises(CameraError, match="pose provider failed: ZeroDivisionError"):
        broken.read()
    with pytest.raises(CameraError, match="before open"):
        SimCameraSource(WORLD, lambda: None).read()


def test_source_prefetches_the_ground_ahead_without_changing_frames(cam):
    """Every 4th frame the sim source renders one tile the pose 3 s ahead will need; frames stay a
    function of the pose (a fresh camera renders the same pixels)."""
    from agridrone.clock import ManualClock

    moving = [pose_over(cam, 60.0 + 0.5 * k, 120.0, 50.0, ts_ns=k + 1) for k in range(9)]
    moving = [Pose(p.ts_ns, p.lat_deg, p.lon_deg, p.alt_amsl_m, p.alt_rel_home_m, ve_m_s=20.0) for p in moving]
    it = iter(moving)
    src = SimCameraSource(WORLD, lambda: next(it), ManualClock(), prefetch_s=3.0, cache_mb=32)
    with src:
        frames = [src.read() for _ in moving]
        assert src.prefetched == 3  # one new tile after frames 1, 5 and 9
        rendered = src.camera.tiles.rendered
    fresh = SimCamera(WORLD, cache_mb=32)
    for f, p in zip(frames, moving):
        assert np.array_equal(f.image, fresh.render(p).image)
    assert fresh.tiles.rendered < rendered


def test_source_asks_a_timed_provider_for_the_pose_at_capture_time(cam):
    """provider(ts_ns): the source passes the clock's capture time; the frame carries the pose's time."""
    from agridrone.clock import ManualClock
    from agridrone.geo import interpolate_pose

    history = [pose_over(cam, 100.0, 100.0, 50.0, ts_ns=0), pose_over(cam, 110.0, 100.0, 50.0, ts_ns=2_000_000_000)]
    asked = []

    def at(ts_ns):
        asked.append(ts_ns)
        return interpolate_pose(history, ts_ns)

    clock = ManualClock(start_ns=500_000_000)
    with SimCameraSource(cam, at, clock, prefetch_s=None) as src:
        frame = src.read()
    assert asked == [500_000_000] and frame.ts_ns == 500_000_000
    assert np.array_equal(frame.image, cam.render(interpolate_pose(history, 500_000_000)).image)
    with pytest.raises(CameraError, match="needs a clock"):
        SimCameraSource(WORLD, at)


def test_oblique_obstacle_stands_as_tall_as_the_projection_says(oblique):
    """Seen from 8 m with the camera near the horizon, the 12 m tree's painted box reaches from its
    projected base up to its projected top (side-view painter at the real scale)."""
    i, (e, n) = obstacle_en(oblique, "tree")
    pose = pose_over(oblique, e - 60.0, n - 25.0, 8.0, yaw_deg=68.0)
    gt = next(g for g in oblique.ground_truth_in_view(pose) if g.kind == "obstacle" and g.index == i)
    x0, y0, x1, y1 = gt.box_xyxy
    assert gt.top_px[1] < gt.base_px[1] - 50  # stands up in the image
    assert abs(y0 - gt.top_px[1]) < 6 and abs(y1 - gt.base_px[1]) < 6
    assert x0 < gt.base_px[0] < x1
