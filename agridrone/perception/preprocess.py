"""Image -> input tensor: colour order, resize or letterbox, normalisation and quantisation.

``InputTransform`` records exactly how an image was placed in the input (scale per axis and padding)
so boxes found in the input map back to the original pixels by the exact inverse.

Normalisation: the float value the network expects is ``(pixel * scale - mean) / std``. For a
quantized input the value is then quantized with the input's own (scale, zero_point): a 256-entry
lookup table does both at once. Without a model card, quantized inputs take raw pixels shifted into
the input's integer range (uint8: ``q = pixel``; int8: ``q = pixel - 128``), which is what TFLite
converters assume; float inputs take ``pixel / 255`` for YOLO exports and ``(pixel - 127.5) / 127.5``
for SSD exports (the TF Object Detection API convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from agridrone.errors import CameraError, ModelError
from agridrone.perception.runtime import TensorSpec

LETTERBOX_FILL = 114  # the grey Ultralytics pads with


@dataclass(frozen=True)
class Normalization:
    """float = (pixel * scale - mean) / std, per channel (RGB order) or one value for all."""

    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @classmethod
    def from_card(cls, d: dict) -> "Normalization":
        def three(v, name):
            vals = [float(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
            if len(vals) == 1:
                vals = vals * 3
            if len(vals) != 3 or (name == "std" and min(vals) <= 0):
                raise ModelError(f"model card normalization.{name}: expected a number or 3 numbers"
                                 f"{' > 0' if name == 'std' else ''}, got {v!r}")
            return tuple(vals)

        try:
            scale = float(d.get("scale", 1.0 / 255.0))
        except (TypeError, ValueError):
            raise ModelError(f"model card normalization.scale: expected a number, got {d.get('scale')!r}") from None
        return cls(scale, three(d.get("mean", 0.0), "mean"), three(d.get("std", 1.0), "std"))


RAW_PIXELS = None  # marker: quantized input fed with raw pixels shifted into its integer range


@dataclass(frozen=True)
class InputTransform:
    """How an image of ``src_wh`` was placed in an input of ``dst_wh``: content scale and padding."""

    src_wh: tuple[int, int]
    dst_wh: tuple[int, int]
    content_wh: tuple[int, int]
    pad_xy: tuple[int, int]

    def to_source(self, boxes_xyxy: np.ndarray, clip: bool = True) -> np.ndarray:
        """Boxes in input pixels -> boxes in source pixels (the exact inverse of the placement)."""
        b = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4).copy()
        sx = self.src_wh[0] / self.content_wh[0]
        sy = self.src_wh[1] / self.content_wh[1]
        b[:, 0::2] = (b[:, 0::2] - self.pad_xy[0]) * sx
        b[:, 1::2] = (b[:, 1::2] - self.pad_xy[1]) * sy
        if clip:
            np.clip(b[:, 0::2], 0, self.src_wh[0], out=b[:, 0::2])
            np.clip(b[:, 1::2], 0, self.src_wh[1], out=b[:, 1::2])
        return b

    def to_input(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Source pixels -> input pixels (the forward placement)."""
        b = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4).copy()
        b[:, 0::2] = b[:, 0::2] * (self.content_wh[0] / self.src_wh[0]) + self.pad_xy[0]
        b[:, 1::2] = b[:, 1::2] * (self.content_wh[1] / self.src_wh[1]) + self.pad_xy[1]
        return b


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """A BGR uint8 HxWx3 view of ``image`` (a 4th NIR channel is dropped); CameraError otherwise."""
    if not isinstance(image, np.ndarray):
        raise CameraError(f"{what}: expected an HxWx3 uint8 BGR array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise CameraError(f"{what}: expected uint8 pixels, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        ch = image.shape[2] if image.ndim == 3 else 1
        raise CameraError(f"{what}: expected 3 colour channels (BGR, or BGR+NIR), got shape {image.shape} "
                          f"({ch} channel{'s' if ch != 1 else ''})")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise CameraError(f"{what}: expected at least 2x2 pixels, got {image.shape[1]}x{image.shape[0]}")
    return image[:, :, :3] if image.shape[2] == 4 else image


INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}


