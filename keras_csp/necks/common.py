"""What every neck shares: the pyramid-dict contract, per-level widths, resampling, attention."""

import re

import keras

from keras_csp.layers.attention import check_attention, spatial_attention, spatial_pyramid_pooling
from keras_csp.layers.conv import conv_bn_act

# Every neck returns these levels (strides 8, 16, 32): the detection head's three scales.
OUTPUT_LEVELS = (3, 4, 5)

_LEVEL_KEY = re.compile(r"^P(\d+)$")


def level_widths(filters, neck, arg="filters"):
    """`filters` (one int, or one per output level P3, P4, P5) as `{3: w3, 4: w4, 5: w5}`."""
    values = tuple(filters) if isinstance(filters, (tuple, list)) else (filters,) * 3
    ok = len(values) == 3 and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values
    )
    if not ok:
        raise ValueError(
            f"{arg}={filters!r} is not allowed for {neck}; allowed: a positive integer or three "
            "positive integers (the widths of P3, P4, P5)."
        )
    return dict(zip(OUTPUT_LEVELS, values))


def check_pyramid(features, levels, neck):
    """Checks that `features` is a `{"P{k}": tensor}` dict holding `levels` at strides 2**k.

    Consecutive levels must halve the spatial size exactly (where it is known), because the necks
    upsample and pool by 2 and concatenate across levels. Extra levels are allowed and ignored.
    """
    if not isinstance(features, dict):
        raise ValueError(
            f"features={type(features).__name__} is not allowed for {neck}; allowed: a dict of "
            "pyramid features keyed 'P{k}' for stride 2**k (a backbone built with "
            "include_top=False, pooling=None)."
        )
    bad_keys = [k for k in features if not isinstance(k, str) or not _LEVEL_KEY.match(k)]
    if bad_keys:
        raise ValueError(
            f"features has keys {bad_keys!r}; allowed: 'P{{k}}' for a feature map at stride 2**k."
        )
    need = [f"P{k}" for k in levels]
    missing = [k for k in need if k not in features]
    if missing:
        raise ValueError(
            f"features is missing level(s) {missing} for {neck}; it needs {need} and got "
            f"{sorted(features, key=lambda k: int(k[1:]))}."
        )
    for key in need:
        shape = tuple(features[key].shape)
        if len(shape) != 4 or shape[-1] is None:
            raise ValueError(
                f"features[{key!r}] has shape {shape}; allowed: (batch, height, width, channels) "
                "with a known channel count."
            )
    for lo, hi in zip(levels[:-1], levels[1:]):
        a, b = features[f"P{lo}"].shape[1:3], features[f"P{hi}"].shape[1:3]
        for axis, (size_lo, size_hi) in enumerate(zip(a, b)):
            if size_lo is not None and size_hi is not None and size_lo != 2 * size_hi:
                raise ValueError(
                    f"features['P{lo}'] is {a[0]}x{a[1]} and features['P{hi}'] is {b[0]}x{b[1]}: "
                    f"mismatched strides for {neck}; allowed: each level exactly half the size of "
                    "the one before (P{k} at stride 2**k)."
                )


def downsample(x, name):
    """2x2 max-pool: the cheap way down one level (exact, since sizes are checked to halve)."""
    return keras.layers.MaxPooling2D(2, 2, name=name)(x)


def upsample(x, name):
    return keras.layers.UpSampling2D(2, interpolation="nearest", name=name)(x)


def apply_input_attention(features, attention, activation, name):
    """With `attention="spp"`, P5 becomes reduce(1x1, C/4) -> SPP(5, 9, 13), which gives back C
    channels: the pooled context comes at the price of one small conv, and the neck reads as many
    channels as without SPP (the paper's EFM (SPP) is no more costly than EFM)."""
    check_attention(attention)
    if attention != "spp":
        return dict(features)
    p5 = features["P5"]
    reduced = conv_bn_act(
        p5, max(1, p5.shape[-1] // 4), 1, activation=activation, name=f"{name}.spp.reduce"
    )
    return {**features, "P5": spatial_pyramid_pooling(reduced, f"{name}.spp")}


def apply_output_attention(outputs, attention, name):
    """With `attention="sam"`, each output level is rescaled by its spatial attention."""
    if attention != "sam":
        return outputs
    return {k: spatial_attention(v, f"{name}.{k.lower()}.sam") for k, v in outputs.items()}
