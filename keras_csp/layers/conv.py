"""The conv-BN-activation unit every CSP model is made of.

Built as a small functional helper rather than a composite layer: the model graph then holds plain
Keras layers (`Conv2D`, `BatchNormalization`, `LeakyReLU`, or the two subclasses that only change
how TensorFlow runs them: `GroupedConv2D`, `FusedBatchNormalization`), which keeps `.keras` files
portable, lets the profiler read every convolution's shape directly, and gives TFLite and tfmot a
graph of ops they already know. Layer names follow timm's module paths (`stages.1.conv_exp.conv`),
so a timm state dict maps onto the model by name alone.
"""

import keras

from keras_csp.layers.fused_batch_norm import FusedBatchNormalization
from keras_csp.layers.grouped_conv import GroupedConv2D

# PyTorch's BatchNorm defaults: eps 1e-5 and momentum 0.1, which is Keras momentum 0.9.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

# timm's `leaky_relu` is `nn.LeakyReLU()` with PyTorch's default slope, not Darknet's 0.1.
LEAKY_SLOPE = 0.01

ACTIVATIONS = ("leaky_relu", "relu", "silu", "mish", "linear")


def activation_layer(activation, name):
    """The layer for an activation name, or None for a linear unit."""
    if activation in (None, "linear"):
        return None
    if activation == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=name)
    if activation == "relu":
        return keras.layers.ReLU(name=name)
    if activation in ("silu", "mish"):
        return keras.layers.Activation(activation, name=name)
    raise ValueError(
        f"activation={activation!r} is not supported; allowed: {', '.join(ACTIVATIONS)} or None."
    )


def check_groups(channels, groups, what, name):
    if groups < 1 or channels % groups:
        raise ValueError(
            f"groups={groups} does not divide the {channels} {what} channels of {name!r}; "
            "allowed: a positive divisor of the channel count."
        )


def padded_conv(x, filters, kernel_size=1, strides=1, groups=1, name=None, pad_name=None):
    """A bias-free `Conv2D` named `name`, padded as PyTorch pads it.

    A strided conv is padded symmetrically by `((strides - 1) + (kernel_size - 1)) // 2`, as timm
    does. Keras' `padding="same"` pads stride-2 convs on the bottom/right only and gives different
    numbers, so strided convs get an explicit `ZeroPadding2D` (named `pad_name`) and a `"valid"`
    conv. For stride 1 and odd kernels the two agree, and `"same"` is used.
    """
    if strides == 1 and kernel_size % 2 == 1:
        padding = "same"
    else:
        pad = ((strides - 1) + (kernel_size - 1)) // 2
        if pad:
            x = keras.layers.ZeroPadding2D(pad, name=pad_name or f"{name}_pad")(x)
        padding = "valid"
    # Grouped convolutions get the fast TF path (see grouped_conv.py); others stay plain Conv2D.
    conv_class = GroupedConv2D if groups > 1 else keras.layers.Conv2D
    return conv_class(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=False,
        name=name,
    )(x)


def batch_norm(name):
    # A BatchNormalization that trains through TF's fused kernel (see fused_batch_norm.py).
    return FusedBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def conv_bn_act(
    x,
    filters,
    kernel_size=1,
    strides=1,
    groups=1,
    activation="leaky_relu",
    name=None,
    norm_name="bn",
):
    """Conv2D (no bias) -> BatchNormalization -> activation, padded as PyTorch pads (`padded_conv`).

    Layers are named `{name}.conv`, `{name}.bn`, `{name}.act` (and `{name}.pad`); `norm_name`
    renames the BN layer for references that call it otherwise (PeleeNet's `BasicConv2d.norm`).
    """
    in_channels = x.shape[-1]
    check_groups(in_channels, groups, "input", name)
    check_groups(filters, groups, "output", name)
    x = padded_conv(x, filters, kernel_size, strides, groups, f"{name}.conv", f"{name}.pad")
    x = batch_norm(f"{name}.{norm_name}")(x)
    act = activation_layer(activation, f"{name}.act")
    return act(x) if act is not None else x


def bn_act_conv(x, filters, kernel_size=1, strides=1, activation="relu", name=None, suffix=""):
    """The pre-activation unit of DenseNet: BatchNormalization -> activation -> Conv2D (no bias).

    Named as torchvision's DenseNet modules: `{name}.norm{suffix}`, `{name}.relu{suffix}`,
    `{name}.conv{suffix}` (`suffix="1"` gives `norm1`, `relu1`, `conv1`) whatever the activation,
    so that DenseNet checkpoints map by name.
    """
    x = batch_norm(f"{name}.norm{suffix}")(x)
    act = activation_layer(activation, f"{name}.relu{suffix}")
    if act is not None:
        x = act(x)
    return padded_conv(x, filters, kernel_size, strides, name=f"{name}.conv{suffix}")
