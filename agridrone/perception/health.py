"""Plant health per tile of a frame: a classifier over all tiles in one batched invoke, and vegetation indices.

The frame is cut into a grid of ``rows x cols`` tiles inside an optional border margin. In oblique
views tiles that see sky (or the ground too far away, too close to the horizon) are skipped: with a
camera model and the vehicle pose the test is geometric (the tile centre's ray must point at least
``min_depression_deg`` below the horizon and meet the ground within ``max_range_m``); without one a
colour test flags sky-like tiles connected to the top of the image.

Vegetation indices come from each tile's mean band values (reflectances 0..1):
ExG = 2g - r - b on chromatic coordinates (r = R / (R + G + B), ...), VARI = (G - R) / (G + R - B),
GLI = (2G - R - B) / (2G + R + B), and with a near-infrared band NDVI = (N - R) / (N + R), with a
red-edge band too NDRE = (N - E) / (N + E). A zero denominator gives 0.0.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agridrone.errors import CameraError, ModelError
from agridrone.perception.labels import default_label_file, fit_labels, load_card, read_label_file
from agridrone.perception.preprocess import Normalization, Preprocessor
from agridrone.perception.runtime import TFLiteModel
from agridrone.types import HealthTile

DEFAULT_HEALTH_LABELS = ("healthy", "stressed", "weeds", "bare_soil")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    ok = np.abs(den) > 1e-9
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


def band_order(image: np.ndarray, bands: str | None) -> str:
    """The channel letters of ``image`` (B, G, R, N = near-infrared, E = red edge)."""
    ch = 1 if image.ndim == 2 else image.shape[2]
    if bands is None:
        bands = {3: "BGR", 4: "BGRN", 5: "BGRNE"}.get(ch)
        if bands is None:
            raise CameraError(f"frame: expected 3 (BGR), 4 (BGR+NIR) or 5 (BGR+NIR+red edge) channels, got {ch}")
    bands = bands.upper()
    if len(bands) != ch or not set("BGR") <= set(bands) or not set(bands) <= set("BGRNE") or len(set(bands)) != ch:
        raise CameraError(f"frame: expected channels {bands!r} to name each of {ch} channels once (B, G, R, N, E), "
                          f"got an image with {ch}")
    return bands


def tile_means(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean of every channel inside each box (x1, y1, x2, y2 ints), via an integral image: [K, C] in 0..1."""
    img = image if image.ndim == 3 else image[:, :, None]
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    area = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).astype(np.float64)[:, None]
    if img.shape[2] <= 4 and img.dtype in (np.uint8, np.float32, np.float64):
        exact_int = img.dtype == np.uint8 and img.shape[0] * img.shape[1] < 2**31 // 255
        ii = cv2.integral(np.ascontiguousarray(img), sdepth=cv2.CV_32S if exact_int else cv2.CV_64F)
        ii = ii.reshape(ii.shape[0], ii.shape[1], -1)
    else:
        ii = np.zeros((img.shape[0] + 1, img.shape[1] + 1, img.shape[2]), np.float64)
        ii[1:, 1:] = img.astype(np.float64).cumsum(0).cumsum(1)
    s = (ii[b[:, 3], b[:, 2]] - ii[b[:, 1], b[:, 2]] - ii[b[:, 3], b[:, 0]] + ii[b[:, 1], b[:, 0]]).astype(np.float64)
    return s / area / 255.0


def vegetation_indices(means: np.ndarray, bands: str) -> dict[str, np.ndarray]:
    """Index name -> values per tile, from mean band reflectances [K, C] in the order ``bands``."""
    col = {ch: means[:, i] for i, ch in enumerate(bands)}
    r, g, b = col["R"], col["G"], col["B"]
    total = r + g + b
    rc, gc, bc = _ratio(r, total), _ratio(g, total), _ratio(b, total)
    out = {"exg": 2 * gc - rc - bc, "vari": _ratio(g - r, g + r - b), "gli": _ratio(2 * g - r - b, 2 * g + r + b)}
    if "N" in col:
        out["ndvi"] = _ratio(col["N"] - r, col["N"] + r)
        if "E" in col:
            out["ndre"] = _ratio(col["N"] - col["E"], col["N"] + col["E"])
    return out


