"""The Cross Stage Partial stage: the paper's Figure 3, as `csp_stage` and `partial_dense_stage`.

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

`partial_dense_stage` is the paper's CSPDenseNet stage (Sec. 3.1): the base layer itself is split,
x0 = [x0', x0''], the blocks are dense layers (a partial dense block: x0'' and every layer's output
feed the next layer), and the transitions form the partial transition, which may carry the stage's
2x2 pooling (`pool`, applied where the two paths are concatenated). It is the split, blocks and
transitions that every CSP stage shares: `csp_stage` is timm's `conv_down` and `conv_exp` before it
(as timm keeps `CrossStage` apart from `DarkStage`, `plain_stage` here).
"""

import functools
import math

import keras

from keras_csp.layers.blocks import partial_basic_block, partial_bottleneck_block
from keras_csp.layers.conv import conv_bn_act
from keras_csp.layers.ops import ChannelSplit
from keras_csp.registry import CSP_FUSIONS

FUSIONS = CSP_FUSIONS  # the registry's CSP fusions (keras_csp/registry.py)


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


POOLS = (None, "avg", "max")


def _pool_layer(pool, name):
    # 2x2/2 without padding, as PyTorch's AvgPool2d(2, 2) in DenseNet's and PeleeNet's transitions.
    layer = keras.layers.AveragePooling2D if pool == "avg" else keras.layers.MaxPooling2D
    return layer(2, 2, name=name)


def _transition_unit(x, filters, name, activation):
    return conv_bn_act(x, filters, 1, activation=activation, name=name)


def _transition_b_width(transition_b_filters, block_out, filters, bypass, name):
    if transition_b_filters is None:
        return block_out
    if transition_b_filters == "complement":
        width = filters - bypass
    elif isinstance(transition_b_filters, int) and not isinstance(transition_b_filters, bool):
        width = transition_b_filters
    else:
        raise ValueError(
            f"transition_b_filters={transition_b_filters!r} is not allowed; allowed: None, "
            "'complement' or a positive integer."
        )
    if width < 1:
        raise ValueError(
            f"transition_b_filters={transition_b_filters!r} gives {width} channels in {name!r} "
            f"(filters={filters}, bypass={bypass}); allowed: a setting that leaves at least one."
        )
    return width


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
    conv_exp=True,
    **partial_transition,
):
    """A CSP stage around `depth` applications of `block(x, name) -> y` (timm's `CrossStage`).

    Args:
        x: the stage's input tensor.
        filters: output channels (for `fusion="last"` the output is the concatenation, whose width
            is the bypass part plus the block part's output).
        depth: number of blocks.
        block: a function `block(x, name) -> y`; any function that keeps the channel count works
            (see `keras_csp.layers.BLOCKS`), and so do dense layers that grow it
            (`keras_csp.layers.DENSE_LAYERS`: `depth` of them make the partial dense block).
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
        conv_exp: False splits the base layer itself (the stage input, or `conv_down`'s output),
            as the paper's CSPDenseNet does: x0 = [x0', x0'']. `expand_ratio` and `cross_linear`
            then do nothing.
        **partial_transition: `transition_b_filters`, `pool`, `unit`, `block_name` and
            `return_unpooled`, as `partial_dense_stage` takes them (which is this stage after
            `conv_down` and `conv_exp`).

    Returns:
        The stage output, or `(output, unpooled)` with `return_unpooled=True`.
    """
    check_fusion(fusion)
    if strides > 1:
        down = filters if down_growth else x.shape[-1]
        x = conv_bn_act(
            x, down, 3, strides, down_groups, activation=activation, name=f"{name}.conv_down"
        )
    if conv_exp:
        exp = int(round(filters * expand_ratio))
        x = conv_bn_act(
            x, exp, 1, activation=None if cross_linear else activation, name=f"{name}.conv_exp"
        )
    return partial_dense_stage(
        x, filters, depth, block, name, part_ratio, fusion, activation, channel_multiple,
        **partial_transition,
    )


