"""A small custom training loop shared by both models: progress bar, per-epoch checkpoints with
resumption (model + optimizer + epoch + history), fixed seeds, learning curves as PNG, and the
hooks tensorflow-model-optimization's pruning needs in a custom loop.
"""

from __future__ import annotations

import contextlib
import json
import queue
import random
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf
import tf_keras as keras


def set_threads_and_seed(seed: int, threads: int = 2) -> None:
    """Fixed seed for python, numpy and TF; TF limited to ``threads`` intra/inter-op threads."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # already initialised in this process: keep what is set
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    keras.utils.set_random_seed(seed)


class Prefetch:
    """Iterate ``items`` in a background thread, ``depth`` items ahead (the batches of the next training
    steps are augmented while TensorFlow runs this one: OpenCV and TensorFlow release the GIL, so the two
    cores overlap them). Same items, same order; an exception in the producer is raised in the consumer.
    ``close()`` (or leaving a ``with`` block) stops the producer early."""

    _END = object()

    def __init__(self, items: Iterable, depth: int = 3) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(iter(items),), name="prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, it: Iterator) -> None:
        try:
            for item in it:
                if not self._put((None, item)):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((exc, None))
            return
        self._put((None, self._END))

    def __iter__(self):
        return self

    def __next__(self):
        exc, item = self._q.get()
        if exc is not None:
            self.close()
            raise exc
        if item is self._END:
            self.close()
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "Prefetch":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fit(model: keras.Model, batches: Callable[[int], Iterable[tuple]], loss_fn: Callable, *, epochs: int,
        steps_per_epoch: int, lr: float, ckpt_dir: Path, name: str, validate: Callable[[int], dict] | None = None,
        progress: bool = True, pruning: bool = False, log: Callable[[str], None] = print, prefetch: int = 3) -> dict:
    """Train ``model`` for ``epochs``; resumes from ``ckpt_dir`` if a checkpoint is there.

    ``batches(epoch)`` yields tuples whose first element is the input; ``loss_fn(out, *rest)`` returns
    (loss, {name: tensor}). ``prefetch`` batches are prepared ahead in a background thread (0: in turn
    with the training steps). Returns the history {"epoch": [...], "loss": [...], ...}.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    total = max(1, epochs * steps_per_epoch)
    warm = min(steps_per_epoch, total // 10 + 1)
    sched = keras.optimizers.schedules.CosineDecay(lr * 0.1, total - warm, alpha=0.02, warmup_target=lr,
                                                   warmup_steps=warm)
    opt = keras.optimizers.Adam(sched)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, epoch=epoch_var)
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=2)
    hist_file = ckpt_dir / "history.json"
    history: dict = {"epoch": [], "loss": [], "seconds": []}
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        if hist_file.is_file():
            history = json.loads(hist_file.read_text())
        log(f"{name}: resumed from {manager.latest_checkpoint} at epoch {int(epoch_var.numpy())}")
        if int(epoch_var.numpy()) < epochs:
            history.setdefault("resumed_at", []).append(int(epoch_var.numpy()))
    step_cb = None
    if pruning:
        import tensorflow_model_optimization as tfmot

        step_cb = tfmot.sparsity.keras.UpdatePruningStep()
        step_cb.set_model(model)
        step_cb.on_train_begin()

    @tf.function(reduce_retracing=True)
    def train_step(x, *rest):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss, parts = loss_fn(out, *rest)
            total_loss = loss + (tf.add_n(model.losses) if model.losses else 0.0)
        grads = tape.gradient(total_loss, model.trainable_variables)
        grads, _ = tf.clip_by_global_norm(grads, 10.0)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss, parts

    from tqdm import tqdm

    start_epoch = int(epoch_var.numpy())
    for epoch in range(start_epoch, epochs):
        t0 = time.monotonic_ns()
        bar = tqdm(total=steps_per_epoch, desc=f"{name} {epoch + 1}/{epochs}", disable=not progress,
                   leave=False, mininterval=2.0)
        sums: dict[str, float] = {}
        n = 0
        with Prefetch(batches(epoch), depth=prefetch) if prefetch else contextlib.nullcontext(batches(epoch)) as stream:
            for step, batch in enumerate(stream):
                if step >= steps_per_epoch:
                    break
                if step_cb is not None:
                    step_cb.on_train_batch_begin(batch=-1)
                loss, parts = train_step(*[tf.convert_to_tensor(b) for b in batch])
                n += 1
                sums["loss"] = sums.get("loss", 0.0) + float(loss)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                bar.set_postfix({k: f"{v / n:.3f}" for k, v in sums.items()}, refresh=False)
                bar.update(1)
        bar.close()
        if step_cb is not None:
            step_cb.on_epoch_end(batch=-1)
        row = {k: v / max(n, 1) for k, v in sums.items()}
        if validate is not None:
            row.update({f"val_{k}": v for k, v in validate(epoch).items()})
        secs = (time.monotonic_ns() - t0) / 1e9
        history["epoch"].append(epoch + 1)
        history["seconds"].append(secs)
        for k, v in row.items():
            history.setdefault(k, []).append(float(v))
        epoch_var.assign(epoch + 1)
        manager.save()
        hist_file.write_text(json.dumps(history, indent=1))
        log(f"{name} epoch {epoch + 1}/{epochs} ({secs:.0f} s): " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
    return history


def plot_curves(history: dict, path: Path, title: str) -> Path:
    """Learning curves (every logged series against epoch) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in history if k not in ("epoch", "seconds", "resumed_at")
            and len(history[k]) == len(history["epoch"])]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k in keys:
        ax = axes[1] if k.startswith("val_") else axes[0]
        ax.plot(history["epoch"], history[k], marker="o", ms=3, label=k)
    axes[0].set_title("training losses")
    axes[1].set_title("validation")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
