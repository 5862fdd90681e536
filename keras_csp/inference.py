"""`optimize_for_inference`: the same model with fewer ops per image, for serving.

Three changes, none of which alters what the model computes (tests assert outputs within 1e-4):

* every `BatchNormalization` that directly follows a convolution (and is that convolution's only
  consumer) is folded into it: `kernel * gamma / sqrt(var + eps)` and a bias
  `beta - mean * gamma / sqrt(var + eps)`. The BN layer stays in the graph as a no-op
  `FoldedBatchNormalization` of the same name, so layer names (and all keyed by them) stay;
* grouped `Conv2D` layers become `GroupedConv2D` (one `tf.nn.conv2d` instead of Keras' nested XLA
  function; see `keras_csp.layers.grouped_conv`);
* `predict` runs one graph function (`model.jit_compile` is set; no optimizer is attached). XLA
  (`jit_compile=True`) is optional: on CPU it is slower for these convnets (CSPResNeXt50 at
  256x256, batch 1, 2 cores: 88 ms with XLA vs 56 ms without): TF's oneDNN kernels beat XLA's.

The result is a normal functional Keras model: it saves to `.keras`, exports to SavedModel and
TFLite, and can be profiled. It is for inference: with BN folded, training it would train a
different (normalisation-free) network.

`frozen_function(model)` goes one step further for serving from Python: one graph function with
the weights as constants, which TF's oneDNN kernels can prepare once (see its docstring).
"""

import keras
import numpy as np
from keras.src.models.functional import Functional  # what keras.Model(inputs, outputs) builds

from keras_csp.layers.ops import FoldedBatchNormalization, PartialShortcut
from keras_csp.layers.grouped_conv import GroupedConv2D, fast_grouped_conv_available


def _producer(node):
    """The layer that produced the single input of `node`, or None."""
    tensors = node.input_tensors
    if len(tensors) != 1:
        return None
    history = getattr(tensors[0], "_keras_history", None)
    return history.operation if history is not None else None


def _consumers(layer):
    return [node.operation for node in layer._outbound_nodes]


# Layers whose call is an addition of two maps: the Keras one and Darknet's partial shortcut (the
# ResNet/ResNeXt twins end every block with one).
_ADDING_LAYERS = (keras.layers.Add, PartialShortcut)


def _feeds_add_then_leaky_relu(bn):
    """Whether `bn`'s output goes through an addition into a LeakyReLU (a residual block's end).

    TF 2.21's oneDNN graph rewrite fuses Conv2D + BiasAdd + Add + LeakyRelu into one kernel that
    ignores the slope and uses 0.2 (eager and XLA are right; see tests/test_inference.py). Folding
    such a BN would create exactly that pattern, so those few BNs stay as they are.
    """
    return any(
        isinstance(add, _ADDING_LAYERS)
        and any(isinstance(act, keras.layers.LeakyReLU) for act in _consumers(add))
        for add in _consumers(bn)
    )


def _foldable_pairs(model):
    """{conv layer name: BN layer name} for every BN that can be folded into its convolution."""
    output_ids = {id(t) for t in model.outputs}
    pairs = {}
    for bn in model.layers:
        if not isinstance(bn, keras.layers.BatchNormalization) or len(bn._inbound_nodes) != 1:
            continue
        if bn.axis not in (-1, [-1], len(bn.input.shape) - 1, [len(bn.input.shape) - 1]):
            continue
        conv = _producer(bn._inbound_nodes[0])
        if (
            not isinstance(conv, keras.layers.Conv2D)
            or conv.data_format != "channels_last"
            or conv.activation not in (None, keras.activations.linear)
            or len(conv._inbound_nodes) != 1
            or len(conv._outbound_nodes) != 1  # the BN must be the conv's only consumer
            or id(conv.output) in output_ids
            or _feeds_add_then_leaky_relu(bn)
        ):
            continue
        pairs[conv.name] = bn.name
    return pairs


def _folded_weights(conv, bn):
    """(kernel, bias) of `conv` followed by `bn` in inference mode, computed in float64."""
    kernel = np.asarray(conv.kernel.numpy(), np.float64)
    bias = np.asarray(conv.bias.numpy(), np.float64) if conv.use_bias else 0.0
    channels = kernel.shape[-1]
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones(channels)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros(channels)
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return kernel * scale, beta + (bias - mean) * scale


