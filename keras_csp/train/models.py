"""Which model a run trains: the package's architectures by name (one registry,
`keras_csp.models.config.ARCHITECTURES`, small ones included), or a `ModelConfig` from Python.

`SMALL_MODELS` are the registry's CSPDarknets sized for a CPU (the demo uses `cspdarknet_small`
and its non-CSP twin, `fusion="none"`).
"""

from keras_csp.models.config import ARCHITECTURES, SMALL_MODEL_CONFIGS, ModelConfig, get_config

SMALL_MODELS = SMALL_MODEL_CONFIGS


def model_names():
    return sorted(ARCHITECTURES)


def resolve_model_config(model):
    """(name, ModelConfig) for a registry name, or ("custom", model) for a ModelConfig."""
    if isinstance(model, ModelConfig):
        return "custom", model
    return str(model).lower(), get_config(model)


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
    from keras_csp.applications.factory import build_model

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
