"""Which model a run trains: the package's architectures by name, plus small ones for small data.

The paper's networks are sized for ImageNet. `SMALL_MODELS` are the same CSPDarknet design at a
width and depth that train on a CPU in minutes (the demo uses `cspdarknet_small` and its non-CSP
twin, `fusion="none"`). Any `ModelConfig` can also be passed directly from Python.
"""

from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig

SMALL_MODELS = {
    # A CSPDarknet-53 in miniature (Darknet residual blocks, CSP stages with down-growth): a
    # stride-2 stem and three stages of 32..128 channels (total stride 16).
    "cspdarknet_small": ModelConfig(
        stem=StemConfig(filters=16, kernel_size=3, strides=2),
        stages=StagesConfig(
            filters=(32, 64, 128),
            depth=(1, 2, 2),
            strides=2,
            block_type="dark",
            expand_ratio=1.0,
            bottle_ratio=1.0,
            down_growth=True,
        ),
        default_size=64,
        reference="keras_csp.train: a small CSPDarknet for CPU-sized data",
    ),
    # Smaller still: for tests and quick runs.
    "cspdarknet_tiny": ModelConfig(
        stem=StemConfig(filters=8, kernel_size=3, strides=2),
        stages=StagesConfig(
            filters=(16, 32),
            depth=(1, 1),
            strides=2,
            block_type="dark",
            expand_ratio=1.0,
            bottle_ratio=1.0,
            down_growth=True,
        ),
        default_size=32,
        reference="keras_csp.train: a tiny CSPDarknet for tests",
    ),
}


def model_names():
    from keras_csp.models.config import MODEL_CONFIGS

    return sorted(MODEL_CONFIGS) + sorted(SMALL_MODELS)


def resolve_model_config(model):
    """(name, ModelConfig) for a name of MODEL_CONFIGS or SMALL_MODELS, or a ModelConfig."""
    from keras_csp.models.config import MODEL_CONFIGS

    if isinstance(model, ModelConfig):
        return "custom", model
    key = str(model).lower()
    if key in SMALL_MODELS:
        return key, SMALL_MODELS[key]
    if key in MODEL_CONFIGS:
        return key, MODEL_CONFIGS[key]
    raise ValueError(
        f"model={model!r} is not a known architecture; allowed: {', '.join(model_names())} "
        "(or a keras_csp.models.ModelConfig from Python)."
    )


def check_csp_arguments(name, config, part_ratio, fusion):
    if config.is_csp:
        return
    if part_ratio != 0.5 or fusion != "full":
        raise ValueError(
            f"part_ratio/fusion apply to CSP models; model={name!r} has no CSP stages "
            "(allowed: the defaults part_ratio=0.5, fusion='full', or a CSP model)."
        )


def build_classifier(model, classes, image_size, part_ratio=0.5, fusion="full", activation=None):
    """The classifier of a run: `build_model` with logits (activation None) or softmax."""
    from keras_csp.models.builder import build_model

    name, config = resolve_model_config(model)
    check_csp_arguments(name, config, part_ratio, fusion)
    kwargs = {"part_ratio": part_ratio, "fusion": fusion} if config.is_csp else {}
    return build_model(
        config,
        classes=classes,
        input_shape=(image_size, image_size, 3),
        classifier_activation=activation,
        name=name if name != "custom" else None,
        **kwargs,
    )
