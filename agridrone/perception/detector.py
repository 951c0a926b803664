"""Object detection on one image: the project's own detector and third-party TFLite exports.

``Detector(model_path)`` loads the model, reads its card (``<stem>.json``) when there is one, picks
the decoder from the card's ``output.layout`` or from the output tensors (SSD post-process op,
YOLOv5 [1, N, 5+C], YOLOv8/11 [1, 4+C, N], end-to-end [1, N, 6]), checks the labels against the number of classes, and
from then on ``detect(image_bgr)`` returns ``Detections`` in the original image's pixels.

Without a card, float inputs take the normalisation in the model's TFLite metadata when it has one.

Card keys read (all optional): ``labels``; ``input.color_order`` ("RGB"|"BGR");
``input.normalization`` {scale, mean, std}; ``input.resize`` ("letterbox"|"stretch");
``input.interpolation`` ("linear"|"area", for shrinking); ``output.layout`` ("yolov8"|"yolov5"|"ssd");
``output.boxes`` ("normalized"|"pixels").
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from agridrone.errors import ConfigError, ModelError
from agridrone.perception.decoders import (POSTPROCESS_OP, EndToEndDecoder, RawDetections, SsdDecoder,
                                           YoloDecoder)
from agridrone.perception.labels import (default_label_file, embedded_labels, fit_labels, load_card,
                                         read_label_file)
from agridrone.perception.preprocess import InputTransform, Normalization, Preprocessor
from agridrone.perception.runtime import TensorSpec, TFLiteModel
from agridrone.perception.tflite_meta import input_normalization
from agridrone.types import Detections

LAYOUTS = ("auto", "yolov8", "yolov5", "ssd", "end2end")
STAGES = ("pre", "infer", "decode")


def _image_input(model: TFLiteModel) -> int:
    cands = [i for i, s in enumerate(model.inputs) if len(s.shape) == 4 and s.shape[3] == 3]
    if not cands:
        raise ModelError(f"model {model.path}: expected an image input [1, H, W, 3], got "
                         f"{', '.join(s.describe() for s in model.inputs)}")
    for i in cands:
        if any(k in model.inputs[i].name.lower() for k in ("image", "images", "input")):
            return i
    return cands[0]


def _auto_layout(model: TFLiteModel, n_labels: int | None) -> str:
    if any(op.get("op_name") == POSTPROCESS_OP for op in model.ops()):
        return "ssd"
    if len(model.outputs) == 1 and len(model.outputs[0].shape) == 3 and model.outputs[0].shape[0] == 1:
        _, a, b = model.outputs[0].shape
        # [1, N, 6] is either YOLOv5 with one class (N = thousands of anchors) or an end-to-end head
        # (N = max detections, a few hundred): the label count decides, else N does
        if b == 6 and a > 6 and (n_labels not in (None, 1, 2) or (n_labels is None and a <= 1000)):
            return "end2end"
        if n_labels:  # a label file may carry a background line: one name too many
            if a in (4 + n_labels, 3 + n_labels):
                return "yolov8"
            if b in (5 + n_labels, 4 + n_labels):
                return "yolov5"
        return "yolov8" if a < b else "yolov5"
    if len(model.outputs) >= 4:
        return "ssd"
    raise ModelError(f"model {model.path}: its outputs ({', '.join(o.describe() for o in model.outputs)}) match no "
                     f"decoder: expected SSD post-process (boxes, classes, scores, count), YOLOv5 [1, N, 5+C], "
                     f"YOLOv8/11 [1, 4+C, N] or end-to-end [1, N, 6]")


class Detector:
    """A loaded detector: ``detect(image_bgr) -> Detections`` (boxes in that image's pixels).

    It owns one interpreter: use it from one thread (ARCHITECTURE rule 8), one Detector per thread.
    """

    def __init__(self, model_path: str | os.PathLike, *, labels: str | os.PathLike | None = None,
                 conf_threshold: float = 0.25, iou_threshold: float = 0.45, max_detections: int = 300,
                 num_threads: int = 2, runtime: str = "auto", layout: str = "auto", resize: str | None = None,
                 boxes: str | None = None) -> None:
        if not 0.0 <= conf_threshold < 1.0:
            raise ConfigError(f"threshold: expected 0 <= T < 1, got {conf_threshold}")
        if not 0.0 < iou_threshold <= 1.0:
            raise ConfigError(f"iou threshold: expected 0 < IoU <= 1, got {iou_threshold}")
        if layout not in LAYOUTS:
            raise ConfigError(f"layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.path = Path(model_path)
        self.model = TFLiteModel(self.path, num_threads=num_threads, runtime=runtime)
        self.card: dict[str, Any] = load_card(self.path) or {}
        self.conf_threshold = float(conf_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        card_in = self.card.get("input") or {}
        card_out = self.card.get("output") or {}

        names, label_source = self._label_names(labels)
        if layout == "auto":
            layout = str(card_out.get("layout") or "auto").lower()
            layout = _auto_layout(self.model, len(names) if names else None) if layout == "auto" else layout
        if layout not in LAYOUTS[1:]:
            raise ModelError(f"model card {self.path.with_suffix('.json')}: output.layout expected yolov8, yolov5, "
                             f"ssd or end2end, got {layout!r}")
        self.layout = layout

        self.image_pos = _image_input(self.model)
        spec = self.model.inputs[self.image_pos]
        if spec.shape[0] != 1:
            raise ModelError(f"model {self.path}: expected a batch of 1 in the image input, got {list(spec.shape)}")
        self.input_wh = (int(spec.shape[2]), int(spec.shape[1]))
        if layout == "ssd":
            self.decoder: YoloDecoder | SsdDecoder | EndToEndDecoder = SsdDecoder(self.model, self.input_wh)
        elif layout == "end2end":
            self.decoder = EndToEndDecoder(self.model, self.input_wh, boxes or str(card_out.get("boxes", "auto")))
        else:
            self.decoder = YoloDecoder(self.model, layout, self.input_wh, boxes or str(card_out.get("boxes", "auto")))
        self.num_classes = self.decoder.num_classes
        self.labels: tuple[str, ...] = fit_labels(names, self.num_classes, label_source) if names else ()

        norm = self._normalization(spec, card_in)
        color = str(card_in.get("color_order", "RGB")).upper()
        if color not in ("RGB", "BGR"):
            raise ModelError(f"model card input.color_order: expected RGB or BGR, got {color!r}")
        mode = resize or str(card_in.get("resize") or ("stretch" if layout == "ssd" else "letterbox"))
        interpolation = str(card_in.get("interpolation", "linear")).lower()
        self.preprocessor = Preprocessor(spec, norm, mode, rgb=(color == "RGB"), interpolation=interpolation)
        self._fill_extra_inputs()

    # --- set-up ----------------------------------------------------------------------------------
    def _label_names(self, labels) -> tuple[list[str], str]:
        if labels is not None:
            return read_label_file(labels), str(labels)
        card_labels = self.card.get("labels")
        if card_labels:
            if not isinstance(card_labels, list) or not all(isinstance(x, str) for x in card_labels):
                raise ModelError(f"model card {self.path.with_suffix('.json')}: labels expected a list of names, "
                                 f"got {card_labels!r}")
            return list(card_labels), f"{self.path.with_suffix('.json')} (labels)"
        found = default_label_file(self.path)
        if found is not None:
            return read_label_file(found), str(found)
        packed = embedded_labels(self.path)
        if packed:
            return packed, f"{self.path} (embedded metadata)"
        return [], ""

    def _normalization(self, spec: TensorSpec, card_in: dict) -> Normalization | None:
        norm = card_in.get("normalization")
        if isinstance(norm, dict):
            return Normalization.from_card(norm)
        if norm is not None:
            raise ModelError(f"model card input.normalization: expected an object {{scale, mean, std}}, got {norm!r}")
        if spec.quantized or spec.dtype in (np.dtype(np.uint8), np.dtype(np.int8)):
            return None  # raw pixels in the input's integer range
        packed = input_normalization(self.model.data, self.image_pos)  # TFLite metadata (Model Maker, MediaPipe)
        if packed is not None:
            mean, std = ([float(v) for v in vals] * (3 if len(vals) == 1 else 1) for vals in packed)
            if len(mean) == 3 and len(std) == 3:
                return Normalization(1.0, tuple(mean), tuple(std))
        if self.layout == "ssd":
            return Normalization(1.0 / 127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0))  # (p - 127.5) / 127.5
        return Normalization()  # p / 255

    def _fill_extra_inputs(self) -> None:
        """Inputs other than the image (e.g. LSTM state) are held at real zero."""
        for i, s in enumerate(self.model.inputs):
            if i == self.image_pos:
                continue
            if any(d <= 0 for d in s.shape):
                raise ModelError(f"model {self.path}: expected static shapes for extra inputs, got {s.describe()}")
            fill = s.zero_point if s.quantized else 0
            self.model.set_input(i, np.full(s.shape, fill, dtype=s.dtype))

    # --- running ---------------------------------------------------------------------------------
    def preprocess(self, image_bgr: np.ndarray) -> tuple[np.ndarray, InputTransform]:
        return self.preprocessor(image_bgr)

    def infer(self, tensor: np.ndarray):
        self.model.set_input(self.image_pos, tensor)
        self.model.invoke()
        return self.decoder.read(self.model)

    def decode(self, raw_outputs, transform: InputTransform) -> Detections:
        raw: RawDetections = self.decoder.decode(raw_outputs, self.conf_threshold, self.iou_threshold,
                                                 self.max_detections)
        boxes = transform.to_source(raw.boxes_xyxy)
        labels = tuple(self.label(int(c)) for c in raw.class_ids) if self.labels else ()
        return Detections(boxes, raw.class_ids, raw.scores, labels, transform.src_wh)

    def label(self, class_id: int) -> str:
        if 0 <= class_id < len(self.labels):
            return self.labels[class_id]
        return f"class_{class_id}"

    def detect(self, image_bgr: np.ndarray) -> Detections:
        tensor, transform = self.preprocess(image_bgr)
        return self.decode(self.infer(tensor), transform)

    def detect_timed(self, image_bgr: np.ndarray) -> tuple[Detections, dict[str, int]]:
        """Detections and the nanoseconds spent in each stage (pre, infer, decode)."""
        t0 = time.monotonic_ns()
        tensor, transform = self.preprocess(image_bgr)
        t1 = time.monotonic_ns()
        raw = self.infer(tensor)
        t2 = time.monotonic_ns()
        dets = self.decode(raw, transform)
        t3 = time.monotonic_ns()
        return dets, {"pre": t1 - t0, "infer": t2 - t1, "decode": t3 - t2}

    def describe(self) -> dict[str, Any]:
        return {**self.model.describe(), "layout": self.layout, "num_classes": self.num_classes,
                "labels": list(self.labels), "input_wh": list(self.input_wh), "resize": self.preprocessor.mode,
                "color_order": "RGB" if self.preprocessor.rgb else "BGR",
                "conf_threshold": self.conf_threshold, "iou_threshold": self.iou_threshold}
