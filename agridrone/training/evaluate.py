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

from agridrone.config import PerceptionConfig
from agridrone.errors import DatasetError, ModelError
from agridrone.training.augment import letterbox
from agridrone.training.metrics import classification_report, detection_map

EVAL_CONF = 0.001
# NMS overlap of the drone's own detector ([perception] iou_threshold), so the card's mAP is what it gets
EVAL_IOU = PerceptionConfig.iou_threshold
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


def keras_detector_predict(export_model, imgsz: int, batch: int = 16, tile_scale: float = 0.0,
                           tile_overlap_px: int = 64) -> Callable:
    """A predict function images(RGB list) -> [(boxes xyxy in image px, scores, classes)] for a float model.

    ``tile_scale`` > 0: images larger than one tile (``imgsz / tile_scale`` px) are run over tiles as the
    flight loop does (:class:`agridrone.perception.tiling.TiledDetector`); smaller ones are fitted whole."""

    def whole(images: list[np.ndarray]):
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

    if not tile_scale:
        return whole
    tiled = _tiled(_KerasTiles(imgsz), tile_scale, tile_overlap_px)

    def predict(images: list[np.ndarray]):
        from agridrone.types import Detections

        crops, owner = [], []
        for k, im in enumerate(images):
            h, w = im.shape[:2]
            grid = tiled.grid(w, h) if max(h, w) > tiled.side else [(0, 0, w, h)]
            crops += [im[y0:y1, x0:x1] for x0, y0, x1, y1 in grid]
            owner += [k] * len(grid)
        found = whole(crops)  # every tile of every image, in batches
        res = []
        for k, im in enumerate(images):
            mine = [f for f, o in zip(found, owner) if o == k]
            if len(mine) == 1:
                res.append(mine[0])
                continue
            h, w = im.shape[:2]
            d = tiled.merge([Detections(b, c, s, (), (0, 0)) for b, s, c in mine], w, h)
            res.append((np.asarray(d.boxes_xyxy, np.float32).reshape(-1, 4), np.asarray(d.scores, np.float32),
                        np.asarray(d.class_ids, np.int32)))
        return res

    return predict


class _KerasTiles:
    """What TiledDetector needs of a detector to place tiles and merge their detections."""

    iou_threshold = EVAL_IOU
    max_detections = EVAL_MAX_DET
    labels = ()

    def __init__(self, imgsz: int) -> None:
        self.input_wh = (imgsz, imgsz)


def _tiled(detector, tile_scale: float, tile_overlap_px: int):
    from agridrone.perception.tiling import TiledDetector

    side = int(round(min(detector.input_wh) / tile_scale))
    return TiledDetector(detector, scale=tile_scale, min_overlap_px=min(int(tile_overlap_px), side - 1))


