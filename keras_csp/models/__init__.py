"""Model configurations, the generic builder and the applications-style functions."""

from keras_csp.models.applications import (
    ALL_APPLICATIONS,
    APPLICATIONS,
    EXTRA_APPLICATIONS,
    CSPDarknet53,
    CSPDenseNet121,
    CSPDenseNet201,
    CSPPeleeNet,
    CSPResNet10,
    CSPResNet50,
    CSPResNeXt50,
    Darknet53,
    DenseNet121,
    DenseNet201,
    PeleeNet,
    ResNet10,
    ResNet50,
    ResNeXt50,
)
from keras_csp.models.builder import build_model, pyramid_features
from keras_csp.models.config import (
    MODEL_CONFIGS,
    DenseStagesConfig,
    ModelConfig,
    StagesConfig,
    StemConfig,
    get_config,
)


def load_model(path, safe_mode=True, **kwargs):
    """`keras.saving.load_model` with keras_csp's layers registered (safe mode by default)."""
    import keras

    import keras_csp.detection  # noqa: F401  (registers the detector and its layers)
    import keras_csp.layers  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(path, safe_mode=safe_mode, **kwargs)
