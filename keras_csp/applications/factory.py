"""`build_model`: a named architecture (or a `ModelConfig`) as a Keras model, with its weights.

As timm's `build_model_with_cfg`, the factory sits above both things it joins: the graph builder
(`models/builder.py`, which knows nothing of weights) and `keras_csp.weights` (which may build a
reference network with that builder). Neither imports this module, so there is no circle.
"""

from keras_csp.models.builder import build_network
from keras_csp.models.config import ModelConfig


def build_model(
    model,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    part_ratio=0.5,
    fusion="full",
    name=None,
    weights_sha256=None,
):
    """Builds the named architecture (or a `ModelConfig`) as a Keras model.

    See `keras_csp.CSPResNeXt50` for the arguments.
    """
    # Every argument but the hash is the network's (weights only for its RGB check).
    result = build_network(**{k: v for k, v in locals().items() if k != "weights_sha256"})
    if weights is not None or weights_sha256 is not None:
        # Late: only a model with weights needs the weights package (h5py, download, conversion).
        from keras_csp.weights import load_weights

        arch = None if isinstance(model, ModelConfig) else str(model).lower()
        load_weights(result, weights, arch=arch, include_top=include_top, classes=classes,
                     weights_sha256=weights_sha256)
    return result
