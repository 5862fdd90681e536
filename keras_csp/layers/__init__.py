"""Building blocks of CSP networks: conv units, blocks, dense layers, and the CSP stage."""

from keras_csp.layers.attention import Maxout, spatial_attention, spatial_pyramid_pooling
from keras_csp.layers.blocks import (
    BLOCKS,
    basic_block,
    bottleneck_block,
    dark_block,
    partial_basic_block,
    partial_bottleneck_block,
)
from keras_csp.layers.conv import activation_layer, bn_act_conv, conv_bn_act, padded_conv
from keras_csp.layers.fused_batch_norm import FusedBatchNormalization
from keras_csp.layers.grouped_conv import GroupedConv2D, fast_grouped_conv_available
from keras_csp.layers.dense import (
    DENSE_LAYERS,
    dense_block,
    dense_layer,
    densenet_stem,
    densenet_transition,
    pelee_stem_block,
    peleenet_bottleneck,
    peleenet_transition,
    two_way_dense_layer,
)
from keras_csp.layers.ops import (
    ChannelSplit,
    EdgePadMaxPooling2D,
    FoldedBatchNormalization,
    PartialShortcut,
)
from keras_csp.layers.stages import (
    FUSIONS,
    POOLS,
    csp_stage,
    partial_dense_stage,
    plain_stage,
    residual_stage,
    split_channels,
)

__all__ = [
    "Maxout",
    "spatial_attention",
    "spatial_pyramid_pooling",
    "BLOCKS",
    "DENSE_LAYERS",
    "FUSIONS",
    "POOLS",
    "ChannelSplit",
    "EdgePadMaxPooling2D",
    "FoldedBatchNormalization",
    "FusedBatchNormalization",
    "GroupedConv2D",
    "PartialShortcut",
    "activation_layer",
    "basic_block",
    "bn_act_conv",
    "bottleneck_block",
    "conv_bn_act",
    "csp_stage",
    "dark_block",
    "dense_block",
    "dense_layer",
    "fast_grouped_conv_available",
    "densenet_stem",
    "densenet_transition",
    "padded_conv",
    "partial_basic_block",
    "partial_bottleneck_block",
    "partial_dense_stage",
    "pelee_stem_block",
    "peleenet_bottleneck",
    "peleenet_transition",
    "plain_stage",
    "residual_stage",
    "split_channels",
    "two_way_dense_layer",
]