def tflite_detector_predict(path: Path, tile_scale: float = 0.0, tile_overlap_px: int = 64) -> Callable:
    """Predict function of a .tflite run by the drone's own Detector; ``tile_scale`` > 0 runs images
    larger than one tile over tiles at that scale, as the flight loop does."""
    from agridrone.perception.detector import Detector

    det = Detector(path, conf_threshold=EVAL_CONF, iou_threshold=EVAL_IOU, max_detections=EVAL_MAX_DET,
                   num_threads=2)
    run = _tiled(det, tile_scale, tile_overlap_px) if tile_scale else det

    def predict(images: list[np.ndarray]):
        out = []
        for im in images:
            d = run.detect(cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
            out.append((np.asarray(d.boxes_xyxy, np.float32).reshape(-1, 4), np.asarray(d.scores, np.float32),
                        np.asarray(d.class_ids, np.int32)))
            if tile_scale:
                h, w = im.shape[:2]
                predict.tiles_per_image.append(len(run.grid(w, h)))
        return out

    predict.tiles_per_image = []
    predict.tile_side = run.side if tile_scale else 0
    predict.tile_overlap = run.min_overlap_px if tile_scale else 0
    return predict


def eval_detector(predict: Callable, items, num_classes: int, class_map: np.ndarray | None = None,
                  cache: dict | None = None, by_size: bool = True) -> dict:
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
    res = detection_map(preds, gts, num_classes, by_size=by_size)
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
    """The dataset's own test split where it has one, else every image (it was loaded without auto-split)."""
    test = ds.split("test")
    return (test, "test") if test else (list(ds.items), "all")


def cli_eval(model_path, data_dir, fmt: str | None, as_json: bool, *, tile_scale: float | None = None,
             tile_overlap_px: int | None = None, label_map: list[str] | None = None) -> int:
    """``agridrone models eval MODEL --data DIR``: print the metrics of a .tflite on a dataset.

    Dataset classes are mapped onto the model's labels by name, known synonyms ("car" -> vehicle) and
    ``label_map`` ("NAME=LABEL"); images larger than one detector tile are run over tiles at
    ``tile_scale`` (default: the flight loop's ``[perception] tile_scale``; 0: each image shrunk whole
    into the input)."""
    from agridrone.training.datasets import load_classification, load_detection
    from agridrone.training.labelmap import map_labels, parse_overrides
    from agridrone.training.validate import validate_classification, validate_detection

    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"model: expected a .tflite file, got {path} (not found)")
    defaults = PerceptionConfig()
    tile_scale = defaults.tile_scale if tile_scale is None else float(tile_scale)
    tile_overlap_px = defaults.tile_overlap_px if tile_overlap_px is None else int(tile_overlap_px)
    if not (tile_scale == 0 or 0.1 <= tile_scale <= 4.0):
        raise DatasetError(f"--tile-scale: expected 0 (whole images) or 0.1..4, got {tile_scale!r}")
    if tile_overlap_px < 0:
        raise DatasetError(f"--tile-overlap: expected >= 0 pixels, got {tile_overlap_px!r}")
    overrides = parse_overrides(label_map)
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
        ds = load_classification(data_dir, canonical=tuple(labels), auto_split=False)
        report = validate_classification(ds, for_eval=True)
        if not report.ok:
            print(report.text())
            report.raise_if_broken("evaluate")
        items, which = _eval_items(ds)
        from agridrone.perception.health import HealthClassifier

        predict = tflite_health_predict(path)
        tile = HealthClassifier(path).tile_px
        model_labels = labels or list(ds.names)
        lm = map_labels(ds.names, model_labels, overrides)
        if len(ds.names) and (lm.ids < 0).all():
            raise DatasetError(f"dataset classes {list(ds.names)}: expected some of the model's {model_labels} "
                               f"(--map NAME=LABEL maps one)")
        tiles, y = load_tiles(items, tile)
        y = lm.ids[y]
        keep = y >= 0
        res = eval_health(predict, tiles[keep], y[keep], len(model_labels))
        res.update({"task": task, "split": which, "labels": model_labels})
    else:
        ds = load_detection(data_dir, fmt, auto_split=False)
        report = validate_detection(ds, for_eval=True)
        if not report.ok:
            print(report.text())
            report.raise_if_broken("evaluate")
        items, which = _eval_items(ds)
        model_labels = labels or list(ds.names)
        lm = map_labels(ds.names, model_labels, overrides)
        if len(ds.names) and (lm.ids < 0).all():
            raise DatasetError(f"dataset classes {list(ds.names)}: expected some of the model's {model_labels} "
                               f"(same name or a synonym; --map NAME=LABEL maps one)")
        predict = tflite_detector_predict(path, tile_scale, tile_overlap_px)
        res = eval_detector(predict, items, len(model_labels), lm.ids)
        res.update({"task": task, "split": which, "labels": model_labels, "tiles": _tiles_info(predict, tile_scale)})
    res["label_map"] = lm.as_dict()
    res["label_map_how"] = dict(zip(lm.dataset_names, lm.how))
    res["unmatched_dataset_classes"] = lm.unmatched
    res["seconds"] = (time.monotonic_ns() - t0) / 1e9
    res["model"] = str(path)
    res["data"] = str(data_dir)
    if as_json:
        print(json.dumps(res, indent=2))
    else:
        print(format_metrics(res))
    return 0


