"""Target assignment (numpy) and the detection loss (TensorFlow) for the anchor-free heads.

Each ground-truth box goes to one pyramid level chosen by its longer side (< 48 px: stride 8,
< 128 px: stride 16, else 32) and to the up-to-4 cells whose centres lie within one cell of the
box centre (the decode reaches -0.5..1.5 cells). Where two boxes claim a cell, the smaller wins.
Loss = BCE over all cells and classes (positives' target 0.5 + 0.5 * IoU, a quality-aware score)
normalised by the number of positives, plus 5 x (1 - GIoU) over positives.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from agridrone.training.nets import STRIDES, decode_raw, grid_constants

LEVEL_LIMITS_PX = (48.0, 128.0)


def level_offsets(imgsz: int, strides=STRIDES) -> list[int]:
    offs, o = [], 0
    for s in strides:
        offs.append(o)
        o += (imgsz // s) ** 2
    return offs + [o]


def assign(boxes_px: list[np.ndarray], classes: list[np.ndarray], imgsz: int, strides=STRIDES):
    """Per batch: positive mask (B, N), target boxes xyxy px (B, N, 4), target class (B, N)."""
    offs = level_offsets(imgsz, strides)
    n_cells = offs[-1]
    bsz = len(boxes_px)
    pos = np.zeros((bsz, n_cells), np.float32)
    tbox = np.zeros((bsz, n_cells, 4), np.float32)
    tcls = np.zeros((bsz, n_cells), np.int32)
    for b in range(bsz):
        bx, cl = boxes_px[b], classes[b]
        if len(bx) == 0:
            continue
        area = (bx[:, 2] - bx[:, 0]) * (bx[:, 3] - bx[:, 1])
        for k in np.argsort(-area):
            x1, y1, x2, y2 = bx[k]
            side = max(x2 - x1, y2 - y1)
            lvl = 0 if side < LEVEL_LIMITS_PX[0] else (1 if side < LEVEL_LIMITS_PX[1] else 2)
            lvl = min(lvl, len(strides) - 1)
            s = strides[lvl]
            n = imgsz // s
            gx, gy = (x1 + x2) / 2 / s, (y1 + y2) / 2 / s
            for j in (int(np.floor(gy)) - 1, int(np.floor(gy)), int(np.floor(gy)) + 1):
                if not 0 <= j < n or abs(j + 0.5 - gy) >= 1.0:
                    continue
                for i in (int(np.floor(gx)) - 1, int(np.floor(gx)), int(np.floor(gx)) + 1):
                    if not 0 <= i < n or abs(i + 0.5 - gx) >= 1.0:
                        continue
                    c = offs[lvl] + j * n + i
                    pos[b, c] = 1.0
                    tbox[b, c] = bx[k]
                    tcls[b, c] = cl[k]
    return pos, tbox, tcls


def _giou(a, b):
    ix1, iy1 = tf.maximum(a[..., 0], b[..., 0]), tf.maximum(a[..., 1], b[..., 1])
    ix2, iy2 = tf.minimum(a[..., 2], b[..., 2]), tf.minimum(a[..., 3], b[..., 3])
    inter = tf.maximum(ix2 - ix1, 0.0) * tf.maximum(iy2 - iy1, 0.0)
    aa = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    ab = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = aa + ab - inter + 1e-7
    iou = inter / union
    ex1, ey1 = tf.minimum(a[..., 0], b[..., 0]), tf.minimum(a[..., 1], b[..., 1])
    ex2, ey2 = tf.maximum(a[..., 2], b[..., 2]), tf.maximum(a[..., 3], b[..., 3])
    enc = (ex2 - ex1) * (ey2 - ey1) + 1e-7
    return iou, iou - (enc - union) / enc


class DetectionLoss:
    def __init__(self, imgsz: int, num_classes: int, box_weight: float = 5.0):
        grid, stride = grid_constants(imgsz)
        self.grid, self.stride = tf.constant(grid), tf.constant(stride)
        self.imgsz, self.num_classes, self.box_weight = imgsz, num_classes, box_weight

    def __call__(self, raw, pos, tbox, tcls):
        xy, wh, _ = decode_raw(raw, self.grid, self.stride, self.imgsz)
        xy, wh = xy * self.imgsz, wh * self.imgsz
        pbox = tf.concat([xy - wh / 2, xy + wh / 2], -1)
        iou, giou = _giou(pbox, tbox)
        npos = tf.maximum(tf.reduce_sum(pos), 1.0)
        box_loss = tf.reduce_sum((1.0 - giou) * pos) / npos
        quality = 0.5 + 0.5 * tf.stop_gradient(tf.clip_by_value(iou, 0.0, 1.0))
        target = tf.one_hot(tcls, self.num_classes) * (pos * quality)[..., None]
        bce = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=raw[..., 4:])
        cls_loss = tf.reduce_sum(bce) / npos
        return cls_loss + self.box_weight * box_loss, {"cls": cls_loss, "box": box_loss}
