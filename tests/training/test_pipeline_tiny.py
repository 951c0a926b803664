"""The whole model-factory path on the tiny CI configuration: generate, validate, train, prune,
quantize to int8, evaluate (float, pruned, int8 through the drone's runtime), write the card; a broken
dataset is refused before training; training resumes from its checkpoint."""

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_model_optimization")
pytestmark = [pytest.mark.train, pytest.mark.slow]

from agridrone.cli import main  # noqa: E402
from agridrone.training import DETECTOR_CLASSES, HEALTH_CLASSES  # noqa: E402

CARD_KEYS = {"name", "version", "task", "labels", "input", "output", "training", "metrics", "file", "created"}


def _check_card(out, stem, task, labels):
    card = json.loads((out / f"{stem}.json").read_text())
    assert CARD_KEYS <= set(card)
    assert card["task"] == task and card["labels"] == list(labels)
    assert card["input"]["dtype"] == "int8" and card["input"]["color_order"] == "RGB"
    assert card["input"]["normalization"] == {"scale": 1 / 255, "mean": 0.0, "std": 1.0}
    assert card["output"]["dtype"] == "int8"
    assert {"float", "pruned", "int8"} <= set(card["metrics"])
    data = (out / f"{stem}.tflite").read_bytes()
    assert card["file"] == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert {"data", "command", "seed", "epochs", "duration_s", "machine"} <= set(card["training"])
    assert (out / f"{stem}.labels.txt").read_text().split() == list(labels)
    assert "## Metrics" in (out / f"{stem}.md").read_text()
    assert (out / f"{stem}.curves.png").stat().st_size > 1000
    return card


