"""Keeping a full-integer CSP model inside XNNPACK: a requantizing step before each concatenation.

TFLite's int8 quantizer gives CONCATENATION's inputs the scale of its output and propagates that
scale backwards through ops that must keep their input's scale (the slices of a CSP split). An op
whose output ends up with the concatenation's scale is fine unless its own arithmetic limits the
ratio of output to input scale: LEAKY_RELU does. Its negative-side multiplier is slope x input
scale / output scale, and XNNPACK refuses one below 2^-8; with timm's slope 0.01 that happens as
soon as the concatenation's range is more than 2.56 times the activation's. In a CSP stage both
inputs of the concatenation qualify: the bypass (the split of the LeakyReLU after `conv_exp`) and
the block path (the LeakyReLU after `conv_transition_b`); whichever has the narrower range falls
out of the delegate. Measured: CSPDarknet53 with calibrated random weights lost the two `conv_exp`
activations of stages 3 and 4; trained on synthetic shapes, a `conv_transition_b` one.

`separate_concat_scales` puts a `Requantize` between the concatenation and each input that comes
from a channel split or a LeakyReLU. It computes the identity (a 1x1 depthwise convolution with a
kernel of ones, exactly representable in int8), but as a DEPTHWISE_CONV_2D its input and output
may have different scales, so the activation keeps its own. It adds H x W x C multiply-adds per
input, a fraction of a percent of a stage. Only the int8 export uses it; float models, Keras and
fp16 files keep the plain graph.

The converter can also hand a LeakyReLU a wider scale elsewhere: trained on synthetic shapes,
CSPDarknet53's last block of stage 3 had its `conv2.act` output take the scale of the residual
Add after it (0.30 vs 0.11 in). Such cases depend on the data, so the export checks the converted
file: `refused_leaky_relus` names the LeakyReLU layers whose ops XNNPACK refused, and
`requantize_after` adds a `Requantize` after exactly those before converting once more.
"""

import re
import warnings

import keras
from keras import ops

from keras_csp.export.graph import layers_in_graph, rebuild
from keras_csp.layers.ops import ChannelSplit


@keras.saving.register_keras_serializable(package="keras_csp")
class Requantize(keras.layers.Layer):
    """The identity, computed as a 1x1 depthwise convolution with a kernel of ones.

    In float it changes nothing (x * 1.0); in a full-integer TFLite model it is a
    DEPTHWISE_CONV_2D, an op whose output scale is its own, which cuts a chain of ops that must
    share one quantization scale.
    """

    # Its tf_keras twin (keras_csp/export/twin.py): weightless; it exists for its output scale.
    TF_KERAS_TWIN = {"kind": "keras_op", "quantize": "output"}

    def call(self, x):
        ones = ops.ones((1, 1, x.shape[-1], 1), dtype=x.dtype)
        return ops.depthwise_conv(x, ones, strides=1, padding="valid")

    def compute_output_shape(self, input_shape):
        return input_shape


# Producers whose output scale must not be dictated by a concatenation (see the module doc).
_OWN_SCALE_PRODUCERS = (ChannelSplit, keras.layers.LeakyReLU, keras.layers.PReLU)


def _needs_own_scale(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history is not None and isinstance(history.operation, _OWN_SCALE_PRODUCERS)


def separate_concat_scales(model):
    """`(model, notes)`: `model` with a `Requantize` between every Concatenate and each input of it
    that a channel split or a LeakyReLU/PReLU produced (or `model` itself and no notes when there
    is none)."""
    count = 0

    def call_layer(layer, args, kwargs):
        nonlocal count
        if isinstance(layer, keras.layers.Concatenate) and args and isinstance(args[0], list):
            parts = list(args[0])
            for i, part in enumerate(parts):
                if _needs_own_scale(part):
                    parts[i] = Requantize(name=f"{layer.name}.requantize{i}")(part)
                    count += 1
            args = (parts, *args[1:])
        return layer(*args, **kwargs)

    rebuilt = rebuild(model, call_layer)
    if not count:
        return model, []
    note = (
        f"int8: requantized {count} concatenation input(s), so each split or LeakyReLU before a "
        "concatenation keeps its own scale (XNNPACK refuses a LEAKY_RELU whose output scale is "
        "far wider than its input's)"
    )
    return rebuilt, [note]


def nodes_outside_xnnpack(content):
    """The nodes of the `.tflite` bytes `content` that XNNPACK leaves to the interpreter (see
    `keras_csp.lite.undelegated_nodes`)."""
    import tensorflow as tf

    from keras_csp.lite import undelegated_nodes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_content=content)  # XNNPACK: the default
    try:
        return undelegated_nodes(interpreter)
    except RuntimeError as e:
        if "XNNPACK" not in str(e):
            raise
        # Seen for a reduced-width CSPPeleeNet with some random weights (an open bug: the same
        # file fails in a fresh process too); say what failed instead of the interpreter's text.
        raise RuntimeError(
            f"the converted int8 model cannot run under XNNPACK (TFLite's CPU delegate): {e}; "
            "quantize='fp16' or 'dynamic' still export this model"
        ) from e


def refused_leaky_relus(nodes, model):
    """Names of `model`'s LeakyReLU layers among `nodes` (`nodes_outside_xnnpack` of the file
    converted from `model`)."""
    leaky = {
        layer.name for layer in layers_in_graph(model) if isinstance(layer, keras.layers.LeakyReLU)
    }
    found = set()
    for node in nodes:
        if node["op_name"] != "LEAKY_RELU":
            continue
        # Tensor names are TF op paths such as "deploy_1/stages.3.blocks.7.conv2.act_1/LeakyRelu"
        # (fused names joined by ";"): a path component, less the "_N" a call adds, is the layer.
        for name in node["output_names"]:
            for part in re.split(r"[;/]", name):
                for candidate in (part, re.sub(r"_\d+$", "", part)):
                    if candidate in leaky:
                        found.add(candidate)
    return sorted(found)


def requantize_after(model, layer_names):
    """`model` with a `Requantize` after each layer named in `layer_names`."""
    names = set(layer_names)

    def call_layer(layer, args, kwargs):
        output = layer(*args, **kwargs)
        if layer.name in names:
            output = Requantize(name=f"{layer.name}.requantize")(output)
        return output

    return rebuild(model, call_layer)
