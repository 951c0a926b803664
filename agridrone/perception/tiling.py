"""Tiled detection: a frame larger than the detector's input is cut into tiles that each reach the
model at (nearly) native resolution, instead of being shrunk whole into one input.

Why: from survey altitude the objects that matter are small. A 640x480 frame letterboxed into a
320x320 input halves them: a person seen from 60 m is ~8 px in the frame and ~4 px in the input,
below what a small detector finds. Four 320x320 tiles cost four inferences (the detector is a few ms
each) and keep the person at 8 px.

``tile_grid(w, h, side, min_overlap)`` places the tiles (evenly, covering the frame, at least
``min_overlap`` pixels shared by neighbours); ``TiledDetector`` runs a :class:`Detector` on each
tile, maps the boxes back to the frame, joins the two halves of an object cut by a seam and applies
class-aware NMS over the whole frame. It offers the Detector's interface (``detect``,
``detect_timed``, ``labels``, ``describe``), so the flight loop does not know the difference.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from agridrone.errors import ConfigError
from agridrone.perception.decoders import nms
from agridrone.types import Detections

SEAM_PX = 3.0  # a box edge this close to an interior tile edge was cut by the tile


def tile_grid(width: int, height: int, side: int, min_overlap: int = 0) -> list[tuple[int, int, int, int]]:
    """Tiles (x0, y0, x1, y1) of at most ``side`` px covering a ``width`` x ``height`` frame."""
    if side <= 0 or width <= 0 or height <= 0:
        raise ConfigError(f"tile grid: expected positive sizes, got frame {width}x{height}, tile {side}")
    if not 0 <= min_overlap < side:
        raise ConfigError(f"tile grid: expected 0 <= overlap < tile side {side}, got {min_overlap}")

    def starts(extent: int) -> list[int]:
        if extent <= side:
            return [0]
        n = math.ceil((extent - min_overlap) / (side - min_overlap))
        return [int(round(v)) for v in np.linspace(0, extent - side, n)]

    return [(x, y, min(x + side, width), min(y + side, height)) for y in starts(height) for x in starts(width)]


def _join_seams(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, cut: np.ndarray):
    """Mend objects cut by tile edges. ``cut`` is (n, 4) bool: the box's left, top, right, bottom edge
    lies on an interior tile edge. Two same-class boxes that meet across a seam (one cut on its right
    or bottom, the other on its left or top, overlapping along the seam by half the shorter) become
    their union with the higher score; a cut box mostly (70 %) inside a larger same-class box (the
    whole object, seen by the overlapping tile) is dropped."""
    boxes, scores, cut = boxes.copy(), scores.copy(), cut.copy()
    alive = np.ones(len(boxes), bool)
    changed = True
    while changed:
        changed = False
        for i in np.flatnonzero(alive & cut.any(axis=1)):
            if not alive[i]:
                continue
            a = boxes[i].copy()
            area_a = max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)
            for j in np.flatnonzero(alive & (classes == classes[i])):
                if j == i:
                    continue
                b = boxes[j]
                inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
                if inter >= 0.7 * area_a and (b[2] - b[0]) * (b[3] - b[1]) > area_a:
                    scores[j] = max(scores[j], scores[i])
                    alive[i] = False
                    changed = True
                    break
                joined = False
                for far, near, lo, hi in ((2, 0, 1, 3), (3, 1, 0, 2)):  # i's right meets j's left; bottom/top
                    if not (cut[i, far] and cut[j, near]) or not (a[near] < b[near] <= a[far] + SEAM_PX):
                        continue
                    along = min(a[hi], b[hi]) - max(a[lo], b[lo])
                    if along >= 0.5 * min(a[hi] - a[lo], b[hi] - b[lo]):
                        joined = True
                        break
                if joined:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    scores[i] = max(scores[i], scores[j])
                    from_a, from_b = boxes[i] == a, boxes[i] == b  # which box gives each edge of the union
                    cut[i] = (from_a & cut[i]) | (from_b & cut[j])
                    alive[j] = False
                    changed = True
                    break
    return boxes[alive], scores[alive], classes[alive]


class TiledDetector:
    """A :class:`~agridrone.perception.detector.Detector` run over tiles of each frame.

    ``scale`` is the resolution the tiles reach the model at (1.0: frame pixels = input pixels;
    0.8: a tile of side/0.8 frame pixels is shrunk into the input). Frames no larger than one tile
    go to the detector whole.
    """

    def __init__(self, detector, *, scale: float = 1.0, min_overlap_px: int = 0) -> None:
        if not 0.1 <= scale <= 4.0:
            raise ConfigError(f"[perception] tile_scale: expected 0.1..4, got {scale!r}")
        self.detector = detector
        self.scale = float(scale)
        in_w, in_h = detector.input_wh
        self.side = int(round(min(in_w, in_h) / self.scale))
        self.min_overlap_px = int(min_overlap_px)
        if not 0 <= self.min_overlap_px < self.side:
            raise ConfigError(f"[perception] tile_overlap_px: expected 0..{self.side - 1}, got {min_overlap_px!r}")
        self._grids: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}

    def __getattr__(self, name: str):  # everything else (labels, num_classes, path, card, ...) is the detector's
        return getattr(self.detector, name)

    def grid(self, width: int, height: int) -> list[tuple[int, int, int, int]]:
        key = (int(width), int(height))
        if key not in self._grids:
            self._grids[key] = tile_grid(key[0], key[1], self.side, self.min_overlap_px)
        return self._grids[key]

    def detect(self, image_bgr: np.ndarray) -> Detections:
        return self.detect_timed(image_bgr)[0]

    def detect_timed(self, image_bgr: np.ndarray) -> tuple[Detections, dict[str, int]]:
        h, w = image_bgr.shape[:2]
        tiles = self.grid(w, h)
        if len(tiles) == 1:
            return self.detector.detect_timed(image_bgr)
        timings = {"pre": 0, "infer": 0, "decode": 0}
        parts_b, parts_s, parts_c, parts_cut = [], [], [], []
        for x0, y0, x1, y1 in tiles:
            dets, t = self.detector.detect_timed(image_bgr[y0:y1, x0:x1])
            for k in timings:
                timings[k] += t.get(k, 0)
            if not len(dets.scores):
                continue
            b = dets.boxes_xyxy.astype(np.float64) + np.array([x0, y0, x0, y0], np.float64)
            edges = np.array([x0 if x0 > 0 else -1e9, y0 if y0 > 0 else -1e9,
                              x1 if x1 < w else 1e9, y1 if y1 < h else 1e9])
            cut = np.abs(b - edges[None, :]) <= SEAM_PX
            parts_b.append(b)
            parts_s.append(dets.scores)
            parts_c.append(dets.class_ids)
            parts_cut.append(cut)
        t0 = time.monotonic_ns()
        if not parts_b:
            out = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.int32), np.zeros(0, np.float32),
                             (), (w, h))
        else:
            boxes, scores, classes = _join_seams(np.concatenate(parts_b), np.concatenate(parts_s),
                                                 np.concatenate(parts_c), np.concatenate(parts_cut))
            keep = nms(boxes, scores, classes, self.detector.iou_threshold, self.detector.max_detections)
            labels = tuple(self.detector.label(int(c)) for c in classes[keep]) if self.labels else ()
            out = Detections(boxes[keep].astype(np.float32), classes[keep], scores[keep], labels, (w, h))
        timings["decode"] += time.monotonic_ns() - t0
        return out, timings

    def describe(self) -> dict[str, Any]:
        return {**self.detector.describe(), "tiles": {"scale": self.scale, "side_px": self.side,
                                                      "min_overlap_px": self.min_overlap_px}}
