"""The tf_keras twin of a Keras 3 model: the same graph and the same weights, as a `tf_keras` model.

tensorflow-model-optimization 0.8 (QAT, pruning) accepts only `tf_keras` functional models. Keras 3
and tf_keras cannot share layer objects, so the twin is rebuilt: the Keras 3 graph is replayed
node by node (`graph.replay`, nested models flattened) and each layer is translated by the entry
of its class name in `TWINS`; then every layer's weights are copied over.

An entry says two things:

- `build(layer) -> tf_keras layer`. `same_layer()` rebuilds the tf_keras layer of the same name
  from the Keras 3 config (keeping the arguments the tf_keras constructor takes; weights are
  copied, so initializers and regularizers are left out). `keras_op()` wraps a *weightless*
  Keras 3 layer in `KerasOp`, which runs the layer's own `call` on TF tensors: a custom op keeps
  a single implementation.
- `quantize`: how tfmot treats the layer. "native": tfmot's default registry knows it.
  "passthrough": values move without arithmetic (slices, padding, max-pool), so the input's
  quantization carries over and no quantizer is added. "output": arithmetic (add, scale) whose
  output needs its own quantizer.

`TWINS` holds plain Keras layers (e.g. `"UpSampling2D": same_layer()`). keras_csp's own layers
declare their twin beside their class, as data, so the layer modules never import this one:
`TF_KERAS_TWIN = {"kind": "keras_op", "quantize": "passthrough"}` (a weightless layer),
`{"kind": "same_layer", "class_name": "Conv2D"}`, or `{"kind": "own", "quantize": ...}` with a
`tf_keras_layer()` method that builds the tf_keras layer (a layer with weights of its own, e.g.
`keras_csp/necks/bifpn.py`'s `WeightedFusion`). A layer class without either is an error that
names it; tests/test_registry.py checks every registered keras_csp layer declares one.
"""

import dataclasses
import inspect
from typing import Callable

import keras

from keras_csp.export.graph import layers_in_graph, replay

try:
    import tf_keras
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the tf_keras twin (quantize='qat', prune=...) needs tf-keras and "
        "tensorflow-model-optimization: pip install 'tf-keras~=2.21.0' "
        "'tensorflow-model-optimization==0.8.*'"
    ) from e

QUANTIZE_KINDS = ("native", "passthrough", "output")


@dataclasses.dataclass(frozen=True)
class TwinEntry:
    build: Callable
    quantize: str = "native"

    def __post_init__(self):
        if self.quantize not in QUANTIZE_KINDS:
            raise ValueError(
                f"quantize={self.quantize!r}; allowed: {', '.join(QUANTIZE_KINDS)}."
            )


# Keras 3 argument names that tf_keras spells differently.
_RENAMED = {"negative_slope": "alpha"}


def _plain(value):
    """Whether a config value can go to a tf_keras constructor as is (no Keras 3 objects)."""
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def same_layer(quantize="native", rename=None, class_name=None):
    """Entry: the tf_keras layer class of the same name (or `class_name`), built from the Keras 3
    config."""
    renamed = {**_RENAMED, **(rename or {})}

    def build(layer):
        cls = getattr(tf_keras.layers, class_name or type(layer).__name__)
        accepted = set(inspect.signature(cls.__init__).parameters) | {"name", "trainable"}
        config = {}
        for key, value in layer.get_config().items():
            key = renamed.get(key, key)
            if key in accepted and key != "dtype" and _plain(value):
                config[key] = value
        return cls(**config)

    return TwinEntry(build, quantize)


class KerasOp(tf_keras.layers.Layer):
    """Runs a weightless Keras 3 layer's `call` inside a tf_keras model.

    With the TensorFlow backend, `keras.ops` act on TF tensors, so the op graph is the same as
    the Keras 3 model's. The Keras 3 layer is kept out of tf_keras' attribute tracking; the
    config stores its Keras serialization, so tfmot can clone the model.
    """

    def __init__(self, keras_layer, **kwargs):
        if isinstance(keras_layer, dict):
            keras_layer = keras.saving.deserialize_keras_object(keras_layer)
        kwargs.setdefault("name", keras_layer.name)
        super().__init__(**kwargs)
        object.__setattr__(self, "_keras_layer", keras_layer)

    def call(self, inputs):
        return self._keras_layer.call(inputs)

    def get_config(self):
        return {
            **super().get_config(),
            "keras_layer": keras.saving.serialize_keras_object(self._keras_layer),
        }

    def get_prunable_weights(self):
        return []


