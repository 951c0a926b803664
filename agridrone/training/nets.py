"""The two Keras (tf-keras, as tensorflow-model-optimization needs) models.

Detector: a MobileNet-like depthwise-separable backbone, a light FPN and anchor-free heads at
strides 8/16/32. The *core* model returns raw logits ``[B, N, 4 + C]`` (cells of all levels
concatenated) for training; :func:`export_detector` appends the decode (sigmoid, grid offsets,
normalisation, transpose) so the file's one output is the YOLOv8 layout ``[1, 4 + C, N]`` with
cx, cy, w, h in 0..1 of the input and per-class sigmoid scores.

Box parameterisation (per cell at grid (i, j) of stride s, input size S):
``cx = (2*sig(tx) - 0.5 + i) * s / S``; ``w = (2*sig(tw))**2 * 4*s / S`` (so up to 16 strides).

Health classifier: a tiny depthwise-separable CNN on 64x64 tiles with a softmax head.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

L = keras.layers
STRIDES = (8, 16, 32)


def _conv(x, filters, k=3, stride=1, name=None):
    x = L.Conv2D(filters, k, strides=stride, padding="same", use_bias=False, name=name)(x)
    x = L.BatchNormalization()(x)
    return L.ReLU(6.0)(x)


def _dws(x, filters, stride=1):
    x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(6.0)(x)
    return _conv(x, filters, k=1)


def _ch(c: int, width: float) -> int:
    return max(8, int(round(c * width / 8)) * 8)


def grid_constants(imgsz: int, strides=STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell grid origin (N, 2) in cells and stride (N, 1) in pixels, in the order of the output."""
    grids, strs = [], []
    for s in strides:
        n = imgsz // s
        gy, gx = np.mgrid[0:n, 0:n]
        grids.append(np.stack([gx.ravel(), gy.ravel()], 1))
        strs.append(np.full((n * n, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strs).astype(np.float32)


def decode_raw(raw, grid, stride, imgsz: int):
    """Raw logits [B, N, 4+C] -> (cx, cy, w, h normalised 0..1, class probabilities)."""
    s = tf.sigmoid(raw)
    xy = (s[..., 0:2] * 2.0 - 0.5 + grid) * stride / float(imgsz)
    d = s[..., 2:4] * 2.0
    wh = d * d * (4.0 * stride) / float(imgsz)  # MUL, not SQUARE: TFLite has an int8 kernel for it
    return xy, wh, s[..., 4:]


def build_detector(num_classes: int, imgsz: int | None = 320, width: float = 1.0) -> keras.Model:
    """``imgsz`` None gives a model of any input size (multiples of 32), trained on crops."""
    if imgsz is not None and imgsz % 32:
        raise ValueError(f"imgsz: expected a multiple of 32, got {imgsz}")
    inp = keras.Input((imgsz, imgsz, 3), name="image")
    x = _conv(inp, _ch(16, width), stride=2)                 # /2
    x = _dws(x, _ch(32, width), stride=2)                    # /4
    x = _dws(x, _ch(32, width))
    x = _dws(x, _ch(48, width), stride=2)                    # /8
    p3 = _dws(x, _ch(48, width))
    x = _dws(p3, _ch(96, width), stride=2)                   # /16
    x = _dws(x, _ch(96, width))
    p4 = _dws(x, _ch(96, width))
    x = _dws(p4, _ch(160, width), stride=2)                  # /32
    p5 = _dws(x, _ch(160, width))
    f = _ch(64, width)
    n5 = _conv(p5, f, k=1)
    n4 = _dws(L.Add()([L.UpSampling2D(2)(n5), _conv(p4, f, k=1)]), f)
    n3 = _dws(L.Add()([L.UpSampling2D(2)(n4), _conv(p3, f, k=1)]), f)
    prior = -np.log((1 - 0.01) / 0.01)
    outs = []
    for level, feat in zip(STRIDES, (n3, n4, n5)):
        h = _dws(feat, f)
        o = L.Conv2D(4 + num_classes, 1, name=f"head_out_{level}",
                     bias_initializer=keras.initializers.Constant(
                         np.r_[np.zeros(4), np.full(num_classes, prior)].astype(np.float32)))(h)
        outs.append(L.Reshape((-1, 4 + num_classes))(o))
    raw = L.Concatenate(axis=1, name="raw")(outs)
    return keras.Model(inp, raw, name="agrinet_det")


class YoloDecode(L.Layer):
    """Raw logits [B, N, 4+C] -> [B, 4+C, N]: boxes cx, cy, w, h in 0..1, sigmoid class scores."""

    def __init__(self, imgsz: int, **kw):
        super().__init__(**kw)
        self.imgsz = int(imgsz)

    def call(self, raw):
        # Same maths as decode_raw, arranged per level so that every int8 intermediate has a small range
        # (a scalar scale times a 0..1 sigmoid plus a 0..1 offset), which keeps int8 boxes within ~1 px.
        outs, start = [], 0
        for s in STRIDES:
            n = self.imgsz // s
            r = raw[:, start:start + n * n]
            start += n * n
            sg = tf.sigmoid(r)
            gy, gx = np.mgrid[0:n, 0:n]
            off = (np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32) - 0.5) * s / self.imgsz
            xy = sg[..., 0:2] * (2.0 * s / self.imgsz) + tf.constant(off)
            d = sg[..., 2:4] * 2.0
            wh = d * d * (4.0 * s / self.imgsz)
            outs.append(tf.concat([tf.clip_by_value(xy, 0.0, 1.0), tf.clip_by_value(wh, 0.0, 1.0), sg[..., 4:]],
                                  axis=-1))
        return tf.transpose(tf.concat(outs, axis=1), [0, 2, 1])

    def get_config(self):
        return {**super().get_config(), "imgsz": self.imgsz}


def export_detector(core: keras.Model, batch: int | None = 1, imgsz: int | None = None) -> keras.Model:
    """The deployable graph: fixed batch and size, core + decode, one output in the YOLOv8 layout."""
    imgsz = int(imgsz or core.input_shape[1])
    inp = keras.Input((imgsz, imgsz, 3), batch_size=batch, name="image")
    return keras.Model(inp, YoloDecode(imgsz, name="yolo_decode")(core(inp, training=False)), name="detector")


def build_health(num_classes: int, tile: int = 64, width: float = 1.0) -> keras.Model:
    inp = keras.Input((tile, tile, 3), name="tile")
    x = _conv(inp, _ch(16, width), stride=2)
    x = _dws(x, _ch(32, width), stride=2)
    x = _dws(x, _ch(32, width))
    x = _dws(x, _ch(64, width), stride=2)
    x = _dws(x, _ch(64, width))
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.2)(x)
    logits = L.Dense(num_classes, name="head_out_logits")(x)
    return keras.Model(inp, logits, name="agrinet_health")


