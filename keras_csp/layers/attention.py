"""The pieces the paper's detection necks add to plain convolutions: Maxout, SAM and SPP.

* `Maxout` is the paper's cross-channel pooling that compresses a concatenated feature pyramid
  (the "−75 % feature-pyramid memory" claim for EFM). Keras has no such layer, so it is a
  registered one.
* `spatial_attention` (ThunderNet's SAM, as EFM (SAM) uses it) and `spatial_pyramid_pooling`
  (YOLOv3-SPP) are functional helpers over plain Keras layers, so that the profiler sees their
  convolutions and TFLite gets ops it knows.
"""

import keras
from keras import ops

from keras_csp.layers.conv import batch_norm
from keras_csp.registry import ATTENTIONS

PACKAGE = "keras_csp"


def check_attention(attention):
    if attention not in ATTENTIONS:
        raise ValueError(
            f"attention={attention!r} is not allowed; allowed: None, 'sam' (spatial attention) "
            "or 'spp' (spatial pyramid pooling)."
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class Maxout(keras.layers.Layer):
    """Cross-channel max pooling: C channels -> `num_units` channels.

    The last axis is read as `C // num_units` consecutive groups of `num_units` channels, and unit
    j is the maximum of channel j over the groups. So `Maxout(c)` on `concat([a, b, d])` of three
    c-channel maps is the element-wise `max(a, b, d)`: each unit is a maxout over one linear piece
    per source, which is how EFM fuses its three scales without keeping 3c channels.
    """

    # Its tf_keras twin (keras_csp/export/twin.py): weightless; a maximum keeps its inputs' scale.
    TF_KERAS_TWIN = {"kind": "keras_op", "quantize": "passthrough"}

    def __init__(self, num_units, **kwargs):
        super().__init__(**kwargs)
        ok = isinstance(num_units, int) and not isinstance(num_units, bool)
        if not ok or num_units < 1:
            raise ValueError(
                f"num_units={num_units!r} is not allowed; allowed: an integer >= 1 (the output "
                "channels)."
            )
        self.num_units = num_units

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.num_units:
            raise ValueError(
                f"Maxout {self.name!r} with num_units={self.num_units} got {channels} input "
                f"channels; allowed: a multiple of {self.num_units}."
            )

    def call(self, x):
        groups = x.shape[-1] // self.num_units
        if groups == 1:
            return x
        # Slices and maximum rather than reshape + reduce_max: no dynamic shapes, and TFLite's GPU
        # delegate runs MAXIMUM, which it does not for a reduce over a split axis.
        u = self.num_units
        out = x[..., :u]
        for g in range(1, groups):
            out = ops.maximum(out, x[..., g * u : (g + 1) * u])
        return out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_units,)

    def get_config(self):
        return {**super().get_config(), "num_units": self.num_units}


def spatial_attention(x, name):
    """SAM: a 1x1 conv-BN with sigmoid gives a per-position, per-channel weight in (0, 1) that
    scales `x` (ThunderNet's spatial attention module, computed from the features themselves).

    Layers: `{name}.conv`, `{name}.bn`, `{name}.sigmoid`, `{name}.scale`.
    """
    a = keras.layers.Conv2D(x.shape[-1], 1, use_bias=False, name=f"{name}.conv")(x)
    a = batch_norm(f"{name}.bn")(a)
    a = keras.layers.Activation("sigmoid", name=f"{name}.sigmoid")(a)
    return keras.layers.Multiply(name=f"{name}.scale")([x, a])


def spatial_pyramid_pooling(x, name, pool_sizes=(5, 9, 13)):
    """SPP as in YOLOv3-SPP: stride-1 max-pools of each size, concatenated with the input.

    The output has `(1 + len(pool_sizes)) * C` channels and the input's spatial size. Layers:
    `{name}.pool{k}` and `{name}.concat`.
    """
    for k in pool_sizes:
        if not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ValueError(
                f"pool_sizes={tuple(pool_sizes)!r} is not allowed; allowed: odd integers >= 1."
            )
    pools = [
        keras.layers.MaxPooling2D(k, strides=1, padding="same", name=f"{name}.pool{k}")(x)
        for k in pool_sizes
    ]
    return keras.layers.Concatenate(name=f"{name}.concat")([x, *pools])
