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
    "CSPDarknet53": "keras_csp.applications.functions",
    "CSPDenseNet121": "keras_csp.applications.functions",
    "CSPDenseNet201": "keras_csp.applications.functions",
    "CSPDetector": "keras_csp.detection",
    "CSPPeleeNet": "keras_csp.applications.functions",
    "CSPResNet10": "keras_csp.applications.functions",
    "CSPResNet50": "keras_csp.applications.functions",
    "CSPResNeXt50": "keras_csp.applications.functions",
    "Darknet53": "keras_csp.applications.functions",
    "DenseNet121": "keras_csp.applications.functions",
    "DenseNet201": "keras_csp.applications.functions",
    "PeleeNet": "keras_csp.applications.functions",
    "ResNet10": "keras_csp.applications.functions",
    "ResNet50": "keras_csp.applications.functions",
    "ResNeXt50": "keras_csp.applications.functions",
    "benchmark": "keras_csp.bench",
    "build_model": "keras_csp.applications.factory",
    "decode_predictions": "keras_csp.preprocessing",
    "preprocess_input": "keras_csp.preprocessing",
    "frozen_function": "keras_csp.inference",
    "load_model": "keras_csp.applications.saving",
    "optimize_for_inference": "keras_csp.inference",
    "profile": "keras_csp.profiler",
}
_SUBMODULES = (
    "applications", "bench", "data", "detection", "explore", "export", "layers", "lite", "models",
    "necks", "train", "weights",
)

__getattr__, __dir__, __all__ = lazy_attributes(__name__, _EXPORTS, _SUBMODULES)
