"""keras-csp: Cross Stage Partial networks (CSPNet, arXiv 1911.11929) for Keras 3.

The top-level names load lazily, so that `keras_csp.lite` (the on-device runtime) can be imported
on a machine without TensorFlow or Keras. Importing `keras_csp.layers`, or touching any model name
here, registers the package's custom layers with Keras; `keras_csp.load_model` does it for you.
"""

import os

from keras_csp.lazy import lazy_attributes

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"

_EXPORTS = {
    "CSPDarknet53": "keras_csp.models",
    "CSPDenseNet121": "keras_csp.models",
    "CSPDenseNet201": "keras_csp.models",
    "CSPDetector": "keras_csp.detection",
    "CSPPeleeNet": "keras_csp.models",
    "CSPResNet10": "keras_csp.models",
    "CSPResNet50": "keras_csp.models",
    "CSPResNeXt50": "keras_csp.models",
    "Darknet53": "keras_csp.models",
    "DenseNet121": "keras_csp.models",
    "DenseNet201": "keras_csp.models",
    "PeleeNet": "keras_csp.models",
    "ResNet10": "keras_csp.models",
    "ResNet50": "keras_csp.models",
    "ResNeXt50": "keras_csp.models",
    "benchmark": "keras_csp.bench",
    "build_model": "keras_csp.models",
    "decode_predictions": "keras_csp.preprocessing",
    "preprocess_input": "keras_csp.preprocessing",
    "frozen_function": "keras_csp.inference",
    "load_model": "keras_csp.saving",
    "optimize_for_inference": "keras_csp.inference",
    "profile": "keras_csp.profiler",
}
_SUBMODULES = (
    "bench", "data", "detection", "explore", "export", "layers", "lite", "models", "necks", "train",
    "weights",
)

__getattr__, __dir__, __all__ = lazy_attributes(__name__, _EXPORTS, _SUBMODULES)
