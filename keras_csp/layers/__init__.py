"""Building blocks of CSP networks: conv units, blocks, and the CSP stage."""

from keras_csp.layers.blocks import BLOCKS, bottleneck_block, dark_block, partial_bottleneck_block
from keras_csp.layers.conv import activation_layer, conv_bn_act
from keras_csp.layers.ops import ChannelSplit, EdgePadMaxPooling2D, PartialShortcut
from keras_csp.layers.stages import (
    FUSIONS,
    csp_stage,
    plain_stage,
    residual_stage,
    split_channels,
)

__all__ = [
    "BLOCKS",
    "FUSIONS",
    "ChannelSplit",
    "EdgePadMaxPooling2D",
    "PartialShortcut",
    "activation_layer",
    "bottleneck_block",
    "conv_bn_act",
    "csp_stage",
    "dark_block",
    "partial_bottleneck_block",
    "plain_stage",
    "residual_stage",
    "split_channels",
]
