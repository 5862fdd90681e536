"""Residual blocks that CSP stages (or plain stages) stack.

Every block is a function `block(x, name) -> y`. Residual blocks used inside a CSP stage map C
channels to C channels; `functools.partial` binds their other arguments (see `models/config.py`).
The dense layers of DenseNet and PeleeNet, which grow the channel count, are in `layers/dense.py`.
"""

import keras

from keras_csp.layers.conv import activation_layer, conv_bn_act
from keras_csp.layers.ops import PartialShortcut


def _mid_channels(channels, bottle_ratio):
    mid = int(round(channels * bottle_ratio))
    if mid < 1:
        raise ValueError(
            f"bottle_ratio={bottle_ratio} leaves no channels in a block of {channels} channels; "
            "allowed: a ratio that gives at least one channel."
        )
    return mid


def bottleneck_block(x, name, bottle_ratio=0.5, groups=1, activation="leaky_relu"):
    """ResNet/ResNeXt bottleneck as in timm's `BottleneckBlock` (C -> C).

    1x1 -> mid, 3x3 (grouped for ResNeXt) -> mid, 1x1 -> C without activation, identity add, and the
    activation after the add.
    """
    channels = x.shape[-1]
    mid = _mid_channels(channels, bottle_ratio)
    shortcut = x
    x = conv_bn_act(x, mid, 1, activation=activation, name=f"{name}.conv1")
    x = conv_bn_act(x, mid, 3, groups=groups, activation=activation, name=f"{name}.conv2")
    x = conv_bn_act(x, channels, 1, activation=None, name=f"{name}.conv3")
    x = keras.layers.Add(name=f"{name}.add")([shortcut, x])
    act = activation_layer(activation, f"{name}.act3")
    return act(x) if act is not None else x


def dark_block(x, name, bottle_ratio=0.5, groups=1, activation="leaky_relu"):
    """Darknet residual block as in timm's `DarkBlock` (C -> C): 1x1 -> mid, 3x3 -> C, add.

    No activation after the add, unlike the bottleneck.
    """
    channels = x.shape[-1]
    mid = _mid_channels(channels, bottle_ratio)
    shortcut = x
    x = conv_bn_act(x, mid, 1, activation=activation, name=f"{name}.conv1")
    x = conv_bn_act(x, channels, 3, groups=groups, activation=activation, name=f"{name}.conv2")
    return keras.layers.Add(name=f"{name}.add")([shortcut, x])


def basic_block(x, name, bottle_ratio=1.0, groups=1, activation="leaky_relu"):
    """ResNet's basic block (C -> C): 3x3 -> mid, 3x3 -> C without activation, add, activation.

    `bottle_ratio` sets the first conv's width (1.0 in ResNet-10/18/34); named like timm's
    `BasicBlock` (`conv1`, `conv2`, and `act2` after the add).
    """
    channels = x.shape[-1]
    mid = _mid_channels(channels, bottle_ratio)
    shortcut = x
    x = conv_bn_act(x, mid, 3, groups=groups, activation=activation, name=f"{name}.conv1")
    x = conv_bn_act(x, channels, 3, groups=groups, activation=None, name=f"{name}.conv2")
    x = keras.layers.Add(name=f"{name}.add")([shortcut, x])
    act = activation_layer(activation, f"{name}.act2")
    return act(x) if act is not None else x


def partial_basic_block(x, filters, name, strides=1, groups=1, activation="leaky_relu"):
    """The residual block of the authors' Darknet `resnet10.cfg` (C_in -> filters).

    3x3 with the stage's stride -> filters, 3x3 -> filters linear, then Darknet's partial shortcut
    (subsampled identity added over the smaller channel count; no projection conv) and activation.
    """
    shortcut = x
    x = conv_bn_act(
        x, filters, 3, strides=strides, groups=groups, activation=activation, name=f"{name}.conv1"
    )
    x = conv_bn_act(x, filters, 3, groups=groups, activation=None, name=f"{name}.conv2")
    x = PartialShortcut(strides, name=f"{name}.shortcut")([shortcut, x])
    act = activation_layer(activation, f"{name}.act2")
    return act(x) if act is not None else x


def partial_bottleneck_block(
    x, filters, name, strides=1, bottle_ratio=0.25, groups=1, activation="leaky_relu"
):
    """The bottleneck of the authors' Darknet ResNet-50/ResNeXt-50 cfgs (C_in -> filters).

    1x1 -> mid, 3x3 with the stage's stride -> mid, 1x1 -> filters linear, then a partial shortcut
    (subsampled identity added over the smaller channel count, no projection conv) and activation.
    """
    mid = int(round(filters * bottle_ratio))
    shortcut = x
    x = conv_bn_act(x, mid, 1, activation=activation, name=f"{name}.conv1")
    x = conv_bn_act(
        x, mid, 3, strides=strides, groups=groups, activation=activation, name=f"{name}.conv2"
    )
    x = conv_bn_act(x, filters, 1, activation=None, name=f"{name}.conv3")
    x = PartialShortcut(strides, name=f"{name}.shortcut")([shortcut, x])
    act = activation_layer(activation, f"{name}.act3")
    return act(x) if act is not None else x


BLOCKS = {
    "basic": basic_block,
    "bottleneck": bottleneck_block,
    "dark": dark_block,
}
