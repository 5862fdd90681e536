"""The Cross Stage Partial stage: the paper's Figure 3 as one function.

A CSP stage splits its base feature map into two parts. Part 1 (a fraction `part_ratio`, the
paper's γ) bypasses the stage; part 2 runs through the stage's blocks. A transition (1x1 conv-BN-act)
merges them, and `fusion` says where it sits:

    "full"   part 2 -> blocks -> transition ┐
             part 1 ─────────────────────────┴ concat -> transition    (Fig. 3b, timm's CrossStage)
    "first"  part 2 -> blocks ───────────────┐
             part 1 ─────────────────────────┴ concat -> transition    (Fig. 3c)
    "last"   part 2 -> blocks -> transition ┐
             part 1 ─────────────────────────┴ concat                   (Fig. 3d)

With `fusion="full"`, `part_ratio=0.5` and one `conv_exp` whose output is split with the bypass part
first, the layout and layer names are exactly timm's `CrossStage`, so timm weights load by name.
`plain_stage` is the non-CSP counterpart: every channel goes through the blocks.
"""

import math

import keras

from keras_csp.layers.blocks import partial_bottleneck_block
from keras_csp.layers.conv import conv_bn_act
from keras_csp.layers.ops import ChannelSplit

FUSIONS = ("full", "first", "last")


def check_part_ratio(part_ratio):
    ok = isinstance(part_ratio, (int, float)) and not isinstance(part_ratio, bool)
    if not ok or not math.isfinite(part_ratio) or not 0.0 < part_ratio < 1.0:
        raise ValueError(
            f"part_ratio={part_ratio!r} is not allowed; allowed: a number strictly between 0 and 1 "
            "(the fraction of a stage's channels that bypasses its blocks)."
        )


def check_fusion(fusion, allowed=FUSIONS):
    if fusion not in allowed:
        raise ValueError(
            f"fusion={fusion!r} does not exist; allowed: {', '.join(repr(f) for f in allowed)}."
        )


def split_channels(channels, part_ratio, channel_multiple=1, name="stage"):
    """(bypass, block) channel counts for a CSP split.

    The block part is rounded to a multiple of `channel_multiple` (the blocks' conv groups), so any γ
    gives a valid grouped conv; a split that leaves a part empty is an error.
    """
    check_part_ratio(part_ratio)
    block = channel_multiple * round(channels * (1.0 - part_ratio) / channel_multiple)
    bypass = channels - block
    if block < channel_multiple or bypass < 1:
        raise ValueError(
            f"part_ratio={part_ratio} leaves {bypass} bypass and {block} block channels out of "
            f"{channels} in {name!r} (block channels come in multiples of {channel_multiple}); "
            "allowed: a part_ratio that leaves both parts at least one unit wide."
        )
    return bypass, block


def csp_stage(
    x,
    filters,
    depth,
    block,
    name,
    strides=1,
    part_ratio=0.5,
    fusion="full",
    expand_ratio=1.0,
    down_groups=1,
    down_growth=False,
    cross_linear=False,
    channel_multiple=1,
    activation="leaky_relu",
):
    """A CSP stage around `depth` applications of `block(x, name) -> y`.

    Args:
        x: the stage's input tensor.
        filters: output channels (for `fusion="last"` the output is the concatenation, whose width
            is the bypass part plus the block part's output).
        depth: number of blocks.
        block: a function `block(x, name) -> y`; any function that keeps the channel count works
            (see `keras_csp.layers.BLOCKS`), and so do dense blocks that grow it.
        strides: stride of `conv_down` (a 3x3 conv-BN-act that exists only when strides > 1).
        part_ratio: γ, the fraction of the split map that bypasses the blocks; larger γ, fewer
            FLOPs. Strictly between 0 and 1.
        fusion: "full", "first" or "last" (see the module docstring).
        expand_ratio: `conv_exp` has `round(filters * expand_ratio)` channels.
        down_groups: groups of `conv_down`.
        down_growth: `conv_down` outputs `filters` channels instead of keeping its input width.
        cross_linear: no activation on `conv_exp`.
        channel_multiple: block channels are rounded to a multiple of this (the blocks' groups).
        activation: activation of every conv unit.
    """
    check_fusion(fusion)
    if strides > 1:
        down = filters if down_growth else x.shape[-1]
        x = conv_bn_act(
            x, down, 3, strides, down_groups, activation=activation, name=f"{name}.conv_down"
        )
    exp = int(round(filters * expand_ratio))
    x = conv_bn_act(
        x, exp, 1, activation=None if cross_linear else activation, name=f"{name}.conv_exp"
    )
    bypass_channels, block_channels = split_channels(exp, part_ratio, channel_multiple, name)
    bypass, xb = ChannelSplit([bypass_channels, block_channels], name=f"{name}.split")(x)
    for i in range(depth):
        xb = block(xb, name=f"{name}.blocks.{i}")
    if fusion in ("full", "last"):
        xb = conv_bn_act(
            xb, xb.shape[-1], 1, activation=activation, name=f"{name}.conv_transition_b"
        )
    x = keras.layers.Concatenate(name=f"{name}.concat")([bypass, xb])
    if fusion in ("full", "first"):
        x = conv_bn_act(x, filters, 1, activation=activation, name=f"{name}.conv_transition")
    return x


def plain_stage(x, filters, depth, block, name, strides=1, down_groups=1, activation="leaky_relu"):
    """The non-CSP stage (timm's `DarkStage`): conv_down to `filters`, then `depth` blocks."""
    x = conv_bn_act(
        x, filters, 3, strides, down_groups, activation=activation, name=f"{name}.conv_down"
    )
    for i in range(depth):
        x = block(x, name=f"{name}.blocks.{i}")
    return x


def residual_stage(
    x, filters, depth, name, strides=1, bottle_ratio=0.25, groups=1, activation="leaky_relu"
):
    """A stage of the authors' Darknet ResNet-50/ResNeXt-50 cfgs: the first block strides."""
    for i in range(depth):
        x = partial_bottleneck_block(
            x,
            filters,
            name=f"{name}.blocks.{i}",
            strides=strides if i == 0 else 1,
            bottle_ratio=bottle_ratio,
            groups=groups,
            activation=activation,
        )
    return x
