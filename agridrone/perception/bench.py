"""``agridrone bench perception``: per-stage latency of detector + health classifier on 640x480 frames.

Reports median and p99 (ms) of pre-processing, inference, decoding and the health tiles (grid,
indices, crops + one batched classifier invoke) with LiteRT on ``--threads`` threads, and runs the
same models in the same process through
  (a) the naive loop of the TFLite Python guide: resize, set_tensor / invoke / get_tensor, decoding and
      NMS in Python loops, and the health classifier invoked once per tile;
  (b) tflite-runtime, when it is installed and works here;
and prints each as a ratio to the LiteRT pipeline. The machine's load average is printed with the
figures: latency on a shared machine is only comparable within one run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

DEFAULT_DETECTOR = "models/detector.tflite"  # looked up in the working directory, then beside the package
DEFAULT_HEALTH = "models/health.tflite"


def add_arguments(parser) -> None:
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help="detector .tflite (default %(default)s)")
    parser.add_argument("--health", default=DEFAULT_HEALTH, help="health classifier .tflite ('' to skip)")
    parser.add_argument("--image", help="a frame to use (resized to 640x480); default: a synthetic field frame")
    parser.add_argument("--frames", type=int, default=200, help="timed frames per configuration")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--naive-frames", type=int, default=30, help="timed frames for the naive loop")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--json", action="store_true")


def synthetic_frame(width: int = 640, height: int = 480, seed: int = 0):
    """A field-like BGR frame: crop rows on soil with texture noise (deterministic)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    rows = (np.sin(xx / 9.0 + yy / 40.0) > 0.1)
    img = np.empty((height, width, 3), np.float32)
    img[...] = (60, 95, 140)  # soil (BGR)
    img[rows] = (45, 150, 70)  # crop
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _stats(samples_ns: list[int]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {"median_ms": round(float(np.median(a)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def _pipeline(det, health, frame, n: int, warmup: int) -> dict[str, Any]:
    stages: dict[str, list[int]] = {"pre": [], "infer": [], "decode": [], "health_tiles": [], "health_classify": [],
                                    "total": []}
    for i in range(warmup + n):
        t0 = time.monotonic_ns()
        _, st = det.detect_timed(frame)
        hst = {"tiles": 0, "classify": 0}
        if health is not None:
            _, hst = health.analyze_timed(frame)
        t1 = time.monotonic_ns()
        if i >= warmup:
            for k in ("pre", "infer", "decode"):
                stages[k].append(st[k])
            stages["health_tiles"].append(hst["tiles"])
            stages["health_classify"].append(hst["classify"])
            stages["total"].append(t1 - t0)
    return {k: _stats(v) for k, v in stages.items() if v}


def _naive_detect(interp, frame, layout: str, conf: float = 0.25, iou_thr: float = 0.45):
    """The TFLite Python guide's loop, decoding in plain Python (the baseline to beat)."""
    import cv2
    import numpy as np

    inp = interp.get_input_details()[0]
    _, h, w, _ = inp["shape"]
    img = cv2.cvtColor(cv2.resize(frame, (int(w), int(h))), cv2.COLOR_BGR2RGB)
    data = np.expand_dims(img, axis=0)
    if inp["dtype"] == np.float32:
        data = np.float32(data) / 255.0
    elif inp["dtype"] == np.int8:
        data = (data.astype(np.int16) - 128).astype(np.int8)
    interp.set_tensor(inp["index"], data)
    interp.invoke()
    outs = interp.get_output_details()
    dets = []
    if layout == "ssd":
        tensors = [interp.get_tensor(o["index"]) for o in outs[:4]]
        boxes, classes, scores, count = tensors
        for i in range(int(count[0])):
            if scores[0][i] > conf:
                dets.append((list(boxes[0][i]), int(classes[0][i]), float(scores[0][i])))
        return dets
    out = interp.get_tensor(outs[0]["index"])[0]
    scale, zp = outs[0]["quantization"]
    rows = out.T if layout == "yolov8" else out
    cands = []
    for r in rows:
        vals = [(float(v) - zp) * scale if scale else float(v) for v in r]
        if layout == "yolov8":
            cls = vals[4:]
        else:
            cls = [vals[4] * v for v in vals[5:]]
        best = max(range(len(cls)), key=lambda k: cls[k])
        if cls[best] > conf:
            cx, cy, bw, bh = vals[:4]
            cands.append(([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], best, cls[best]))
    cands.sort(key=lambda c: -c[2])
    for box, c, s in cands:
        ok = True
        for kb, kc, _ in dets:
            if kc != c:
                continue
            ix = max(0.0, min(box[2], kb[2]) - max(box[0], kb[0]))
            iy = max(0.0, min(box[3], kb[3]) - max(box[1], kb[1]))
            inter = ix * iy
            union = (box[2] - box[0]) * (box[3] - box[1]) + (kb[2] - kb[0]) * (kb[3] - kb[1]) - inter
            if union > 0 and inter / union > iou_thr:
                ok = False
                break
        if ok:
            dets.append((box, c, s))
    return dets


def _naive_health(interp, frame, rows: int, cols: int):
    """One invoke per tile, crops resized one by one."""
    import cv2
    import numpy as np

    inp = interp.get_input_details()[0]
    s = int(inp["shape"][1])
    h, w = frame.shape[:2]
    out_idx = interp.get_output_details()[0]["index"]
    results = []
    for r in range(rows):
        for c in range(cols):
            tile = frame[r * h // rows:(r + 1) * h // rows, c * w // cols:(c + 1) * w // cols]
            x = cv2.cvtColor(cv2.resize(tile, (s, s)), cv2.COLOR_BGR2RGB)[None]
            if inp["dtype"] == np.int8:
                x = (x.astype(np.int16) - 128).astype(np.int8)
            elif inp["dtype"] == np.float32:
                x = x.astype(np.float32) / 255.0
            interp.set_tensor(inp["index"], x)
            interp.invoke()
            results.append(int(np.argmax(interp.get_tensor(out_idx)[0])))
    return results


def _naive(det_path: Path, layout: str, health_path: Path | None, frame, n: int, threads: int,
           rows: int, cols: int) -> dict[str, Any]:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(det_path), num_threads=threads)
    interp.allocate_tensors()
    for d in interp.get_input_details()[1:]:
        interp.set_tensor(d["index"], np.full(d["shape"], d["quantization"][1], d["dtype"]))
    hint = None
    if health_path is not None:
        hint = Interpreter(model_path=str(health_path), num_threads=threads)
        hint.allocate_tensors()
    det_ns, health_ns = [], []
    for i in range(n + 2):
        t0 = time.monotonic_ns()
        _naive_detect(interp, frame, layout)
        t1 = time.monotonic_ns()
        if hint is not None:
            _naive_health(hint, frame, rows, cols)
        t2 = time.monotonic_ns()
        if i >= 2:
            det_ns.append(t1 - t0)
            health_ns.append(t2 - t1)
    out = {"detector": _stats(det_ns)}
    if hint is not None:
        out["health"] = _stats(health_ns)
        out["total"] = _stats([a + b for a, b in zip(det_ns, health_ns)])
    return out


def run(args) -> int:
    import cv2

    from agridrone.errors import ModelError
    from agridrone.perception.detector import Detector
    from agridrone.perception.health import HealthAnalyzer, HealthClassifier
    from agridrone.perception.runtime import available_runtimes

    from agridrone.perception.runtime import shipped_model

    det_path = Path(args.detector)
    if args.detector == DEFAULT_DETECTOR:
        det_path = shipped_model("detector.tflite")
    if not det_path.is_file():
        raise ModelError(f"bench perception: expected a detector at {det_path} (train one with `agridrone train "
                         f"detector`, or pass --detector), got no such file")
    health_path = Path(args.health) if args.health else None
    if args.health == DEFAULT_HEALTH:
        health_path = shipped_model("health.tflite")
    if health_path is not None and not health_path.is_file():
        raise ModelError(f"bench perception: expected a health classifier at {health_path} (or --health ''), "
                         f"got no such file")
    if args.image:
        from agridrone.commands.models import load_image

        frame = cv2.resize(load_image(args.image), (640, 480), interpolation=cv2.INTER_AREA)
    else:
        frame = synthetic_frame()
    load_before = os.getloadavg()

    def build(runtime: str):
        det = Detector(det_path, num_threads=args.threads, runtime=runtime)
        health = None
        if health_path is not None:
            health = HealthAnalyzer(HealthClassifier(health_path, num_threads=args.threads, runtime=runtime),
                                    rows=args.rows, cols=args.cols, skip_sky=False)
        return det, health

    det, health = build("litert")
    report: dict[str, Any] = {
        "frame_wh": [640, 480], "threads": args.threads, "frames": args.frames, "cpus": os.cpu_count(),
        "detector": {"path": str(det_path), "layout": det.layout, "input": list(det.model.inputs[det.image_pos].shape),
                     "dtype": det.model.inputs[det.image_pos].dtype.name, "xnnpack": det.model.xnnpack},
        "health": ({"path": str(health_path), "tile_px": health.classifier.tile_px,
                    "tiles": args.rows * args.cols} if health else None),
        "litert": _pipeline(det, health, frame, args.frames, args.warmup),
    }
    base = report["litert"]["total"]["median_ms"]
    naive = _naive(det_path, det.layout, health_path, frame, args.naive_frames, args.threads, args.rows, args.cols)
    report["naive_guide_loop"] = naive
    report["ratios"] = {"naive_total_over_litert": round(naive.get("total", naive["detector"])["median_ms"] / base, 2),
                        "naive_detector_over_litert": round(naive["detector"]["median_ms"] / sum(
                            report["litert"][k]["median_ms"] for k in ("pre", "infer", "decode")), 2)}
    if "tflite" in available_runtimes():
        try:
            tdet, thealth = build("tflite")
            report["tflite_runtime"] = _pipeline(tdet, thealth, frame, args.frames, args.warmup)
            report["ratios"]["tflite_runtime_over_litert"] = round(
                report["tflite_runtime"]["total"]["median_ms"] / base, 2)
        except ModelError as err:
            report["tflite_runtime"] = {"error": str(err)}
    else:
        report["tflite_runtime"] = {"error": "tflite-runtime is not installed here"}
    report["loadavg_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    report["target"] = {"total_median_ms_max": 10.0, "met": bool(base <= 10.0)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    _print(report)
    return 0


def _print(r: dict[str, Any]) -> None:
    d = r["detector"]
    print(f"perception benchmark: 640x480 frames, {r['threads']} threads, {r['frames']} frames, "
          f"{r['cpus']} CPUs, load average {r['loadavg_before_after'][0]} -> {r['loadavg_before_after'][1]}")
    print(f"detector {d['path']} ({d['layout']}, input {d['input']} {d['dtype']}, XNNPACK {'on' if d['xnnpack'] else 'off'})")
    if r["health"]:
        print(f"health   {r['health']['path']} ({r['health']['tiles']} tiles of {r['health']['tile_px']} px, one invoke)")
    print(f"{'stage':<18}{'median ms':>10}{'p99 ms':>10}")
    for k, v in r["litert"].items():
        print(f"{k:<18}{v['median_ms']:>10.3f}{v['p99_ms']:>10.3f}")
    n = r["naive_guide_loop"]
    for k, v in n.items():
        print(f"naive {k:<12}{v['median_ms']:>10.3f}{v['p99_ms']:>10.3f}")
    t = r["tflite_runtime"]
    if "error" in t:
        print(f"tflite-runtime: {t['error']}")
    else:
        print(f"tflite-runtime total{t['total']['median_ms']:>10.3f}{t['total']['p99_ms']:>10.3f}")
    print("ratios: " + ", ".join(f"{k} = {v}x" for k, v in r["ratios"].items()))
    print(f"target: detector + health <= {r['target']['total_median_ms_max']} ms median: "
          f"{'met' if r['target']['met'] else 'NOT met'} ({r['litert']['total']['median_ms']:.3f} ms)")
