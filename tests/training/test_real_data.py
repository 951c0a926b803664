"""Datasets the way users bring them: their own class names, camera frames larger than the detector's
input, no splits. The shipped model is scored by the real runtime over tiles as the flight loop runs
it; training meets large images at their own scale."""

import json

import cv2
import numpy as np
import pytest

from agridrone.cli import main
from agridrone.errors import DatasetError
from agridrone.training.augment import detection
from agridrone.training.labelmap import map_labels, norm, parse_overrides
from dataset_helpers import REAL_NAMES, coco_frames as _coco_frames

MODEL_LABELS = ("tree", "person", "animal", "vehicle", "pole", "building")


def test_dataset_class_names_meet_the_model_labels_by_name_synonym_and_override():
    lm = map_labels(["Tree", "pedestrians", "Cows", "car", "utility-pole", "barn", "bicycle", "Sheep"], MODEL_LABELS,
                    parse_overrides(["bicycle=vehicle", "sheep=-"]))
    assert lm.as_dict() == {"Tree": "tree", "pedestrians": "person", "Cows": "animal", "car": "vehicle",
                            "utility-pole": "pole", "barn": "building", "bicycle": "vehicle", "Sheep": None}
    assert lm.how[0] == "same name" and lm.how[1] == "synonym" and lm.how[6] == "--map"
    assert lm.unmatched == ["Sheep"]
    unknown = map_labels(["scarecrow", "tractor"], MODEL_LABELS)
    assert unknown.ids.tolist() == [-1, 3] and "--map" in unknown.how[0]
    # synonyms only point at labels the model has: a model of its own classes keeps them apart
    own = map_labels(["car", "truck"], ("car", "truck"))
    assert own.ids.tolist() == [0, 1]
    assert norm("Bushes") == "bush" and norm("Lorries") == "lorry" and norm("bus") == "bus"
    assert norm("buses") == "bus" and norm("houses") == "house" and norm("Boxes") == "box"


@pytest.mark.parametrize("pairs, expected", [
    (["car"], "expected DATASET_CLASS=MODEL_LABEL"),
    (["car=plane"], "expected one of the model's labels"),
    (["boat=vehicle"], "expected classes of the dataset"),
])
def test_a_wrong_map_is_refused_in_one_line(pairs, expected):
    with pytest.raises(DatasetError, match=expected) as err:
        map_labels(["car", "tree"], MODEL_LABELS, parse_overrides(pairs))
    assert "\n" not in str(err.value)


def test_eval_of_camera_frames_runs_tiles_as_the_flight_loop_and_maps_class_names(tmp_path, capsys):
    """960x720 frames: shrunk whole into the 320 input, people and animals become 2-5 px and mostly
    vanish; over 320 px tiles at frame resolution (the flight loop's default) they keep their size.
    Every image is scored (the dataset has no splits), the dataset's names are mapped."""
    n_boxes = _coco_frames(tmp_path / "frames", 12)
    runs = {}
    for scale in ("1", "0"):
        assert main(["models", "eval", "models/detector.tflite", "--data", str(tmp_path / "frames"),
                     "--tile-scale", scale, "--json"]) == 0
        runs[scale] = json.loads(capsys.readouterr().out)
    tiled, whole = runs["1"], runs["0"]
    assert tiled["images"] == whole["images"] == 12 and tiled["split"] == "all"
    assert sum(tiled["gt_counts"]) == n_boxes
    assert tiled["label_map"] == dict(zip(REAL_NAMES, MODEL_LABELS)) and tiled["unmatched_dataset_classes"] == []
    assert tiled["tiles"] == {"scale": 1.0, "side_px": 320, "min_overlap_px": 64, "tiled_images": 12,
                              "tiles_per_tiled_image": 12.0}
    assert whole["tiles"] == {"scale": 0, "tiled_images": 0}
    assert tiled["map50"] > whole["map50"] + 0.15, (tiled["map50"], whole["map50"])
    # the text report says both
    assert main(["models", "eval", "models/detector.tflite", "--data", str(tmp_path / "frames")]) == 0
    out = capsys.readouterr().out
    assert "12 images larger than one 320 px tile ran over 12.0 tiles each" in out
    assert "pedestrian -> person" in out and "barn -> building" in out