def keras_op(quantize):
    """Entry: a weightless Keras 3 layer run as is (see `KerasOp`)."""

    def build(layer):
        if layer.weights:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) has weights, so keras_op() cannot "
                "carry it into tf_keras; allowed: TF_KERAS_TWIN = {'kind': 'own'} and a "
                "tf_keras_layer() method that builds a tf_keras layer with the same weights."
            )
        return KerasOp(layer)

    return TwinEntry(build, quantize)


TWINS = {
    # Plain Keras layers, the same in both libraries.
    "Conv2D": same_layer(),
    "DepthwiseConv2D": same_layer(),
    "Dense": same_layer(),
    "BatchNormalization": same_layer(),
    "LeakyReLU": same_layer(),
    "ReLU": same_layer(),
    "Activation": same_layer(),
    "Softmax": same_layer(),
    "ZeroPadding2D": same_layer(),
    "MaxPooling2D": same_layer(),
    "AveragePooling2D": same_layer(),
    "GlobalAveragePooling2D": same_layer(),
    "GlobalMaxPooling2D": same_layer(),
    "UpSampling2D": same_layer(),
    "Add": same_layer(),
    # tfmot's registry has no Multiply (SAM's attention scale): its output gets a quantizer.
    "Multiply": same_layer(quantize="output"),
    "Concatenate": same_layer(),
    "Reshape": same_layer(),
    "Flatten": same_layer(),
    "Dropout": same_layer(),
}


def declared_twin(cls):
    """The TwinEntry a layer class declares with `TF_KERAS_TWIN` (its own, not inherited), or
    None."""
    spec = vars(cls).get("TF_KERAS_TWIN")
    if spec is None:
        return None
    kind, quantize = spec.get("kind"), spec.get("quantize", "native")
    if kind == "same_layer":
        return same_layer(quantize, class_name=spec.get("class_name"))
    if kind == "keras_op":
        return keras_op(quantize)
    if kind == "own":
        return TwinEntry(lambda layer: layer.tf_keras_layer(), quantize)
    raise ValueError(
        f"{cls.__name__}.TF_KERAS_TWIN={spec!r}: kind={kind!r} is not allowed; allowed: "
        "'same_layer', 'keras_op' or 'own'."
    )


def twin_entry(layer):
    name = type(layer).__name__
    declared = declared_twin(type(layer))
    if declared is not None:
        return declared
    if name not in TWINS:
        raise ValueError(
            f"layer {layer.name!r} is a {name}, which has no tf_keras twin; allowed: a layer class "
            f"declaring TF_KERAS_TWIN, or one of {', '.join(sorted(TWINS))}. Declare it on the "
            "class, e.g. TF_KERAS_TWIN = {'kind': 'keras_op', 'quantize': 'passthrough'} for a "
            "weightless layer (keras_csp/export/twin.py), or add a Keras layer to TWINS."
        )
    return TWINS[name]


def to_tf_keras(model):
    """The tf_keras functional twin of a functional Keras 3 model, with the same weights.

    Returns `(twin, layer_map)`, `layer_map` mapping each twin layer name to its TwinEntry.
    """
    for layer in layers_in_graph(model):  # fail before building anything
        twin_entry(layer)
    built = {}  # id(Keras 3 layer) -> (Keras 3 layer, tf_keras layer)

    def call_layer(layer, args, kwargs):
        if id(layer) not in built:
            built[id(layer)] = (layer, twin_entry(layer).build(layer))
        twin = built[id(layer)][1]
        kwargs = {k: v for k, v in kwargs.items() if k != "training"}
        return twin(*args, **kwargs)

    inputs = [
        tf_keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=_input_name(t, i))
        for i, t in enumerate(model.inputs)
    ]
    outputs = replay(model, inputs, call_layer)
    twin = tf_keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
    for layer, twin_layer in built.values():
        weights = layer.get_weights()
        expected = [tuple(w.shape) for w in twin_layer.get_weights()]
        if [tuple(w.shape) for w in weights] != expected:
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}): weight shapes "
                f"{[tuple(w.shape) for w in weights]} do not match its tf_keras twin's {expected}; "
                "its twin (TF_KERAS_TWIN or TWINS) must build a layer with the same weights in the "
                "same order."
            )
        twin_layer.set_weights(weights)
    layer_map = {twin_layer.name: twin_entry(layer) for layer, twin_layer in built.values()}
    return twin, layer_map


def _input_name(tensor, index):
    history = getattr(tensor, "_keras_history", None)
    name = history.operation.name if history is not None else None
    return name or f"input_{index}"
