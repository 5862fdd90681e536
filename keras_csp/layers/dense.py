"""Dense layers, stems and transitions of DenseNet-BC and PeleeNet.

Dense layers are blocks in the sense of `csp_stage`: `layer(x, name) -> y`, where `y` is `x` with
the layer's new features concatenated after it (`[x, new]`, torchvision's order), so a stack of
them is a dense block and `csp_stage(..., conv_exp=False)` around them is the paper's partial
dense block. Layer names are the reference modules' paths:

* DenseNet (torchvision/timm): `features.denseblock1.denselayer1.{norm1,relu1,conv1,norm2,...}`,
  `features.transition1.{norm,relu,conv,pool}`, a stem `features.{conv0,norm0,relu0,pool0}`.
* PeleeNet (Robert-JunWang/PeleeNet): `features.stemblock.{stem1,stem2a,stem2b,pool,stem3}`,
  `features.denseblock1.denselayer1.{branch1a,branch1b,branch2a,branch2b,branch2c}`,
  `features.transition1` and `features.transition1_pool`; each unit is `{conv,norm}` (BasicConv2d).
"""

import keras

from keras_csp.layers.conv import (
    activation_layer,
    batch_norm,
    bn_act_conv,
    conv_bn_act,
    padded_conv,
)
from keras_csp.layers.ops import EdgePadMaxPooling2D


def dense_layer(x, name, growth_rate=32, bottleneck_width=4, activation="relu"):
    """DenseNet-BC's layer: BN-ReLU-1x1 conv to `bottleneck_width * growth_rate`, BN-ReLU-3x3 conv
    to `growth_rate`, concatenated after its input (pre-activation, as torchvision)."""
    bottleneck = bottleneck_width * growth_rate
    y = bn_act_conv(x, bottleneck, 1, activation=activation, name=name, suffix="1")
    y = bn_act_conv(y, growth_rate, 3, activation=activation, name=name, suffix="2")
    return keras.layers.Concatenate(name=f"{name}.concat")([x, y])


def peleenet_bottleneck(in_channels, growth_rate=32, bottleneck_width=1):
    """PeleeNet's dynamic bottleneck width for a two-way dense layer with `in_channels` inputs.

    `4 * floor((growth_rate / 2) * bottleneck_width / 4)`, shrunk to `4 * floor(in_channels / 8)`
    when it exceeds half the input (never in PeleeNet itself; it matters for the narrow input of a
    partial dense block). Zero means the input is too narrow for the layer.
    """
    width = int(growth_rate // 2 * bottleneck_width / 4) * 4
    if width > in_channels / 2:
        width = int(in_channels / 8) * 4
    return width


def two_way_dense_layer(x, name, growth_rate=32, bottleneck_width=1, activation="relu"):
    """PeleeNet's two-way dense layer: branch 1 is 1x1 -> b, 3x3 -> k/2; branch 2 is 1x1 -> b,
    3x3 -> k/2, 3x3 -> k/2; output `[x, branch1, branch2]` (post-activation conv-BN-ReLU units)."""
    in_channels = x.shape[-1]
    half = growth_rate // 2
    inter = peleenet_bottleneck(in_channels, growth_rate, bottleneck_width)
    if inter < 1:
        raise ValueError(
            f"{name!r} gets {in_channels} input channels, which leaves no bottleneck channels "
            "under PeleeNet's rule 4 * floor(channels / 8); allowed: at least 8 input channels."
        )

    def unit(y, filters, kernel_size, suffix):
        return conv_bn_act(
            y, filters, kernel_size, activation=activation, name=f"{name}.{suffix}",
            norm_name="norm",
        )

    branch1 = unit(unit(x, inter, 1, "branch1a"), half, 3, "branch1b")
    branch2 = unit(unit(unit(x, inter, 1, "branch2a"), half, 3, "branch2b"), half, 3, "branch2c")
    return keras.layers.Concatenate(name=f"{name}.concat")([x, branch1, branch2])


DENSE_LAYERS = {
    "bottleneck": dense_layer,
    "two_way": two_way_dense_layer,
}


def dense_block(x, depth, layer, name):
    """`depth` dense layers named `{name}.denselayer1` ... (1-based, as torchvision)."""
    for j in range(depth):
        x = layer(x, name=f"{name}.denselayer{j + 1}")
    return x


def densenet_stem(x, filters=64, activation="relu"):
    """torchvision's DenseNet stem: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool with padding 1."""
    x = padded_conv(x, filters, 7, 2, name="features.conv0", pad_name="features.pad0")
    x = batch_norm("features.norm0")(x)
    act = activation_layer(activation, "features.relu0")
    if act is not None:
        x = act(x)
    return EdgePadMaxPooling2D(3, 2, 1, name="features.pool0")(x)


def pelee_stem_block(x, filters=32, activation="relu"):
    """PeleeNet's stem block (stride 4): 3x3/2 -> filters; then 1x1 -> filters/2, 3x3/2 -> filters
    beside a 2x2/2 max-pool; concat [pool, conv]; 1x1 -> filters.

    The pool pads bottom/right on odd sizes ("same"), which equals PyTorch's `MaxPool2d(2, 2)` on
    every even size and keeps both branches the same size on odd ones (where PyTorch fails).
    """
    name = "features.stemblock"

    def unit(y, channels, kernel_size, strides, suffix):
        return conv_bn_act(
            y, channels, kernel_size, strides, activation=activation, name=f"{name}.{suffix}",
            norm_name="norm",
        )

    x = unit(x, filters, 3, 2, "stem1")
    branch2 = unit(unit(x, filters // 2, 1, 1, "stem2a"), filters, 3, 2, "stem2b")
    branch1 = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"{name}.pool")(x)
    x = keras.layers.Concatenate(name=f"{name}.concat")([branch1, branch2])
    return unit(x, filters, 1, 1, "stem3")


def densenet_transition(x, filters, name, pool=True, activation="relu"):
    """DenseNet's transition: BN-ReLU-1x1 conv to `filters` (`{name}.norm/relu/conv`), then a
    2x2/2 average pool (`{name}.pool`). Returns `(output, before_pool)`."""
    x = bn_act_conv(x, filters, 1, activation=activation, name=name)
    unpooled = x
    if pool:
        x = keras.layers.AveragePooling2D(2, 2, name=f"{name}.pool")(x)
    return x, unpooled


def peleenet_transition(x, filters, name, pool=True, activation="relu"):
    """PeleeNet's transition: 1x1 conv-BN-ReLU to `filters` (`{name}.conv/norm`), then a 2x2/2
    average pool (`{name}_pool`) except after the last stage. Returns `(output, before_pool)`."""
    x = conv_bn_act(x, filters, 1, activation=activation, name=name, norm_name="norm")
    unpooled = x
    if pool:
        x = keras.layers.AveragePooling2D(2, 2, name=f"{name}_pool")(x)
    return x, unpooled