def export_health(core: keras.Model, batch: int = 1) -> keras.Model:
    tile = int(core.input_shape[1])
    inp = keras.Input((tile, tile, 3), batch_size=batch, name="tile")
    return keras.Model(inp, L.Softmax(name="probs")(core(inp, training=False)), name="health")


def flops(model: keras.Model) -> int:
    """Multiply-accumulates x 2 of the conv / dense layers at batch 1 (a design figure, not a measurement)."""
    total = 0
    for layer in _all_layers(model):
        if isinstance(layer, (L.Conv2D, L.DepthwiseConv2D, L.Dense)):
            out = layer.output_shape
            k = layer.get_weights()[0]
            if isinstance(layer, L.Dense):
                total += int(np.prod(k.shape))
            elif isinstance(layer, L.DepthwiseConv2D):
                total += int(np.prod(out[1:3])) * int(np.prod(k.shape))
            else:
                total += int(np.prod(out[1:3])) * int(np.prod(k.shape))
    return 2 * total


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield getattr(layer, "layer", layer)


def save_weights(model: keras.Model, path) -> None:
    """Every variable of ``model`` (float, with BatchNorm statistics) in order, as a .npz beside the
    .tflite: the starting point of ``agridrone train ... --init`` on a user's data."""
    arrays = {f"v{k:04d}": v.numpy() for k, v in enumerate(model.weights)}
    names = np.array([v.name for v in model.weights])
    with open(path, "wb") as f:
        np.savez(f, __names__=names, **arrays)


def load_weights(model: keras.Model, path) -> dict:
    """Start ``model`` from the weights a previous run saved (:func:`save_weights`).

    Variables are matched in order; the output layers (``head_out*``) are kept as built where their
    shapes differ (another number of classes). Anything else that differs means another architecture
    or width: ModelError."""
    from agridrone.errors import ModelError

    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["__names__"]]
            arrays = [z[f"v{k:04d}"] for k in range(len(names))]
    except (OSError, KeyError, ValueError) as err:
        raise ModelError(f"--init {path}: expected a .weights.npz written by agridrone train, got "
                         f"{type(err).__name__}: {err}") from None
    own = model.weights
    if len(arrays) != len(own):
        raise ModelError(f"--init {path}: expected weights of a {model.name} like this one ({len(own)} tensors), "
                         f"got {len(arrays)} tensors (another model or width)")
    loaded, kept = 0, []
    for var, arr, src in zip(own, arrays, names):
        if tuple(var.shape) == arr.shape:
            var.assign(arr)
            loaded += 1
        elif "head_out" in var.name:
            kept.append(var.name)
        else:
            raise ModelError(f"--init {path}: expected {var.name} of shape {tuple(var.shape)}, got {src} of "
                             f"shape {arr.shape} (another model or width)")
    return {"loaded": loaded, "tensors": len(own), "head_reinitialised": bool(kept)}
