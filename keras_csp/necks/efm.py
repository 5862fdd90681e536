"""EFM, the paper's Exact Fusion Model (Sec. 3.2, Fig. 6c).

YOLOv3 gives each ground-truth box to the anchor of one scale s, and the box's size can reach the
neighbouring scales' anchors; EFM therefore builds output level s from exactly the backbone levels
s-1, s and s+1 (the "exact" receptive fields), instead of from every level (GFM) or from the
levels above only (FPN). The concatenated pyramid is compressed by Maxout, which keeps one map of
the level's width instead of three: the paper's memory argument.

The paper gives no layer widths, kernel sizes or Maxout placement (architectures.md §9), so this is
one reading of Fig. 6c:

    P{s-1} -> max-pool 2 -> 1x1 conv ┐
    P{s}   ------------->  1x1 conv ├ concat -> Maxout(w_s) [-> SAM]  ==> output P{s}
    P{s+1} -> 1x1 conv -> upsample 2 ┘

Each 1x1 conv-BN-act maps its source to the level's width w_s, so Maxout takes the element-wise
maximum over the sources (a maxout unit with one linear piece per scale). P5 has no P6 above it and
fuses P4 and P5 only. The convs run at the coarser of the two resolutions (pool before, upsample
after), which keeps the neck cheap.
"""

import keras

from keras_csp.layers.attention import Maxout
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

EFM_LEVELS = NECKS["efm"].levels


def EFM(features, filters=128, attention=None, activation="leaky_relu", name="neck"):
    """Exact Fusion Model: output level s fuses backbone levels s-1, s, s+1 through Maxout.

    Args:
        features: dict of backbone features `{"P2": ..., "P3": ..., "P4": ..., "P5": ...}` (strides
            4 to 32; more levels are ignored).
        filters: width of each output level, one int or `(w3, w4, w5)`.
        attention: `None`, `"sam"` (spatial attention on each fused level: EFM (SAM), the paper's
            final head) or `"spp"` (SPP on P5 before fusion: EFM (SPP)).
        activation: activation of the conv units.
        name: prefix of the layer names (`neck.p3.from_p2.conv`, `neck.p3.maxout`, ...).

    Returns:
        `{"P3": ..., "P4": ..., "P5": ...}` with widths `filters`.
    """
    check_pyramid(features, EFM_LEVELS, "EFM")
    widths = level_widths(filters, "EFM")
    sources = apply_input_attention(features, attention, activation, name)
    outputs = {}
    for s in OUTPUT_LEVELS:
        w, prefix = widths[s], f"{name}.p{s}"
        below = downsample(sources[f"P{s - 1}"], f"{prefix}.pool_p{s - 1}")
        parts = [
            conv_bn_act(below, w, 1, activation=activation, name=f"{prefix}.from_p{s - 1}"),
            conv_bn_act(sources[f"P{s}"], w, 1, activation=activation, name=f"{prefix}.from_p{s}"),
        ]
        if s + 1 in EFM_LEVELS:
            above = conv_bn_act(
                sources[f"P{s + 1}"], w, 1, activation=activation, name=f"{prefix}.from_p{s + 1}"
            )
            parts.append(upsample(above, f"{prefix}.up_p{s + 1}"))
        x = keras.layers.Concatenate(name=f"{prefix}.concat")(parts)
        outputs[f"P{s}"] = Maxout(w, name=f"{prefix}.maxout")(x)
    return apply_output_attention(outputs, attention, name)