def test_tiny_detector_end_to_end_and_models_eval_agrees_with_the_card(tmp_path, capsys):
    out, work = tmp_path / "models", tmp_path / "work"
    assert main(["train", "detector", "--tiny", "--out", str(out), "--workdir", str(work), "--quiet"]) == 0
    card = _check_card(out, "detector", "detection", DETECTOR_CLASSES)
    assert card["input"]["shape"] == [1, 128, 128, 3]
    n = (128 // 8) ** 2 + (128 // 16) ** 2 + (128 // 32) ** 2
    assert card["output"]["shape"] == [1, 4 + len(DETECTOR_CLASSES), n] and card["output"]["layout"] == "yolov8"
    for stage in ("float", "pruned", "int8"):
        assert 0.0 <= card["metrics"][stage]["map50"] <= 1.0
    assert card["metrics"]["pruned"]["sparsity"] == pytest.approx(0.5, abs=0.02)
    assert card["metrics"]["latency"]["batch1"]["median_ms"] > 0
    by_source = card["metrics"]["int8"]["by_source"]      # renderer scenes and simulated-camera tiles
    assert set(by_source) == {"training renderer", "simulated camera"}
    assert sum(r["images"] for r in by_source.values()) == card["metrics"]["int8"]["images"]
    assert "By data source" in (out / "detector.md").read_text()
    by_size = card["metrics"]["int8"]["by_size"]            # AP by object size, every ground truth in one bucket
    assert list(by_size) == ["tiny", "small", "medium", "large"]
    assert sum(r["gt"] for r in by_size.values()) == sum(card["metrics"]["int8"]["gt_counts"])
    assert "AP@0.5 by object size" in (out / "detector.md").read_text()

    from agridrone.training.evaluate import cli_eval

    data = next(work.glob("synth-det-*"))
    capsys.readouterr()
    assert cli_eval(out / "detector.tflite", data, "yolo", True) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["split"] == "test" and res["images"] == card["metrics"]["int8"]["images"]
    assert res["map50"] == pytest.approx(card["metrics"]["int8"]["map50"], abs=1e-9)
    assert res["by_size"] == card["metrics"]["int8"]["by_size"]


def test_tiny_detector_on_camera_frames_of_a_users_dataset(tmp_path):
    """A COCO dataset of its own class names whose 480x640 frames are larger than the (tiny) 128 px
    input: trained on crops at frame resolution, evaluated over tiles at that scale, and the card says so."""
    from dataset_helpers import REAL_NAMES, coco_frames

    coco_frames(tmp_path / "frames", 16, size_hw=(480, 640))
    out, work = tmp_path / "models", tmp_path / "work"
    assert main(["train", "detector", "--tiny", "--data", str(tmp_path / "frames"), "--sparsity", "0",
                 "--out", str(out), "--workdir", str(work), "--quiet"]) == 0
    card = json.loads((out / "detector.json").read_text())
    assert card["labels"] == REAL_NAMES
    int8 = card["metrics"]["int8"]
    assert int8["images"] >= 1 and int8["tiles"]["tiled_images"] == int8["images"]
    assert int8["tiles"]["side_px"] == 128 and int8["tiles"]["tiles_per_tiled_image"] >= 20
    assert "16 of 16 images larger than one 128 px input" in card["training"]["data"]
    assert "pruned" not in card["metrics"]
    from agridrone.training import nets  # the float weights beside it start a later run (--init)

    assert nets.load_weights(nets.build_detector(6, None, 0.5), out / "detector.weights.npz")["head_reinitialised"] is False


def test_tiny_health_end_to_end(tmp_path):
    out, work = tmp_path / "models", tmp_path / "work"
    assert main(["train", "health", "--tiny", "--out", str(out), "--workdir", str(work), "--quiet"]) == 0
    card = _check_card(out, "health", "classification", HEALTH_CLASSES)
    assert card["input"]["shape"] == [1, 64, 64, 3] and card["output"]["shape"] == [1, 4]
    assert card["output"]["layout"] == "softmax"
    cm = np.array(card["metrics"]["int8"]["confusion"])
    assert cm.shape == (4, 4) and cm.sum() == card["metrics"]["int8"]["images"]
    assert card["metrics"]["latency"]["batch40"]["batch"] == 40


def test_broken_dataset_is_refused_before_training(tmp_path, capsys):
    root = tmp_path / "broken"
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    import cv2

    cv2.imwrite(str(root / "images" / "train" / "a.jpg"), np.zeros((32, 32, 3), np.uint8))
    (root / "labels" / "train" / "a.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    (root / "data.yaml").write_text("train: images/train\nnames: [tree]\n")
    rc = main(["train", "detector", "--tiny", "--data", str(root), "--out", str(tmp_path / "m"),
               "--workdir", str(tmp_path / "w"), "--quiet"])
    err = capsys.readouterr()
    assert rc == 8
    assert "refusing to train" in err.err and "class id 9 out of range" in err.err
    assert "a.txt:1" in err.out  # the full report names the place
    assert not (tmp_path / "m" / "detector.tflite").exists()


def test_fit_resumes_from_its_checkpoint(tmp_path):
    import tensorflow as tf
    import tf_keras as keras

    from agridrone.training.fit import fit

    def model():
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])

    def batches(epoch):
        rng = np.random.default_rng(epoch)
        for _ in range(3):
            x = rng.random((8, 4), dtype=np.float32)
            yield x, x.sum(1, keepdims=True)

    def loss(out, y):
        return tf.reduce_mean(tf.square(out - y)), {}

    logs = []
    kw = dict(steps_per_epoch=3, lr=0.05, ckpt_dir=tmp_path / "ck", name="t", progress=False, log=logs.append)
    m1 = model()
    fit(m1, batches, loss, epochs=2, **kw)
    m2 = model()
    h = fit(m2, batches, loss, epochs=3, **kw)
    assert any("resumed" in s and "epoch 2" in s for s in logs)
    assert h["epoch"] == [1, 2, 3]
    assert sum("epoch 1/" in s for s in logs) == 1  # epoch 1 was not trained again
