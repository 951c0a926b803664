"""``agridrone models detect|inspect|eval``: run, describe and evaluate detector models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agridrone.errors import CameraError, ModelError

VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".h264", ".ts", ".wmv"}


def register(sub) -> None:
    p = sub.add_parser("models", help="run, inspect and evaluate TFLite models")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    d = msub.add_parser("detect", help="detect objects in images or videos")
    d.add_argument("model", help=".tflite detector (own, SSD with post-process, YOLOv5, YOLOv8/11)")
    d.add_argument("inputs", nargs="+", metavar="IMAGE_OR_VIDEO", help="image files, video files or image folders")
    d.add_argument("--labels", help="label file (.txt, one per line, or a .pbtxt label map)")
    d.add_argument("--threshold", type=float, default=0.25, help="confidence threshold (default 0.25)")
    d.add_argument("--iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    d.add_argument("--layout", choices=("auto", "yolov8", "yolov5", "ssd", "end2end"), default="auto",
                   help="decoder (default: from the model card or the output tensors)")
    d.add_argument("--resize", choices=("letterbox", "stretch"), help="override how images are fitted to the input")
    d.add_argument("--tile-scale", type=float, default=0.0, metavar="S",
                   help="run images larger than the input over tiles reaching the model at S x their pixels, as "
                        "the flight loop does (1.0 for the shipped detector on camera frames; default 0: each "
                        "image fitted whole into the input)")
    d.add_argument("--threads", type=int, default=2)
    d.add_argument("--runtime", choices=("auto", "litert", "tflite"), default="auto")
    d.add_argument("--max-frames", type=int, default=0, help="stop a video after N frames (0: all)")
    d.add_argument("--stall-timeout", type=float, default=5.0, help="seconds without a video frame before giving up")
    d.add_argument("--json", action="store_true", help="print a JSON array, one object per image or video frame")
    d.set_defaults(func=run_detect)

    i = msub.add_parser("inspect", help="print a model's tensors, quantisation and card")
    i.add_argument("model")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=run_inspect)

    e = msub.add_parser("eval", help="evaluate a model on a labelled dataset")
    e.add_argument("model")
    e.add_argument("--data", required=True, help="dataset directory")
    e.add_argument("--format", choices=("yolo", "coco", "voc"), help="dataset format (default: detected)")
    e.add_argument("--tile-scale", type=float, default=None, metavar="S",
                   help="images larger than one detector input run over tiles reaching the model at S x their "
                        "pixels, as the flight loop does (default: [perception] tile_scale, 1.0); 0 shrinks each "
                        "image whole into the input")
    e.add_argument("--tile-overlap", type=int, default=None, metavar="PX",
                   help="pixels shared by neighbouring tiles (default: [perception] tile_overlap_px, 64)")
    e.add_argument("--map", action="append", metavar="NAME=LABEL", dest="label_map",
                   help="map a dataset class onto a model label (or NAME=- to leave it out); repeatable. "
                        "Same names and known synonyms (car, truck, tractor -> vehicle; cow, sheep -> animal; "
                        "pedestrian -> person; pylon -> pole; barn -> building) are mapped without it")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=run_eval)


def load_image(path: str | Path, unchanged: bool = False):
    """An image file as a uint8 array (BGR); CameraError when it is missing or does not decode."""
    import cv2
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise CameraError(f"image {p}: expected an image file, got no such file")
    data = np.fromfile(str(p), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED if unchanged else cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise CameraError(f"image {p}: expected a decodable image (JPEG, PNG, BMP, TIFF, ...), got "
                          f"{data.size} bytes that do not decode")
    if img.dtype != np.uint8:
        raise CameraError(f"image {p}: expected 8-bit pixels, got {img.dtype}")
    return img


def iter_video(path: str | Path, stall_timeout_s: float = 5.0, max_frames: int = 0):
    """(index, BGR image) of a video file until it ends; CameraError if it stalls, breaks or holds no frame.

    Frames come from ``agridrone.camera.VideoFileSource`` on a reader thread, so a decoder that hangs
    is noticed after ``stall_timeout_s`` instead of blocking for ever.
    """
    import queue
    import threading

    from agridrone.camera import EndOfStream, VideoFileSource
    from agridrone.clock import MonotonicClock

    p = Path(path)
    source = VideoFileSource(p, MonotonicClock())
    source.open()  # CameraError when missing or not a video OpenCV can open
    frames: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                try:
                    item = source.read().image
                except EndOfStream:
                    item = None
                except CameraError as err:
                    item = err
                while not stop.is_set():
                    try:
                        frames.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if item is None or isinstance(item, CameraError):
                    return
        finally:
            source.close()

    worker = threading.Thread(target=reader, name=f"video-reader {p.name}", daemon=True)
    worker.start()
    n = 0
    try:
        while not max_frames or n < max_frames:
            try:
                item = frames.get(timeout=stall_timeout_s)
            except queue.Empty:
                raise CameraError(f"video {p}: expected a frame every {stall_timeout_s:g} s, got none for "
                                  f"{stall_timeout_s:g} s after frame {n} (stalled)") from None
            if item is None:
                break
            if isinstance(item, CameraError):
                raise item
            yield n, item
            n += 1
    finally:
        stop.set()
        worker.join(timeout=2.0)
    if n == 0:
        raise CameraError(f"video {p}: expected at least one frame, got none (empty or not a video)")


def _frames(path: str, args):
    """(image name, video frame index or None, BGR image) of an image, a video or a folder of images."""
    if Path(path).is_dir():
        from agridrone.camera import IMAGE_SUFFIXES

        files = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise CameraError(f"folder {path}: expected image files ({', '.join(IMAGE_SUFFIXES)}), got none")
        for f in files:
            yield str(f), None, load_image(f)
    elif Path(path).suffix.lower() in VIDEO_EXTS:
        for idx, frame in iter_video(path, args.stall_timeout, args.max_frames):
            yield str(path), idx, frame
    else:
        yield str(path), None, load_image(path)


def run_detect(args) -> int:
    from agridrone.perception.detector import Detector

    det = Detector(args.model, labels=args.labels, conf_threshold=args.threshold, iou_threshold=args.iou,
                   num_threads=args.threads, runtime=args.runtime, layout=args.layout, resize=args.resize)
    if args.tile_scale:
        from agridrone.perception.tiling import TiledDetector

        side = int(round(min(det.input_wh) / args.tile_scale)) if args.tile_scale > 0 else 0
        det = TiledDetector(det, scale=args.tile_scale, min_overlap_px=max(0, min(64, side - 1)))
    first = True
    out = sys.stdout
    if args.json:
        out.write("[")
    try:
        for path in args.inputs:
            for image, idx, frame in _frames(path, args):
                dets = det.detect(frame)
                record = {"image": image, "width": int(frame.shape[1]), "height": int(frame.shape[0]),
                          "detections": dets.to_dicts()}
                if idx is not None:
                    record["frame"] = idx
                if args.json:
                    out.write(("\n" if first else ",\n") + json.dumps(record))
                else:
                    where = image + (f" frame {idx}" if idx is not None else "")
                    out.write(f"{where}: {len(dets)} detection{'s' if len(dets) != 1 else ''} "
                              f"({record['width']}x{record['height']})\n")
                    for d in record["detections"]:
                        x1, y1, x2, y2 = d["box_xyxy"]
                        out.write(f"  {d['label']:<16} {d['score']:.3f}  [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]\n")
                first = False
                out.flush()
    finally:
        if args.json:
            out.write("\n]\n")
            out.flush()
    return 0


def run_inspect(args) -> int:
    from agridrone.perception.detector import _auto_layout
    from agridrone.perception.labels import load_card
    from agridrone.perception.runtime import TFLiteModel

    model = TFLiteModel(args.model)
    info = model.describe()
    ops: dict[str, int] = {}
    for op in model.ops():
        ops[op.get("op_name", "?")] = ops.get(op.get("op_name", "?"), 0) + 1
    info["ops"] = ops
    try:
        info["detector_layout"] = _auto_layout(model, None)
    except ModelError as err:
        info["detector_layout"] = None
        info["detector_layout_reason"] = str(err)
    info["card"] = load_card(args.model)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"{info['path']}: {info['bytes']} bytes, runtime {info['runtime']}, {info['num_threads']} threads, "
          f"XNNPACK {'on' if info['xnnpack'] else 'off'}")
    for kind in ("inputs", "outputs"):
        print(f"{kind}:")
        for t in info[kind]:
            q = t.get("quantization")
            qs = f"  scale={q['scale']:.6g} zero_point={q['zero_point']}" if q else ""
            print(f"  [{t['index']}] {t['name']}  {t['shape']}  {t['dtype']}{qs}")
    print("ops: " + ", ".join(f"{k} x{v}" for k, v in sorted(ops.items())))
    print(f"detector layout: {info['detector_layout'] or 'none (' + info.get('detector_layout_reason', '') + ')'}")
    card = info["card"]
    if card:
        print(f"card: {card.get('name', '?')} v{card.get('version', '?')}, task {card.get('task', '?')}, "
              f"labels {card.get('labels')}")
        metrics = card.get("metrics")
        if metrics:
            print(f"  metrics: {json.dumps(metrics)[:400]}")
    else:
        print("card: none (no JSON beside the model)")
    return 0


def run_eval(args) -> int:
    try:
        from agridrone.training.evaluate import cli_eval
    except ImportError as err:
        raise ModelError(f"models eval: expected the training extra (agridrone.training.evaluate), got "
                         f"ImportError: {err}") from None
    return int(cli_eval(args.model, args.data, args.format, args.json, tile_scale=args.tile_scale,
                        tile_overlap_px=args.tile_overlap, label_map=args.label_map) or 0)