def grid_boxes(width: int, height: int, rows: int, cols: int, border_px: int = 0) -> np.ndarray:
    """[rows*cols, 4] int tile boxes (row-major) covering the image inside a margin of ``border_px``."""
    if rows < 1 or cols < 1:
        raise ValueError(f"grid: expected at least 1x1 tiles, got {rows}x{cols}")
    x0, y0, x1, y1 = border_px, border_px, width - border_px, height - border_px
    if x1 - x0 < cols or y1 - y0 < rows:
        raise CameraError(f"frame: expected at least one pixel per tile ({cols}x{rows} tiles inside a "
                          f"{border_px}px border), got {width}x{height}")
    xs = np.round(np.linspace(x0, x1, cols + 1)).astype(np.int64)
    ys = np.round(np.linspace(y0, y1, rows + 1)).astype(np.int64)
    yy, xx = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return np.stack([xs[xx], ys[yy], xs[xx + 1], ys[yy + 1]], axis=-1).reshape(-1, 4)


def sky_like(image_bgr: np.ndarray, boxes: np.ndarray, rows: int, cols: int,
             means: np.ndarray | None = None) -> np.ndarray:
    """Tiles that look like sky (bluish or overcast-white, smooth) and connect to the top row: bool [rows*cols].

    ``means`` are the tiles' mean B, G, R in 0..1 when already computed.
    """
    b_ = np.asarray(boxes, np.int64)
    if means is None:
        means = tile_means(image_bgr[:, :, :3], b_)
    m = means[:, :3] * 255.0
    grey = cv2.cvtColor(np.ascontiguousarray(image_bgr[:, :, :3]), cv2.COLOR_BGR2GRAY)
    s1, s2 = cv2.integral2(grey, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)

    def box_sum(ii: np.ndarray) -> np.ndarray:
        return ii[b_[:, 3], b_[:, 2]] - ii[b_[:, 1], b_[:, 2]] - ii[b_[:, 3], b_[:, 0]] + ii[b_[:, 1], b_[:, 0]]

    area = ((b_[:, 2] - b_[:, 0]) * (b_[:, 3] - b_[:, 1])).astype(np.float64)
    mean_g = box_sum(s1) / area
    std = np.sqrt(np.maximum(box_sum(s2) / area - mean_g * mean_g, 0.0))
    b, g, r = m[:, 0], m[:, 1], m[:, 2]
    blue = (b > r + 15) & (b >= g - 5) & (np.maximum(b, g) > 110)
    white = (np.minimum(np.minimum(b, g), r) > 190) & (np.ptp(m, axis=1) < 30)
    look = ((blue | white) & (std < 18)).reshape(rows, cols)
    sky = np.zeros_like(look)
    sky[0] = look[0]
    for i in range(1, rows):
        sky[i] = look[i] & sky[i - 1]
    return sky.reshape(-1)


