"""The model factory (cloud side): synthetic data, dataset loaders and validation, Keras models,
training, pruning, int8 quantization, evaluation and model cards.

Nothing on the drone imports this package. TensorFlow is imported only by the modules that need it
(``nets``, ``fit``, ``optimize``, ``pipeline``), never at import time of this package.
"""

DETECTOR_CLASSES = ("tree", "person", "animal", "vehicle", "pole", "building")
HEALTH_CLASSES = ("healthy", "stressed", "weeds", "bare_soil")
