"""Evaluation of float, pruned and int8 models on a dataset, file size and latency; ``cli_eval`` for
``agridrone models eval``.

The int8 file is run through the drone's own code (``agridrone.perception.Detector`` and
``HealthClassifier``), so the card's int8 numbers are what the drone gets. Float Keras models are
decoded the same way (letterbox, best class per cell, the perception NMS).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from agridrone.errors import DatasetError, ModelError
from agridrone.training.augment import letterbox
from agridrone.training.metrics import classification_report, detection_map

EVAL_CONF = 0.001
EVAL_IOU = 0.6
EVAL_MAX_DET = 100


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"image {path}: expected a readable image file, got something OpenCV cannot decode")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _decode_yolov8(out: np.ndarray, imgsz: int, conf: float):
    from agridrone.perception.decoders import nms

    cls = out[4:]
    best = cls.max(0)
    keep = np.flatnonzero(best > conf)
    if not len(keep):
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    ids = cls[:, keep].argmax(0).astype(np.int32)
    xywh = out[:4, keep].T * imgsz
    boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1).astype(np.float32)
    k = nms(boxes, best[keep], ids, EVAL_IOU, EVAL_MAX_DET)
    return boxes[k], best[keep][k].astype(np.float32), ids[k]


def keras_detector_predict(export_model, imgsz: int, batch: int = 16) -> Callable:
    """A predict function images(RGB list) -> [(boxes xyxy in image px, scores, classes)] for a float model."""

    def predict(images: list[np.ndarray]):
        res = []
        for s in range(0, len(images), batch):
            chunk = images[s:s + batch]
            placed = [letterbox(im, imgsz) for im in chunk]
            x = np.stack([p[0] for p in placed]).astype(np.float32) / 255.0
            outs = export_model.predict_on_batch(x)
            outs = np.asarray(outs)
            for o, (_, r, (px, py)) in zip(outs, placed):
                b, sc, c = _decode_yolov8(o, imgsz, EVAL_CONF)
                b = (b - np.array([px, py, px, py], np.float32)) / r
                res.append((b, sc, c))
        return res

    return predict


def tflite_detector_predict(path: Path) -> Callable:
    from agridrone.perception.detector import Detector

    det = Detector(path, conf_threshold=EVAL_CONF, iou_threshold=EVAL_IOU, max_detections=EVAL_MAX_DET,
                   num_threads=2)

    def predict(images: list[np.ndarray]):
        out = []
        for im in images:
            d = det.detect(cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
            out.append((np.asarray(d.boxes_xyxy, np.float32).reshape(-1, 4), np.asarray(d.scores, np.float32),
                        np.asarray(d.class_ids, np.int32)))
        return out

    return predict


def eval_detector(predict: Callable, items, num_classes: int, class_map: np.ndarray | None = None,
                  cache: dict | None = None) -> dict:
    """mAP of ``predict`` on dataset items (ground truth mapped to model classes with ``class_map``)."""
    preds, gts = [], []
    chunk = 32
    for s in range(0, len(items), chunk):
        part = items[s:s + chunk]
        imgs = [cache[it.image] if cache is not None and it.image in cache else read_rgb(it.image) for it in part]
        preds += predict(imgs)
        for it, im in zip(part, imgs):
            h, w = im.shape[:2]
            b = it.boxes * np.array([w, h, w, h], np.float32)
            c = it.classes if class_map is None else class_map[it.classes]
            keep = c >= 0
            gts.append((b[keep], c[keep]))
    res = detection_map(preds, gts, num_classes)
    res["images"] = len(items)
    return res


def keras_health_predict(export_model, batch: int = 256) -> Callable:
    def predict(tiles_rgb: np.ndarray) -> np.ndarray:
        out = [np.asarray(export_model.predict_on_batch(tiles_rgb[s:s + batch].astype(np.float32) / 255.0))
               for s in range(0, len(tiles_rgb), batch)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    return predict


def tflite_health_predict(path: Path, batch: int = 48) -> Callable:
    from agridrone.perception.health import HealthClassifier

    clf = HealthClassifier(path, num_threads=2)

    def predict(tiles_rgb: np.ndarray) -> np.ndarray:
        out = [clf.probabilities(np.ascontiguousarray(tiles_rgb[s:s + batch][..., ::-1]))
               for s in range(0, len(tiles_rgb), batch)]
        return np.concatenate(out)

    return predict


def eval_health(predict: Callable, tiles_rgb: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    probs = predict(tiles_rgb)
    res = classification_report(labels, probs.argmax(1), num_classes)
    res["images"] = int(len(labels))
    return res


def latency_ms(path: Path, batch: int = 1, runs: int = 50, threads: int = 2) -> dict:
    """Median / p90 invoke time of a .tflite on this machine with LiteRT (``threads`` threads)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    inp = it.get_input_details()[0]
    if batch != int(inp["shape"][0]):
        it.resize_tensor_input(inp["index"], [batch] + [int(d) for d in inp["shape"][1:]])
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = np.random.default_rng(0).integers(-128 if inp["dtype"] == np.int8 else 0, 128 if inp["dtype"] == np.int8
                                          else 256, inp["shape"]).astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    for _ in range(5):
        it.invoke()
    times = []
    for _ in range(runs):
        t0 = time.monotonic_ns()
        it.invoke()
        times.append((time.monotonic_ns() - t0) / 1e6)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "batch": batch,
            "threads": threads, "runs": runs}


