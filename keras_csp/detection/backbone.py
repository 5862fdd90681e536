"""The detector's backbone: a name, a `ModelConfig` or a built model, rebuilt inside the detector's
graph under `backbone.*` names, and kept in the detector's saved config."""

import copy
import dataclasses
import math

import keras

from keras_csp.models import config as model_config
from keras_csp.applications.factory import build_model
from keras_csp.necks import NECK_LEVELS


# A `ModelConfig` goes into the `.keras` config as nested, tagged dicts; tuples come back as tuples.
def config_to_dict(value):
    if dataclasses.is_dataclass(value):
        fields = {
            f.name: config_to_dict(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
        return {"dataclass": type(value).__name__, "fields": fields}
    if isinstance(value, (tuple, list)):
        return [config_to_dict(v) for v in value]
    return value


def config_from_dict(value):
    if isinstance(value, dict) and "dataclass" in value:
        cls = getattr(model_config, value["dataclass"], None)
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise ValueError(f"backbone config names an unknown class {value['dataclass']!r}.")
        return cls(**{k: config_from_dict(v) for k, v in value["fields"].items()})
    if isinstance(value, list):
        return tuple(config_from_dict(v) for v in value)
    return value


def check_backbone_model(model):
    """A built backbone must output the pyramid dict of a `include_top=False` builder."""
    outputs = model.output
    levels = isinstance(outputs, dict) and outputs and all(
        isinstance(k, str) and k[:1] == "P" and k[1:].isdigit() for k in outputs
    )
    if not levels:
        raise ValueError(
            f"backbone=<keras.Model {model.name!r}> is not allowed: its output is not a pyramid "
            "dict; allowed: a keras_csp builder's model with include_top=False and no pooling "
            "(output {'P1': ..., 'P5': ...}), an architecture name, or a ModelConfig."
        )


def backbone_features(images, backbone, input_shape, part_ratio, fusion, weights):
    """The backbone's layers rebuilt on `images` under `backbone.*` names; returns its pyramid dict.

    A name or `ModelConfig` is built by the package's builder (so every check of `build_model`
    applies and `weights` load as they would for the classifier); a built model is taken as it is,
    with its weights. Either is cloned layer by layer onto the detector's input with a `backbone.`
    prefix: one flat graph, and a profile with a backbone part.
    """
    if isinstance(backbone, keras.Model):
        model, weights = backbone, True  # a built model brings its weights
    else:
        model = build_model(
            backbone,
            include_top=False,
            weights=weights,
            input_shape=input_shape,
            part_ratio=part_ratio,
            fusion=fusion,
        )

    def prefixed(layer):
        config = layer.get_config()
        config["name"] = f"backbone.{layer.name}"
        return layer.__class__.from_config(config)

    clone = keras.models.clone_model(model, input_tensors=images, clone_function=prefixed)
    if weights is not None:
        for layer in model.layers:
            if layer.weights:
                clone.get_layer(f"backbone.{layer.name}").set_weights(layer.get_weights())
    return clone.output


def resolve_backbone(backbone, backbone_weights):
    """`(backbone, serialized)`: a name, `ModelConfig` or built model, checked; a saved config's
    dict comes back as what it describes, and `serialized` keeps a built backbone's dict as saved."""
    serialized = None
    if isinstance(backbone, dict) and "class_name" in backbone:
        # A built backbone in a saved config (the layers only; the detector's file holds the
        # weights). Deserialized under the caller's safe mode, as any Keras object
        # (of a copy: deserializing empties the dict it reads).
        serialized = backbone
        backbone = keras.saving.deserialize_keras_object(copy.deepcopy(backbone))
    elif isinstance(backbone, dict):
        backbone = config_from_dict(backbone)
    if isinstance(backbone, keras.Model):
        check_backbone_model(backbone)
        if backbone_weights is not None:
            raise ValueError(
                f"backbone_weights={backbone_weights!r} is not allowed with a built backbone; "
                "allowed: None (load the weights into the backbone model instead)."
            )
    elif not isinstance(backbone, (str, model_config.ModelConfig)):
        raise ValueError(
            f"backbone={backbone!r} is not allowed; allowed: an architecture name "
            f"({', '.join(sorted(model_config.MODEL_CONFIGS))}), a ModelConfig, or a built "
            "backbone model (include_top=False)."
        )
    return backbone, serialized


def config_levels(config):
    """The pyramid levels a `ModelConfig`'s builder gives, without building it (the strides of
    `models.builder.pyramid_features`: a dense family's stage taps before its pooling transition,
    the other families' after their strided stage)."""
    stride = config.stem.strides * (2 if config.stem.pool else 1)
    levels = []
    for s in config.stages.per_stage("strides"):
        if config.is_dense:
            levels.append(stride)
        stride *= s
        if not config.is_dense:
            levels.append(stride)
    return [f"P{int(math.log2(v))}" for v in levels]


def _described(backbone):
    """A backbone as an error names it: the architecture's name where the config is one of the
    registry's (train passes its small models as configs), else what it is."""
    if isinstance(backbone, str):
        return repr(backbone)
    if isinstance(backbone, keras.Model):
        return repr(f"<keras.Model {backbone.name!r}>")
    names = [n for n, c in model_config.ARCHITECTURES.items() if c == backbone]
    return repr(names[0]) if names else "<a custom ModelConfig>"


def check_levels(features, backbone, neck):
    """The backbone must give every pyramid level the neck reads; the error lists the
    architectures that do."""
    need = [f"P{k}" for k in NECK_LEVELS[neck]]
    missing = [k for k in need if k not in features]
    if missing:
        fitting = sorted(
            n for n, c in model_config.ARCHITECTURES.items() if set(need) <= set(config_levels(c))
        )
        raise ValueError(
            f"backbone={_described(backbone)} gives levels "
            f"{sorted(features, key=lambda k: int(k[1:]))}; neck={neck!r} needs {need}; "
            f"allowed backbones: {', '.join(fitting)} (or a ModelConfig or model giving {need})."
        )
