"""A grouped `Conv2D` that runs as one TensorFlow convolution instead of Keras' XLA detour.

Keras 3's TensorFlow backend computes every `Conv2D(groups > 1)` inside a nested
`tf.function(jit_compile=True)`. On CPU that costs ~13x the time of the convolution itself
forward (a 64x64x128, groups=32, 3x3 conv: 40 ms vs 2.4 ms) and ~300x in the gradient, which makes
ResNeXt-style models nearly untrainable on CPU. `tf.nn.conv2d` accepts a grouped filter
(`in_channels / groups` input channels) directly, and TensorFlow's oneDNN kernels run it forward
and backward at full speed; TFLite converts it to a single grouped CONV_2D.

Without oneDNN (`TF_ENABLE_ONEDNN_OPTS=0`, or a CPU build without it) TensorFlow's own CPU kernels
have no grouped-convolution gradient, so the layer falls back to Keras' path there. The layer is a
`Conv2D` in every other respect: same config, same weights (`kernel` of shape
(kh, kw, in/groups, out)), same outputs; only the class name in a `.keras` file differs.
"""

import functools

import keras

PACKAGE = "keras_csp"


@functools.cache
def fast_grouped_conv_available():
    """Whether `tf.nn.conv2d` can run grouped convolutions here, forward and backward."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return True  # cuDNN runs grouped convolutions natively.
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # a TF without this private helper: assume the slow but safe path.
        return False
    return bool(_pywrap_util_port.IsMklEnabled())


@keras.saving.register_keras_serializable(package=PACKAGE)
class GroupedConv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose grouped convolution is one `tf.nn.conv2d` call.

    Same arguments, weights and outputs as `Conv2D`; ungrouped (`groups=1`), channels-first, or
    without a fast kernel (see `fast_grouped_conv_available`), it behaves exactly as `Conv2D`.
    """

    # Its tf_keras twin (keras_csp/export/twin.py): tf_keras' Conv2D (same groups, same kernel).
    TF_KERAS_TWIN = {"kind": "same_layer", "class_name": "Conv2D"}

    def convolution_op(self, inputs, kernel):
        if (
            self.groups == 1
            or self.data_format != "channels_last"
            or not fast_grouped_conv_available()
        ):
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        return tf.nn.conv2d(
            inputs,
            kernel,
            strides=list(self.strides),
            padding=self.padding.upper(),
            dilations=list(self.dilation_rate),
            data_format="NHWC",
        )

    @classmethod
    def from_conv2d(cls, layer, **overrides):
        """A `GroupedConv2D` with `layer`'s config (plus `overrides`), not yet built."""
        return cls.from_config({**layer.get_config(), **overrides})
