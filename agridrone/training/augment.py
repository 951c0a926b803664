"""Training-time augmentation (numpy/OpenCV): geometry with boxes, colour, blur and noise.

Strong on purpose: the models must work on real aerial imagery they have never seen, so scale,
aspect, rotation (any multiple of 90 degrees plus a small tilt, as nadir imagery has no "up"),
flips, colour, blur and noise are all randomised. ``letterbox`` is the deterministic eval resize.
"""

from __future__ import annotations

import cv2
import numpy as np

PAD = 114


def letterbox(img: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping aspect into ``size`` x ``size`` (padded); returns image, scale, (pad_x, pad_y)."""
    h, w = img.shape[:2]
    r = size / max(h, w)
    nw, nh = max(1, int(round(w * r))), max(1, int(round(h * r)))
    out = np.full((size, size, 3), PAD, np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py:py + nh, px:px + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if r < 1
                                             else cv2.INTER_LINEAR)
    return out, r, (px, py)


def colour(rng: np.random.Generator, img: np.ndarray, hue_deg: float = 6.0) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-hue_deg, hue_deg) / 2.0) % 180.0
    hsv[..., 1] *= rng.uniform(0.6, 1.4)
    hsv[..., 2] *= rng.uniform(0.6, 1.4)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    u = rng.random()
    if u < 0.2:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.5))
    elif u < 0.35:
        out = np.clip(out + rng.normal(0, rng.uniform(2, 10), out.shape), 0, 255).astype(np.uint8)
    return out


def detection(rng: np.random.Generator, img: np.ndarray, boxes_n: np.ndarray, classes: np.ndarray,
              size: int, strength: float = 1.0, canvas: int | None = None, scale: float | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random affine of an image as the model sees it at input ``size``; boxes in (normalised xyxy) and
    out (pixel xyxy). ``canvas`` < ``size`` returns a random crop of that view (same object scale),
    which trains the fully-convolutional detector faster than whole ``size`` inputs.

    The model sees an image either fitted whole into the input (the default, and whenever ``scale`` x
    its longer side fits in ``size``) or, with ``scale``, at ``scale`` x its pixels: a large photo is
    then met as the flight loop's tiles meet a frame, and the view is centred on an object (half the
    time) or anywhere in the image."""
    cs = int(canvas or size)
    h, w = img.shape[:2]
    tiled = scale is not None and max(h, w) * scale > size
    base = float(scale) if tiled else size / max(h, w)
    s = base * np.exp(rng.uniform(np.log(0.55), np.log(1.6)) * strength)
    aspect = np.exp(rng.uniform(-0.2, 0.2) * strength)
    sx, sy = s * aspect, s / aspect
    ang = rng.integers(0, 4) * 90.0 + rng.uniform(-10, 10) * strength
    a = np.radians(ang)
    flip = -1.0 if rng.random() < 0.5 else 1.0
    # linear part: rotation @ scale @ flip; centre of the image goes to a random spot of the canvas
    lin = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.diag([sx * flip, sy])
    if tiled:
        if len(boxes_n) and rng.random() < 0.5:
            bx = boxes_n[int(rng.integers(len(boxes_n)))]
            focus = np.array([(bx[0] + bx[2]) / 2 * w, (bx[1] + bx[3]) / 2 * h])
        else:
            focus = rng.uniform(0, 1, 2) * np.array([w, h])
        t = np.array([cs / 2, cs / 2]) + rng.uniform(-0.4, 0.4, 2) * cs - lin @ focus
    else:
        centre_out = np.array([cs / 2, cs / 2]) + rng.uniform(-0.3, 0.3, 2) * size * strength
        t = centre_out - lin @ np.array([w / 2, h / 2])
    out = cv2.warpAffine(img, pixel_centre_affine(lin, t), (cs, cs), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(PAD, PAD, PAD))
    out = colour(rng, out)
    if len(boxes_n) == 0:
        return out, np.zeros((0, 4), np.float32), np.zeros((0,), np.int32)
    b = boxes_n * np.array([w, h, w, h], np.float32)
    corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], 1)  # (n, 4, 2)
    pts = corners @ lin.T + t
    # rotated boxes grow; shrink toward the centre by the rotation's share to stay tight-ish
    x1, y1 = pts[..., 0].min(1), pts[..., 1].min(1)
    x2, y2 = pts[..., 0].max(1), pts[..., 1].max(1)
    tilt = abs(np.sin(2 * np.radians((ang % 90))))
    shrink = 0.5 * 0.15 * tilt
    cw, ch = (x2 - x1) * shrink, (y2 - y1) * shrink
    x1, x2, y1, y2 = x1 + cw, x2 - cw, y1 + ch, y2 - ch
    boxes, keep = clip_boxes(np.stack([x1, y1, x2, y2], 1), cs, cs, 0.3)
    return out, boxes, classes[keep].astype(np.int32)


def pixel_centre_affine(lin: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The 2x3 matrix for ``cv2.warpAffine`` of the map ``p -> lin @ p + t`` given in *edge* coordinates
    (a pixel spans [i, i + 1), as boxes do). OpenCV puts pixel i's centre at i, not i + 0.5: passed as is,
    the map moves the image against its boxes by 0.5 (I - lin) @ (1, 1) px: up to 1.4 px under a flip or a
    half turn, a fifth of a tiny object's width; on average the boxes sat half a pixel up and left of
    their objects."""
    lin = np.asarray(lin, np.float64)
    shift = np.asarray(t, np.float64) + 0.5 * (lin @ np.ones(2) - np.ones(2))
    return np.hstack([lin, shift[:, None]]).astype(np.float32)


def clip_boxes(boxes: np.ndarray, w: float, h: float, min_visible: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes xyxy px clipped to a ``w`` x ``h`` image; those kept (at least 2 px each way and
    ``min_visible`` of their area inside) and the keep mask over the input."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    area0 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    c = np.clip(b, 0, [w, h, w, h])
    area1 = (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])
    keep = (c[:, 2] - c[:, 0] >= 2) & (c[:, 3] - c[:, 1] >= 2) & (area1 >= min_visible * np.maximum(area0, 1e-6))
    return c[keep].astype(np.float32), keep


def tile(rng: np.random.Generator, img: np.ndarray, size: int) -> np.ndarray:
    """Classification tile: random crop-scale, rotation by 90s, flips, colour (small hue shifts only)."""
    h, w = img.shape[:2]
    c = rng.uniform(0.7, 1.0)
    ch, cw = max(2, int(h * c)), max(2, int(w * c))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = cv2.resize(img[y:y + ch, x:x + cw], (size, size), interpolation=cv2.INTER_AREA)
    out = np.rot90(out, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return colour(rng, np.ascontiguousarray(out), hue_deg=4.0)
