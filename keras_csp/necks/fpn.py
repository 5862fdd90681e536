"""FPN and PANet, the top-down and top-down + bottom-up necks of the paper's ablation.

Both are written YOLOv3-style (concatenate, then a 1x1 conv) rather than with FPN's element-wise
add, so that levels may have different widths:

    FPN    P5' = smooth(lateral(P5))
           P{s}' = smooth(fuse(concat[lateral(P{s}), up(reduce(P{s+1}'))]))
    PANet  N3 = P3';  N{s} = aggregate(concat[down(N{s-1}), P{s}'])   (down: 3x3 stride-2 conv)
"""

import keras

from keras_csp.layers.conv import conv_bn_act
from keras_csp.necks.common import (
    apply_input_attention,
    apply_output_attention,
    check_pyramid,
    level_widths,
    upsample,
)
from keras_csp.registry import NECKS

FPN_LEVELS = NECKS["fpn"].levels


def _top_down(sources, widths, activation, name):
    outputs, above = {}, None
    for s in (5, 4, 3):
        w, prefix = widths[s], f"{name}.p{s}"
        x = conv_bn_act(sources[f"P{s}"], w, 1, activation=activation, name=f"{prefix}.lateral")
        if above is not None:
            up = conv_bn_act(above, w, 1, activation=activation, name=f"{prefix}.reduce")
            up = upsample(up, f"{prefix}.up")
            x = keras.layers.Concatenate(name=f"{prefix}.concat")([x, up])
            x = conv_bn_act(x, w, 1, activation=activation, name=f"{prefix}.fuse")
        x = conv_bn_act(x, w, 3, activation=activation, name=f"{prefix}.smooth")
        outputs[f"P{s}"] = above = x
    return {k: outputs[k] for k in ("P3", "P4", "P5")}


def FPN(features, filters=128, attention=None, activation="leaky_relu", name="neck"):
    """Feature Pyramid Network (top-down path only).

    Args:
        features: dict of backbone features with at least `P3`, `P4`, `P5`.
        filters: width of each output level, one int or `(w3, w4, w5)`.
        attention: `None`, `"sam"` (on each output level) or `"spp"` (on P5 before the neck).
        activation: activation of the conv units.
        name: prefix of the layer names.

    Returns:
        `{"P3": ..., "P4": ..., "P5": ...}`.
    """
    check_pyramid(features, FPN_LEVELS, "FPN")
    widths = level_widths(filters, "FPN")
    sources = apply_input_attention(features, attention, activation, name)
    outputs = _top_down(sources, widths, activation, name)
    return apply_output_attention(outputs, attention, name)


def PANet(features, filters=128, attention=None, activation="leaky_relu", name="neck"):
    """Path Aggregation Network: FPN followed by a bottom-up path (YOLOv4's neck).

    Arguments and return value as for `FPN`.
    """
    check_pyramid(features, FPN_LEVELS, "PANet")
    widths = level_widths(filters, "PANet")
    sources = apply_input_attention(features, attention, activation, name)
    top_down = _top_down(sources, widths, activation, name)
    outputs = {"P3": top_down["P3"]}
    below = top_down["P3"]
    for s in (4, 5):
        w, prefix = widths[s], f"{name}.p{s}"
        down = conv_bn_act(below, w, 3, strides=2, activation=activation, name=f"{prefix}.down")
        x = keras.layers.Concatenate(name=f"{prefix}.bottom_up_concat")([down, top_down[f"P{s}"]])
        below = conv_bn_act(x, w, 1, activation=activation, name=f"{prefix}.aggregate")
        outputs[f"P{s}"] = below
    return apply_output_attention(outputs, attention, name)
