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
