"""keras-csp: Cross Stage Partial networks (CSPNet, arXiv 1911.11929) for Keras 3."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from keras_csp import layers  # noqa: E402
from keras_csp.models import (  # noqa: E402
    CSPDarknet53,
    CSPResNet50,
    CSPResNeXt50,
    Darknet53,
    ResNet50,
    ResNeXt50,
    build_model,
)
from keras_csp.profile import profile  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CSPDarknet53",
    "CSPResNet50",
    "CSPResNeXt50",
    "Darknet53",
    "ResNet50",
    "ResNeXt50",
    "build_model",
    "layers",
    "profile",
]
