"""``agridrone health IMAGE...``: the plant-health tile grid and vegetation indices of images."""

from __future__ import annotations

import json
from pathlib import Path

DEFAULT_MODEL = "models/health.tflite"


def register(sub) -> None:
    p = sub.add_parser("health", help="classify plant health per tile and compute vegetation indices")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--model", help=f"health classifier .tflite (default {DEFAULT_MODEL} when present; "
                                   "without one only the indices are computed)")
    p.add_argument("--labels", help="label file for the classifier")
    p.add_argument("--rows", type=int, default=6)
    p.add_argument("--cols", type=int, default=8)
    p.add_argument("--bands", help="channel letters of multi-band images, e.g. BGRN (N = near-infrared)")
    p.add_argument("--no-sky", action="store_true", help="do not skip sky-like tiles")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per image")
    p.set_defaults(func=run)


def run(args) -> int:
    from agridrone.commands.models import load_image
    from agridrone.perception.health import HealthAnalyzer, HealthClassifier

    from agridrone.perception.runtime import shipped_model

    shipped = shipped_model("health.tflite")
    model = args.model or (str(shipped) if shipped.is_file() else None)
    classifier = HealthClassifier(model, labels=args.labels, num_threads=args.threads) if model else None
    analyzer = HealthAnalyzer(classifier, rows=args.rows, cols=args.cols, bands=args.bands,
                              skip_sky=not args.no_sky)
    records = []
    for path in args.images:
        img = load_image(path, unchanged=Path(path).suffix.lower() in (".tif", ".tiff"))
        if img.ndim == 2:
            from agridrone.errors import CameraError

            raise CameraError(f"image {path}: expected a colour image (BGR, or BGR+NIR), got one grey channel")
        tiles = analyzer.analyze(img)
        rec = {"image": str(path), "width": int(img.shape[1]), "height": int(img.shape[0]),
               "rows": analyzer.rows, "cols": analyzer.cols, "model": model,
               "tiles": [{"row": t.row, "col": t.col, "box_xyxy": list(t.box_xyxy), "class_id": t.class_id,
                          "label": t.label, "probability": round(t.probability, 4), "indices": t.indices}
                         for t in tiles]}
        records.append(rec)
        if not args.json:
            _print_grid(rec, analyzer.rows, analyzer.cols)
    if args.json:
        print(json.dumps(records, indent=1))
    return 0


def _print_grid(rec: dict, rows: int, cols: int) -> None:
    print(f"{rec['image']}: {rec['width']}x{rec['height']}, {len(rec['tiles'])} of {rows * cols} tiles analysed"
          f"{'' if rec['model'] else ' (no classifier: indices only)'}")
    by_pos = {(t["row"], t["col"]): t for t in rec["tiles"]}
    for r in range(rows):
        cells = []
        for c in range(cols):
            t = by_pos.get((r, c))
            if t is None:
                cells.append(f"{'-':^14}")
            else:
                name = (t["label"] or "exg")[:8]
                val = t["probability"] if t["label"] else t["indices"].get("exg", 0.0)
                cells.append(f"{name:>8} {val:5.2f}")
        print("  " + " | ".join(cells))
    if rec["tiles"]:
        keys = list(rec["tiles"][0]["indices"])
        print("  mean indices: " + ", ".join(
            f"{k}={sum(t['indices'][k] for t in rec['tiles']) / len(rec['tiles']):.3f}" for k in keys))
