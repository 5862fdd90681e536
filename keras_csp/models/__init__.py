"""The architecture layer: every architecture as data (`config.py`) and the generic builder
(`builder.py`, config -> graph, no weights). `build_model`, the applications-style functions and
`load_model` are the layer above: `keras_csp.applications`."""

from keras_csp.models.builder import pyramid_features
from keras_csp.models.config import (
    MODEL_CONFIGS,
    DenseStagesConfig,
    ModelConfig,
    StagesConfig,
    StemConfig,
    get_config,
)
