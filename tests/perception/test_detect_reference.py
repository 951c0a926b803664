"""`agridrone models detect` gives the same detections as the independent reference decoder.

Every family (YOLOv8 float/int8, YOLOv5 float/uint8, SSD outputs found by name, the real SSD export
with the post-process op) on images of several sizes and aspect ratios, so the letterbox/stretch
inverse, the dequantisation, the threshold and class-aware NMS are all exercised.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from agridrone.cli import main

import perception_reference as reference
from perception_reference import CLASSES


def _photo(w: int, h: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) % 256)], -1).astype(np.uint8)
    for _ in range(6):
        x, y, r = int(rng.integers(0, w)), int(rng.integers(0, h)), int(rng.integers(5, max(6, min(w, h) // 4)))
        cv2.circle(img, (x, y), r, tuple(int(v) for v in rng.integers(0, 255, 3)), -1)
    return img


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    paths = []
    for i, (w, h) in enumerate([(640, 480), (333, 517), (64, 64)]):
        p = d / f"photo{i}.png"
        cv2.imwrite(str(p), _photo(w, h, i))
        paths.append(p)
    return paths


def _cli_json(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def _compare(got, want, label_of):
    assert len(got) == len(want), f"got {len(got)} detections, the reference {len(want)}:\n{got}\n{want}"
    for g, (box, cls, score) in zip(got, want):
        assert g["class_id"] == cls
        assert g["label"] == label_of(cls)
        assert g["score"] == pytest.approx(score, abs=1e-3)
        np.testing.assert_allclose(g["box_xyxy"], box, atol=0.02, rtol=1e-4)


@pytest.mark.parametrize("name", ["yolov8_float", "yolov8_int8", "yolov5_float", "yolov5_uint8"])
def test_yolo_matches_reference(tiny_models, photos, tmp_path, capsys, name):
    """YOLO exports (both layouts, float and quantized) decode exactly as the reference does, boxes in original pixels."""
    built = tiny_models[name]
    labels = tmp_path / "labels.txt"
    # the uint8 model's label file carries a background line first: it must be dropped
    labels.write_text(("background\n" if name == "yolov5_uint8" else "") + "\n".join(CLASSES) + "\n")
    records = _cli_json(capsys, ["models", "detect", str(built.path), *map(str, photos), "--labels", str(labels),
                                 "--json", "--threshold", "0.3"])
    assert [r["image"] for r in records] == [str(p) for p in photos]
    total = 0
    for rec, path in zip(records, photos):
        img = cv2.imread(str(path))
        assert (rec["width"], rec["height"]) == (img.shape[1], img.shape[0])
        want = reference.decode_yolo(built.path, img, built.layout, thr=0.3, iou_thr=0.45)
        _compare(rec["detections"], want, lambda c: CLASSES[c])
        total += len(want)
    assert total >= 6  # the hand-made heads do produce boxes, several suppressed by NMS


def test_nms_is_class_aware_and_suppresses(tiny_models, photos, capsys):
    """Overlapping boxes of one class are reduced to one; a box of another class at the same place survives."""
    built = tiny_models["yolov8_float"]
    low = _cli_json(capsys, ["models", "detect", str(built.path), str(photos[0]), "--json", "--threshold", "0.3",
                             "--iou", "1.0"])[0]["detections"]
    nms = _cli_json(capsys, ["models", "detect", str(built.path), str(photos[0]), "--json", "--threshold", "0.3"]
                    )[0]["detections"]
    assert len(nms) < len(low)
    assert len({d["class_id"] for d in nms}) >= 2


def test_ssd_outputs_found_by_name_not_position(tiny_models, photos, capsys):
    """A model whose four post-process outputs come in a shuffled order is decoded by their names."""
    built = tiny_models["ssd_named"]
    records = _cli_json(capsys, ["models", "detect", str(built.path), *map(str, photos), "--json", "--threshold", "0.3"])
    for rec, path in zip(records, photos):
        want = reference.decode_ssd(built.path, cv2.imread(str(path)), thr=0.3)
        assert want, "the test model emits boxes above the threshold"
        _compare(rec["detections"], want, str)


def test_real_ssd_export_on_its_frame(shared_testdata, capsys):
    """The real Coral SSD export (uint8, post-process op, two LSTM-state inputs held at zero) on its traffic frame."""
    folder = shared_testdata / "ssd-postprocess"
    model, frame, labels = folder / "traffic_model.tflite", folder / "frame-0001.bmp", folder / "traffic_labels.txt"
    names = labels.read_text().split()
    records = _cli_json(capsys, ["models", "detect", str(model), str(frame), "--labels", str(labels), "--json",
                                 "--threshold", "0.3"])
    got = records[0]["detections"]
    want = reference.decode_ssd(model, cv2.imread(str(frame)), thr=0.3)
    _compare(got, want, lambda c: names[c])
    # what a person sees in the frame: a dark sedan left of centre and a pickup at the right edge
    sedan = [d for d in got if d["label"] == "sedan"]
    pickup = [d for d in got if d["label"] == "pickup_suv_van"]
    assert sedan and pickup
    assert 50 < (sedan[0]["box_xyxy"][0] + sedan[0]["box_xyxy"][2]) / 2 < 130
    assert (pickup[0]["box_xyxy"][0] + pickup[0]["box_xyxy"][2]) / 2 > 200


def test_real_ssd_on_a_resized_frame_maps_back(shared_testdata, capsys, tmp_path):
    """The same frame at 640x480: boxes come back in the larger image's pixels (stretch inverse)."""
    folder = shared_testdata / "ssd-postprocess"
    img = cv2.resize(cv2.imread(str(folder / "frame-0001.bmp")), (640, 480), interpolation=cv2.INTER_LINEAR)
    p = tmp_path / "big.png"
    cv2.imwrite(str(p), img)
    got = _cli_json(capsys, ["models", "detect", str(folder / "traffic_model.tflite"), str(p), "--json",
                             "--threshold", "0.3"])[0]["detections"]
    want = reference.decode_ssd(folder / "traffic_model.tflite", img, thr=0.3)
    _compare(got, want, str)
    assert max(d["box_xyxy"][2] for d in got) > 500


