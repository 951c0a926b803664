"""Metrics in plain numpy: COCO-style detection AP and classification scores.

Detection AP follows COCO: per class, detections sorted by score are greedily matched to the
unmatched ground truth of the same image with the highest IoU >= threshold; precision is made
monotone and sampled at 101 recall points. mAP@0.5:0.95 averages thresholds 0.50, 0.55 ... 0.95.
Classes with no ground truth are left out of the mean (their AP is reported as None).

AP@0.5 by object size follows COCO's area ranges, with bounds for aerial imagery where most objects are a
few pixels across (the tiny-object buckets of AI-TOD): a box's size is the square root of its area, in
pixels of the evaluated image. For one bucket, ground truth of other sizes is *ignored* (a detection
matched to it counts neither way) and so is an unmatched detection of another size; the rest is scored as
above. Per bucket, the mean is over the classes with ground truth in it.
"""

from __future__ import annotations

import numpy as np

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
# (name, low, high): sqrt(box area) in px, low inclusive
SIZE_BUCKETS = (("tiny", 0.0, 8.0), ("small", 8.0, 16.0), ("medium", 16.0, 32.0), ("large", 32.0, float("inf")))


def _side(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes ``a`` (n, 4) and ``b`` (m, 4), xyxy."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    aa = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    ab = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(aa[:, None] + ab[None, :] - inter, 1e-12)


def _ap_from_pr(tp: np.ndarray, n_gt: int) -> float:
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, len(tp) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(np.mean(np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)))


def detection_map(preds: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  gts: list[tuple[np.ndarray, np.ndarray]], num_classes: int, by_size: bool = True) -> dict:
    """``preds[i]`` = (boxes xyxy, scores, classes) and ``gts[i]`` = (boxes xyxy, classes) of image i.

    Returns {"map50", "map50_95", "ap50": [per class or None], "ap50_95": [...], "gt_counts": [...],
    "by_size": {bucket: {"map50", "ap50", "gt"}}} (``by_size=False``: without it, for a quicker look).
    """
    if len(preds) != len(gts):
        raise ValueError(f"expected as many predictions as ground truths, got {len(preds)} and {len(gts)}")
    ap = np.full((num_classes, len(IOU_THRESHOLDS)), np.nan)
    gt_counts = np.zeros(num_classes, np.int64)
    size_ap = {name: [] for name, _, _ in SIZE_BUCKETS}
    size_gt = {name: 0 for name, _, _ in SIZE_BUCKETS}
    for c in range(num_classes):
        gt_by_img, dets = _class_detections(preds, gts, c)
        gt_counts[c] = sum(len(v) for v in gt_by_img.values())
        for t_idx, thr in enumerate(IOU_THRESHOLDS):
            ap[c, t_idx] = _ap(dets, gt_by_img, thr)[0]
        for name, lo, hi in SIZE_BUCKETS if by_size else ():
            a, n = _ap(dets, gt_by_img, 0.5, lo, hi)
            size_ap[name].append(None if n == 0 else a)
            size_gt[name] += n
    valid = gt_counts > 0
    ap50 = [None if not v else float(ap[c, 0]) for c, v in enumerate(valid)]
    ap5095 = [None if not v else float(np.mean(ap[c])) for c, v in enumerate(valid)]
    res = {"map50": float(np.mean(ap[valid, 0])) if valid.any() else 0.0,
           "map50_95": float(np.mean(ap[valid])) if valid.any() else 0.0,
           "ap50": ap50, "ap50_95": ap5095, "gt_counts": gt_counts.tolist()}
    if by_size:
        res["by_size"] = {}
        for name, aps in size_ap.items():
            some = [a for a in aps if a is not None]
            res["by_size"][name] = {"map50": float(np.mean(some)) if some else None, "ap50": aps, "gt": size_gt[name]}
    return res


def _class_detections(preds, gts, c: int):
    """Class ``c``'s ground truth per image {image: boxes}, and its detections by decreasing score as
    (image, box side, IoUs with that image's ground truth of class ``c`` or None): the IoUs are computed
    once for every threshold and size bucket."""
    gt_by_img = {}
    for i, (gb, gc) in enumerate(gts):
        m = np.asarray(gc) == c
        if m.any():
            gt_by_img[i] = np.asarray(gb, np.float64).reshape(-1, 4)[m]
    recs = []  # (score, image, box)
    for i, (pb, ps, pc) in enumerate(preds):
        m = np.asarray(pc) == c
        for b, s in zip(np.asarray(pb).reshape(-1, 4)[m], np.asarray(ps)[m]):
            recs.append((float(s), i, b))
    recs.sort(key=lambda r: -r[0])
    dets = [(i, float(_side(b)[0]), box_iou(b[None], gt_by_img[i])[0] if i in gt_by_img else None)
            for _, i, b in recs]
    return gt_by_img, dets


def _ap(dets, gt_by_img, thr: float, lo: float = 0.0, hi: float = float("inf")) -> tuple[float, int]:
    """(AP, ground truth counted) at IoU ``thr`` of the ground truth whose size is in [lo, hi): greedy
    matching by score; ground truth of other sizes is ignored, and so is a detection matched to it or
    unmatched and of another size (see the module docstring). AP is NaN without ground truth."""
    ign_by_img = {i: (sd < lo) | (sd >= hi) for i, g in gt_by_img.items() for sd in (_side(g),)}
    n_gt = int(sum(int((~v).sum()) for v in ign_by_img.values()))
    used = {i: np.zeros(len(v), bool) for i, v in gt_by_img.items()}
    tp = []
    for i, side, ious in dets:
        matched = None
        if ious is not None:
            ign = ign_by_img[i]
            free = np.where(used[i], -1.0, ious)
            for pool in (~ign, ign):   # an in-range match before an ignored one
                cand = np.where(pool, free, -1.0)
                j = int(np.argmax(cand))
                if cand[j] >= thr:
                    matched = j
                    break
        if matched is not None:
            used[i][matched] = True
            if not ign_by_img[i][matched]:
                tp.append(1.0)
        elif lo <= side < hi:
            tp.append(0.0)
    return _ap_from_pr(np.array(tp), n_gt), n_gt


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    """Accuracy, per-class precision / recall / F1, macro F1 and the confusion matrix (rows = truth)."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(np.float64)
    prec = np.divide(tp, cm.sum(0), out=np.zeros(num_classes), where=cm.sum(0) > 0)
    rec = np.divide(tp, cm.sum(1), out=np.zeros(num_classes), where=cm.sum(1) > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(num_classes), where=(prec + rec) > 0)
    present = cm.sum(1) > 0
    return {"accuracy": float(tp.sum() / max(len(y_true), 1)), "precision": prec.tolist(), "recall": rec.tolist(),
            "f1": f1.tolist(), "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
            "confusion": cm.tolist(), "support": cm.sum(1).tolist()}
