"""An independent reference decoder for the tests, written plainly (loops, no agridrone code).

It follows the published recipes: Ultralytics letterbox (INTER_LINEAR resize, grey 114 padding split
evenly, top/left get the smaller half), RGB, pixel/255 quantized with the input's own parameters,
per-anchor best class, ``score > threshold``, greedy NMS per class suppressing IoU > threshold, and the
exact inverse of the letterbox (subtract the padding, multiply by original/resized size per axis).
"""

from __future__ import annotations

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter

CLASSES = ("tree", "person", "animal")


def letterbox(img, size_wh):
    h, w = img.shape[:2]
    tw, th = size_wh
    r = min(tw / w, th / h)
    nw, nh = int(round(w * r)), int(round(h * r))
    resized = img if (nw, nh) == (w, h) else cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    left, top = (tw - nw) // 2, (th - nh) // 2
    canvas = np.full((th, tw, 3), 114, np.uint8)
    canvas[top:top + nh, left:left + nw] = resized
    return canvas, (left, top, w / nw, h / nh)


def stretch(img, size_wh):
    h, w = img.shape[:2]
    out = cv2.resize(img, size_wh, interpolation=cv2.INTER_LINEAR)
    return out, (0, 0, w / size_wh[0], h / size_wh[1])


def run_model(path, image_bgr, placement, float_norm, raw_uint8=False):
    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    _, th, tw, _ = inp["shape"]
    placed, geom = placement(image_bgr, (int(tw), int(th)))
    rgb = placed[:, :, ::-1].astype(np.float64)
    if inp["dtype"] == np.float32:
        x = float_norm(rgb).astype(np.float32)
    elif raw_uint8 and inp["dtype"] == np.uint8:  # the TFLite guide: uint8 models take the pixels as they are
        x = placed[:, :, ::-1].copy()
    else:
        scale, zp = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(rgb / 255.0 / scale + zp), info.min, info.max).astype(inp["dtype"])
    it.set_tensor(inp["index"], x[None])
    for extra in it.get_input_details()[1:]:  # e.g. LSTM state: real zero
        it.set_tensor(extra["index"], np.full(extra["shape"], extra["quantization"][1], extra["dtype"]))
    it.invoke()
    outs = []
    for d in it.get_output_details():
        raw = it.get_tensor(d["index"])
        scale, zp = d["quantization"]
        val = (raw.astype(np.float32) - zp) * scale if scale else raw.astype(np.float32)
        outs.append((d, val))
    return outs, geom, (int(tw), int(th))


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_nms(cands, iou_thr):
    cands = sorted(cands, key=lambda c: -c[2])
    kept = []
    for c in cands:
        if all(not (k[1] == c[1] and iou(k[0], c[0]) > iou_thr) for k in kept):
            kept.append(c)
    return kept


def to_source(box, geom, img_wh):
    left, top, sx, sy = geom
    x1, y1, x2, y2 = box
    out = [(x1 - left) * sx, (y1 - top) * sy, (x2 - left) * sx, (y2 - top) * sy]
    w, h = img_wh
    return [min(max(out[0], 0), w), min(max(out[1], 0), h), min(max(out[2], 0), w), min(max(out[3], 0), h)]


def decode_yolo(path, image_bgr, layout, thr=0.25, iou_thr=0.45, float_norm=lambda rgb: rgb / 255.0):
    outs, geom, (tw, th) = run_model(path, image_bgr, letterbox, float_norm)
    a = outs[0][1][0]
    rows = a.T if layout == "yolov8" else a
    cands = []
    for r in rows:
        cx, cy, w, h = (float(v) for v in r[:4])
        if layout == "yolov8":
            cls_scores = [float(v) for v in r[4:]]
        else:
            obj = float(r[4])
            if not obj > thr:
                continue
            cls_scores = [obj * float(v) for v in r[5:]]
        best = max(range(len(cls_scores)), key=lambda i: cls_scores[i])
        if not cls_scores[best] > thr:
            continue
        if max(abs(float(v)) for v in rows[:, 0]) <= 2.0:  # normalised boxes
            cx, cy, w, h = cx * tw, cy * th, w * tw, h * th
        cands.append(([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], best, cls_scores[best]))
    kept = greedy_nms(cands, iou_thr)
    img_wh = (image_bgr.shape[1], image_bgr.shape[0])
    return [(to_source(b, geom, img_wh), c, s) for b, c, s in kept]


def decode_ssd(path, image_bgr, thr=0.25, float_norm=lambda rgb: (rgb - 127.5) / 127.5):
    outs, geom, (tw, th) = run_model(path, image_bgr, stretch, float_norm, raw_uint8=True)
    by_role = {}
    for d, val in outs:
        by_role.setdefault(len(val.shape), []).append((d, val))
    # the reference finds the roles through the post-process op's documented output order when named so,
    # else through the signature names the test model was saved with
    named = {d["name"]: v for d, v in outs}
    if "TFLite_Detection_PostProcess" in named:
        boxes, classes, scores, count = (named["TFLite_Detection_PostProcess" + s] for s in ("", ":1", ":2", ":3"))
    else:
        it = Interpreter(model_path=str(path))
        sig = it.get_signature_list()["serving_default"]["outputs"]
        runner = it.get_signature_runner("serving_default")
        inp_name = it.get_signature_list()["serving_default"]["inputs"][0]
        placed, _ = stretch(image_bgr, (tw, th))
        res = runner(**{inp_name: float_norm(placed[:, :, ::-1].astype(np.float64)).astype(np.float32)[None]})
        assert set(sig) == {"detection_boxes", "detection_classes", "detection_scores", "num_detections"}
        boxes, classes, scores, count = (res[k] for k in ("detection_boxes", "detection_classes",
                                                          "detection_scores", "num_detections"))
    n = int(round(float(np.asarray(count).reshape(-1)[0])))
    img_wh = (image_bgr.shape[1], image_bgr.shape[0])
    dets = []
    for i in range(n):
        s = float(scores[0][i])
        if not s > thr:
            continue
        ymin, xmin, ymax, xmax = (float(v) for v in boxes[0][i])
        dets.append((to_source([xmin * tw, ymin * th, xmax * tw, ymax * th], geom, img_wh), int(round(float(classes[0][i]))), s))
    return sorted(dets, key=lambda d: -d[2])