class HealthClassifier:
    """A tile classifier [B, S, S, 3] -> [B, K] softmax, run on all tiles in one invoke (one thread only)."""

    def __init__(self, model_path: str | os.PathLike, *, labels: str | os.PathLike | None = None,
                 num_threads: int = 2, runtime: str = "auto") -> None:
        self.path = Path(model_path)
        self.model = TFLiteModel(self.path, num_threads=num_threads, runtime=runtime)
        card = load_card(self.path) or {}
        if len(self.model.inputs) != 1 or len(self.model.outputs) != 1:
            raise ModelError(f"model {self.path}: a health classifier needs one input and one output, got "
                             f"{len(self.model.inputs)} and {len(self.model.outputs)}")
        spec, out = self.model.inputs[0], self.model.outputs[0]
        if len(spec.shape) != 4 or spec.shape[3] != 3 or spec.shape[1] != spec.shape[2]:
            raise ModelError(f"model {self.path}: expected a tile input [B, S, S, 3], got {list(spec.shape)}")
        if len(out.shape) != 2 or out.shape[1] < 2:
            raise ModelError(f"model {self.path}: expected class probabilities [B, K], got {list(out.shape)}")
        self.tile_px = int(spec.shape[1])
        self.num_classes = int(out.shape[1])
        if labels is not None:
            names, source = read_label_file(labels), str(labels)
        elif card.get("labels"):
            names, source = list(card["labels"]), f"{self.path.with_suffix('.json')} (labels)"
        elif default_label_file(self.path):
            found = default_label_file(self.path)
            names, source = read_label_file(found), str(found)
        elif self.num_classes == len(DEFAULT_HEALTH_LABELS):
            names, source = list(DEFAULT_HEALTH_LABELS), "default health labels"
        else:
            names, source = [f"class_{i}" for i in range(self.num_classes)], "class numbers"
        self.labels = fit_labels(names, self.num_classes, source)
        card_in = card.get("input") or {}
        norm = Normalization.from_card(card_in["normalization"]) if isinstance(card_in.get("normalization"), dict) \
            else (None if spec.dtype in (np.dtype(np.uint8), np.dtype(np.int8)) else Normalization())
        self.preprocessor = Preprocessor(spec, norm, "stretch", rgb=str(card_in.get("color_order", "RGB")).upper() == "RGB")
        self._batch = int(spec.shape[0])

    def probabilities(self, tiles_bgr: np.ndarray) -> np.ndarray:
        """[N, S, S, 3] uint8 BGR tiles -> [N, K] float32 probabilities (one invoke)."""
        n = len(tiles_bgr)
        if n == 0:
            return np.zeros((0, self.num_classes), np.float32)
        if n != self._batch:
            self.model.resize_input(0, (n, self.tile_px, self.tile_px, 3))
            self._batch = n
        self.model.set_input(0, self.preprocessor.tensor(tiles_bgr))
        self.model.invoke()
        return self.model.outputs[0].dequantize(self.model.output(0))


