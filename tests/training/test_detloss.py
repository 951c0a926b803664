"""Target assignment and the detection loss agree with the decode the exported model uses."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytestmark = [pytest.mark.train, pytest.mark.slow]


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def test_assignment_picks_level_by_size_and_cells_near_the_centre():
    from agridrone.training.detloss import assign, level_offsets

    imgsz = 128
    small = np.array([[8, 8, 28, 28]], np.float32)        # 20 px -> stride 8, centre (2.25, 2.25) cells
    big = np.array([[0, 0, 128, 100]], np.float32)         # 128 px -> stride 32
    pos, tbox, tcls = assign([small, big], [np.array([3]), np.array([1])], imgsz)
    offs = level_offsets(imgsz)
    cells = np.flatnonzero(pos[0])
    assert len(cells) == 4 and (cells < offs[1]).all()     # 4 cells at stride 8
    n = imgsz // 8
    assert {(c // n, c % n) for c in cells} == {(1, 1), (1, 2), (2, 1), (2, 2)}  # within one cell of it
    assert (tcls[0, cells] == 3).all() and np.allclose(tbox[0, cells], small[0])
    assert (np.flatnonzero(pos[1]) >= offs[2]).all() and pos[1].sum() >= 1


def test_perfect_logits_give_near_zero_box_loss_and_lower_class_loss():
    import tensorflow as tf

    from agridrone.training.detloss import DetectionLoss, assign
    from agridrone.training.nets import grid_constants

    imgsz, c = 64, 2
    box = np.array([[20, 12, 44, 36]], np.float32)         # 24 px square, centre (32, 24)
    pos, tbox, tcls = assign([box], [np.array([1])], imgsz)
    grid, stride = grid_constants(imgsz)
    raw = np.zeros((1, len(grid), 4 + c), np.float32)
    raw[..., 4:] = -9.0
    for k in np.flatnonzero(pos[0]):
        s = stride[k, 0]
        cx, cy = 32 / s - grid[k, 0], 24 / s - grid[k, 1]
        raw[0, k, 0] = _logit((cx + 0.5) / 2)
        raw[0, k, 1] = _logit((cy + 0.5) / 2)
        raw[0, k, 2:4] = _logit(np.sqrt(24 / (4 * s)) / 2)
        raw[0, k, 5] = 9.0
    loss = DetectionLoss(imgsz, c)
    _, good = loss(tf.constant(raw), tf.constant(pos), tf.constant(tbox), tf.constant(tcls))
    bad_raw = raw.copy()
    bad_raw[..., 2:4] = 0.0
    bad_raw[..., 5] = -9.0
    _, bad = loss(tf.constant(bad_raw), tf.constant(pos), tf.constant(tbox), tf.constant(tcls))
    assert float(good["box"]) < 1e-3
    assert float(bad["box"]) > 0.1 and float(bad["cls"]) > float(good["cls"])


def test_export_decode_returns_yolov8_layout_in_0_1():
    from agridrone.training import nets

    core = nets.build_detector(3, 64, 0.25)
    out = np.asarray(nets.export_detector(core, 1)(np.random.rand(1, 64, 64, 3).astype(np.float32)))
    n = (64 // 8) ** 2 + (64 // 16) ** 2 + (64 // 32) ** 2
    assert out.shape == (1, 4 + 3, n)
    assert out.min() >= 0.0 and out.max() <= 1.0
