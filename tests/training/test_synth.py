"""The procedural generator: deterministic by seed, valid boxes and masks, labels from masks."""

import numpy as np

from agridrone.training import DETECTOR_CLASSES, HEALTH_CLASSES
from agridrone.training.datasets import load_detection
from agridrone.training.synth import health_label, health_tiles, render_scene, write_detection_dataset
from agridrone.training.validate import validate_detection


def test_same_seed_and_index_give_the_same_scene():
    a, b = render_scene(7, 3, (160, 160)), render_scene(7, 3, (160, 160))
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.boxes, b.boxes) and np.array_equal(a.classes, b.classes)
    assert np.array_equal(a.weeds, b.weeds)


def test_scene_does_not_depend_on_what_was_generated_before():
    render_scene(7, 0, (96, 96))
    first = render_scene(7, 5, (96, 96))
    render_scene(8, 1, (96, 96))
    assert np.array_equal(first.image, render_scene(7, 5, (96, 96)).image)


def test_different_seeds_or_indices_differ():
    base = render_scene(1, 0, (96, 96)).image
    assert not np.array_equal(base, render_scene(2, 0, (96, 96)).image)
    assert not np.array_equal(base, render_scene(1, 1, (96, 96)).image)


def test_boxes_lie_inside_the_image_and_classes_are_known():
    seen = set()
    for i in range(12):
        s = render_scene(3, i, (128, 160))
        assert s.image.shape == (128, 160, 3) and s.image.dtype == np.uint8
        assert s.crop.shape == (128, 160)
        if len(s.boxes):
            assert (s.boxes[:, 0] >= 0).all() and (s.boxes[:, 2] <= 160).all()
            assert (s.boxes[:, 1] >= 0).all() and (s.boxes[:, 3] <= 128).all()
            assert (s.boxes[:, 2] > s.boxes[:, 0]).all() and (s.boxes[:, 3] > s.boxes[:, 1]).all()
        seen |= set(s.classes.tolist())
    assert seen <= set(range(len(DETECTOR_CLASSES)))
    assert len(seen) >= 3


def test_both_views_are_rendered():
    assert render_scene(0, 0, (96, 96), view="oblique").view == "oblique"
    assert render_scene(0, 0, (96, 96), view="nadir").view == "nadir"


def test_health_label_follows_the_masks():
    z = np.zeros((10, 10), bool)
    full = np.ones((10, 10), bool)
    assert HEALTH_CLASSES[health_label(z, z, z)] == "bare_soil"
    assert HEALTH_CLASSES[health_label(full, z, z)] == "healthy"
    assert HEALTH_CLASSES[health_label(full, full, z)] == "stressed"
    weeds = z.copy()
    weeds[:2] = True
    assert HEALTH_CLASSES[health_label(z, z, weeds)] == "weeds"
    half = z.copy()
    half[:3] = True
    assert health_label(full, half, z) is None  # 30 % stressed: ambiguous, not used


def test_health_tiles_are_balanced_and_deterministic():
    x, y = health_tiles(5, 6, tile_px=32)
    assert x.shape == (24, 32, 32, 3)
    assert np.bincount(y, minlength=4).tolist() == [6, 6, 6, 6]
    x2, y2 = health_tiles(5, 6, tile_px=32)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_written_dataset_loads_as_valid_yolo(tmp_path):
    root = write_detection_dataset(tmp_path / "synth", 10, seed=1, size=96)
    ds = load_detection(root)
    assert ds.fmt == "yolo" and ds.names == DETECTOR_CLASSES
    assert len(ds.items) == 10 and len(ds.split("train")) == 8
    assert not [i for i in validate_detection(ds).issues if "empty class" not in i.what and i.severity == "error"]


def test_sim_view_tiles_are_labelled_from_the_polygons_under_them():
    """A grid tile through the simulated camera is a patch kind when >= 60 % of its ground lies in one such
    patch, healthy inside the field touching no patch, and unused otherwise."""
    from shapely.geometry import box

    from agridrone.training.simviews import label_tile

    field = box(0, 0, 100, 100)
    patches = [("weeds", box(40, 40, 60, 60)), ("bare_soil", box(70, 10, 90, 30))]
    assert HEALTH_CLASSES[label_tile(box(42, 42, 50, 50), field, patches)] == "weeds"
    assert HEALTH_CLASSES[label_tile(box(37, 40, 47, 50), field, patches)] == "weeds"        # 70 % in it
    assert label_tile(box(35, 40, 45, 50), field, patches) is None                          # half in it
    assert HEALTH_CLASSES[label_tile(box(72, 12, 80, 20), field, patches)] == "bare_soil"
    assert HEALTH_CLASSES[label_tile(box(5, 5, 15, 15), field, patches)] == "healthy"
    assert label_tile(box(30, 40, 40.5, 50), field, patches) is None                        # touches the weeds
    assert label_tile(box(95, 50, 105, 60), field, patches) is None                         # half out of the field