def optimize_for_inference(
    model, fold_batch_norm=True, fast_grouped_conv=True, jit_compile=False
):
    """A copy of the functional `model` that computes the same outputs faster (see module doc).

    Args:
        model: a functional `keras.Model` (every keras_csp model is one).
        fold_batch_norm: fold each BatchNormalization into the convolution before it.
        fast_grouped_conv: run grouped convolutions as `GroupedConv2D` (when this TensorFlow
            build can; otherwise they stay as they are).
        jit_compile: compile `predict` with XLA (`True`), as a plain graph (`False`), or let
            Keras decide (`"auto"`).

    Returns:
        A new `keras.Model` with the same name, inputs, outputs and layer names; `model`
        itself is not changed.
    """
    if not isinstance(model, Functional):
        raise ValueError(
            f"model={model!r} is not a functional keras.Model; allowed: a model built from "
            "keras.Input (every keras_csp builder returns one)."
        )
    if jit_compile not in (True, False, "auto"):
        raise ValueError(f"jit_compile={jit_compile!r} is not allowed; allowed: True, False, 'auto'.")
    pairs = _foldable_pairs(model) if fold_batch_norm else {}
    folded_bns = set(pairs.values())
    use_fast = fast_grouped_conv and fast_grouped_conv_available()

    def clone(layer):
        config = layer.get_config()
        if layer.name in folded_bns:
            return FoldedBatchNormalization(name=layer.name)
        if isinstance(layer, keras.layers.Conv2D):
            if layer.name in pairs:
                config = {**config, "use_bias": True, "bias_initializer": "zeros"}
            grouped = layer.groups > 1 and use_fast
            return (GroupedConv2D if grouped else type(layer)).from_config(config)
        return type(layer).from_config(config)

    optimized = keras.models.clone_model(model, clone_function=clone)
    originals = {layer.name: layer for layer in model.layers}
    for layer in optimized.layers:
        if not layer.weights:  # inputs (which clone_model may rename), activations, folded BNs
            continue
        source = originals[layer.name]
        if layer.name in pairs:
            kernel, bias = _folded_weights(source, originals[pairs[layer.name]])
            layer.set_weights([kernel.astype(layer.kernel.dtype), bias.astype(layer.bias.dtype)])
        else:
            layer.set_weights(source.get_weights())
    # Not `compile()`: that would attach an optimizer, which a `.keras` file would then carry.
    if jit_compile != "auto":
        optimized.jit_compile = jit_compile
    return optimized


def frozen_function(model, batch_size=None):
    """`model`'s inference as one TensorFlow graph function with every weight a constant.

    For serving from Python on CPU. TF's oneDNN convolution caches its filter in the blocked
    layout it computes in only when the filter is a constant; from a variable (every Keras model)
    it reorders the filter on every call. Freezing also lets grappler fold what depends on weights
    alone. Measured at 256x256, batch 1, 2 cores, after `optimize_for_inference`, the two timed in
    turns in one process: CSPResNeXt50 54.7 -> 50.1 ms, CSPDarknet53 76.1 -> 71.9 ms (medians;
    README.md's Speed section has the full tables).

    The function is a snapshot: it keeps the weights the model had when it was frozen (freeze
    again after training or loading weights). Outputs equal `model(images, training=False)`
    (tests assert 1e-4); it has the model's output structure (a tensor or a dict of tensors).

    Args:
        model: a built `keras.Model` with one input (every keras_csp model), on the TensorFlow
            backend. Call it on `optimize_for_inference(model)` for the fastest graph.
        batch_size: None (any batch) or a fixed positive int (lets grappler specialise shapes).

    Returns:
        A callable: images (numpy array or tensor) -> outputs (tensors).
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"frozen_function needs the TensorFlow backend; this process uses "
            f"{keras.backend.backend()!r} (set KERAS_BACKEND=tensorflow)."
        )
    if not isinstance(model, keras.Model) or not getattr(model, "inputs", None):
        raise ValueError(
            f"model={model!r} has no known inputs; allowed: a built keras.Model with one input "
            "(a functional model, or a subclassed one after it was called)."
        )
    if len(model.inputs) != 1:
        raise ValueError(
            f"model has {len(model.inputs)} inputs; allowed: a model with one input."
        )
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size={batch_size!r} is not allowed; allowed: None or an int >= 1.")
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    source = model.inputs[0]
    spec = tf.TensorSpec([batch_size, *source.shape[1:]], source.dtype, name="images")
    concrete = tf.function(lambda images: model(images, training=False)).get_concrete_function(
        spec
    )
    frozen = convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs

    def call(images):
        outputs = frozen(tf.convert_to_tensor(images, dtype=spec.dtype))
        return tf.nest.pack_sequence_as(structure, tf.nest.flatten(outputs))

    return call
