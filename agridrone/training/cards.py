"""Model cards beside each .tflite: JSON (for programs) and Markdown (for people), plus the label file."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path

import numpy as np


def tensor_spec(path: Path) -> tuple[dict, dict]:
    """(input, output) description of a .tflite read with LiteRT: shape, dtype, quantization."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    i, o = it.get_input_details()[0], it.get_output_details()[0]

    def d(t):
        scale, zp = t["quantization"]
        return {"shape": [int(x) for x in t["shape"]], "dtype": np.dtype(t["dtype"]).name,
                "quantization": {"scale": float(scale), "zero_point": int(zp)}}

    return d(i), d(o)


def file_info(path: Path) -> dict:
    data = Path(path).read_bytes()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_card(tflite: Path, *, name: str, version: str, task: str, labels: list[str], training: dict,
               metrics: dict, extra: dict | None = None, resize: str = "letterbox") -> dict:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.labels.txt`` beside ``tflite``; returns the card."""
    tflite = Path(tflite)
    inp, out = tensor_spec(tflite)
    card = {
        "name": name,
        "version": version,
        "task": task,
        "labels": list(labels),
        "input": {**inp, "color_order": "RGB", "resize": resize,
                  "normalization": {"scale": 1.0 / 255.0, "mean": 0.0, "std": 1.0}},
        "output": {**out, "layout": "yolov8" if task == "detection" else "softmax",
                   **({"boxes": "normalized"} if task == "detection" else {})},
        "training": training,
        "metrics": metrics,
        "file": file_info(tflite),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        card.update(extra)
    tflite.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    tflite.with_suffix(".labels.txt").write_text("\n".join(labels) + "\n")
    tflite.with_suffix(".md").write_text(markdown(card))
    return card


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def markdown(card: dict) -> str:
    inp, out, tr, m = card["input"], card["output"], card["training"], card["metrics"]
    lines = [f"# {card['name']} {card['version']} ({card['task']})", "",
             f"Labels (in output order): {', '.join(card['labels'])}.", "",
             "## Input and output", "",
             f"- input `{inp['shape']}` {inp['dtype']}, {inp['color_order']}, {inp.get('resize', '')}; real value = "
             f"pixel / 255 (quantization scale {inp['quantization']['scale']:.6g}, zero point "
             f"{inp['quantization']['zero_point']})",
             f"- output `{out['shape']}` {out['dtype']}, layout {out['layout']} (quantization scale "
             f"{out['quantization']['scale']:.6g}, zero point {out['quantization']['zero_point']})"]
    if card["task"] == "detection":
        lines.append("- rows 0..3 = cx, cy, w, h normalised to 0..1 of the input; rows 4.. = per-class sigmoid "
                     "scores; no NMS inside (apply a confidence threshold and class-aware NMS)")
    else:
        lines.append("- softmax probabilities per tile; the batch dimension can be resized at run time")
    lines += ["", "## Training", "",
              f"- data: {tr.get('data')}", f"- command: `{tr.get('command')}`",
              f"- seed {tr.get('seed')}, epochs {tr.get('epochs')}, duration {tr.get('duration_s', 0):.0f} s on "
              f"{tr.get('machine')}"]
    for k in ("model", "flops", "params", "pruning", "notes"):
        if k in tr:
            lines.append(f"- {k}: {tr[k]}")
    lines += ["", "## Metrics", ""]
    stages = [s for s in ("float", "pruned", "int8") if s in m]
    if card["task"] == "detection":
        lines += ["| stage | mAP@0.5 | mAP@0.5:0.95 | images |", "|---|---|---|---|"]
        for s in stages:
            lines.append(f"| {s} | {_fmt(m[s].get('map50'))} | {_fmt(m[s].get('map50_95'))} | {m[s].get('images')} |")
        if stages:
            last = m[stages[-1]]
            lines += ["", f"Per-class AP ({stages[-1]}):", "", "| class | gt | AP50 | AP50-95 |", "|---|---|---|---|"]
            for k, n in enumerate(card["labels"]):
                lines.append(f"| {n} | {last['gt_counts'][k]} | {_fmt(last['ap50'][k])} | {_fmt(last['ap50_95'][k])} |")
            if last.get("by_size"):
                from agridrone.training.evaluate import size_line

                lines += ["", f"{size_line(last['by_size'])} ({stages[-1]})."]
            if last.get("by_source"):
                lines += ["", f"By data source ({stages[-1]}, test split):", "",
                          "| source | mAP@0.5 | mAP@0.5:0.95 | AP50 per class (gt) | images |", "|---|---|---|---|---|"]
                for src, r in last["by_source"].items():
                    per = ", ".join(f"{n} {_fmt(r['ap50'][k])} ({r['gt_counts'][k]})"
                                    for k, n in enumerate(card["labels"]))
                    lines.append(f"| {src} | {_fmt(r.get('map50'))} | {_fmt(r.get('map50_95'))} | {per} | "
                                 f"{r.get('images')} |")
    else:
        lines += ["| stage | accuracy | macro F1 | images |", "|---|---|---|---|"]
        for s in stages:
            lines.append(f"| {s} | {_fmt(m[s].get('accuracy'))} | {_fmt(m[s].get('macro_f1'))} | {m[s].get('images')} |")
        if stages:
            last = m[stages[-1]]
            lines += ["", f"Per-class ({stages[-1]}), confusion rows = truth:", "",
                      "| class | precision | recall | F1 | confusion |", "|---|---|---|---|---|"]
            for k, n in enumerate(card["labels"]):
                lines.append(f"| {n} | {_fmt(last['precision'][k])} | {_fmt(last['recall'][k])} | "
                             f"{_fmt(last['f1'][k])} | {last['confusion'][k]} |")
            if last.get("by_source"):
                lines += ["", f"By data source ({stages[-1]}, test split):", "",
                          "| source | accuracy | macro F1 | recall per class | images |", "|---|---|---|---|---|"]
                for src, r in last["by_source"].items():
                    rec = ", ".join(f"{n} {_fmt(r['recall'][k])}" for k, n in enumerate(card["labels"]))
                    lines.append(f"| {src} | {_fmt(r.get('accuracy'))} | {_fmt(r.get('macro_f1'))} | {rec} | "
                                 f"{r.get('images')} |")
    for k in ("latency", "size", "real_data"):
        if k in m:
            lines += ["", f"{k}: `{json.dumps(m[k])}`"]
    f = card["file"]
    lines += ["", "## File", "", f"- {f['bytes']} bytes, sha256 `{f['sha256']}`", f"- created {card['created']}", ""]
    if card.get("limitations"):
        lines += ["## Limitations", "", card["limitations"], ""]
    return "\n".join(lines)
