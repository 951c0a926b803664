"""Tiny TFLite models built once per session with TensorFlow, in every detector layout.

Each detector is GlobalAveragePooling -> Dense -> Reshape: the Dense bias holds hand-made boxes and
scores (overlapping boxes of the same and of different classes, scores either side of the
threshold), and a small seeded kernel makes the outputs depend on the image, so preprocessing
mistakes show up as different detections. Float and int8 variants come from the TFLite converter.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

INPUT = 64
N_ANCHORS = 24
from perception_reference import CLASSES


@dataclass(frozen=True)
class Built:
    path: Path
    layout: str
    quantized: bool


def _anchor_table(rng: np.random.Generator) -> np.ndarray:
    """[N, 4 + C] rows: cx, cy, w, h (normalised), then class scores in 0..1."""
    rows = []
    centres = [(0.3, 0.3), (0.7, 0.6), (0.5, 0.8)]
    for i in range(N_ANCHORS):
        cx, cy = centres[i % 3]
        jitter = rng.uniform(-0.06, 0.06, 2)
        w, h = rng.uniform(0.15, 0.35, 2)
        scores = rng.uniform(0.02, 0.2, len(CLASSES))
        scores[i % len(CLASSES) if i % 4 else (i + 1) % len(CLASSES)] = rng.uniform(0.1, 0.95)
        rows.append([cx + jitter[0], cy + jitter[1], w, h, *scores])
    return np.asarray(rows, np.float32)


def _dense_model(tf, out_shape: tuple[int, ...], bias: np.ndarray, seed: int, clip01: bool):
    inp = tf.keras.Input((INPUT, INPUT, 3), batch_size=1, dtype=tf.float32)
    x = tf.keras.layers.GlobalAveragePooling2D()(inp)
    dense = tf.keras.layers.Dense(int(np.prod(out_shape)))
    y = dense(x)
    rng = np.random.default_rng(seed)
    dense.set_weights([rng.normal(0, 0.03, (3, int(np.prod(out_shape)))).astype(np.float32), bias.reshape(-1)])
    if clip01:
        y = tf.keras.layers.Lambda(lambda t: tf.clip_by_value(t, 0.0, 1.0))(y)
    y = tf.keras.layers.Reshape(out_shape)(y)
    return tf.keras.Model(inp, y)


def _convert(tf, model, path: Path, int8: bool, io_dtype=None) -> Path:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        rng = np.random.default_rng(0)

        def rep():
            for _ in range(8):
                yield [rng.uniform(0, 1, (1, INPUT, INPUT, 3)).astype(np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = io_dtype or tf.int8
        conv.inference_output_type = io_dtype or tf.int8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Statistics for quantized inputs were expected"
        path.write_bytes(conv.convert())
    return path


def _ssd_savedmodel(tf, out_dir: Path, table: np.ndarray) -> Path:
    """A model with the four post-process outputs named by signature key, in a shuffled order."""
    n = table.shape[0]
    boxes = np.stack([table[:, 1] - table[:, 3] / 2, table[:, 0] - table[:, 2] / 2,
                      table[:, 1] + table[:, 3] / 2, table[:, 0] + table[:, 2] / 2], axis=1)
    classes = table[:, 4:].argmax(1).astype(np.float32)
    scores = table[:, 4:].max(1)
    order = np.argsort(-scores, kind="stable")

    class M(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, INPUT, INPUT, 3], tf.float32, name="image")])
        def serve(self, image):
            shift = tf.reduce_mean(image) * 0.02
            return {"detection_scores": tf.constant(scores[order][None]) + 0.0 * shift,
                    "num_detections": tf.constant([float(n - 4)]),
                    "detection_boxes": tf.constant(boxes[order][None]) + shift,
                    "detection_classes": tf.constant(classes[order][None])}

    m = M()
    tf.saved_model.save(m, str(out_dir), signatures={"serving_default": m.serve})
    return out_dir


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Built]:
    """name -> tiny .tflite: yolov8/yolov5 float and int8 (uint8 I/O for one), ssd, health, a mismatch model."""
    tf = pytest.importorskip("tensorflow", reason="building test models needs TensorFlow (the train extra)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    out = tmp_path_factory.mktemp("tiny_models")
    rng = np.random.default_rng(42)
    table = _anchor_table(rng)
    c = len(CLASSES)
    built: dict[str, Built] = {}

    v8 = _dense_model(tf, (4 + c, N_ANCHORS), table.T.copy(), 1, clip01=True)
    built["yolov8_float"] = Built(_convert(tf, v8, out / "yolov8_float.tflite", False), "yolov8", False)
    built["yolov8_int8"] = Built(_convert(tf, v8, out / "yolov8_int8.tflite", True), "yolov8", True)

    v5_table = np.concatenate([table[:, :4], rng.uniform(0.3, 1.0, (N_ANCHORS, 1)).astype(np.float32),
                               table[:, 4:]], axis=1)
    v5 = _dense_model(tf, (N_ANCHORS, 5 + c), v5_table, 2, clip01=True)
    built["yolov5_float"] = Built(_convert(tf, v5, out / "yolov5_float.tflite", False), "yolov5", False)
    built["yolov5_uint8"] = Built(_convert(tf, v5, out / "yolov5_uint8.tflite", True, tf.uint8), "yolov5", True)

    sm = _ssd_savedmodel(tf, out / "ssd_saved", table)
    conv = tf.lite.TFLiteConverter.from_saved_model(str(sm))
    (out / "ssd_named.tflite").write_bytes(conv.convert())
    built["ssd_named"] = Built(out / "ssd_named.tflite", "ssd", False)

    # a health classifier [B, 16, 16, 3] -> softmax [B, 4]: greenness decides "healthy" vs "bare_soil"
    inp = tf.keras.Input((16, 16, 3), batch_size=1)
    x = tf.keras.layers.GlobalAveragePooling2D()(inp)
    dense = tf.keras.layers.Dense(4)
    y = tf.keras.layers.Softmax()(dense(x))
    dense.set_weights([np.array([[-8, 0, 0, 8], [8, 0, 0, -8], [-8, 0, 0, 8]], np.float32) * 2,
                       np.array([0, -1, -1, 0], np.float32)])
    health = tf.keras.Model(inp, y)
    hp = out / "health_tiny.tflite"
    conv = tf.lite.TFLiteConverter.from_keras_model(health)
    rng2 = np.random.default_rng(1)

    def rep():
        for _ in range(8):
            yield [rng2.uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)]

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        hp.write_bytes(conv.convert())
    built["health"] = Built(hp, "softmax", True)

    # outputs that fit no decoder: two 2-D tensors
    inp = tf.keras.Input((INPUT, INPUT, 3), batch_size=1)
    x = tf.keras.layers.GlobalAveragePooling2D()(inp)
    odd = tf.keras.Model(inp, [tf.keras.layers.Dense(5)(x), tf.keras.layers.Dense(7)(x)])
    built["mismatch"] = Built(_convert(tf, odd, out / "mismatch.tflite", False), "none", False)
    return built