class HealthAnalyzer:
    """Frame -> one HealthTile per kept tile (class, probability, vegetation indices)."""

    def __init__(self, classifier: HealthClassifier | None = None, *, rows: int = 6, cols: int = 8,
                 bands: str | None = None, projector=None, border_frac: float | None = None,
                 min_depression_deg: float = 10.0, max_range_m: float = 200.0, skip_sky: bool = True) -> None:
        self.classifier = classifier
        self.rows, self.cols = int(rows), int(cols)
        self.bands = bands
        self.projector = projector
        self.border_frac = border_frac
        self.min_depression_deg = float(min_depression_deg)
        self.max_range_m = float(max_range_m)
        self.skip_sky = skip_sky

    def _oblique(self, pose) -> bool:
        if self.projector is None or pose is None:
            return False
        cam = self.projector.camera
        return float(self.projector.depression_deg(pose, cam.cx_px, cam.cy_px)) < 60.0

    def _border_px(self, w: int, h: int, pose) -> int:
        frac = self.border_frac if self.border_frac is not None else (0.05 if self._oblique(pose) else 0.0)
        return int(round(frac * min(w, h)))

    def plan(self, image: np.ndarray, pose=None, means: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Tile boxes [rows*cols, 4] and which of them to analyse (bool)."""
        h, w = image.shape[:2]
        boxes = grid_boxes(w, h, self.rows, self.cols, self._border_px(w, h, pose))
        keep = np.ones(len(boxes), bool)
        if self.projector is not None and pose is not None:
            cam = self.projector.camera
            if (w, h) != (cam.width_px, cam.height_px):
                raise CameraError(f"frame: expected {cam.width_px}x{cam.height_px} pixels (the camera model), "
                                  f"got {w}x{h}")
            cu, cv_ = (boxes[:, 0] + boxes[:, 2]) / 2.0, (boxes[:, 1] + boxes[:, 3]) / 2.0
            dep = self.projector.depression_deg(pose, cu, cv_)
            north, east = self.projector.ground_offsets_m(pose, cu, cv_)
            keep &= (dep >= self.min_depression_deg) & (np.hypot(north, east) <= self.max_range_m)
        elif self.skip_sky:
            keep &= ~sky_like(image, boxes, self.rows, self.cols, means)
        return boxes, keep

    def analyze(self, image: np.ndarray, pose=None) -> list[HealthTile]:
        return self.analyze_timed(image, pose)[0]

    def analyze_timed(self, image: np.ndarray, pose=None) -> tuple[list[HealthTile], dict[str, int]]:
        """Tiles and the nanoseconds spent: ``tiles`` (grid, crops, indices) and ``classify`` (one invoke)."""
        t0 = time.monotonic_ns()
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
            got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
            raise CameraError(f"frame: expected an HxWxC uint8 image (BGR, BGR+NIR), got {got}")
        bands = band_order(image, self.bands)
        h, w = image.shape[:2]
        means = tile_means(image, grid_boxes(w, h, self.rows, self.cols, self._border_px(w, h, pose)))
        bgr_means = means[:, [bands.index("B"), bands.index("G"), bands.index("R")]]
        boxes, keep = self.plan(image, pose, bgr_means)
        kept = np.flatnonzero(keep)
        idx = vegetation_indices(means[kept], bands) if len(kept) else {}
        t1 = time.monotonic_ns()
        probs = None
        if self.classifier is not None and len(kept):
            order = [bands.index("B"), bands.index("G"), bands.index("R")]
            probs = self.classifier.probabilities(self._crops(image, boxes, kept, order))
        t2 = time.monotonic_ns()
        if probs is not None:
            cids = probs.argmax(axis=1)
            ps = np.clip(probs[np.arange(len(cids)), cids], 0.0, 1.0).tolist()
            labels = [self.classifier.labels[c] for c in cids.tolist()]
            cids = cids.tolist()
        else:
            cids, ps, labels = [-1] * len(kept), [0.0] * len(kept), [""] * len(kept)
        values = {name: np.round(v, 5).tolist() for name, v in idx.items()}
        tiles = []
        for j, k in enumerate(kept.tolist()):
            row, col = divmod(k, self.cols)
            tiles.append(HealthTile(row, col, tuple(boxes[k].tolist()), cids[j], labels[j], ps[j],
                                    {name: v[j] for name, v in values.items()}))
        return tiles, {"tiles": (t1 - t0) + (time.monotonic_ns() - t2), "classify": t2 - t1}

    def _crops(self, image: np.ndarray, boxes: np.ndarray, kept: np.ndarray, bgr_order: list[int]) -> np.ndarray:
        """Tiles resized to the classifier's input: one resize of the gridded region, then a reshape."""
        s = self.classifier.tile_px
        x0, y0 = int(boxes[0, 0]), int(boxes[0, 1])
        x1, y1 = int(boxes[-1, 2]), int(boxes[-1, 3])
        region = cv2.resize(image[y0:y1, x0:x1], (self.cols * s, self.rows * s), interpolation=cv2.INTER_AREA)
        if region.ndim == 2:
            region = region[:, :, None]
        if bgr_order != [0, 1, 2] or region.shape[2] != 3:
            region = region[:, :, bgr_order]
        grid = region.reshape(self.rows, s, self.cols, s, 3).transpose(0, 2, 1, 3, 4).reshape(-1, s, s, 3)
        return grid[kept]

    def describe(self) -> dict[str, Any]:
        return {"rows": self.rows, "cols": self.cols, "classifier": str(self.classifier.path) if self.classifier else None,
                "labels": list(self.classifier.labels) if self.classifier else []}