def place(image_bgr: np.ndarray, dst_wh: tuple[int, int], mode: str,
          interpolation: str = "linear") -> tuple[np.ndarray, InputTransform]:
    """Resize (``stretch``) or ``letterbox`` an image into ``dst_wh``; returns the placed image and how.

    ``interpolation``: "linear" (what Ultralytics and the TFLite examples use) or "area" (for models
    trained on area-downscaled images; used only when shrinking).
    """
    h, w = image_bgr.shape[:2]
    if interpolation not in INTERPOLATIONS:
        raise ModelError(f"interpolation: expected linear or area, got {interpolation!r}")
    dw, dh = dst_wh
    if mode == "stretch":
        interp = INTERPOLATIONS[interpolation] if (dw < w and dh < h) else cv2.INTER_LINEAR
        out = image_bgr if (w, h) == (dw, dh) else cv2.resize(image_bgr, (dw, dh), interpolation=interp)
        return out, InputTransform((w, h), (dw, dh), (dw, dh), (0, 0))
    if mode != "letterbox":
        raise ModelError(f"resize mode: expected 'letterbox' or 'stretch', got {mode!r}")
    r = min(dw / w, dh / h)
    nw, nh = max(1, int(round(w * r))), max(1, int(round(h * r)))
    interp = INTERPOLATIONS[interpolation] if r < 1 else cv2.INTER_LINEAR
    resized = image_bgr if (w, h) == (nw, nh) else cv2.resize(image_bgr, (nw, nh), interpolation=interp)
    left, top = (dw - nw) // 2, (dh - nh) // 2
    if (nw, nh) == (dw, dh):
        out = resized
    else:
        out = cv2.copyMakeBorder(resized, top, dh - nh - top, left, dw - nw - left, cv2.BORDER_CONSTANT,
                                 value=(LETTERBOX_FILL,) * 3)
    return out, InputTransform((w, h), (dw, dh), (nw, nh), (left, top))


def input_lut(spec: TensorSpec, norm: Normalization | None) -> np.ndarray:
    """A (256, 3) table: pixel value of each RGB channel -> the value to write into the input tensor."""
    pix = np.arange(256, dtype=np.float64)[:, None]
    if spec.dtype in (np.dtype(np.uint8), np.dtype(np.int8)):
        info = np.iinfo(spec.dtype)
        if norm is None or not spec.quantized:
            q = pix - (128 if spec.dtype == np.dtype(np.int8) else 0)
        else:
            real = (pix * norm.scale - np.asarray(norm.mean)) / np.asarray(norm.std)
            q = np.round(real / spec.scale + spec.zero_point)
        return np.clip(np.broadcast_to(q, (256, 3)), info.min, info.max).astype(spec.dtype)
    if spec.dtype in (np.dtype(np.float32), np.dtype(np.float16)):
        n = norm or Normalization()
        real = (pix * n.scale - np.asarray(n.mean)) / np.asarray(n.std)
        return np.broadcast_to(real, (256, 3)).astype(spec.dtype)
    raise ModelError(f"input {spec.describe()}: expected uint8, int8 or float32 pixels, got {spec.dtype.name}")


class Preprocessor:
    """Image (BGR uint8) -> input tensor [1, H, W, 3] and the ``InputTransform`` that placed it."""

    def __init__(self, spec: TensorSpec, norm: Normalization | None, mode: str = "letterbox",
                 rgb: bool = True, interpolation: str = "linear") -> None:
        if len(spec.shape) != 4 or spec.shape[3] != 3:
            raise ModelError(f"input {spec.describe()}: expected an image input [1, H, W, 3], got {list(spec.shape)}")
        if mode not in ("letterbox", "stretch"):
            raise ModelError(f"resize mode: expected 'letterbox' or 'stretch', got {mode!r}")
        self.spec = spec
        if interpolation not in INTERPOLATIONS:
            raise ModelError(f"interpolation: expected linear or area, got {interpolation!r}")
        self.mode = mode
        self.rgb = rgb
        self.interpolation = interpolation
        self.dst_wh = (int(spec.shape[2]), int(spec.shape[1]))
        lut = input_lut(spec, norm)
        uniform = bool(np.all(lut[:, 0] == lut[:, 1]) and np.all(lut[:, 0] == lut[:, 2]))
        self._table = np.ascontiguousarray(lut[:, 0] if uniform else lut.reshape(1, 256, 3))
        self._dtype = lut.dtype

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, InputTransform]:
        placed, transform = place(check_image(image_bgr), self.dst_wh, self.mode, self.interpolation)
        return self.tensor(placed), transform

    def tensor(self, placed_bgr: np.ndarray) -> np.ndarray:
        """Colour order + lookup table on already placed images (HxWx3 -> [1, H, W, 3]; NxHxWx3 -> same N)."""
        shape = placed_bgr.shape if placed_bgr.ndim == 4 else (1,) + placed_bgr.shape
        flat = np.ascontiguousarray(placed_bgr).reshape(-1, shape[2], 3)
        if self.rgb:
            flat = cv2.cvtColor(flat, cv2.COLOR_BGR2RGB)
        if self._dtype == np.float16:
            table = self._table.reshape(256, -1)
            out = np.empty(flat.shape, np.float16)
            for c in range(3):
                out[..., c] = table[:, c if table.shape[1] == 3 else 0][flat[..., c]]
        elif self._dtype == np.int8:
            out = cv2.LUT(flat, self._table.view(np.uint8)).view(np.int8)
        else:
            out = cv2.LUT(flat, self._table)
        return out.reshape(shape)
