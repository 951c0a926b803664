"""Training augmentation keeps every box on the pixels it labels."""

import numpy as np
import pytest

from agridrone.training import augment


def _centroid(img: np.ndarray, background: int) -> np.ndarray:
    g = np.clip(img[..., 0].astype(np.float64) - background, 0, None)
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return np.array([(g * (xs + 0.5)).sum(), (g * (ys + 0.5)).sum()]) / g.sum()  # pixel i spans [i, i + 1)


def test_a_small_object_stays_centred_in_its_box_under_every_flip_turn_and_scale(monkeypatch):
    # colour effects off: blur and noise would only blur the centroid measured here
    monkeypatch.setattr(augment, "colour", lambda rng, img, hue_deg=0.0: img)
    img = np.full((320, 320, 3), augment.PAD, np.uint8)
    img[100:106, 200:206] = 255                        # a 6 px object, as a person seen from survey height
    box = np.array([[200, 100, 206, 106]], np.float32) / 320
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(200):
        out, b, _ = augment.detection(rng, img, box, np.array([1]), 320, canvas=224)
        if len(b) != 1 or b[0, 0] < 3 or b[0, 1] < 3 or b[0, 2] > 221 or b[0, 3] > 221:
            continue                                   # cut by the crop: the centroid is not the object's
        errors.append(_centroid(out, augment.PAD) - (b[0, :2] + b[0, 2:]) / 2)
    errors = np.array(errors)
    assert len(errors) > 50
    # before the pixel-centre correction: mean +0.5 px, up to 1.4 px (a fifth of this object's width)
    assert np.abs(errors.mean(0)).max() < 0.05
    assert np.abs(errors).max() < 0.3


@pytest.mark.parametrize("lin", [np.eye(2), -np.eye(2), np.array([[0.0, -1.0], [1.0, 0.0]]) * 1.5,
                                 np.diag([-0.6, 0.6])])
def test_pixel_centre_affine_maps_pixel_edges_as_the_boxes_do(lin):
    t = np.array([160.0, 120.0])
    m = augment.pixel_centre_affine(lin, t)
    # OpenCV's map takes pixel centres: centre i + 0.5 (edge coordinates) sits at i
    for p in ([0.0, 0.0], [10.5, 3.5], [99.5, 250.5]):
        centre_edge = np.array(p) + 0.5
        want = lin @ centre_edge + t - 0.5
        assert m[:, :2] @ np.array(p) + m[:, 2] == pytest.approx(want, abs=1e-4)
