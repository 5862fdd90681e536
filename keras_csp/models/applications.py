"""`keras.applications`-style functions, one per architecture.

Each is a thin call of `build_model` with the architecture's name; what the architecture is lives in
`models/config.py`.
"""

from keras_csp.models.builder import build_model

_ARGS = """
    Args:
        include_top: whether to add the classifier (global average pool + `Dense(classes)`).
        weights: `None` (random init) or the path of a `.weights.h5` file saved from the same
            architecture.
        input_tensor: optional Keras tensor to use as the model's input.
        input_shape: `(height, width, channels)`; height and width may be `None` and must be at least
            32 (the total stride). Defaults to `(None, None, 3)`; the reference checkpoints are
            evaluated at 256x256 (crop 0.887).
        pooling: with `include_top=False`: `None` returns the dict of pyramid features
            `{"P2"|"P1": ..., "P3": ..., "P4": ..., "P5": ...}` keyed by stride 2**k; `"avg"` or `"max"`
            returns the globally pooled last feature map.
        classes: number of classes with `include_top=True`.
        classifier_activation: activation of the classifier (`None` for logits).
        name: model name."""

_CSP_ARGS = """
        part_ratio: γ, the fraction of each stage's channels that bypasses its blocks (strictly
            between 0 and 1; larger γ, fewer FLOPs). The reference layout uses 0.5.
        fusion: `"full"` (transition before and after the concat; the reference layout),
            `"first"`, `"last"` (see `keras_csp.layers.csp_stage`), or `"none"` for plain stages."""


def _doc(summary, csp=True):
    def decorate(fn):
        fn.__doc__ = summary + "\n" + _ARGS + (_CSP_ARGS if csp else "") + "\n\n    Returns:\n        A `keras.Model`.\n"
        return fn

    return decorate


@_doc("CSPResNet-50, layer for layer timm's `cspresnet50` (21,616,168 trainable parameters).")
def CSPResNet50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    part_ratio=0.5,
    fusion="full",
    name=None,
):
    return build_model("cspresnet50", **locals())


@_doc("CSPResNeXt-50 (32x4d), layer for layer timm's `cspresnext50` (20,569,896 parameters).")
def CSPResNeXt50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    part_ratio=0.5,
    fusion="full",
    name=None,
):
    return build_model("cspresnext50", **locals())


@_doc("CSPDarknet-53, layer for layer timm's `cspdarknet53` (27,642,184 trainable parameters).")
def CSPDarknet53(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    part_ratio=0.5,
    fusion="full",
    name=None,
):
    return build_model("cspdarknet53", **locals())


@_doc("Darknet-53, layer for layer timm's `darknet53` (41,609,928 trainable parameters).", csp=False)
def Darknet53(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
):
    return build_model("darknet53", **locals())


@_doc(
    "ResNet-50 as the CSPNet authors' Darknet `resnet50.cfg`: the paper's non-CSP baseline.\n\n"
    "    Not `keras.applications.ResNet50`: no projection shortcuts (a partial shortcut adds the\n"
    "    subsampled input over the smaller channel count), a 2x2 stem pool, leaky activations.",
    csp=False,
)
def ResNet50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
):
    return build_model("resnet50", **locals())


@_doc(
    "ResNeXt-50 (32x4d) as the CSPNet authors' Darknet `resnext50.cfg`: the paper's baseline.\n\n"
    "    Partial shortcuts instead of projection convs and a 2x2 stem pool, as in that cfg.",
    csp=False,
)
def ResNeXt50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
):
    return build_model("resnext50", **locals())


APPLICATIONS = {
    "cspresnet50": CSPResNet50,
    "cspresnext50": CSPResNeXt50,
    "cspdarknet53": CSPDarknet53,
    "darknet53": Darknet53,
    "resnet50": ResNet50,
    "resnext50": ResNeXt50,
}