def partial_dense_stage(
    x,
    filters,
    depth,
    layer,
    name,
    part_ratio=0.5,
    fusion="full",
    activation="leaky_relu",
    channel_multiple=1,
    transition_b_filters=None,
    pool=None,
    unit=None,
    block_name=None,
    return_unpooled=False,
):
    """The paper's CSPDenseNet stage (Sec. 3.1): the base layer `x` itself split, x0 = [x0', x0''].

    x0'' runs through `depth` applications of `layer(x, name) -> y` (dense layers make it a partial
    dense block), and the partial transition merges the two parts as `fusion` says. `csp_stage`
    is this stage after its `conv_down` and `conv_exp`; the arguments it shares mean the same.

    Args:
        transition_b_filters: width of `conv_transition_b`: None keeps the block part's width;
            "complement" makes it `filters` minus the bypass width, so the concatenation is
            already `filters` wide (a dense block's compressing transition); or an integer.
        pool: None, "avg" or "max": a 2x2/2 pooling (`{name}.pool`) right after the
            concatenation, so the stage downsamples where its two paths meet and
            `conv_transition` works at the lower resolution. This is how the partial transition
            of CSPDenseNet/CSPPeleeNet carries the pooling of DenseNet's transition layer.
        unit: the 1x1 transition unit, `unit(x, filters, name) -> y`; default conv-BN-act with
            `activation` (pass `keras_csp.layers.bn_act_conv` bound to a kernel size of 1 for
            DenseNet's pre-activation order).
        block_name: a function `index -> layer name prefix` for the layers; default
            `f"{name}.blocks.{index}"`.
        return_unpooled: also return the last tensor at the stage's own resolution: the
            concatenation when `pool` is set, else the output. Pyramid features are taken there.

    Returns:
        The stage output, or `(output, unpooled)` with `return_unpooled=True`.
    """
    check_fusion(fusion)
    if pool not in POOLS:
        raise ValueError(f"pool={pool!r} is not allowed; allowed: None, 'avg' or 'max'.")
    if unit is None:
        unit = functools.partial(_transition_unit, activation=activation)
    if block_name is None:
        block_name = functools.partial("{}.blocks.{}".format, name)
    bypass_channels, block_channels = split_channels(
        x.shape[-1], part_ratio, channel_multiple, name
    )
    bypass, xb = ChannelSplit([bypass_channels, block_channels], name=f"{name}.split")(x)
    for i in range(depth):
        xb = layer(xb, name=block_name(i))
    if fusion in ("full", "last"):
        width = _transition_b_width(
            transition_b_filters, xb.shape[-1], filters, bypass_channels, name
        )
        xb = unit(xb, width, name=f"{name}.conv_transition_b")
    x = unpooled = keras.layers.Concatenate(name=f"{name}.concat")([bypass, xb])
    if pool is not None:
        x = _pool_layer(pool, f"{name}.pool")(x)
    if fusion in ("full", "first"):
        x = unit(x, filters, name=f"{name}.conv_transition")
        if pool is None:
            unpooled = x
    return (x, unpooled) if return_unpooled else x


def plain_stage(x, filters, depth, block, name, strides=1, down_groups=1, activation="leaky_relu"):
    """The non-CSP stage (timm's `DarkStage`): conv_down to `filters`, then `depth` blocks."""
    x = conv_bn_act(
        x, filters, 3, strides, down_groups, activation=activation, name=f"{name}.conv_down"
    )
    for i in range(depth):
        x = block(x, name=f"{name}.blocks.{i}")
    return x


def residual_stage(
    x,
    filters,
    depth,
    name,
    strides=1,
    bottle_ratio=0.25,
    groups=1,
    activation="leaky_relu",
    block_type="bottleneck",
):
    """A stage of the authors' Darknet ResNet cfgs: the first block strides.

    `block_type="bottleneck"` (resnet50/resnext50.cfg) or `"basic"` (resnet10.cfg); both use
    Darknet's partial shortcut instead of projection convs.
    """
    if block_type not in ("bottleneck", "basic"):
        raise ValueError(
            f"block_type={block_type!r} is not allowed in a residual stage; allowed: "
            "'bottleneck' or 'basic'."
        )
    for i in range(depth):
        block_strides = strides if i == 0 else 1
        if block_type == "basic":
            x = partial_basic_block(
                x, filters, f"{name}.blocks.{i}", block_strides, groups, activation
            )
            continue
        x = partial_bottleneck_block(
            x,
            filters,
            name=f"{name}.blocks.{i}",
            strides=block_strides,
            bottle_ratio=bottle_ratio,
            groups=groups,
            activation=activation,
        )
    return x
