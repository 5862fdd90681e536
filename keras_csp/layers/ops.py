"""The few layers that Keras does not have: edge-padded max-pool, channel split, partial shortcut.

Each is a registered, serializable `keras.layers.Layer` built from ops that TFLite and its GPU
delegate support (strided slices, concatenation, max-pool, add).
"""

import keras
from keras import ops

PACKAGE = "keras_csp"


@keras.saving.register_keras_serializable(package=PACKAGE)
class EdgePadMaxPooling2D(keras.layers.Layer):
    """Max-pool with symmetric padding that equals PyTorch's implicit -inf padding.

    PyTorch's `MaxPool2d(3, 2, padding=1)` ignores padded positions. Replicating the edge row and
    column gives the same maxima (every window that covers a padded position also covers the edge
    value it copies, as long as `padding < pool_size`), but keeps every value finite. A -inf
    constant would give the same float result yet ruins full-integer quantization: the calibrated
    range of the padded tensor becomes infinite.
    """

    # Its tf_keras twin (keras_csp/export/twin.py): weightless; values move without arithmetic.
    TF_KERAS_TWIN = {"kind": "keras_op", "quantize": "passthrough"}

    def __init__(self, pool_size=3, strides=2, padding=1, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= padding < pool_size:
            raise ValueError(
                f"padding={padding} is not allowed with pool_size={pool_size}; allowed: "
                "0 <= padding < pool_size (otherwise a window can hold padding only)."
            )
        self.pool_size = pool_size
        self.strides = strides
        self.padding = padding

    def call(self, x):
        p = self.padding
        if p:
            x = ops.concatenate([x[:, :1]] * p + [x] + [x[:, -1:]] * p, axis=1)
            x = ops.concatenate([x[:, :, :1]] * p + [x] + [x[:, :, -1:]] * p, axis=2)
        return ops.max_pool(x, self.pool_size, self.strides, padding="valid")

    def compute_output_shape(self, input_shape):
        def out(size):
            if size is None:
                return None
            return (size + 2 * self.padding - self.pool_size) // self.strides + 1

        b, h, w, c = input_shape
        return (b, out(h), out(w), c)

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class ChannelSplit(keras.layers.Layer):
    """Splits the last axis into consecutive parts of the given sizes (the CSP split)."""

    # Its tf_keras twin (keras_csp/export/twin.py): weightless; values move without arithmetic.
    TF_KERAS_TWIN = {"kind": "keras_op", "quantize": "passthrough"}

    def __init__(self, sizes, **kwargs):
        super().__init__(**kwargs)
        self.sizes = [int(s) for s in sizes]
        if any(s < 1 for s in self.sizes):
            raise ValueError(f"sizes={sizes} must all be >= 1.")

    def call(self, x, training=None):
        bounds = [0]
        for size in self.sizes:
            bounds.append(bounds[-1] + size)
        if training:
            # One split op, whose gradient is one concatenation: each slice's gradient would write
            # a zero tensor of the input's full size (training steps of CSP models take 4-8% less
            # time this way). Inference keeps the slices, which TFLite turns into STRIDED_SLICEs
            # that XNNPACK and the GPU delegate run whatever the part sizes.
            return ops.split(x, bounds[1:-1], axis=-1)
        return [x[..., a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape[:-1]) + (s,) for s in self.sizes]

    def get_config(self):
        return {**super().get_config(), "sizes": self.sizes}


@keras.saving.register_keras_serializable(package=PACKAGE)
class PartialShortcut(keras.layers.Layer):
    """Darknet's `[shortcut]` between maps of different shapes: `[shortcut, residual] -> sum`.

    The shortcut is subsampled by `strides` and added to the first `min(C_shortcut, C_residual)`
    channels of the residual; the output has the residual's shape. This is how the authors' Darknet
    ResNet-50/ResNeXt-50 baselines avoid projection convs (the "partial shortcut").

    The subsampling `x[:, ::s, ::s]` is computed as a 1x1 depthwise convolution with a kernel of
    ones and stride `s` (the same numbers, exactly): TFLite turns a strided slice into a
    STRIDED_SLICE with non-unit strides, which XNNPACK does not run (nor a 1x1 MAX_POOL_2D), so
    the graph would fall out of the delegate; DEPTHWISE_CONV_2D stays in it, in float and int8.
    """

    # Its tf_keras twin (keras_csp/export/twin.py): weightless; an add (its output is quantized).
    TF_KERAS_TWIN = {"kind": "keras_op", "quantize": "output"}

    def __init__(self, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.strides = strides

    def call(self, inputs):
        shortcut, residual = inputs
        s = self.strides
        if s > 1:
            ones = ops.ones((1, 1, shortcut.shape[-1], 1), dtype=shortcut.dtype)
            shortcut = ops.depthwise_conv(shortcut, ones, strides=s, padding="valid")
        c_short, c_res = shortcut.shape[-1], residual.shape[-1]
        if c_short == c_res:
            return residual + shortcut
        if c_short > c_res:
            return residual + shortcut[..., :c_res]
        return ops.concatenate(
            [residual[..., :c_short] + shortcut, residual[..., c_short:]], axis=-1
        )

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[1])

    def get_config(self):
        return {**super().get_config(), "strides": self.strides}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FoldedBatchNormalization(keras.layers.Layer):
    """Stands where a BatchNormalization was folded into the convolution before it: a no-op.

    `keras_csp.optimize_for_inference` puts it there so that layer names stay unchanged. It takes
    the arguments BatchNormalization's call takes (`mask`, `training`) and ignores them.
    """

    # Its tf_keras twin (keras_csp/export/twin.py): weightless (its scale and shift are constants).
    TF_KERAS_TWIN = {"kind": "keras_op", "quantize": "passthrough"}

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape
