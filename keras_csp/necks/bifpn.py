"""BiFPN, EfficientDet's weighted bidirectional feature pyramid (Tan et al., 2020), on P3-P5.

One BiFPN layer, repeated `repeats` times (each with its own weights):

    top-down   P4_td  = conv(fuse[P4, up(P5)])
               P3_out = conv(fuse[P3, up(P4_td)])
    bottom-up  P4_out = conv(fuse[P4, P4_td, down(P3_out)])
               P5_out = conv(fuse[P5, down(P4_out)])

`fuse` is the fast normalized fusion: one learned scalar per input, w_i = relu(w_i) /
(sum_j relu(w_j) + epsilon), output sum_i w_i * x_i (`WeightedFusion`). `conv` is a 3x3
conv-BN-act, the unit of the other necks here (EfficientDet uses a separable conv); `up` is a
nearest 2x upsampling and `down` a 2x2 max-pool, each followed by a 1x1 conv-BN-act only where
the two levels' widths differ. The backbone's levels first go through 1x1 lateral convs to the
output widths.

This file is the whole neck: its function, its layer and that layer's tf_keras twin (QAT and
pruning, keras_csp/export/twin.py); `keras_csp.registry.NECKS["bifpn"]` registers it with its
options `repeats` and `epsilon`.
"""

import functools

import keras
from keras import ops

from keras_csp.layers.conv import conv_bn_act
from keras_csp.necks.common import (
    apply_input_attention,
    apply_output_attention,
    check_pyramid,
    downsample,
    level_widths,
    upsample,
)
from keras_csp.registry import NECKS, neck_options

BIFPN_LEVELS = NECKS["bifpn"].levels
_DEFAULTS = neck_options("bifpn")


def _fast_normalized_fusion(weights, inputs, epsilon, relu):
    """sum_i w_i x_i with w = relu(w) / (sum relu(w) + epsilon): shared by both twins."""
    weights = relu(weights)
    weights = weights / (sum(weights[i] for i in range(len(inputs))) + epsilon)
    total = inputs[0] * weights[0]
    for i in range(1, len(inputs)):
        total = total + inputs[i] * weights[i]
    return total


class _FusionWeights:
    """What the Keras layer and its tf_keras twin share: epsilon, one weight per input (starting
    at 1, an even average) and the config; both APIs spell these the same."""

    def __init__(self, epsilon=_DEFAULTS["epsilon"], **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.fusion_weights = self.add_weight(
            name="fusion_weights", shape=(len(input_shape),), initializer="ones"
        )

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_csp")
class WeightedFusion(_FusionWeights, keras.layers.Layer):
    """BiFPN's fast normalized fusion of same-shaped inputs: one non-negative weight per input,
    normalized to sum to (nearly) 1."""

    # keras_csp/export/twin.py: the tf_keras layer is `tf_keras_layer()`'s; tfmot quantizes the
    # weighted sum's output (arithmetic).
    TF_KERAS_TWIN = {"kind": "own", "quantize": "output"}

    def call(self, inputs):
        return _fast_normalized_fusion(self.fusion_weights, inputs, self.epsilon, ops.relu)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def tf_keras_layer(self):
        """The tf_keras twin (same weights, same arithmetic); tf_keras is imported only here."""
        return _tf_keras_weighted_fusion()(epsilon=self.epsilon, name=self.name)


@functools.cache
def _tf_keras_weighted_fusion():
    import tensorflow as tf
    import tf_keras

    class WeightedFusion(_FusionWeights, tf_keras.layers.Layer):  # noqa: F811 - the twin
        def call(self, inputs):
            return _fast_normalized_fusion(self.fusion_weights, inputs, self.epsilon, tf.nn.relu)

        def get_prunable_weights(self):
            return []  # one scalar per input: nothing to prune

    return WeightedFusion


def _resample(x, width, up, activation, name):
    """x moved one level up (nearest 2x) or down (2x2 max-pool), then to `width` if it differs."""
    x = upsample(x, f"{name}.up") if up else downsample(x, f"{name}.down")
    if x.shape[-1] != width:
        x = conv_bn_act(x, width, 1, activation=activation, name=f"{name}.reduce")
    return x


def _node(inputs, width, epsilon, activation, name):
    fused = WeightedFusion(epsilon=epsilon, name=f"{name}.fuse")(inputs)
    return conv_bn_act(fused, width, 3, activation=activation, name=f"{name}.conv")


def _bifpn_layer(p, widths, epsilon, activation, name):
    """One BiFPN layer on {3, 4, 5: tensor}."""
    def move(x, level, up, tag):
        return _resample(x, widths[level], up, activation, f"{name}.{tag}")

    td4 = _node([p[4], move(p[5], 4, True, "p5_to_p4")], widths[4], epsilon, activation,
                f"{name}.p4_td")
    out3 = _node([p[3], move(td4, 3, True, "p4_to_p3")], widths[3], epsilon, activation,
                 f"{name}.p3_out")
    out4 = _node([p[4], td4, move(out3, 4, False, "p3_to_p4")], widths[4], epsilon, activation,
                 f"{name}.p4_out")
    out5 = _node([p[5], move(out4, 5, False, "p4_to_p5")], widths[5], epsilon, activation,
                 f"{name}.p5_out")
    return {3: out3, 4: out4, 5: out5}


def BiFPN(features, filters=128, attention=None, activation="leaky_relu", name="neck",
          repeats=_DEFAULTS["repeats"], epsilon=_DEFAULTS["epsilon"]):
    """EfficientDet's BiFPN (see the module's docstring).

    Args:
        features: dict of backbone features with at least `P3`, `P4`, `P5`.
        filters: width of each output level, one int or `(w3, w4, w5)`.
        attention: `None`, `"sam"` (on each output level) or `"spp"` (on P5 before the neck).
        activation: activation of the conv units.
        name: prefix of the layer names.
        repeats: BiFPN layers stacked (>= 1).
        epsilon: of the fast normalized fusion (> 0).

    Returns:
        `{"P3": ..., "P4": ..., "P5": ...}`.
    """
    options = neck_options("bifpn", {"repeats": repeats, "epsilon": epsilon})
    check_pyramid(features, BIFPN_LEVELS, "BiFPN")
    widths = level_widths(filters, "BiFPN")
    sources = apply_input_attention(features, attention, activation, name)
    p = {
        s: conv_bn_act(sources[f"P{s}"], widths[s], 1, activation=activation,
                       name=f"{name}.p{s}.lateral")
        for s in BIFPN_LEVELS
    }
    for r in range(options["repeats"]):
        p = _bifpn_layer(p, widths, options["epsilon"], activation, f"{name}.bifpn{r}")
    return apply_output_attention({f"P{s}": p[s] for s in BIFPN_LEVELS}, attention, name)
