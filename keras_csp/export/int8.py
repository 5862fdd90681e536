"""Keeping a full-integer CSP model inside XNNPACK: a requantizing step on each CSP bypass.

In a CSP stage the input is split along channels; one part bypasses the blocks and goes straight
into the stage's concatenation. TFLite's int8 quantizer gives CONCATENATION's inputs the scale of
its output, and propagates that scale backwards through the slices of the split to the op that
made the split's input, usually a LEAKY_RELU. When the block path has the wider range, that
LEAKY_RELU's output scale ends up several times its input scale, and its negative-side multiplier
(slope x input scale / output scale; 0.01 x 0.36 in CSPDarknet53's stages 3 and 4) falls below
what XNNPACK accepts (2^-8): the op runs outside the delegate, splitting the graph in three.

`separate_split_scales` puts a `Requantize` between each split part and the concatenation it
feeds. It computes the identity (a 1x1 depthwise convolution with a kernel of ones, exactly
representable in int8), but as a DEPTHWISE_CONV_2D its input and output may have different scales,
so the split keeps the scale of the activation before it. It adds H x W x C multiply-adds per
bypass, a fraction of a percent of a stage. Only the int8 export uses it; float models, Keras and
fp16 files keep the plain graph.
"""

import keras
from keras import ops

from keras_csp.export.graph import replay
from keras_csp.layers.ops import ChannelSplit


@keras.saving.register_keras_serializable(package="keras_csp")
class Requantize(keras.layers.Layer):
    """The identity, computed as a 1x1 depthwise convolution with a kernel of ones.

    In float it changes nothing (x * 1.0); in a full-integer TFLite model it is a
    DEPTHWISE_CONV_2D, an op whose output scale is its own, which cuts a chain of ops that must
    share one quantization scale.
    """

    def call(self, x):
        ones = ops.ones((1, 1, x.shape[-1], 1), dtype=x.dtype)
        return ops.depthwise_conv(x, ones, strides=1, padding="valid")

    def compute_output_shape(self, input_shape):
        return input_shape


def _from_split(tensor):
    history = getattr(tensor, "_keras_history", None)
    return history is not None and isinstance(history.operation, ChannelSplit)


def separate_split_scales(model):
    """`(model, notes)`: `model` with a `Requantize` on every split part that a Concatenate takes
    directly (or `model` itself and no notes when there is none)."""
    count = 0

    def call_layer(layer, args, kwargs):
        nonlocal count
        if isinstance(layer, keras.layers.Concatenate) and args and isinstance(args[0], list):
            parts = list(args[0])
            for i, part in enumerate(parts):
                if _from_split(part):
                    parts[i] = Requantize(name=f"{layer.name}.requantize{i}")(part)
                    count += 1
            args = (parts, *args[1:])
        return layer(*args, **kwargs)

    inputs = [
        keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=t._keras_history.operation.name)
        for t in model.inputs
    ]
    outputs = replay(model, inputs, call_layer)
    if not count:
        return model, []
    rebuilt = keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
    note = (
        f"int8: requantized {count} CSP bypass(es) before their concatenation, so the activation "
        "before each split keeps its own scale (XNNPACK refuses a LEAKY_RELU whose output scale "
        "is far wider than its input's)"
    )
    return rebuilt, [note]
