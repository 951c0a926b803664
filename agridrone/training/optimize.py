"""Optimization: magnitude pruning (tensorflow-model-optimization) to a target sparsity then strip,
optional quantization-aware training, and full-integer int8 post-training quantization.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import tensorflow as tf
import tf_keras as keras

from agridrone.errors import ModelError


def prunable(layer) -> bool:
    """Conv2D / Dense layers with enough weights to matter; output heads stay dense."""
    return (isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
            and not isinstance(layer, keras.layers.DepthwiseConv2D)
            and not layer.name.startswith("head_out")
            and int(np.prod(layer.get_weights()[0].shape)) >= 1024)


def wrap_for_pruning(model: keras.Model, target_sparsity: float, begin_step: int, end_step: int) -> keras.Model:
    import tensorflow_model_optimization as tfmot

    if not 0.0 < target_sparsity < 1.0:
        raise ModelError(f"sparsity: expected 0 < S < 1, got {target_sparsity}")
    schedule = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=target_sparsity,
                                                    begin_step=begin_step, end_step=max(end_step, begin_step + 1),
                                                    frequency=max(1, (end_step - begin_step) // 20))

    def clone(layer):
        if prunable(layer):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer.__class__.from_config(layer.get_config())

    pruned = keras.models.clone_model(model, clone_function=clone)
    # clone_model re-creates layers: copy the trained weights over (wrappers keep the same kernels)
    for src, dst in zip(model.layers, pruned.layers):
        w = src.get_weights()
        if not w:
            continue
        if hasattr(dst, "layer"):
            dst.layer.set_weights(w)
        else:
            dst.set_weights(w)
    return pruned


def strip(model: keras.Model) -> keras.Model:
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def sparsity(model: keras.Model) -> float:
    """Fraction of zero weights over the prunable layers' kernels."""
    zeros = total = 0
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if prunable(inner):
            k = inner.get_weights()[0]
            zeros += int((k == 0).sum())
            total += k.size
    return zeros / max(total, 1)


def quantize_aware(model: keras.Model) -> keras.Model:
    """Quantization-aware copy of ``model`` (tfmot default 8-bit scheme)."""
    import tensorflow_model_optimization as tfmot

    try:
        return tfmot.quantization.keras.quantize_model(model)
    except (ValueError, RuntimeError) as err:
        raise ModelError(f"quantization-aware training: this model is not supported by tfmot: {err}") from None


def to_int8_tflite(export_model: keras.Model, representative: Iterable[np.ndarray], io_dtype: str = "int8") -> bytes:
    """Full-integer int8 TFLite (``io_dtype`` int8 or uint8 input/output) with a representative dataset
    of float32 images already scaled to 0..1, one [1, H, W, 3] array at a time."""
    if io_dtype not in ("int8", "uint8"):
        raise ModelError(f"io dtype: expected int8 or uint8, got {io_dtype!r}")
    shape = [int(d) for d in export_model.input_shape]
    samples = [np.asarray(r, np.float32).reshape([1] + shape[1:]) for r in representative]
    if not samples:
        raise ModelError("quantization: expected representative images, got none")

    @tf.function(input_signature=[tf.TensorSpec([1] + shape[1:], tf.float32)])
    def serve(x):
        return export_model(x, training=False)

    def rep() -> Iterable[list[np.ndarray]]:
        for s in samples:
            yield [s]

    conv = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], export_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8 if io_dtype == "int8" else tf.uint8
    conv.inference_output_type = tf.int8 if io_dtype == "int8" else tf.uint8
    return conv.convert()


def representative_batches(images: list[np.ndarray], prepare: Callable[[np.ndarray], np.ndarray],
                           count: int = 200) -> list[np.ndarray]:
    step = max(1, len(images) // max(count, 1))
    return [prepare(im)[None].astype(np.float32) / 255.0 for im in images[::step][:count]]
