"""Decoder units: NMS against a plain greedy loop, transposed YOLOv8 heads, quantized scores at the threshold."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agridrone.perception import decoders
from agridrone.perception.decoders import YoloDecoder, nms
from agridrone.perception.runtime import TensorSpec
from perception_reference import greedy_nms


def _random_boxes(rng, n, classes=3):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(5, 40, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    return boxes, rng.uniform(0, 1, n).astype(np.float32), rng.integers(0, classes, n).astype(np.int32)


@pytest.mark.parametrize("n", [0, 1, 40, 300])
def test_nms_equals_plain_greedy(n):
    rng = np.random.default_rng(n)
    boxes, scores, classes = _random_boxes(rng, n)
    kept = nms(boxes, scores, classes, 0.45)
    want = greedy_nms([(list(map(float, b)), int(c), float(s)) for b, c, s in zip(boxes, classes, scores)], 0.45)
    assert [int(classes[i]) for i in kept] == [c for _, c, _ in want]
    np.testing.assert_allclose(scores[kept], [s for _, _, s in want])


def test_nms_large_path_agrees_with_matrix_path(monkeypatch):
    rng = np.random.default_rng(7)
    boxes, scores, classes = _random_boxes(rng, 400)
    a = nms(boxes, scores, classes, 0.5, max_detections=50)
    monkeypatch.setattr(decoders, "MATRIX_NMS_MAX", 10)
    b = nms(boxes, scores, classes, 0.5, max_detections=50)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 50


def _fake_model(shape, dtype=np.float32, scale=0.0, zp=0):
    spec = TensorSpec("out", 0, tuple(shape), np.dtype(dtype), scale, zp)
    return SimpleNamespace(outputs=(spec,), path=Path("fake.tflite"), ops=lambda: [])


def test_transposed_yolov8_head_decodes_the_same():
    rng = np.random.default_rng(1)
    n, c = 50, 4
    head = np.concatenate([rng.uniform(0.2, 0.8, (2, n)), rng.uniform(0.05, 0.3, (2, n)),
                           rng.uniform(0, 1, (c, n))]).astype(np.float32)[None]
    normal = YoloDecoder(_fake_model(head.shape), "yolov8", (320, 320))
    flipped = YoloDecoder(_fake_model((1, n, 4 + c)), "yolov8", (320, 320))
    assert flipped.transposed and flipped.num_classes == c == normal.num_classes
    a = normal.decode(head, 0.3, 0.45)
    b = flipped.decode(np.transpose(head, (0, 2, 1)), 0.3, 0.45)
    assert len(a.scores) > 3
    np.testing.assert_array_equal(a.boxes_xyxy, b.boxes_xyxy)
    np.testing.assert_array_equal(a.class_ids, b.class_ids)


def test_quantized_score_exactly_at_threshold_is_dropped():
    """score > threshold: an int8 score that dequantizes to exactly 0.25 is not a detection; one step up is."""
    scale, zp = 1 / 256, -128
    q = np.full((1, 5, 8), zp, np.int8)  # 1 class, 8 anchors (6 with score 0)
    q[0, :4, 0] = [10, 10, 5, 5]
    q[0, :4, 1] = [90, 90, 5, 5]  # apart: NMS keeps both if both pass
    q[0, 4, 0] = -64   # (-64 + 128) / 256 = 0.25
    q[0, 4, 1] = -63
    dec = YoloDecoder(_fake_model(q.shape, np.int8, scale, zp), "yolov8", (64, 64), boxes="normalized")
    got = dec.decode(q, 0.25, 0.45)
    assert len(got.scores) == 1 and got.scores[0] == pytest.approx(65 / 256)


def test_end_to_end_head_thresholds_and_scales():
    """[1, N, 6] heads (NMS inside the model): normalised xyxy scaled to the input, score > threshold kept."""
    from agridrone.perception.decoders import EndToEndDecoder
    from agridrone.perception.detector import _auto_layout

    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [0.1, 0.2, 0.3, 0.4, 0.9, 2]
    rows[0, 1] = [0.5, 0.5, 0.9, 0.8, 0.2, 0]
    rows[0, 2] = [0.0, 0.0, 0.5, 0.5, 0.6, 1]
    model = _fake_model(rows.shape)
    assert _auto_layout(model, None) == "end2end"
    assert _auto_layout(model, 80) == "end2end"
    assert _auto_layout(_fake_model((1, 25200, 6)), None) == "yolov5"
    got = EndToEndDecoder(model, (640, 320)).decode(rows, 0.5)
    np.testing.assert_allclose(got.boxes_xyxy, [[64, 64, 192, 128], [0, 0, 320, 160]], atol=1e-4)
    assert got.class_ids.tolist() == [2, 1] and got.scores.tolist() == pytest.approx([0.9, 0.6])
