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
from keras_csp.models.builder import pyramid_features
from keras_csp.models.config import (
    MODEL_CONFIGS,
    DenseStagesConfig,
    ModelConfig,
    StagesConfig,
    StemConfig,
    get_config,
)
from keras_csp.models.factory import build_model
