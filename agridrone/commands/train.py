"""``agridrone train``: the model factory (needs the ``train`` extra: TensorFlow, tf-keras, tfmot).

  agridrone train detector [--data DIR --format yolo|coco|voc] [--epochs N] [--out DIR] [--tiny]
  agridrone train health [--data DIR] [--epochs N] [--out DIR] [--tiny]
  agridrone train check --data DIR [--format yolo|coco|voc|folders]   (validate only, print the report)
  agridrone train synth --out DIR [--count N] [--seed S] [--task detector|health]

Without --data both models train on the built-in procedural scenes. Running the same command again
resumes from the last checkpoint (under --workdir).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

# the tiny configuration: the whole path (generate, train, prune, quantize, evaluate) in well under 3 min
TINY = {"detector": dict(imgsz=128, width=0.5, epochs=2, prune_epochs=1, synth_count=60, sim_count=10, batch=8,
                         steps_per_epoch=6),
        "health": dict(tile=64, width=0.5, epochs=2, prune_epochs=1, synth_count=30, sim_count=8, batch=16,
                       steps_per_epoch=6)}
FULL = {"detector": dict(imgsz=320, train_crop=224, width=1.0, epochs=120, prune_epochs=2, synth_count=2000,
                         sim_count=1000, batch=16),
        "health": dict(tile=64, width=2.0, epochs=40, prune_epochs=2, synth_count=1500, sim_count=1500, batch=32)}


def register(sub) -> None:
    p = sub.add_parser("train", help="train, prune, quantize and evaluate the detector or the health classifier")
    tsub = p.add_subparsers(dest="train_task", metavar="TASK", required=True)
    for task, help_text in (("detector", "obstacle detector (tree, person, animal, vehicle, pole, building)"),
                            ("health", "plant-health tile classifier (healthy, stressed, weeds, bare_soil)")):
        tp = tsub.add_parser(task, help=help_text)
        tp.add_argument("--data", type=Path, help="dataset directory (default: built-in synthetic scenes)")
        if task == "detector":
            tp.add_argument("--format", choices=("yolo", "coco", "voc"), help="dataset format (default: detected)")
            tp.add_argument("--imgsz", type=int, help="input size, a multiple of 32 (default 320)")
            tp.add_argument("--train-crop", type=int,
                            help="train on random crops of this size (a multiple of 32; default 224)")
            tp.add_argument("--sim-count", type=int,
                            help="more images: tiles of simulated-camera frames over random worlds with obstacles, "
                                 "when no --data (default 1000; 0: none)")
            tp.add_argument("--tile-scale", type=float,
                            help="images larger than one input (camera frames, photos) meet the model at this x "
                                 "their pixels: random crops in training, tiles in evaluation, as the flight loop "
                                 "runs it over frames (default 1.0, the flight loop's [perception] tile_scale); 0 "
                                 "fits each image whole into the input")
        else:
            tp.add_argument("--tile", type=int, help="tile size in pixels (default 64)")
            tp.add_argument("--sim-count", type=int,
                            help="more tiles per class seen through the simulated camera over random fields, "
                                 "when no --data (default 1500; 0: none)")
        tp.add_argument("--init", type=Path,
                        help="start from the float weights of an earlier run, e.g. models/detector.weights.npz (the "
                             "shipped model): a small dataset of your own fields trains far better from there; "
                             "the output layers start anew when your classes differ")
        tp.add_argument("--epochs", type=int, help="training epochs")
        tp.add_argument("--out", type=Path, default=Path("models"), help="where the .tflite and its card go")
        tp.add_argument("--workdir", type=Path, default=Path("runs/training"),
                        help="synthetic data, checkpoints (resumed when present)")
        tp.add_argument("--tiny", action="store_true", help="a tiny configuration for CI (minutes, low quality)")
        tp.add_argument("--seed", type=int, default=0)
        tp.add_argument("--batch", type=int)
        tp.add_argument("--lr", type=float)
        tp.add_argument("--width", type=float, help="channel width multiplier")
        tp.add_argument("--synth-count", type=int,
                        help="synthetic scenes (detector) or tiles per class (health) when no --data")
        tp.add_argument("--sparsity", type=float, default=0.5, help="pruning target sparsity (0 to skip pruning)")
        tp.add_argument("--prune-epochs", type=int)
        tp.add_argument("--qat-epochs", type=int, default=0, help="quantization-aware fine-tuning epochs")
        tp.add_argument("--io", choices=("int8", "uint8"), default="int8", help="input/output integer type")
        tp.add_argument("--name", help="output file stem (default: detector / health)")
        tp.add_argument("--quiet", action="store_true", help="no progress bars")
        tp.set_defaults(func=run, task=task)
    cp = tsub.add_parser("check", help="validate a dataset and print the report (exit 8 when broken)")
    cp.add_argument("--data", type=Path, required=True)
    cp.add_argument("--format", choices=("yolo", "coco", "voc", "folders"))
    cp.set_defaults(func=run_check)
    mp = tsub.add_parser("merge", help="merge (and optionally re-split) detection datasets into one YOLO dataset")
    mp.add_argument("--data", type=Path, action="append", required=True, help="a dataset (repeat for several)")
    mp.add_argument("--format", choices=("yolo", "coco", "voc"), help="format of all inputs (default: detected)")
    mp.add_argument("--out", type=Path, required=True)
    mp.add_argument("--split", help="re-split train,val,test fractions, e.g. 0.8,0.1,0.1")
    mp.add_argument("--seed", type=int, default=0)
    mp.set_defaults(func=run_merge)
    sp = tsub.add_parser("synth", help="write synthetic data to a directory (YOLO or image folders)")
    sp.add_argument("--out", type=Path, required=True)
    sp.add_argument("--task", choices=("detector", "health"), default="detector")
    sp.add_argument("--count", type=int, default=200, help="scenes (detector) or tiles per class (health)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--imgsz", type=int, default=320)
    sp.set_defaults(func=run_synth)


def config_from_args(args):
    from agridrone.errors import ConfigError
    from agridrone.training.pipeline import Config

    base = dict((TINY if args.tiny else FULL)[args.task])
    for key, attr in (("epochs", "epochs"), ("batch", "batch"), ("lr", "lr"), ("width", "width"),
                      ("synth_count", "synth_count"), ("prune_epochs", "prune_epochs"),
                      ("imgsz", "imgsz"), ("tile", "tile"), ("train_crop", "train_crop"),
                      ("sim_count", "sim_count"), ("tile_scale", "tile_scale")):
        v = getattr(args, attr, None)
        if v is not None:
            base[key] = v
    if base.get("imgsz", 320) % 32 or base.get("imgsz", 320) < 64:
        raise ConfigError(f"--imgsz: expected a multiple of 32 of at least 64, got {base['imgsz']}")
    crop = base.get("train_crop", 0)
    if crop and (crop % 32 or crop > base.get("imgsz", 320)):
        raise ConfigError(f"--train-crop: expected a multiple of 32 up to --imgsz, got {crop}")
    ts = base.get("tile_scale", 1.0)
    if not (ts == 0 or 0.1 <= ts <= 4.0):
        raise ConfigError(f"--tile-scale: expected 0 (whole images) or 0.1..4, got {ts}")
    if base.get("sim_count", 0) < 0:
        raise ConfigError(f"--sim-count: expected 0 or more, got {base['sim_count']}")
    if base.get("epochs", 1) < 1:
        raise ConfigError(f"--epochs: expected at least 1, got {base['epochs']}")
    if not 0.0 <= args.sparsity < 1.0:
        raise ConfigError(f"--sparsity: expected 0 <= S < 1, got {args.sparsity}")
    if args.sparsity == 0:
        base["prune_epochs"] = 0
    if args.init is not None and not args.init.is_file():
        raise ConfigError(f"--init: expected a .weights.npz written by agridrone train (e.g. "
                          f"models/{args.task}.weights.npz), got {args.init} (not found)")
    command = "agridrone " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    return Config(task=args.task, out=args.out, work=args.workdir, data=args.data, fmt=getattr(args, "format", None),
                  init=str(args.init) if args.init else "",
                  seed=args.seed, sparsity=args.sparsity, qat_epochs=args.qat_epochs, io_dtype=args.io,
                  progress=not args.quiet and sys.stderr.isatty(), command=command, name=args.name or "", **base)


def run(args) -> int:
    from agridrone.training.pipeline import train_detector, train_health

    cfg = config_from_args(args)
    card = (train_detector if args.task == "detector" else train_health)(cfg, log=lambda s: print(s, flush=True))
    m = card["metrics"]
    key = "map50" if args.task == "detector" else "accuracy"
    print(f"{card['name']}: float {m['float'][key]:.3f}, int8 {m['int8'][key]:.3f} ({key}); "
          f"{card['file']['bytes']} bytes; {card['training']['duration_s']:.0f} s")
    return 0


def run_check(args) -> int:
    from agridrone.training.datasets import load_classification, load_detection
    from agridrone.training.validate import validate_classification, validate_detection

    if args.format == "folders":
        report = validate_classification(load_classification(args.data))
    else:
        report = validate_detection(load_detection(args.data, args.format))
    print(report.text(limit=200))
    report.raise_if_broken()
    return 0


def run_synth(args) -> int:
    from agridrone.training.synth import write_detection_dataset, write_health_dataset

    if args.task == "detector":
        root = write_detection_dataset(args.out, args.count, args.seed, args.imgsz)
    else:
        root = write_health_dataset(args.out, args.count, args.seed, sim_per_class=args.count // 2)
    print(f"wrote {root}")
    return 0


def run_merge(args) -> int:
    from agridrone.errors import ConfigError
    from agridrone.training.datasets import load_detection, merge_detection, resplit, write_yolo
    from agridrone.training.validate import validate_detection

    parts = []
    for d in args.data:
        ds = load_detection(d, args.format, args.seed)
        report = validate_detection(ds)
        if ds.issues:
            print(report.text(limit=50))
            report.raise_if_broken()
        parts.append(ds)
    merged = merge_detection(parts)
    if args.split:
        try:
            fractions = tuple(float(v) for v in args.split.split(","))
        except ValueError:
            raise ConfigError(f"--split: expected three numbers like 0.8,0.1,0.1, got {args.split!r}") from None
        if len(fractions) != 3:
            raise ConfigError(f"--split: expected three numbers like 0.8,0.1,0.1, got {args.split!r}")
        merged = resplit(merged, fractions, args.seed)
    out = write_yolo(merged, args.out)
    print(f"wrote {out}: {len(merged.items)} images, classes {', '.join(merged.names)}")
    return 0
