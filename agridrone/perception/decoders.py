"""Output tensors -> boxes, class ids and scores (in input pixels), for each detector family.

- ``YoloDecoder("yolov8")``: one output [1, 4 + C, N] (Ultralytics YOLOv8/11 and the project's own
  detector): rows cx, cy, w, h then C class scores (already sigmoid).
- ``YoloDecoder("yolov5")``: one output [1, N, 5 + C]: cx, cy, w, h, objectness, C class scores;
  score = objectness * class score.
- ``EndToEndDecoder``: one output [1, N, 6] of x1, y1, x2, y2, score, class with NMS already done
  in the model (Ultralytics YOLOv10/YOLO26 and ``nms=True`` exports).
- ``SsdDecoder``: the four outputs of the TFLite_Detection_PostProcess op (boxes [1, N, 4] as ymin,
  xmin, ymax, xmax normalised; classes; scores; count), found through the op itself or by name and
  shape, never by position.

Quantized outputs are dequantized with their own (scale, zero_point). Boxes may be normalised (0..1
of the input, as Ultralytics TFLite exports write them) or in input pixels; ``boxes="auto"`` tells
them apart from the spread of the anchor centres. Confidence keeps ``score > threshold``; NMS is
greedy, per class, suppressing ``IoU > iou_threshold``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from agridrone.errors import ModelError
from agridrone.perception.runtime import TensorSpec, TFLiteModel

POSTPROCESS_OP = "TFLite_Detection_PostProcess"


@dataclass(frozen=True)
class RawDetections:
    """Detections in input pixels, before mapping back to the original image."""

    boxes_xyxy: np.ndarray  # float32 [K, 4]
    class_ids: np.ndarray   # int32 [K]
    scores: np.ndarray      # float32 [K]

    @classmethod
    def empty(cls) -> "RawDetections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.int32), np.zeros(0, np.float32))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with many (areas without the +1 pixel convention)."""
    xx1 = np.maximum(box[0], boxes[:, 0])
    yy1 = np.maximum(box[1], boxes[:, 1])
    xx2 = np.minimum(box[2], boxes[:, 2])
    yy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def pairwise_iou(boxes: np.ndarray) -> np.ndarray:
    """[K, K] IoU of xyxy boxes with each other."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    iw = np.clip(np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]), 0, None)
    inter = iw * ih
    area = (x2 - x1) * (y2 - y1)
    union = area[:, None] + area[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


MATRIX_NMS_MAX = 1500  # up to this many candidates the IoU matrix is computed at once


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou_threshold: float,
        max_detections: int = 300) -> np.ndarray:
    """Class-aware greedy NMS (suppress IoU > threshold within a class); kept indices, highest score first."""
    n = len(scores)
    if n == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-scores, kind="stable")
    boxes = boxes_xyxy[order].astype(np.float64)
    classes = class_ids[order]
    if n <= MATRIX_NMS_MAX:
        suppress = (pairwise_iou(boxes) > iou_threshold) & (classes[:, None] == classes[None])
        removed = np.zeros(n, bool)
        keep: list[int] = []
        for i in range(n):
            if removed[i]:
                continue
            keep.append(i)
            if len(keep) == max_detections:
                break
            removed |= suppress[i]
        return order[np.asarray(keep, np.int64)]
    keep_sorted: list[int] = []
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)  # still in descending score order
        b = boxes[idx]
        alive = np.ones(len(idx), bool)
        for k in range(len(idx)):
            if not alive[k]:
                continue
            keep_sorted.append(int(idx[k]))
            if k + 1 < len(idx):
                rest = np.flatnonzero(alive[k + 1:]) + k + 1
                if len(rest):
                    alive[rest[box_iou(b[k], b[rest]) > iou_threshold]] = False
    keep_sorted.sort()  # positions in the score order = highest score first
    return order[np.asarray(keep_sorted[:max_detections], np.int64)]


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    out = np.empty_like(xywh)
    half_w, half_h = xywh[:, 2] / 2, xywh[:, 3] / 2
    out[:, 0] = xywh[:, 0] - half_w
    out[:, 1] = xywh[:, 1] - half_h
    out[:, 2] = xywh[:, 0] + half_w
    out[:, 3] = xywh[:, 1] + half_h
    return out


class YoloDecoder:
    """YOLOv8/11 ([1, 4+C, N]) or YOLOv5 ([1, N, 5+C]) single-output heads."""

    def __init__(self, model: TFLiteModel, layout: str, input_wh: tuple[int, int], boxes: str = "auto") -> None:
        if layout not in ("yolov8", "yolov5"):
            raise ModelError(f"layout: expected yolov8 or yolov5, got {layout!r}")
        if boxes not in ("auto", "normalized", "pixels"):
            raise ModelError(f"boxes: expected auto, normalized or pixels, got {boxes!r}")
        outs = [o for o in model.outputs if len(o.shape) == 3]
        if len(model.outputs) != 1 or not outs:
            raise ModelError(f"model {model.path}: a {layout} head needs one output [1, {'4+C, N' if layout == 'yolov8' else 'N, 5+C'}],"
                             f" got {', '.join(o.describe() for o in model.outputs)}")
        spec = outs[0]
        extra = 4 if layout == "yolov8" else 5
        # YOLOv8 is [1, 4+C, N]; some converters write it transposed, [1, N, 4+C] (N > 4+C always)
        self.transposed = layout == "yolov8" and spec.shape[1] > spec.shape[2]
        attrs = spec.shape[1] if layout == "yolov8" and not self.transposed else spec.shape[2]
        if spec.shape[0] != 1 or attrs <= extra:
            want = "[1, 4+C, N]" if layout == "yolov8" else "[1, N, 5+C]"
            raise ModelError(f"model {model.path}: expected a {layout} output {want} with C >= 1, got {list(spec.shape)}")
        self.spec: TensorSpec = spec
        self.layout = layout
        self.input_wh = input_wh
        self.boxes = boxes
        self.num_classes = attrs - extra
        self.out_pos = model.outputs.index(spec)

    def read(self, model: TFLiteModel) -> np.ndarray:
        return model.output(self.out_pos)

    def decode(self, out: np.ndarray, conf_threshold: float, iou_threshold: float,
               max_detections: int = 300) -> RawDetections:
        a = np.asarray(out)[0]
        if self.transposed:
            a = a.T
        if self.layout == "yolov8":
            cls_q = a[4:]                           # [C, N]
            best_q = cls_q.max(axis=0)
            best = self.spec.dequantize(best_q)
            keep = np.flatnonzero(best > conf_threshold)
            if not len(keep):
                return RawDetections.empty()
            class_ids = cls_q[:, keep].argmax(axis=0).astype(np.int32)
            scores = best[keep]
            xywh = self.spec.dequantize(a[:4, keep]).T.copy()
            centres = a[:2]
        else:
            obj = self.spec.dequantize(a[:, 4])
            cand = np.flatnonzero(obj > conf_threshold)
            if not len(cand):
                return RawDetections.empty()
            cls = self.spec.dequantize(a[cand, 5:]) * obj[cand, None]
            class_ids = cls.argmax(axis=1).astype(np.int32)
            conf = cls[np.arange(len(cand)), class_ids]
            ok = conf > conf_threshold
            keep, class_ids, scores = cand[ok], class_ids[ok], conf[ok]
            if not len(keep):
                return RawDetections.empty()
            xywh = self.spec.dequantize(a[keep, :4])
            centres = a[:, :2].T
        if self._normalized(centres):
            xywh = xywh * np.array([self.input_wh[0], self.input_wh[1]] * 2, np.float32)
        boxes = _xywh_to_xyxy(xywh.astype(np.float32))
        kept = nms(boxes, scores, class_ids, iou_threshold, max_detections)
        return RawDetections(boxes[kept], class_ids[kept], scores[kept].astype(np.float32))

    def _normalized(self, centres_q: np.ndarray) -> bool:
        if self.boxes != "auto":
            return self.boxes == "normalized"
        # Anchor centres cover the whole input: ~1.0 at most when normalised, ~input size in pixels.
        return float(np.max(np.abs(self.spec.dequantize(centres_q)))) <= 2.0


class SsdDecoder:
    """The four outputs of TFLite_Detection_PostProcess (boxes, classes, scores, count)."""

    def __init__(self, model: TFLiteModel, input_wh: tuple[int, int]) -> None:
        self.input_wh = input_wh
        self.num_classes: int | None = None
        pos = self._by_op(model) or self._by_name_and_shape(model)
        if pos is None:
            raise ModelError(f"model {model.path}: expected the SSD post-process outputs (boxes [1, N, 4], classes "
                             f"[1, N], scores [1, N], count [1]), got {', '.join(o.describe() for o in model.outputs)}")
        self.pos = pos  # output positions of boxes, classes, scores, count

    def _by_op(self, model: TFLiteModel) -> tuple[int, int, int, int] | None:
        for op in model.ops():
            if op.get("op_name") != POSTPROCESS_OP:
                continue
            index_to_pos = {o.index: i for i, o in enumerate(model.outputs)}
            outs = [int(t) for t in op["outputs"]]
            if len(outs) != 4 or not all(t in index_to_pos for t in outs):
                return None
            ins = [int(t) for t in op.get("inputs", [])]
            if len(ins) >= 2:
                cls_pred = model.tensor_spec(ins[1])
                if cls_pred is not None and len(cls_pred.shape) >= 2 and cls_pred.shape[-1] > 1:
                    self.num_classes = cls_pred.shape[-1] - 1  # the op's class predictions include background
            return tuple(index_to_pos[t] for t in outs)  # type: ignore[return-value]
        return None

    @staticmethod
    def _by_name_and_shape(model: TFLiteModel) -> tuple[int, int, int, int] | None:
        outs = list(enumerate(model.outputs))
        boxes = [i for i, o in outs if len(o.shape) == 3 and o.shape[-1] == 4 and o.shape[1] != 4]
        count = [i for i, o in outs if len(o.shape) <= 1]
        pairs = [i for i, o in outs if len(o.shape) == 2]
        if len(boxes) != 1 or len(count) != 1 or len(pairs) != 2:
            return None

        def role(name: str) -> str | None:
            low = name.lower()
            for key in ("class", "score", "box", "num", "count"):
                if key in low:
                    return key
            m = re.search(re.escape(POSTPROCESS_OP) + r"(?::(\d))?$", name)
            if m:  # the op's own outputs: boxes, :1 classes, :2 scores, :3 count
                return ("box", "class", "score", "num")[int(m.group(1) or 0)]
            return None

        sig_names = model.signature_output_names()
        roles = {i: role(sig_names.get(model.outputs[i].index, model.outputs[i].name)) for i in pairs}
        cls = [i for i in pairs if roles[i] == "class"]
        sco = [i for i in pairs if roles[i] == "score"]
        if len(cls) == 1 and len(sco) == 1:
            return boxes[0], cls[0], sco[0], count[0]
        return None

    def read(self, model: TFLiteModel) -> tuple[np.ndarray, ...]:
        return tuple(model.output(p) for p in self.pos)

    def decode(self, outs: tuple[np.ndarray, ...], conf_threshold: float, iou_threshold: float = 0.0,
               max_detections: int = 300) -> RawDetections:
        boxes, classes, scores, count = (np.asarray(o, dtype=np.float32) for o in outs)
        n = int(np.clip(round(float(count.reshape(-1)[0])) if count.size else 0, 0, boxes.shape[1]))
        b = boxes.reshape(-1, 4)[:n]
        c = np.rint(classes.reshape(-1)[:n]).astype(np.int32)
        s = scores.reshape(-1)[:n]
        keep = np.flatnonzero(s > conf_threshold)
        keep = keep[np.argsort(-s[keep], kind="stable")][:max_detections]
        w, h = self.input_wh
        yx = b[keep]
        xyxy = np.stack([yx[:, 1] * w, yx[:, 0] * h, yx[:, 3] * w, yx[:, 2] * h], axis=1).astype(np.float32)
        return RawDetections(xyxy.reshape(-1, 4), c[keep], s[keep])


class EndToEndDecoder:
    """[1, N, 6] rows of x1, y1, x2, y2, score, class (NMS inside the model): threshold only."""

    def __init__(self, model: TFLiteModel, input_wh: tuple[int, int], boxes: str = "auto") -> None:
        outs = model.outputs
        if len(outs) != 1 or len(outs[0].shape) != 3 or outs[0].shape[0] != 1 or outs[0].shape[2] != 6:
            raise ModelError(f"model {model.path}: an end-to-end head needs one output [1, N, 6], got "
                             f"{', '.join(o.describe() for o in outs)}")
        self.spec = outs[0]
        self.input_wh = input_wh
        self.boxes = boxes
        self.num_classes: int | None = None

    def read(self, model: TFLiteModel) -> np.ndarray:
        return model.output(0)

    def decode(self, out: np.ndarray, conf_threshold: float, iou_threshold: float = 0.0,
               max_detections: int = 300) -> RawDetections:
        a = self.spec.dequantize(np.asarray(out)[0])
        keep = np.flatnonzero(a[:, 4] > conf_threshold)
        keep = keep[np.argsort(-a[keep, 4], kind="stable")][:max_detections]
        boxes = a[keep, :4].astype(np.float32)
        normalized = self.boxes == "normalized" or (self.boxes == "auto" and
                                                     float(np.max(np.abs(a[:, :4]), initial=0.0)) <= 1.5)
        if normalized:
            boxes = boxes * np.array([self.input_wh[0], self.input_wh[1]] * 2, np.float32)
        return RawDetections(boxes.reshape(-1, 4), np.rint(a[keep, 5]).astype(np.int32), a[keep, 4].astype(np.float32))