def test_sim_view_tiles_are_balanced_deterministic_and_look_like_their_class():
    from agridrone.training.simviews import sim_health_tiles

    x, y = sim_health_tiles(3, 5, tile_px=32)
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8
    assert np.bincount(y, minlength=4).tolist() == [5, 5, 5, 5]
    x2, y2 = sim_health_tiles(3, 5, tile_px=32)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    f = x.astype(np.float32)
    exg = (2 * f[..., 1] - f[..., 0] - f[..., 2]).mean(axis=(1, 2))     # excess green, RGB order
    assert exg[y == HEALTH_CLASSES.index("bare_soil")].max() < exg[y == HEALTH_CLASSES.index("healthy")].min()


def test_boxes_are_clipped_to_the_image_and_dropped_when_mostly_outside():
    from agridrone.training.augment import clip_boxes

    boxes = np.array([[10, 10, 30, 30],      # inside
                      [-10, 0, 10, 20],      # half outside: kept, clipped
                      [-30, 0, 5, 20],       # a seventh inside: dropped at 35 %
                      [95, 50, 120, 51.5],   # under 2 px tall
                      [90, 90, 110, 110]], np.float32)
    out, keep = clip_boxes(boxes, 100, 100, 0.35)
    assert keep.tolist() == [True, True, False, False, False]
    assert out.tolist() == [[10, 10, 30, 30], [0, 0, 10, 20]]
    assert clip_boxes(boxes, 100, 100, 0.2)[1].tolist() == [True, True, False, False, True]


def test_random_worlds_for_the_detector_place_every_class_apart_and_near_the_field():
    from shapely.geometry import Point

    from agridrone.mission.geometry import to_enu
    from agridrone.training.simviews import random_world

    seen = set()
    for index in range(6):
        cam, field, _ = random_world(2, index, obstacles=True)
        obs = cam.world.obstacles
        assert 4 <= len(obs)
        en = to_enu(cam.frame, [(o.lat_deg, o.lon_deg) for o in obs])
        for i, o in enumerate(obs):
            seen.add(o.cls)
            assert field.buffer(60).contains(Point(*en[i]))
            for j in range(i):
                gap = float(np.hypot(*(en[i] - en[j]))) - o.radius_m - obs[j].radius_m
                assert gap > -0.21 * (o.radius_m + obs[j].radius_m), (o, obs[j])   # only tree crowns touch
        assert random_world(2, index)[0].world.obstacles == ()           # the health tiles' worlds stay bare
    assert seen == set(DETECTOR_CLASSES)


def test_sim_detection_tiles_are_deterministic_inside_their_tile_and_hold_what_the_camera_drew():
    from agridrone.training.simviews import sim_detection_tiles

    a = sim_detection_tiles(4, 24, side=160, views_per_world=2)
    b = sim_detection_tiles(4, 24, side=160, views_per_world=2)
    assert len(a) == 24
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))
    boxes = np.concatenate([t[1] for t in a])
    classes = np.concatenate([t[2] for t in a])
    assert all(t[0].shape == (160, 160, 3) and t[0].dtype == np.uint8 for t in a)
    assert len(boxes) >= 16 and boxes.min() >= 0 and boxes.max() <= 160
    assert len(set(classes.tolist())) >= 4
    # an obstacle differs from the ground around it: its box is not a piece of plain field
    contrast = []
    for img, bx, _ in a:
        g = img.astype(np.float32)
        for x1, y1, x2, y2 in bx.astype(int):
            if (x2 - x1) * (y2 - y1) >= 16:
                inner = g[y1:y2, x1:x2].reshape(-1, 3)
                contrast.append(np.abs(inner - np.median(g.reshape(-1, 3), 0)).mean())
    assert np.median(contrast) > 20, np.median(contrast)   # 34 here; boxes moved 30 px away: 11


def test_sim_detection_tiles_centre_more_frames_over_poles_than_over_other_classes(monkeypatch):
    """Poles are thin and few (a line of them per world at most): version 1 of the tiles, which centred frames
    over every class evenly, held them in 3 % of its boxes. The centre weights put them in many more frames
    (these 60 tiles: 4 % of the boxes evenly, 11 % with the shipped weights)."""
    from agridrone.training import DETECTOR_CLASSES, simviews

    def pole_share(weights):
        monkeypatch.setattr(simviews, "CENTRE_WEIGHTS", weights)
        tiles = simviews.sim_detection_tiles(5, 60, side=320, views_per_world=4)
        classes = np.concatenate([t[2] for t in tiles])
        return np.count_nonzero(classes == DETECTOR_CLASSES.index("pole")) / max(1, len(classes))

    shipped = dict(simviews.CENTRE_WEIGHTS)
    assert shipped["pole"] > 1.0
    even, weighted = pole_share({}), pole_share(shipped)
    assert weighted >= even + 0.03 and weighted >= 0.08, (even, weighted)


def test_written_dataset_holds_both_sources_each_split_on_its_own(tmp_path):
    root = write_detection_dataset(tmp_path / "synth", 10, seed=1, size=128, sim_count=10)
    ds = load_detection(root)
    sim = [it for it in ds.items if it.image.name.startswith("sim_")]
    assert len(ds.items) == 20 and len(sim) == 10
    assert sum(1 for it in ds.split("train") if it.image.name.startswith("sim_")) == 8
    assert sum(len(it.boxes) for it in sim) >= 10
    assert not [i for i in validate_detection(ds).issues if "empty class" not in i.what and i.severity == "error"]
