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
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    changed = True
    while changed:
        changed = False
        for i in np.flatnonzero(alive & cut.any(axis=1)):
            if not alive[i]:
                continue
            # every other live box of the class at once; the first (by index) that satisfies a rule wins
            js = np.flatnonzero(alive & (classes == classes[i]))
            js = js[js != i]
            if not len(js):
                continue
            a, bs = boxes[i], boxes[js]
            area_a = max(area[i], 1e-9)
            inter = (np.maximum(0.0, np.minimum(a[2], bs[:, 2]) - np.maximum(a[0], bs[:, 0]))
                     * np.maximum(0.0, np.minimum(a[3], bs[:, 3]) - np.maximum(a[1], bs[:, 1])))
            inside = (inter >= 0.7 * area_a) & (area[js] > area_a)
            meets = []
            for far, near, lo, hi in ((2, 0, 1, 3), (3, 1, 0, 2)):  # i's right meets j's left; bottom/top
                along = np.minimum(a[hi], bs[:, hi]) - np.maximum(a[lo], bs[:, lo])
                meets.append(cut[i, far] & cut[js, near] & (a[near] < bs[:, near]) & (bs[:, near] <= a[far] + SEAM_PX)
                             & (along >= 0.5 * np.minimum(a[hi] - a[lo], bs[:, hi] - bs[:, lo])))
            hit = np.flatnonzero(inside | meets[0] | meets[1])
            if not len(hit):
                continue
            k = hit[0]
            j = js[k]
            changed = True
            if inside[k]:
                scores[j] = max(scores[j], scores[i])
                alive[i] = False
                continue
            b = boxes[j]
            union = np.array([min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])])
            from_a, from_b = union == a, union == b  # which box gives each edge of the union
            cut[i] = (from_a & cut[i]) | (from_b & cut[j])
            boxes[i] = union
            area[i] = (union[2] - union[0]) * (union[3] - union[1])
            scores[i] = max(scores[i], scores[j])
            alive[j] = False
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
        found = []
        for x0, y0, x1, y1 in tiles:
            dets, t = self.detector.detect_timed(image_bgr[y0:y1, x0:x1])
            for k in timings:
                timings[k] += t.get(k, 0)
            found.append(dets)
        t0 = time.monotonic_ns()
        out = self.merge(found, w, h)
        timings["decode"] += time.monotonic_ns() - t0
        return out, timings

    def merge(self, per_tile: list[Detections], width: int, height: int) -> Detections:
        """One frame's detections from those of its tiles (in the order of ``grid(width, height)``):
        boxes moved into the frame, objects cut by a seam joined, class-aware NMS over the frame."""
        w, h = int(width), int(height)
        parts_b, parts_s, parts_c, parts_cut = [], [], [], []
        for (x0, y0, x1, y1), dets in zip(self.grid(w, h), per_tile):
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
        if not parts_b:
            return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.int32), np.zeros(0, np.float32),
                              (), (w, h))
        boxes, scores, classes = _join_seams(np.concatenate(parts_b), np.concatenate(parts_s),
                                             np.concatenate(parts_c), np.concatenate(parts_cut))
        keep = nms(boxes, scores, classes, self.detector.iou_threshold, self.detector.max_detections)
        labels = tuple(self.detector.label(int(c)) for c in classes[keep]) if self.labels else ()
        return Detections(boxes[keep].astype(np.float32), classes[keep], scores[keep], labels, (w, h))

    def describe(self) -> dict[str, Any]:
        return {**self.detector.describe(), "tiles": {"scale": self.scale, "side_px": self.side,
                                                      "min_overlap_px": self.min_overlap_px}}
