"""The whole path for each model: data (synthetic by default) -> validation -> training -> pruning ->
(optional QAT) -> int8 quantization -> evaluation (float, pruned, int8) -> latency -> model card.

Work files (synthetic data, checkpoints, curves) go under ``work`` (default runs/training, which git
ignores); the deliverables (.tflite + cards + labels + curves) go to ``out``. Running the same
command again resumes from the last checkpoint of each stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from agridrone.training import DETECTOR_CLASSES, HEALTH_CLASSES


@dataclass(frozen=True)
class Config:
    task: str                     # "detector" | "health"
    out: Path = Path("models")
    work: Path = Path("runs/training")
    data: Path | None = None
    fmt: str | None = None
    epochs: int = 8
    imgsz: int = 320              # detector input; health tile size is ``tile``
    train_crop: int = 0           # detector: train on random crops of this size (0: whole imgsz inputs)
    tile_scale: float = 1.0       # detector: images larger than one input meet the model at this x their pixels
                                  # (random crops in training, tiles in evaluation, as the flight loop); 0: whole
    tile: int = 64
    width: float = 1.0
    batch: int = 16
    lr: float = 3e-3
    seed: int = 0
    synth_count: int = 3000       # detector scenes / health tiles per class when no --data
    sim_count: int = 0            # more through the simulated camera when no --data (detector: tiles; health: per class)
    init: str = ""                # start from the float weights of a previous run (.weights.npz), e.g. the shipped model
    sparsity: float = 0.5
    prune_epochs: int = 2
    qat_epochs: int = 0
    io_dtype: str = "int8"
    steps_per_epoch: int = 0      # 0: one pass over the train split
    progress: bool = True
    command: str = ""
    name: str = ""
    version: str = "1.0.0"
    extra: dict = field(default_factory=dict)

    def key(self) -> str:
        d = {k: str(v) for k, v in asdict(self).items() if k not in ("out", "progress", "command", "epochs",
                                                                        "name", "version", "prune_epochs",
                                                                        "qat_epochs")}
        if not self.init:
            d.pop("init")
        if self.data is None:  # checkpoints trained on older synthetic scenes are not resumed
            d.pop("tile_scale")  # the synthetic images are one input each: the scale changes nothing
            from agridrone.training.synth import GENERATOR_VERSION

            d["synth_version"] = str(GENERATOR_VERSION)
            if self.sim_count and self.task == "detector":
                from agridrone.training.simviews import DETECTION_TILES_VERSION

                d["sim_tiles_version"] = str(DETECTION_TILES_VERSION)
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def machine() -> str:
    return (f"{platform.node() or 'host'} {platform.machine()} {platform.processor() or ''}".strip()
            + f", {os.cpu_count()} CPUs, python {platform.python_version()}")


def _resized(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    r = max_side / max(h, w)
    if r >= 1.0:
        return img
    return cv2.resize(img, (max(1, int(round(w * r))), max(1, int(round(h * r)))), interpolation=cv2.INTER_AREA)


def _progress(cfg: Config, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not cfg.progress, leave=False, mininterval=2.0)


def _stages(cfg: Config, export_fn, eval_fn, core, fit_fn, rep, log) -> tuple[dict, object, bytes]:
    """Shared tail: evaluate float, prune + fine-tune + strip, evaluate, (QAT), quantize."""
    from agridrone.training import optimize

    metrics = {"float": eval_fn(export_fn(core, None), "float")}
    log(f"float: {_short(metrics['float'])}")
    final = core
    if cfg.prune_epochs > 0 and cfg.sparsity > 0:
        steps = fit_fn.steps
        wrapped = optimize.wrap_for_pruning(core, cfg.sparsity, 0, int(cfg.prune_epochs * steps * 0.7))
        fit_fn(wrapped, cfg.prune_epochs, cfg.lr * 0.1, "prune", pruning=True)
        final = optimize.strip(wrapped)
        metrics["pruned"] = eval_fn(export_fn(final, None), "pruned")
        metrics["pruned"]["sparsity"] = optimize.sparsity(final)
        log(f"pruned: {_short(metrics['pruned'])}")
    if cfg.qat_epochs > 0:
        qat = optimize.quantize_aware(final)
        fit_fn(qat, cfg.qat_epochs, cfg.lr * 0.05, "qat")
        final = qat
    tfl = optimize.to_int8_tflite(export_fn(final, 1), rep, cfg.io_dtype)
    return metrics, final, tfl


def _short(m: dict) -> str:
    keys = ("map50", "map50_95", "accuracy", "macro_f1", "sparsity")
    return ", ".join(f"{k} {m[k]:.4f}" for k in keys if k in m)


class _Fit:
    """Callable that trains a model with the shared loop, remembering steps per epoch."""

    def __init__(self, cfg, batches, loss_fn, steps, work, validate=None, log=print):
        self.cfg, self.batches, self.loss_fn, self.steps = cfg, batches, loss_fn, steps
        self.work, self.validate, self.log = work, validate, log
        self.histories: dict[str, dict] = {}

    def __call__(self, model, epochs, lr, stage, pruning=False):
        from agridrone.training.fit import fit

        hist_file = self.work / f"ckpt-{stage}" / "history.json"
        done_before = len(json.loads(hist_file.read_text())["epoch"]) if hist_file.is_file() else 0
        h = fit(model, self.batches, self.loss_fn, epochs=epochs, steps_per_epoch=self.steps, lr=lr,
                ckpt_dir=self.work / f"ckpt-{stage}", name=f"{self.cfg.task}:{stage}",
                validate=self.validate if stage == "train" else None, progress=self.cfg.progress,
                pruning=pruning, log=self.log)
        self.histories[stage] = h
        if stage == "train" and len(h["epoch"]) > done_before:
            # the float model changed: checkpoints of later stages belong to the old one
            for later in ("prune", "qat"):
                shutil.rmtree(self.work / f"ckpt-{later}", ignore_errors=True)
        return h


def train_detector(cfg: Config, log: Callable[[str], None] = print) -> dict:
    from agridrone.training import nets
    from agridrone.training.augment import detection
    from agridrone.training.datasets import load_detection
    from agridrone.training.detloss import DetectionLoss, assign
    from agridrone.training.evaluate import eval_detector, keras_detector_predict, read_rgb
    from agridrone.training.fit import set_threads_and_seed
    from agridrone.training.simviews import DETECTION_TILES_VERSION
    from agridrone.training.synth import GENERATOR_VERSION, write_detection_dataset
    from agridrone.training.validate import validate_detection

    t0 = time.monotonic_ns()
    set_threads_and_seed(cfg.seed)
    work = Path(cfg.work) / f"detector-{cfg.key()}"
    work.mkdir(parents=True, exist_ok=True)
    if cfg.data is None:
        root = Path(cfg.work) / (f"synth-det-v{GENERATOR_VERSION}-s{cfg.seed}-n{cfg.synth_count}"
                                 + (f"-sim{cfg.sim_count}v{DETECTION_TILES_VERSION}" if cfg.sim_count else "")
                                 + f"-{cfg.imgsz}")
        if not (root / "data.yaml").is_file():
            shutil.rmtree(root.with_suffix(".tmp"), ignore_errors=True)
            bar = _progress(cfg, cfg.synth_count + cfg.sim_count, "generating scenes")
            write_detection_dataset(root.with_suffix(".tmp"), cfg.synth_count, cfg.seed, cfg.imgsz,
                                    sim_count=cfg.sim_count, progress=bar.update)
            bar.close()
            shutil.rmtree(root, ignore_errors=True)
            root.with_suffix(".tmp").rename(root)
        data_desc = (f"synthetic scenes from agridrone.training.synth v{GENERATOR_VERSION} (seed {cfg.seed}, "
                     f"{cfg.synth_count} images {cfg.imgsz}x{cfg.imgsz})")
        if cfg.sim_count:
            data_desc += (f" and {cfg.sim_count} {cfg.imgsz}x{cfg.imgsz} tiles of simulated-camera frames over random "
                          f"worlds with obstacles (agridrone.training.simviews tiles v{DETECTION_TILES_VERSION}: 10-90 m, "
                          f"mostly survey heights, poles centred 3x as often; no example world)")
        data_desc += ", each source split 80/10/10"
        fmt = "yolo"
    else:
        root, fmt = Path(cfg.data), cfg.fmt
        data_desc = f"{root} ({fmt or 'format auto-detected'})"
    ds = load_detection(root, fmt, cfg.seed)
    report = validate_detection(ds)
    log(report.text(limit=20))
    report.raise_if_broken()
    names = list(ds.names)
    bar = _progress(cfg, len(ds.items), "loading images")
    cache = ImageStore(cfg.imgsz, cfg.tile_scale)
    for it in ds.items:
        cache.add(it.image, read_rgb(it.image))
        bar.update(1)
    bar.close()
    if cache.large:
        data_desc += (f"; {cache.large} of {len(ds.items)} images larger than one {cfg.imgsz} px input at "
                      f"{cfg.tile_scale:g}x their pixels: trained on random crops and evaluated over tiles at that "
                      f"scale (`--tile-scale`), as the flight loop runs the detector over frames")
    train = ds.split("train")
    val, test = ds.split("val"), ds.split("test") or ds.split("val")
    steps = cfg.steps_per_epoch or max(1, len(train) // cfg.batch)
    crop = cfg.train_crop or cfg.imgsz
    loss_obj = DetectionLoss(crop, len(names))

    def batches(epoch):
        rng = np.random.default_rng([cfg.seed, epoch, 11])
        order = rng.permutation(len(train))
        for s in range(0, len(order) - cfg.batch + 1, cfg.batch):
            xs, bs, cs = [], [], []
            for k in order[s:s + cfg.batch]:
                it = train[k]
                img, b, c = detection(rng, cache[it.image], it.boxes, it.classes, cfg.imgsz, canvas=crop,
                                      scale=cache.scale if cache.large else None)
                xs.append(img)
                bs.append(b)
                cs.append(c)
            pos, tbox, tcls = assign(bs, cs, crop)
            yield np.stack(xs).astype(np.float32) / 255.0, pos, tbox, tcls

    def export_fn(core, batch):
        return nets.export_detector(core, batch, cfg.imgsz)

    def evaluate(model, stage, items=None, by_size=True):
        return eval_detector(keras_detector_predict(model, cfg.imgsz, tile_scale=cache.eval_scale), items or test,
                             len(names), cache=cache, by_size=by_size)

    def quick_val(epoch):
        if not val:
            return {}
        r = evaluate(nets.export_detector(core, None, cfg.imgsz), "val", val[:80], by_size=False)
        return {"map50": r["map50"], "map50_95": r["map50_95"]}

    core = nets.build_detector(len(names), None if crop != cfg.imgsz else cfg.imgsz, cfg.width)
    data_desc += _init(cfg, core, log)
    fit_fn = _Fit(cfg, batches, loss_obj, steps, work, quick_val, log)
    fit_fn(core, cfg.epochs, cfg.lr, "train")
    rep = [cache.model_view(it.image, np.random.default_rng([cfg.seed, k, 13]))[None].astype(np.float32) / 255.0
           for k, it in enumerate(train[:200])]
    metrics, final, tfl = _stages(cfg, export_fn, lambda m, s: evaluate(m, s), core, fit_fn, rep, log)
    train_s = (time.monotonic_ns() - t0) / 1e9

    def eval_int8(path):
        from agridrone.training.evaluate import _tiles_info

        predict = _tflite_det(path, cache.eval_scale)
        res = eval_detector(predict, test, len(names), cache=cache)
        res["tiles"] = _tiles_info(predict, cache.eval_scale)
        if cfg.data is None:
            _add_by_source(res, test, lambda m: eval_detector(predict, [it for it, k in zip(test, m) if k], len(names),
                                                              cache=cache))
        return res

    return _finish(cfg, "detection", names, tfl, metrics, fit_fn, core, data_desc, train_s, test, log, eval_int8)


def _add_by_source(res: dict, items, evaluate) -> None:
    """``res["by_source"]``: ``evaluate(mask)`` over the training renderer's and the simulated camera's items
    (``sim_*`` files) of a synthetic test split, when it holds both."""
    from agridrone.training.synth import SIM_TILE_PREFIX

    sim = np.array([Path(it.image).name.startswith(SIM_TILE_PREFIX) for it in items], bool)
    if sim.any() and (~sim).any():
        res["by_source"] = {"training renderer": evaluate(~sim), "simulated camera": evaluate(sim)}


def _tflite_det(path, tile_scale: float = 0.0):
    from agridrone.training.evaluate import tflite_detector_predict

    return tflite_detector_predict(path, tile_scale)


class ImageStore:
    """The detector's training images in memory, as the model will meet them.

    An image whose longer side at ``tile_scale`` fits the input is kept at most ``imgsz`` on its longer
    side (it is fitted whole, as before). A larger one (a camera frame, an orthophoto tile) is kept at
    ``min(tile_scale, 1)`` x its pixels, JPEG-encoded (quality 95) so that thousands of full-HD frames fit
    in memory; training takes random crops of it and evaluation runs it over tiles at ``eval_scale``
    (``tile_scale`` relative to what is stored)."""

    def __init__(self, imgsz: int, tile_scale: float) -> None:
        if tile_scale and not 0.1 <= tile_scale <= 4.0:
            raise ValueError(f"tile_scale: expected 0 (whole images) or 0.1..4, got {tile_scale!r}")
        self.imgsz, self.tile_scale = int(imgsz), float(tile_scale)
        self._raw: dict = {}
        self._jpeg: dict = {}
        self.large = 0

    @property
    def scale(self) -> float:
        """Model pixels per stored pixel of a large image."""
        return max(1.0, self.tile_scale)

    @property
    def eval_scale(self) -> float:
        return self.scale if self.large else 0.0

    def add(self, key, rgb: np.ndarray) -> None:
        h, w = rgb.shape[:2]
        if not self.tile_scale or max(h, w) * self.tile_scale <= self.imgsz:
            self._raw[key] = _resized(rgb, self.imgsz)
            return
        f = min(1.0, self.tile_scale)
        if f < 1.0:
            rgb = cv2.resize(rgb, (max(1, int(round(w * f))), max(1, int(round(h * f)))), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise ValueError(f"image {key}: could not be encoded for the training cache")
        self._jpeg[key] = buf
        self.large += 1

    def __contains__(self, key) -> bool:
        return key in self._raw or key in self._jpeg

    def __getitem__(self, key) -> np.ndarray:
        if key in self._raw:
            return self._raw[key]
        return cv2.cvtColor(cv2.imdecode(self._jpeg[key], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)

    def model_view(self, key, rng: np.random.Generator) -> np.ndarray:
        """One ``imgsz`` input as the model meets this image: fitted whole, or a random tile of it."""
        from agridrone.training.augment import PAD, letterbox

        img = self[key]
        if key in self._raw:
            return letterbox(img, self.imgsz)[0]
        if self.scale != 1.0:
            h, w = img.shape[:2]
            img = cv2.resize(img, (int(round(w * self.scale)), int(round(h * self.scale))), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
        y = int(rng.integers(0, max(1, h - self.imgsz + 1)))
        x = int(rng.integers(0, max(1, w - self.imgsz + 1)))
        out = np.full((self.imgsz, self.imgsz, 3), PAD, np.uint8)
        part = img[y:y + self.imgsz, x:x + self.imgsz]
        out[:part.shape[0], :part.shape[1]] = part
        return out


def train_health(cfg: Config, log: Callable[[str], None] = print) -> dict:
    import tensorflow as tf

    from agridrone.training import nets
    from agridrone.training.augment import tile as aug_tile
    from agridrone.training.datasets import load_classification
    from agridrone.training.evaluate import eval_health, keras_health_predict, load_tiles
    from agridrone.training.fit import set_threads_and_seed
    from agridrone.training.synth import write_health_dataset
    from agridrone.training.validate import validate_classification

    t0 = time.monotonic_ns()
    set_threads_and_seed(cfg.seed)
    work = Path(cfg.work) / f"health-{cfg.key()}"
    work.mkdir(parents=True, exist_ok=True)
    if cfg.data is None:
        root = Path(cfg.work) / f"synth-health-s{cfg.seed}-n{cfg.synth_count}-sim{cfg.sim_count}-{cfg.tile}"
        if not (root / "synthetic.json").is_file():
            log(f"generating {cfg.synth_count} + {cfg.sim_count} tiles per class ...")
            shutil.rmtree(root.with_suffix(".tmp"), ignore_errors=True)
            bar = _progress(cfg, None, "simulated-camera fields") if cfg.sim_count else None
            write_health_dataset(root.with_suffix(".tmp"), cfg.synth_count, cfg.seed, tile_px=96,
                                 sim_per_class=cfg.sim_count, progress=bar.update if bar is not None else None)
            if bar is not None:
                bar.close()
            shutil.rmtree(root, ignore_errors=True)
            root.with_suffix(".tmp").rename(root)
        data_desc = (f"synthetic ground tiles from agridrone.training.synth (seed {cfg.seed}, {cfg.synth_count} per "
                     f"class, cut from nadir renders and labelled from crop/stress/weed masks)")
        if cfg.sim_count:
            data_desc += (f" and {cfg.sim_count} per class seen through the simulated camera over random fields "
                          f"(agridrone.training.simviews: 6x8 grid tiles of frames from 25-90 m, labelled from the "
                          f"patch polygons; no example world)")
        data_desc += ", each source split 80/10/10"
    else:
        root = Path(cfg.data)
        data_desc = f"{root} (image folder per class)"
    ds = load_classification(root, seed=cfg.seed, canonical=HEALTH_CLASSES)
    report = validate_classification(ds)
    log(report.text(limit=20))
    report.raise_if_broken()
    names = list(ds.names)
    load_px = max(cfg.tile, 96)
    x_train, y_train = load_tiles(ds.split("train"), load_px)
    test_items = ds.split("test") or ds.split("val")
    x_test, y_test = load_tiles(test_items, cfg.tile)
    x_val, y_val = load_tiles(ds.split("val")[:400], cfg.tile)
    steps = cfg.steps_per_epoch or max(1, len(y_train) // cfg.batch)

    def batches(epoch):
        rng = np.random.default_rng([cfg.seed, epoch, 13])
        order = rng.permutation(len(y_train))
        for s in range(0, len(order) - cfg.batch + 1, cfg.batch):
            idx = order[s:s + cfg.batch]
            xs = np.stack([aug_tile(rng, x_train[k], cfg.tile) for k in idx]).astype(np.float32) / 255.0
            yield xs, y_train[idx]

    def loss_fn(logits, y):
        onehot = tf.one_hot(tf.cast(y, tf.int32), len(names))
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(onehot * 0.95 + 0.05 / len(names), logits))
        return loss, {}

    def export_fn(core, batch):
        return nets.export_health(core, batch)

    def evaluate(model, stage):
        return eval_health(keras_health_predict(model), x_test, y_test, len(names))

    def quick_val(epoch):
        if not len(y_val):
            return {}
        r = eval_health(keras_health_predict(nets.export_health(core, None)), x_val, y_val, len(names))
        return {"accuracy": r["accuracy"]}

    core = nets.build_health(len(names), cfg.tile, cfg.width)
    data_desc += _init(cfg, core, log)
    fit_fn = _Fit(cfg, batches, loss_fn, steps, work, quick_val, log)
    fit_fn(core, cfg.epochs, cfg.lr, "train")
    rep = [x_train[k][None] for k in range(0, min(len(x_train), 400), 2)]
    rep = [cv2.resize(r[0], (cfg.tile, cfg.tile), interpolation=cv2.INTER_AREA)[None].astype(np.float32) / 255.0
           for r in rep]
    metrics, final, tfl = _stages(cfg, export_fn, evaluate, core, fit_fn, rep, log)
    train_s = (time.monotonic_ns() - t0) / 1e9
    from agridrone.training.evaluate import tflite_health_predict

    def eval_int8(path):
        predict = tflite_health_predict(path)
        res = eval_health(predict, x_test, y_test, len(names))
        if cfg.data is None:
            _add_by_source(res, test_items, lambda m: eval_health(predict, x_test[m], y_test[m], len(names)))
        return res

    return _finish(cfg, "classification", names, tfl, metrics, fit_fn, core, data_desc, train_s, test_items, log,
                   eval_int8)


def _init(cfg: Config, core, log) -> str:
    """Load ``cfg.init`` into ``core`` (a missing or broken file is nets.load_weights' ModelError); the words
    the card's data line gets for it, "" without one."""
    if not cfg.init:
        return ""
    from agridrone.training import nets

    path = Path(cfg.init)
    r = nets.load_weights(core, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    text = (f"started from {path.name} (sha256 {sha}...; {r['loaded']} of {r['tensors']} tensors"
            + (", output layers new for these classes)" if r["head_reinitialised"] else ")"))
    log(text)
    return f"; {text}"


def _finish(cfg, task, names, tfl, metrics, fit_fn, core, data_desc, train_s, test, log, eval_int8) -> dict:
    from agridrone.training import nets
    from agridrone.training.cards import write_card
    from agridrone.training.evaluate import latency_ms
    from agridrone.training.fit import plot_curves

    name = cfg.name or ("detector" if task == "detection" else "health")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.tflite"
    path.write_bytes(tfl)
    nets.save_weights(core, out / f"{name}.weights.npz")  # float, before pruning: where --init starts
    training = {"data": data_desc, "command": cfg.command, "seed": cfg.seed, "epochs": cfg.epochs,
                "prune_epochs": cfg.prune_epochs, "qat_epochs": cfg.qat_epochs, "duration_s": round(train_s, 1),
                "machine": machine() + ", TF intra/inter-op threads 2",
                "model": f"{core.name} width {cfg.width}", "flops": _flops(task, cfg, len(names)),
                "params": core.count_params(),
                "pruning": (f"magnitude to {cfg.sparsity:.0%} of Conv2D/Dense kernels (tfmot), stripped"
                            if cfg.sparsity > 0 else "none (--sparsity 0)"),
                "batch": cfg.batch, "lr": cfg.lr, "config_key": cfg.key()}
    for stage, h in fit_fn.histories.items():
        training[f"{stage}_epoch_seconds_total"] = round(float(sum(h.get("seconds", []))), 1)
        if h.get("resumed_at"):
            training[f"{stage}_resumed_at_epochs"] = h["resumed_at"]
            training["notes"] = ("this invocation resumed from checkpoints: duration_s covers it only; "
                                 "<stage>_epoch_seconds_total sum the epochs of all invocations")
    labels = list(names)
    card_kw = dict(name=name, version=cfg.version, task=task, labels=labels, training=training,
                   resize="letterbox" if task == "detection" else "stretch")
    write_card(path, metrics=metrics, **card_kw)  # the runtime reads the card while evaluating the int8 file
    metrics["int8"] = eval_int8(path)
    log(f"int8: {_short(metrics['int8'])}")
    import gzip

    metrics["size"] = {"tflite_bytes": len(tfl), "gzip_bytes": len(gzip.compress(tfl, 9))}
    if task == "detection":
        metrics["latency"] = {"batch1": latency_ms(path, 1)}
    else:
        metrics["latency"] = {"batch1": latency_ms(path, 1), "batch40": latency_ms(path, 40)}
    log(f"latency: {json.dumps(metrics['latency'])}")
    curves = out / f"{name}.curves.png"
    hist = {"epoch": [], "seconds": []}
    offset = 0
    for stage, h in fit_fn.histories.items():
        for k, v in h.items():
            if k == "epoch":
                hist["epoch"] += [e + offset for e in v]
            elif k not in ("seconds", "resumed_at"):
                hist.setdefault(k if stage == "train" else f"{stage}_{k}", [])
        offset += len(h["epoch"])
    _fill_curves(hist, fit_fn.histories)
    plot_curves(hist, curves, f"{name}: training curves")
    limitations = ("Trained on procedurally generated scenes only unless the training data says otherwise; "
                   "numbers on real imagery come from `agridrone models eval` and are not in this card." if
                   cfg.data is None else "")
    card = write_card(path, metrics=metrics, extra={"limitations": limitations, "curves": curves.name}, **card_kw)
    log(f"wrote {path} ({len(tfl)} bytes) and its card")
    return card


def _fill_curves(hist: dict, histories: dict) -> None:
    """Concatenate per-stage series on one epoch axis (missing values as NaN)."""
    total = len(hist["epoch"])
    for k in [k for k in hist if k not in ("epoch", "seconds")]:
        hist[k] = [float("nan")] * total
    pos = 0
    for stage, h in histories.items():
        n = len(h["epoch"])
        for k, v in h.items():
            if k in ("epoch", "seconds", "resumed_at"):
                continue
            key = k if stage == "train" else f"{stage}_{k}"
            hist[key][pos:pos + n] = v
        pos += n


def _flops(task: str, cfg: Config, n: int) -> int:
    from agridrone.training import nets

    if task == "detection":
        return nets.flops(nets.build_detector(n, cfg.imgsz, cfg.width))
    return nets.flops(nets.build_health(n, cfg.tile, cfg.width))
