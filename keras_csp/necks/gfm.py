"""GFM, the paper's Global Fusion Model (Fig. 6b): fuse every scale into one map, redistribute.

    P3, P4, P5 -> 1x1 lateral convs -> resized to stride 16 (pool P3, upsample P5) -> concat
               -> 1x1 conv: the global map G
    output P{s} = 1x1 conv(concat[lateral(P{s}), G resized to stride 2**s])

Every output level sees every scale (the "global" fusion that ThunderNet's CEM also does), at the
price of the large concatenation that EFM avoids.
"""

import keras

from keras_csp.layers.conv import conv_bn_act
from keras_csp.necks.common import (
    OUTPUT_LEVELS,
    apply_input_attention,
    apply_output_attention,
    check_pyramid,
    downsample,
    level_widths,
    upsample,
)
from keras_csp.registry import NECKS

GFM_LEVELS = NECKS["gfm"].levels


def GFM(features, filters=128, attention=None, activation="leaky_relu", name="neck"):
    """Global Fusion Model.

    Args:
        features: dict of backbone features with at least `P3`, `P4`, `P5`.
        filters: width of each output level, one int or `(w3, w4, w5)`; the global map has the
            width of P4.
        attention: `None`, `"sam"` (on each output level) or `"spp"` (on P5 before the neck).
        activation: activation of the conv units.
        name: prefix of the layer names (`neck.global.fuse`, `neck.p3.redistribute`, ...).

    Returns:
        `{"P3": ..., "P4": ..., "P5": ...}`.
    """
    check_pyramid(features, GFM_LEVELS, "GFM")
    widths = level_widths(filters, "GFM")
    sources = apply_input_attention(features, attention, activation, name)
    laterals = {
        s: conv_bn_act(
            sources[f"P{s}"], widths[s], 1, activation=activation, name=f"{name}.p{s}.lateral"
        )
        for s in OUTPUT_LEVELS
    }
    to_middle = [
        downsample(laterals[3], f"{name}.global.pool_p3"),
        laterals[4],
        upsample(laterals[5], f"{name}.global.up_p5"),
    ]
    g = keras.layers.Concatenate(name=f"{name}.global.concat")(to_middle)
    g = conv_bn_act(g, widths[4], 1, activation=activation, name=f"{name}.global.fuse")
    resized = {
        3: upsample(g, f"{name}.p3.up_global"),
        4: g,
        5: downsample(g, f"{name}.p5.pool_global"),
    }
    outputs = {}
    for s in OUTPUT_LEVELS:
        prefix = f"{name}.p{s}"
        x = keras.layers.Concatenate(name=f"{prefix}.concat")([laterals[s], resized[s]])
        outputs[f"P{s}"] = conv_bn_act(
            x, widths[s], 1, activation=activation, name=f"{prefix}.redistribute"
        )
    return apply_output_attention(outputs, attention, name)