def _with_tflite_metadata(model: bytes, mean: list[float], std: list[float]) -> bytes:
    """The model with a TFLITE_METADATA buffer saying: input 0 is normalised (pixel - mean) / std."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    b = flatbuffers.Builder(256)

    def floats(vals):
        b.StartVector(4, len(vals), 4)
        for v in reversed(vals):
            b.PrependFloat32(v)
        return b.EndVector()

    def one(table):
        b.StartVector(4, 1, 4)
        b.PrependUOffsetTRelative(table)
        return b.EndVector()

    mean_v, std_v = floats(mean), floats(std)
    b.StartObject(2)  # NormalizationOptions {mean, std}
    b.PrependUOffsetTRelativeSlot(0, mean_v, 0)
    b.PrependUOffsetTRelativeSlot(1, std_v, 0)
    norm = b.EndObject()
    b.StartObject(2)  # ProcessUnit {options_type = NormalizationOptions, options}
    b.PrependUint8Slot(0, 1, 0)
    b.PrependUOffsetTRelativeSlot(1, norm, 0)
    units = one(b.EndObject())
    b.StartObject(7)  # TensorMetadata {process_units (field 4)}
    b.PrependUOffsetTRelativeSlot(4, units, 0)
    tensors = one(b.EndObject())
    b.StartObject(9)  # SubGraphMetadata {input_tensor_metadata (field 2)}
    b.PrependUOffsetTRelativeSlot(2, tensors, 0)
    subgraphs = one(b.EndObject())
    b.StartObject(8)  # ModelMetadata {subgraph_metadata (field 3)}
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    meta = bytes(b.Output())

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    buf = schema.BufferT()
    buf.data = np.frombuffer(meta, np.uint8)
    m.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = "TFLITE_METADATA"
    entry.buffer = len(m.buffers) - 1
    m.metadata = list(m.metadata or []) + [entry]
    out = flatbuffers.Builder(1024)
    out.Finish(m.Pack(out), file_identifier=b"TFL3")
    return bytes(out.Output())


def test_float_input_normalisation_read_from_tflite_metadata(tiny_models, photos, tmp_path, capsys):
    """A float model whose metadata says (pixel - 127.5) / 127.5 is fed that way: same as the reference fed so."""
    pytest.importorskip("flatbuffers")
    model = tmp_path / "with_meta.tflite"
    model.write_bytes(_with_tflite_metadata(tiny_models["yolov8_float"].path.read_bytes(), [127.5], [127.5]))
    from agridrone.perception.tflite_meta import input_normalization

    assert input_normalization(model.read_bytes()) == ([127.5], [127.5])
    img = cv2.imread(str(photos[0]))
    got = _cli_json(capsys, ["models", "detect", str(model), str(photos[0]), "--json", "--threshold", "0.3"])
    want = reference.decode_yolo(model, img, "yolov8", thr=0.3, float_norm=lambda rgb: (rgb - 127.5) / 127.5)
    _compare(got[0]["detections"], want, str)
    plain = reference.decode_yolo(model, img, "yolov8", thr=0.3)
    assert [d[0] for d in plain] != [d[0] for d in want]  # the normalisation does change the boxes
