"""Plant health tiles: exact vegetation indices, one batched classifier invoke, sky and border skipping."""

from __future__ import annotations

import numpy as np
import pytest

from agridrone.errors import CameraError
from agridrone.geo import CameraModel, CameraMount, Projector
from agridrone.perception.health import HealthAnalyzer, HealthClassifier, grid_boxes, tile_means, vegetation_indices
from agridrone.types import HealthTile, Pose

GREEN = (40, 160, 60)    # BGR
SOIL = (60, 100, 150)    # BGR, brown
SKY = (235, 200, 150)    # BGR, light blue


def _two_halves(h=120, w=160):
    img = np.empty((h, w, 3), np.uint8)
    img[:, : w // 2] = GREEN
    img[:, w // 2:] = SOIL
    return img


def test_indices_are_exact_on_uniform_tiles():
    """ExG, VARI, GLI from known colours; NDVI and NDRE from the NIR and red-edge bands."""
    b, g, r, n, e = 40, 160, 60, 200, 120
    img = np.empty((20, 20, 5), np.uint8)
    img[:] = (b, g, r, n, e)
    means = tile_means(img, [[0, 0, 10, 10], [5, 5, 20, 20]])
    idx = vegetation_indices(means, "BGRNE")
    B, G, R, N, E = (v / 255 for v in (b, g, r, n, e))
    s = B + G + R
    assert idx["exg"] == pytest.approx([2 * G / s - R / s - B / s] * 2)
    assert idx["vari"] == pytest.approx([(G - R) / (G + R - B)] * 2)
    assert idx["gli"] == pytest.approx([(2 * G - R - B) / (2 * G + R + B)] * 2)
    assert idx["ndvi"] == pytest.approx([(N - R) / (N + R)] * 2)
    assert idx["ndre"] == pytest.approx([(N - E) / (N + E)] * 2)
    black = vegetation_indices(np.zeros((1, 3)), "BGR")
    assert black["exg"][0] == 0.0 and black["vari"][0] == 0.0


def test_grid_covers_the_frame_without_gaps():
    boxes = grid_boxes(641, 481, 6, 8)
    assert len(boxes) == 48
    assert boxes[0, 0] == 0 and boxes[0, 1] == 0 and boxes[-1, 2] == 641 and boxes[-1, 3] == 481
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum()
    assert area == 641 * 481
    with pytest.raises(CameraError, match="at least one pixel per tile"):
        grid_boxes(5, 5, 6, 8)


def test_classifier_runs_all_tiles_in_one_invoke(tiny_models, monkeypatch):
    """Green tiles are 'healthy', brown ones 'bare_soil'; the batch is resized once and invoked once per frame."""
    clf = HealthClassifier(tiny_models["health"].path)
    assert clf.tile_px == 16 and clf.labels == ("healthy", "stressed", "weeds", "bare_soil")
    calls = []
    real_invoke = clf.model.invoke
    monkeypatch.setattr(clf.model, "invoke", lambda: (calls.append(clf.model.inputs[0].shape), real_invoke())[1])
    analyzer = HealthAnalyzer(clf, rows=3, cols=4, skip_sky=False)
    tiles = analyzer.analyze(_two_halves())
    assert calls == [(12, 16, 16, 3)]
    assert all(isinstance(t, HealthTile) for t in tiles) and len(tiles) == 12
    for t in tiles:
        assert t.label == ("healthy" if t.col < 2 else "bare_soil"), t
        assert 0.5 < t.probability <= 1.0
        assert set(t.indices) == {"exg", "vari", "gli"}
        assert (t.indices["exg"] > 0.2) == (t.col < 2)


def test_nir_frame_gets_ndvi():
    img = np.concatenate([_two_halves(), np.full((120, 160, 1), 220, np.uint8)], axis=2)
    tiles = HealthAnalyzer(None, rows=2, cols=2, skip_sky=False).analyze(img)
    assert all("ndvi" in t.indices for t in tiles)
    assert tiles[0].indices["ndvi"] == pytest.approx((220 - 60) / (220 + 60), abs=1e-4)
    assert tiles[0].label == "" and tiles[0].class_id == -1


def test_sky_skipped_by_colour_without_a_camera():
    """Smooth light-blue tiles connected to the top of the frame are not analysed; blue lower down is kept."""
    img = _two_halves(120, 160)
    img[:40] = SKY
    img[100:, :40] = SKY  # a blue tarp on the ground, not connected to the top
    tiles = HealthAnalyzer(None, rows=6, cols=4).analyze(img)
    rows_seen = {t.row for t in tiles}
    assert rows_seen == {2, 3, 4, 5}
    assert any(t.row == 5 and t.col == 0 for t in tiles)


def test_sky_and_border_skipped_from_camera_geometry():
    """A camera pitched 10 deg below the horizon: tiles above the horizon or nearly on it, and the border, are skipped."""
    cam = CameraModel.from_sensor(6.4, 4.8, 4.0, 640, 480)  # ~77 x 62 deg field of view
    proj = Projector(cam, CameraMount(pitch_deg=-10.0))
    pose = Pose(0, -35.0, 149.0, 620.0, 20.0)
    analyzer = HealthAnalyzer(None, rows=6, cols=8, projector=proj, min_depression_deg=5.0, max_range_m=500)
    boxes, keep = analyzer.plan(np.zeros((480, 640, 3), np.uint8), pose)
    assert boxes[0, 0] == 24 and boxes[0, 1] == 24  # 5 % border in an oblique view
    keep = keep.reshape(6, 8)
    assert not keep[:3].any()          # rows above (or just under) the horizon
    assert keep[5].all()               # the bottom row looks 30+ deg down
    nadir = HealthAnalyzer(None, rows=6, cols=8, projector=Projector(cam), max_range_m=500)
    boxes, keep = nadir.plan(np.zeros((480, 640, 3), np.uint8), pose)
    assert keep.all() and boxes[0, 0] == 0
    with pytest.raises(CameraError, match="expected 640x480"):
        nadir.plan(np.zeros((240, 320, 3), np.uint8), pose)


def test_bad_frames():
    a = HealthAnalyzer(None)
    with pytest.raises(CameraError, match="expected an HxWxC uint8"):
        a.analyze(np.zeros((10, 10), np.uint8))
    with pytest.raises(CameraError, match="expected"):
        a.analyze(np.zeros((10, 10, 2), np.uint8))