def _tiles_info(predict: Callable, tile_scale: float) -> dict:
    """How the images met the detector: the tile side and how many images ran over tiles, how many each."""
    if not tile_scale:
        return {"scale": 0, "tiled_images": 0}
    counts = [c for c in predict.tiles_per_image if c > 1]
    return {"scale": tile_scale, "side_px": predict.tile_side, "min_overlap_px": predict.tile_overlap,
            "tiled_images": len(counts), "tiles_per_tiled_image": round(float(np.mean(counts)), 1) if counts else 0.0}


def size_line(by_size: dict) -> str:
    """AP@0.5 by object size on one line: 'tiny (<8 px) 0.120 (31 gt), small (8-16 px) ...'."""
    from agridrone.training.metrics import SIZE_BUCKETS

    parts = []
    for name, lo, hi in SIZE_BUCKETS:
        r = by_size.get(name)
        if not r:
            continue
        rng = f"<{hi:g}" if lo == 0 else (f">={lo:g}" if hi == float("inf") else f"{lo:g}-{hi:g}")
        v = "-" if r["map50"] is None else f"{r['map50']:.3f}"
        parts.append(f"{name} ({rng} px) {v} ({r['gt']} gt)")
    return "AP@0.5 by object size (sqrt of box area): " + ", ".join(parts)


def format_metrics(res: dict) -> str:
    labels = res.get("labels", [])
    lines = [f"{res.get('model', '')} on {res.get('data', '')} ({res.get('split', '')} split, "
             f"{res.get('images', 0)} images)"]
    tiles = res.get("tiles") or {}
    if tiles.get("tiled_images"):
        lines.append(f"{tiles['tiled_images']} images larger than one {tiles['side_px']} px tile ran over "
                     f"{tiles['tiles_per_tiled_image']} tiles each at scale {tiles['scale']} (as the flight loop; "
                     f"--tile-scale 0 shrinks them whole)")
    elif tiles and not tiles.get("scale"):
        lines.append("images shrunk whole into the input (--tile-scale 0)")
    mapped = [f"{n} -> {m}" for n, m in (res.get("label_map") or {}).items() if m is not None and n != m]
    if mapped:
        lines.append("dataset classes mapped: " + ", ".join(mapped))
    if res.get("unmatched_dataset_classes"):
        lines.append("left out (no such model label; --map NAME=LABEL): "
                     + ", ".join(res["unmatched_dataset_classes"]))
    if "map50" in res:
        lines.append(f"mAP@0.5 {res['map50']:.3f}   mAP@0.5:0.95 {res['map50_95']:.3f}")
        lines.append(f"{'class':<12}{'gt':>6}{'AP50':>8}{'AP50-95':>9}")
        for k, n in enumerate(labels):
            a, b = res["ap50"][k], res["ap50_95"][k]
            lines.append(f"{n:<12}{res['gt_counts'][k]:>6}{'-' if a is None else f'{a:.3f}':>8}"
                         f"{'-' if b is None else f'{b:.3f}':>9}")
        if res.get("by_size"):
            lines.append(size_line(res["by_size"]))
    else:
        lines.append(f"accuracy {res['accuracy']:.3f}   macro F1 {res['macro_f1']:.3f}")
        lines.append(f"{'class':<12}{'n':>6}{'prec':>7}{'recall':>8}{'F1':>7}   confusion (rows = truth)")
        for k, n in enumerate(labels):
            lines.append(f"{n:<12}{res['support'][k]:>6}{res['precision'][k]:>7.3f}{res['recall'][k]:>8.3f}"
                         f"{res['f1'][k]:>7.3f}   {res['confusion'][k]}")
    return "\n".join(lines)
