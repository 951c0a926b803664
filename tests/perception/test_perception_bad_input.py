"""Bad models, labels, images, videos and frames give one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import sys
import types

import cv2
import numpy as np
import pytest

from agridrone.cli import main
from agridrone.errors import CameraError, ConfigError, ModelError
from agridrone.perception.detector import Detector
from agridrone.perception.runtime import TFLiteModel
from perception_reference import CLASSES


def _fails(capsys, argv, code, *words):
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == code, (rc, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("agridrone: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "img.png"
    cv2.imwrite(str(p), np.full((48, 64, 3), 90, np.uint8))
    return p


def test_missing_corrupt_truncated_models(tiny_models, tmp_path, image, capsys):
    """Each broken model file is named in a ModelError saying what was wrong (exit 6)."""
    good = tiny_models["yolov8_float"].path.read_bytes()
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00\x01" * 64)
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    _fails(capsys, ["models", "detect", str(tmp_path / "nope.tflite"), str(image)], 6, "nope.tflite", "no such file")
    _fails(capsys, ["models", "detect", str(garbage), str(image)], 6, "garbage.tflite", "TFL3")
    _fails(capsys, ["models", "detect", str(empty), str(image)], 6, "empty.tflite", "0 bytes")
    line = _fails(capsys, ["models", "detect", str(truncated), str(image)], 6, "truncated.tflite")
    assert "truncated" in line or "not a loadable" in line


def test_model_matching_no_decoder(tiny_models, image, capsys):
    """Outputs [1, 7] and [1, 5] fit no detector family: the message lists what came and what was expected."""
    _fails(capsys, ["models", "detect", str(tiny_models["mismatch"].path), str(image)], 6, "match no decoder",
           "[1, 7]", "YOLOv5", "SSD")


def test_layout_forced_on_the_wrong_model(tiny_models, image, capsys):
    """Asking for SSD decoding of a YOLO model is refused at load, naming the file and the tensors."""
    _fails(capsys, ["models", "detect", str(tiny_models["yolov8_float"].path), str(image), "--layout", "ssd"], 6,
           "yolov8_float.tflite", "boxes [1, N, 4]")


def test_label_file_with_wrong_count(tiny_models, image, tmp_path, capsys):
    """Five names for a three-class model: expected 3 (or 4 with a background line), got 5."""
    labels = tmp_path / "five.txt"
    labels.write_text("a\nb\nc\nd\ne\n")
    _fails(capsys, ["models", "detect", str(tiny_models["yolov8_int8"].path), str(image), "--labels", str(labels)],
           6, "five.txt", "expected 3", "got 5")


def test_image_that_does_not_decode(tiny_models, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    _fails(capsys, ["models", "detect", str(tiny_models["yolov8_float"].path), str(bad)], 7, "broken.jpg", "decod")
    _fails(capsys, ["health", str(bad)], 7, "broken.jpg")


def test_video_that_ends_and_one_that_is_empty(tiny_models, tmp_path, capsys):
    """A 4-frame video yields 4 records then stops cleanly; an empty .avi is one CameraError."""
    import json

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 64))
    assert writer.isOpened()
    for i in range(4):
        writer.write(np.full((64, 96, 3), 40 * i, np.uint8))
    writer.release()
    rc = main(["models", "detect", str(tiny_models["yolov8_float"].path), str(video), "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    records = json.loads(out)
    assert [r["frame"] for r in records] == [0, 1, 2, 3]
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    _fails(capsys, ["models", "detect", str(tiny_models["yolov8_float"].path), str(empty)], 7, "empty.avi")


def test_video_that_stalls(monkeypatch, tmp_path):
    """A source that stops delivering is a CameraError after the stall timeout, not a hang."""
    import threading

    from agridrone import camera
    from agridrone.commands import models as cmd
    from agridrone.types import Frame

    release = threading.Event()

    class StuckSource:
        def __init__(self, *_):
            self.n = 0

        def open(self):
            pass

        def read(self):
            self.n += 1
            if self.n > 1:
                release.wait(5.0)
            return Frame(0, np.zeros((8, 8, 3), np.uint8))

        def close(self):
            pass

    monkeypatch.setattr(camera, "VideoFileSource", StuckSource)
    got = []
    with pytest.raises(CameraError, match="stalled"):
        for idx, _ in cmd.iter_video(tmp_path / "stream.mp4", stall_timeout_s=0.3):
            got.append(idx)
    release.set()
    assert got == [0]


@pytest.mark.parametrize("frame, words", [
    (np.zeros((48, 64), np.uint8), "got shape (48, 64)"),
    (np.zeros((48, 64, 2), np.uint8), "2 channels"),
    (np.zeros((48, 64, 3), np.float32), "uint8"),
    (np.zeros((1, 64, 3), np.uint8), "at least 2x2"),
])
def test_frames_of_wrong_shape_or_type(tiny_models, frame, words):
    det = Detector(tiny_models["yolov8_float"].path)
    with pytest.raises(CameraError, match="expected") as info:
        det.detect(frame)
    assert words in str(info.value)


def test_four_channel_frame_uses_its_colour_channels(tiny_models):
    """A BGR+NIR frame is detected on its BGR channels (same detections as the BGR frame)."""
    det = Detector(tiny_models["yolov8_float"].path, conf_threshold=0.3)
    bgr = np.random.default_rng(3).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    nir = np.concatenate([bgr, np.full((60, 80, 1), 200, np.uint8)], axis=2)
    a, b = det.detect(bgr), det.detect(nir)
    assert len(a) > 0
    np.testing.assert_array_equal(a.boxes_xyxy, b.boxes_xyxy)


def test_tflite_runtime_under_numpy2_is_recognised(monkeypatch, tiny_models):
    """tflite-runtime 2.14 imports under numpy 2 but fails in Interpreter(): said so, in one ModelError."""
    fake_pkg = types.ModuleType("tflite_runtime")
    fake_pkg.__version__ = "2.14.0"
    fake_interp = types.ModuleType("tflite_runtime.interpreter")

    class Interpreter:
        def __init__(self, *a, **k):
            raise AttributeError("_ARRAY_API not found")

    fake_interp.Interpreter = Interpreter
    monkeypatch.setitem(sys.modules, "tflite_runtime", fake_pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake_interp)
    monkeypatch.setattr(np, "__version__", "2.4.6")
    with pytest.raises(ModelError) as info:
        TFLiteModel(tiny_models["yolov8_float"].path, runtime="tflite")
    msg = str(info.value)
    assert "tflite-runtime 2.14.0" in msg and "numpy 1" in msg and "numpy 2.4.6" in msg and "ai-edge-litert" in msg


def test_no_runtime_installed(monkeypatch, tiny_models):
    """Without tflite-runtime, asking for it says which package is missing."""
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(ModelError, match="expected a TFLite runtime \\(tflite-runtime\\)"):
        TFLiteModel(tiny_models["yolov8_float"].path, runtime="tflite")


def test_runtime_threads_and_xnnpack(tiny_models):
    m = TFLiteModel(tiny_models["yolov8_int8"].path, num_threads=3)
    assert m.runtime == "litert" and m.num_threads == 3
    assert m.xnnpack
    assert m.inputs[0].dtype == np.int8 and m.inputs[0].quantized
    with pytest.raises(ConfigError, match="num_threads"):
        TFLiteModel(tiny_models["yolov8_int8"].path, num_threads=0)


def test_labels_from_model_card(tiny_models, tmp_path):
    """The card beside the model supplies labels, layout and normalisation."""
    import json
    import shutil

    model = tmp_path / "detector.tflite"
    shutil.copy(tiny_models["yolov8_int8"].path, model)
    (tmp_path / "detector.json").write_text(json.dumps({
        "labels": list(CLASSES), "input": {"color_order": "RGB", "normalization": {"scale": 1 / 255, "mean": 0, "std": 1}},
        "output": {"layout": "yolov8"}}))
    det = Detector(model)
    assert det.labels == CLASSES and det.layout == "yolov8"
    (tmp_path / "detector.json").write_text(json.dumps({"labels": ["a", "b"], "output": {"layout": "yolov8"}}))
    with pytest.raises(ModelError, match="expected 3 class names"):
        Detector(model)
    (tmp_path / "detector.json").write_text("{not json")
    with pytest.raises(ModelError, match="detector.json"):
        Detector(model)


def test_labels_embedded_like_ultralytics(tiny_models, tmp_path):
    """Without --labels, the class names packed in the .tflite's appended metadata zip are used."""
    import shutil
    import zipfile

    model = tmp_path / "yolo_with_meta.tflite"
    shutil.copy(tiny_models["yolov8_float"].path, model)
    with zipfile.ZipFile(model, "a") as z:
        z.writestr("metadata.json", str({"names": {0: "tree", 1: "person", 2: "animal"}, "imgsz": [64, 64]}))
    det = Detector(model)
    assert det.labels == CLASSES
    shutil.copy(tiny_models["yolov8_float"].path, model)
    with zipfile.ZipFile(model, "a") as z:
        z.writestr("metadata.json", str({"names": {0: "a", 1: "b"}}))
    with pytest.raises(ModelError, match="embedded metadata.*expected 3 class names"):
        Detector(model)