def load_tiles(items, tile: int) -> tuple[np.ndarray, np.ndarray]:
    tiles = [cv2.resize(read_rgb(it.image), (tile, tile), interpolation=cv2.INTER_AREA) for it in items]
    return (np.stack(tiles) if tiles else np.zeros((0, tile, tile, 3), np.uint8),
            np.array([it.label for it in items], np.int32))


def _eval_items(ds):
    test = ds.split("test")
    return (test, "test") if test else (list(ds.items), "all")


def cli_eval(model_path, data_dir, fmt: str | None, as_json: bool) -> int:
    """``agridrone models eval MODEL --data DIR``: print the metrics of a .tflite on a dataset."""
    from agridrone.training.datasets import load_classification, load_detection
    from agridrone.training.validate import validate_classification, validate_detection

    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"model: expected a .tflite file, got {path} (not found)")
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    task = card.get("task")
    if task is None:
        from ai_edge_litert.interpreter import Interpreter

        shape = Interpreter(model_path=str(path)).get_output_details()[0]["shape"]
        task = "classification" if len(shape) == 2 else "detection"
    labels = list(card.get("labels") or [])
    t0 = time.monotonic_ns()
    if task == "classification":
        ds = load_classification(data_dir, canonical=tuple(labels))
        report = validate_classification(ds)
        if not report.ok:
            print(report.text())
            report.raise_if_broken()
        items, which = _eval_items(ds)
        from agridrone.perception.health import HealthClassifier

        predict = tflite_health_predict(path)
        tile = HealthClassifier(path).tile_px
        model_labels = labels or list(ds.names)
        remap = np.array([model_labels.index(n) if n in model_labels else -1 for n in ds.names])
        if (remap < 0).all():
            raise DatasetError(f"dataset classes {list(ds.names)}: expected some of the model's {model_labels}")
        tiles, y = load_tiles(items, tile)
        y = remap[y]
        keep = y >= 0
        res = eval_health(predict, tiles[keep], y[keep], len(model_labels))
        res.update({"task": task, "split": which, "labels": model_labels})
    else:
        ds = load_detection(data_dir, fmt)
        report = validate_detection(ds)
        if not report.ok:
            print(report.text())
            report.raise_if_broken()
        items, which = _eval_items(ds)
        model_labels = labels or list(ds.names)
        class_map = np.array([model_labels.index(n) if n in model_labels else -1 for n in ds.names])
        if len(ds.names) and (class_map < 0).all():
            raise DatasetError(f"dataset classes {list(ds.names)}: expected some of the model's {model_labels}")
        res = eval_detector(tflite_detector_predict(path), items, len(model_labels), class_map)
        res.update({"task": task, "split": which, "labels": model_labels,
                    "unmatched_dataset_classes": [n for n in ds.names if n not in model_labels]})
    res["seconds"] = (time.monotonic_ns() - t0) / 1e9
    res["model"] = str(path)
    res["data"] = str(data_dir)
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        print(format_metrics(res))
    return 0


def format_metrics(res: dict) -> str:
    labels = res.get("labels", [])
    lines = [f"{res.get('model', '')} on {res.get('data', '')} ({res.get('split', '')} split, "
             f"{res.get('images', 0)} images)"]
    if "map50" in res:
        lines.append(f"mAP@0.5 {res['map50']:.3f}   mAP@0.5:0.95 {res['map50_95']:.3f}")
        lines.append(f"{'class':<12}{'gt':>6}{'AP50':>8}{'AP50-95':>9}")
        for k, n in enumerate(labels):
            a, b = res["ap50"][k], res["ap50_95"][k]
            lines.append(f"{n:<12}{res['gt_counts'][k]:>6}{'-' if a is None else f'{a:.3f}':>8}"
                         f"{'-' if b is None else f'{b:.3f}':>9}")
    else:
        lines.append(f"accuracy {res['accuracy']:.3f}   macro F1 {res['macro_f1']:.3f}")
        lines.append(f"{'class':<12}{'n':>6}{'prec':>7}{'recall':>8}{'F1':>7}   confusion (rows = truth)")
        for k, n in enumerate(labels):
            lines.append(f"{n:<12}{res['support'][k]:>6}{res['precision'][k]:>7.3f}{res['recall'][k]:>8.3f}"
                         f"{res['f1'][k]:>7.3f}   {res['confusion'][k]}")
    return "\n".join(lines)
