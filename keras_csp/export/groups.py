"""Wider groups for XNNPACK: a grouped convolution with few channels per group, made block-diagonal.

ResNeXt's 3x3 convolutions have 32 groups; in CSPResNeXt50's first stage (128 channels) that is 4
channels per group, in the second 8. XNNPACK's grouped-convolution kernels work on SIMD tiles of
16+ channels and spend nearly as long on a 4-channel group as on a 16-channel one. Measured (LiteRT
2.3, XNNPACK, 2 threads, batch 1, 3x3, stride 1):

| map        | groups x channels | fp32     | int8     |
|------------|-------------------|----------|----------|
| 64x64x128  | 32 x 4            | 1.04 ms  | 0.67 ms  |
| 64x64x128  | 8 x 16 (widened)  | 0.85 ms  | 0.25 ms  |
| 32x32x256  | 32 x 8            | 0.45 ms  | 0.14 ms  |
| 32x32x256  | 16 x 16 (widened) | 0.46 ms  | 0.13 ms  |

`widen_groups` merges each run of adjacent groups into one group of at least `MIN_GROUP_CHANNELS`
channels (or all of them, in a layer narrower than that) whose kernel is block-diagonal: the
original kernels on the diagonal, exact zeros elsewhere. The convolution computes the same
numbers (the added terms are products with zero, in float and in int8, whose per-channel weight
scales do not change), and stays a single grouped CONV_2D. Only the TFLite export uses it, for
modes that do not train (a fine-tuned zero would no longer be zero); Keras models keep their layers
and weights (TF's oneDNN grouped convolution is not faster with wider groups).
"""

import keras
import numpy as np

from keras_csp.export.graph import layers_in_graph, replace_layers

MIN_GROUP_CHANNELS = 16


def _merge_factor(layer):
    """How many adjacent groups of `layer` to merge into one (1: leave it as it is)."""
    if not isinstance(layer, keras.layers.Conv2D) or layer.groups <= 1:
        return 1
    if layer.data_format != "channels_last" or not layer.built:
        return 1
    channels_in = layer.kernel.shape[-2]  # per group
    channels_out = layer.filters // layer.groups
    if min(channels_in, channels_out) >= MIN_GROUP_CHANNELS:
        return 1
    for factor in range(2, layer.groups):
        if layer.groups % factor == 0 and factor * min(channels_in, channels_out) >= (
            MIN_GROUP_CHANNELS
        ):
            return factor
    return layer.groups  # a narrow layer: one dense convolution


def block_diagonal_kernel(kernel, groups, factor):
    """The kernel of the same convolution with `groups / factor` groups (numpy in, numpy out).

    `kernel` is Keras' grouped layout (kh, kw, in_per_group, out): output channel `o` belongs to
    group `o // out_per_group` and reads that group's inputs. In the merged layout each output
    channel reads `factor` groups' inputs, and the weights for the groups it did not read are 0.
    """
    kh, kw, in_per_group, out = kernel.shape
    out_per_group = out // groups
    merged = np.zeros((kh, kw, in_per_group * factor, out), kernel.dtype)
    for o in range(out):
        slot = (o // out_per_group) % factor  # position of o's old group inside its new group
        merged[:, :, slot * in_per_group : (slot + 1) * in_per_group, o] = kernel[:, :, :, o]
    return merged


def planned_widenings(model):
    """`{layer name: merge factor}` for the grouped convolutions `widen_groups` would change."""
    plan = {}
    for layer in layers_in_graph(model):
        factor = _merge_factor(layer)
        if factor > 1:
            plan[layer.name] = factor
    return plan


def widen_groups(model):
    """`(model, notes)`: `model` with every grouped convolution of fewer than
    `MIN_GROUP_CHANNELS` channels per group made block-diagonal (or `model` itself, no notes)."""
    plan = planned_widenings(model)
    if not plan:
        return model, []

    sizes = set()  # "32 -> 8" per distinct change, for the note

    def make(layer, args):
        groups = layer.groups // plan[layer.name]
        sizes.add(f"{layer.groups} -> {groups}")
        wide = type(layer).from_config({**layer.get_config(), "groups": groups})
        wide.build(args[0].shape)
        weights = layer.get_weights()
        weights[0] = block_diagonal_kernel(weights[0], layer.groups, plan[layer.name])
        wide.set_weights(weights)
        return wide

    rebuilt = replace_layers(model, plan, make)
    note = (
        f"XNNPACK: widened the groups of {len(plan)} grouped convolution(s) to >= "
        f"{MIN_GROUP_CHANNELS} channels per group, block-diagonal "
        f"({', '.join(sorted(sizes))} groups)"
    )
    return rebuilt, [note]