def _iou(a, b):
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_detect_runs_camera_frames_over_tiles_when_asked(tmp_path, capsys):
    """Ten 960x720 frames (46 objects): the shipped detector finds 8 of them shrunk whole, 26 over tiles."""
    from agridrone.training import DETECTOR_CLASSES
    from agridrone.training.synth import render_scene

    hits = {"1": 0, "0": 0}
    for k in range(10):
        sc = render_scene(7, k, (720, 960), view="nadir")
        cv2.imwrite(str(tmp_path / f"f{k}.jpg"), cv2.cvtColor(sc.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        for scale in hits:
            assert main(["models", "detect", "models/detector.tflite", str(tmp_path / f"f{k}.jpg"), "--json",
                         "--threshold", "0.35", "--tile-scale", scale]) == 0
            dets = json.loads(capsys.readouterr().out)[0]["detections"]
            hits[scale] += sum(any(_iou(d["box_xyxy"], g) >= 0.3 and d["label"] == DETECTOR_CLASSES[c] for d in dets)
                               for g, c in zip(sc.boxes, sc.classes))
    assert hits["1"] >= 2 * hits["0"] + 5, hits
    assert main(["models", "detect", "models/detector.tflite", str(tmp_path / "f0.jpg"), "--tile-scale", "9"]) == 2
    assert "tile_scale" in capsys.readouterr().err


def test_eval_scores_a_class_without_instances_and_refuses_a_broken_file(tmp_path, capsys):
    root = tmp_path / "frames"
    _coco_frames(root, 2, size_hw=(240, 320), names=REAL_NAMES + ["scarecrow"])
    assert main(["models", "eval", "models/detector.tflite", "--data", str(root), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["images"] == 2 and res["unmatched_dataset_classes"] == ["scarecrow"]
    (root / "images" / "frame_0001.jpg").write_bytes(b"not a jpeg")
    rc = main(["models", "eval", "models/detector.tflite", "--data", str(root)])
    captured = capsys.readouterr()
    assert rc == 8 and "expected a readable image file" in captured.err and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def _box_sides(scale, size=320, draws=200):
    img = np.full((720, 960, 3), 90, np.uint8)
    cv2.rectangle(img, (470, 350), (490, 370), (250, 250, 250), -1)
    box = np.array([[470 / 960, 350 / 720, 490 / 960, 370 / 720]], np.float32)
    sides = []
    for k in range(draws):
        _, b, _ = detection(np.random.default_rng(k), img, box, np.array([1]), size, canvas=224, scale=scale)
        sides += [max(x2 - x1, y2 - y1) for x1, y1, x2, y2 in b]
    return np.array(sides)


def test_large_images_are_trained_at_their_own_scale_not_shrunk_whole():
    """A 20 px object in a 960x720 frame: fitted whole into 320 it is ~7 px in training, while the
    flight loop's tiles show it at 20 px; with ``scale`` 1.0 training shows it at 20 px too (x0.55..1.6),
    and the crops are centred on objects often enough to see it in a good share of them."""
    native, fitted = _box_sides(1.0), _box_sides(None)
    assert 14 <= np.median(native) <= 28, np.median(native)
    assert np.median(fitted) <= 9, np.median(fitted)
    assert len(native) >= 80  # of 200 crops of a 960x720 frame at 224 px, half are centred on the object
    # an image that fits the input at that scale is fitted whole exactly as without it
    small = np.full((300, 320, 3), 90, np.uint8)
    box = np.array([[0.4, 0.4, 0.5, 0.5]], np.float32)
    a = detection(np.random.default_rng(3), small, box, np.array([0]), 320, canvas=224, scale=1.0)
    b = detection(np.random.default_rng(3), small, box, np.array([0]), 320, canvas=224)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_image_store_keeps_small_images_whole_and_large_ones_compressed_at_the_tile_scale():
    pytest.importorskip("tensorflow")
    from agridrone.training.pipeline import ImageStore

    rng = np.random.default_rng(0)
    store = ImageStore(320, 0.5)
    small = rng.integers(0, 255, (480, 600, 3), dtype=np.uint8)     # 300 px at 0.5: fitted whole
    large = rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)   # 960 px at 0.5: tiles
    store.add("s", small)
    store.add("l", large)
    assert store.large == 1 and "s" in store and "l" in store and "x" not in store
    assert store["s"].shape == (256, 320, 3)
    assert store["l"].shape == (540, 960, 3)  # stored at 0.5 x, so the model meets it at 1.0 x of that
    assert store.eval_scale == 1.0
    view = store.model_view("l", np.random.default_rng(1))
    assert view.shape == (320, 320, 3)
    assert ImageStore(320, 1.0).eval_scale == 0.0  # no large image: evaluated whole, as before
    with pytest.raises(ValueError, match="tile_scale"):
        ImageStore(320, 9.0)


def test_shipped_float_weights_are_the_shipped_detector_and_start_a_new_class_set():
    """models/detector.weights.npz is the float model detector.tflite was quantized from: loaded into a
    fresh network it scores as the int8 file does on scenes neither was trained on; a dataset of other
    classes keeps everything but the output layers."""
    pytest.importorskip("tensorflow")
    from pathlib import Path

    from agridrone.training import nets
    from agridrone.training.evaluate import eval_detector, keras_detector_predict, tflite_detector_predict
    from agridrone.training.synth import render_scene

    core = nets.build_detector(6, None, 1.0)
    r = nets.load_weights(core, "models/detector.weights.npz")
    assert r == {"loaded": r["tensors"], "tensors": len(core.weights), "head_reinitialised": False}

    class Item:
        def __init__(self, k, scene):
            self.image, self.scene = f"scene{k}", scene
            h, w = scene.image.shape[:2]
            self.boxes = scene.boxes / np.array([w, h, w, h], np.float32)
            self.classes = scene.classes

    items = [Item(k, render_scene(7, 1000 + k)) for k in range(40)]
    cache = {it.image: it.scene.image for it in items}
    fl = eval_detector(keras_detector_predict(nets.export_detector(core, None, 320), 320), items, 6, cache=cache)
    q = eval_detector(tflite_detector_predict(Path("models/detector.tflite")), items, 6, cache=cache)
    assert fl["map50"] > 0.3 and abs(fl["map50"] - q["map50"]) < 0.04, (fl["map50"], q["map50"])

    other = nets.build_detector(2, None, 1.0)
    r2 = nets.load_weights(other, "models/detector.weights.npz")
    assert r2["head_reinitialised"] and r2["loaded"] == r2["tensors"] - 6  # 3 output convs: kernel + bias


def test_init_weights_of_another_width_or_a_broken_file_are_refused_in_one_line(tmp_path):
    pytest.importorskip("tensorflow")
    from agridrone.errors import ModelError
    from agridrone.training import nets

    narrow = nets.build_detector(6, None, 0.5)
    with pytest.raises(ModelError, match="another model or width") as err:
        nets.load_weights(narrow, "models/detector.weights.npz")
    assert "\n" not in str(err.value)
    bad = tmp_path / "x.weights.npz"
    bad.write_bytes(b"not numpy")
    with pytest.raises(ModelError, match="expected a .weights.npz"):
        nets.load_weights(narrow, bad)
    nets.save_weights(narrow, tmp_path / "n.weights.npz")
    again = nets.build_detector(6, None, 0.5)
    assert nets.load_weights(again, tmp_path / "n.weights.npz")["loaded"] == len(again.weights)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(narrow.weights, again.weights))


def test_train_refuses_a_missing_init_file_before_any_work(tmp_path, capsys):
    rc = main(["train", "detector", "--tiny", "--init", str(tmp_path / "none.weights.npz"), "--out",
               str(tmp_path / "m"), "--workdir", str(tmp_path / "w"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--init: expected a .weights.npz" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "w").exists()
