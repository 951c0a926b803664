"""Label files of every common shape, and the exact inverse of resize/letterbox."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agridrone.errors import ModelError
from agridrone.perception.labels import fit_labels, read_label_file
from agridrone.perception.preprocess import Normalization, Preprocessor, place
from agridrone.perception.runtime import TensorSpec


def test_plain_labels_with_and_without_background(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text("???\nperson\nbicycle\n\n")
    assert fit_labels(read_label_file(p), 2, "l.txt") == ("person", "bicycle")
    assert fit_labels(read_label_file(p), None, "l.txt") == ("person", "bicycle")
    p.write_text("person\nbicycle\n")
    assert fit_labels(read_label_file(p), 2, "l.txt") == ("person", "bicycle")
    with pytest.raises(ModelError, match="expected 3 class names .* got 2"):
        fit_labels(read_label_file(p), 3, "l.txt")


def test_numbered_labels_with_gaps(tmp_path):
    p = tmp_path / "coco.txt"
    p.write_text("0  person\n1  bicycle\n3  motorcycle\n")
    assert read_label_file(p) == ["person", "bicycle", "class_2", "motorcycle"]


def test_pbtxt_label_map(tmp_path):
    p = tmp_path / "map.pbtxt"
    p.write_text('item {\n  name: "/m/01g317"\n  id: 1\n  display_name: "person"\n}\n'
                 "item { id: 3 name: 'car' }\nitem {\n id: 2\n name: \"bicycle\"\n}\n")
    names = read_label_file(p)
    assert names == ["background", "person", "bicycle", "car"]
    assert fit_labels(names, 3, "map.pbtxt") == ("person", "bicycle", "car")
    assert fit_labels(names, None, "map.pbtxt") == ("person", "bicycle", "car")
    p.write_text("item { name: 'x' }")
    with pytest.raises(ModelError, match="expected an id"):
        read_label_file(p)


def test_empty_and_missing_label_files(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        read_label_file(tmp_path / "none.txt")
    (tmp_path / "e.txt").write_text("\n\n")
    with pytest.raises(ModelError, match="empty"):
        read_label_file(tmp_path / "e.txt")


@settings(max_examples=60, deadline=None)
@given(w=st.integers(8, 1500), h=st.integers(8, 1500), tw=st.sampled_from([64, 320, 640]),
       th=st.sampled_from([64, 320, 480]), mode=st.sampled_from(["letterbox", "stretch"]))
def test_box_mapping_inverts_the_placement(w, h, tw, th, mode):
    """to_source(to_input(box)) is the box again, and image corners land on the content's corners."""
    _, t = place(np.zeros((h, w, 3), np.uint8), (tw, th), mode)
    boxes = np.array([[0, 0, w, h], [w * 0.25, h * 0.1, w * 0.6, h * 0.9]], np.float32)
    back = t.to_source(t.to_input(boxes))
    np.testing.assert_allclose(back, boxes, rtol=1e-5, atol=1e-3 * max(w, h) / 1000 + 1e-3)
    corners = t.to_input(boxes[:1])[0]
    np.testing.assert_allclose(corners, [t.pad_xy[0], t.pad_xy[1], t.pad_xy[0] + t.content_wh[0],
                                         t.pad_xy[1] + t.content_wh[1]], atol=1e-3)
    if mode == "letterbox":
        assert t.content_wh[0] == tw or t.content_wh[1] == th


def test_letterbox_pads_with_grey_and_centres():
    img = np.full((100, 200, 3), 7, np.uint8)
    out, t = place(img, (64, 64), "letterbox")
    assert t.content_wh == (64, 32) and t.pad_xy == (0, 16)
    assert (out[:16] == 114).all() and (out[48:] == 114).all() and (out[16:48] == 7).all()


def test_input_quantisation_from_params_and_card():
    """int8 input with scale 1/255, zp -128: pixel p -> p - 128 with or without the card's normalisation."""
    spec = TensorSpec("x", 0, (1, 4, 4, 3), np.dtype(np.int8), 1 / 255, -128)
    img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5
    raw = Preprocessor(spec, None, "stretch")(img)[0]
    card = Preprocessor(spec, Normalization(), "stretch")(img)[0]
    want = img[:, :, ::-1].astype(np.int16) - 128
    np.testing.assert_array_equal(raw[0], want)
    np.testing.assert_array_equal(card[0], want)
    fspec = TensorSpec("x", 0, (1, 4, 4, 3), np.dtype(np.float32))
    f = Preprocessor(fspec, Normalization(1 / 255, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), "stretch", rgb=False)(img)[0]
    np.testing.assert_allclose(f[0], (img / 255 - 0.5) / 0.5, atol=1e-6)
