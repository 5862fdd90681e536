"""`keras.applications`-style functions, one per architecture.

Each is a thin call of `build_model` with the architecture's name; what the architecture is lives in
`models/config.py`.
"""

from keras_csp.images import DEFAULT_CROP_FRACTION
from keras_csp.applications.factory import build_model

_ARGS = """
    Args:
        include_top: whether to add the classifier (global average pool + `Dense(classes)`).
        weights: `None` (random init); `"imagenet"` (timm's ImageNet checkpoint, downloaded once,
            converted and cached; CSPResNet50, CSPResNeXt50, CSPDarknet53, Darknet53); or a path:
            a timm checkpoint (`.safetensors`, `.pth`/`.bin` with torch installed) or a
            `.weights.h5`/`.keras` file saved from the same architecture.
        input_tensor: optional Keras tensor to use as the model's input.
        input_shape: `(height, width, channels)`; height and width may be `None` and must be at least
            32 (the total stride). Defaults to `(None, None, 3)`; the reference checkpoints are
            evaluated at {size}x{size}{crop}.
        pooling: with `include_top=False`: `None` returns the dict of pyramid features
            `{"P2"|"P1": ..., "P3": ..., "P4": ..., "P5": ...}` keyed by stride 2**k; `"avg"` or `"max"`
            returns the globally pooled last feature map.
        classes: number of classes with `include_top=True`.
        classifier_activation: activation of the classifier (`None` for logits).
        name: model name.
        weights_sha256: the SHA-256 (64 hex digits) the weights file must have: for `"imagenet"`
            the downloaded timm checkpoint (needed from a mirror when the registry records none),
            for a path that file. A file with another hash is refused."""

_CSP_ARGS = """
        part_ratio: γ, the fraction of each stage's channels that bypasses its blocks (strictly
            between 0 and 1; larger γ, fewer FLOPs). The reference layout uses 0.5.
        fusion: `"full"` (transition before and after the concat; the reference layout),
            `"first"`, `"last"` (see `keras_csp.layers.csp_stage`), or `"none"` for plain stages."""


def _doc(summary, csp=True, size=256):
    crop = f" (crop {DEFAULT_CROP_FRACTION})" if size == 256 else ""
    args = _ARGS.replace("{size}x{size}{crop}", f"{size}x{size}{crop}")
    if size != 256:
        args = args.replace('"P2"|"P1"', '"P2"')

    def decorate(fn):
        fn.__doc__ = summary + "\n" + args + (_CSP_ARGS if csp else "") + "\n\n    Returns:\n        A `keras.Model`.\n"
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
    weights_sha256=None,
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
    weights_sha256=None,
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
    weights_sha256=None,
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
    weights_sha256=None,
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
    weights_sha256=None,
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
    weights_sha256=None,
):
    return build_model("resnext50", **locals())


@_doc(
    """ResNet-10 as the CSPNet authors' Darknet `resnet10.cfg` (Table 3: 5.24M, 2.273 BFLOPs).

    A 7x7/2 stem with a 2x2/2 max-pool, then one basic block per stage (64, 128, 256, 512;
    the first 3x3 strides), with Darknet's partial shortcut instead of projection convs.
    5,244,968 trainable parameters and 2.272 GFLOPs (2 per multiply-add) at 256x256.""",
    csp=False,
)
def ResNet10(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    weights_sha256=None,
):
    return build_model("resnet10", **locals())


@_doc(
    """CSPResNet-10: Table 3's model, whose layout was never published; this one is ours.

    Stem and stage 0 are ResNet-10's. Stages 1-3 are CSP stages around the same basic
    block: the block's strided 3x3 conv becomes the stage's `conv_down` (to the stage width),
    its output is the base layer and is split directly (no `conv_exp`, as the paper splits
    DenseNet's base layer), part 2 runs one basic block at the reduced width, then the partial
    transition. Stage 0 stays whole: its base is the stem's map, and with it split the model
    drops to 0.68 of ResNet-10's FLOPs instead of Table 3's 0.84. At γ=0.5, fusion "full" and
    256x256: 4,129,448 trainable parameters and 1.945 GFLOPs, 0.856 of ResNet-10 (paper:
    2.73M and 1.905, 0.838; the parameter count is not reproduced)."""
)
def CSPResNet10(
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
    weights_sha256=None,
):
    return build_model("cspresnet10", **locals())


_DENSENET_NOTE = """

    Layer for layer torchvision's/timm's DenseNet-BC: growth 32, bottleneck 128, compression
    0.5, pre-activation BN-ReLU-conv units, names such as
    `features.denseblock1.denselayer1.conv1` and `classifier`. Pyramid features: `P2`-`P4`
    are the transitions' outputs before their pools, `P5` is `features.norm5` and its ReLU."""

_CSP_DENSENET_NOTE = """

    The paper's CSPDenseNet (Sec. 3.1, Fig. 3) in the layout of `keras_csp.CSPPeleeNet`:
    block 1 stays whole; blocks 2-4 split their base layer directly (γ bypasses) and run the
    dense layers on the rest. Blocks 2 and 3 end with the partial transition: BN-ReLU-1x1
    `conv_transition_b` on the dense path (to the stage width minus the bypass, so it
    compresses as DenseNet-BC's transition does), concat [bypass, dense], the 2x2 average
    pool, BN-ReLU-1x1 `conv_transition` (fusion "first"/"last" drop one of the two). Block 4
    has no transition in DenseNet: its two paths are concatenated and go through `norm5`.
    Layers are `features.csp{i}.*`; the dense layers keep torchvision's names. Pyramid
    features as DenseNet's, with a CSP stage's concat (before its pool) as its level."""


@_doc(
    "DenseNet-121 (7,978,856 trainable parameters; 5.67 GFLOPs at 224)." + _DENSENET_NOTE,
    csp=False,
    size=224,
)
def DenseNet121(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    weights_sha256=None,
):
    return build_model("densenet121", **locals())


@_doc(
    "DenseNet-201 (20,013,928 trainable parameters; 8.58 GFLOPs at 224)." + _DENSENET_NOTE,
    csp=False,
    size=224,
)
def DenseNet201(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    weights_sha256=None,
):
    return build_model("densenet201", **locals())


@_doc(
    """CSPDenseNet-121: γ=0.5, fusion "full": 7,050,728 trainable parameters (0.884 of
    DenseNet-121's) and 5.22 GFLOPs at 224 (0.921 of DenseNet-121's; "last" 0.912, "first"
    0.882)."""
    + _CSP_DENSENET_NOTE,
    size=224,
)
def CSPDenseNet121(
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
    weights_sha256=None,
):
    return build_model("cspdensenet121", **locals())


@_doc(
    """CSPDenseNet-201: γ=0.5, fusion "full": 17,749,224 trainable parameters (0.887 of
    DenseNet-201's) and 7.85 GFLOPs at 224 (0.914 of DenseNet-201's; "last" 0.902, "first"
    0.852)."""
    + _CSP_DENSENET_NOTE,
    size=224,
)
def CSPDenseNet201(
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
    weights_sha256=None,
):
    return build_model("cspdensenet201", **locals())


_PELEE_NOTE = """

    Pyramid features: `P2`-`P4` are the outputs of transitions 1-3 before their pools (in a
    CSP stage, its concatenation before the pool; strides 4, 8, 16: stage 3 at stride 16 is
    where Pelee's detector reads), `P5` is stage 4's output (stride 32). Keying the maps after
    the pools instead would put stages 3 and 4 both at stride 32 and leave P4 a pooled copy of
    stage 2."""


@_doc(
    """PeleeNet (Pelee, arXiv 1804.06882), layer for layer Robert-JunWang/PeleeNet.

    Stem block (stride 4, 32 channels), four stages of 3/4/8/6 two-way dense layers (growth
    32, bottleneck widths 1/2/4/4, i.e. 16/32/64/64 channels), transitions that keep the width
    (1x1 conv-BN-ReLU, then a 2x2 average pool except after stage 4), dropout 0.05 and
    `classifier`. 2,802,248 trainable parameters; 1.016 GFLOPs at 224 (paper: 1.017)."""
    + _PELEE_NOTE,
    csp=False,
    size=224,
)
def PeleeNet(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    weights_sha256=None,
):
    return build_model("peleenet", **locals())


@_doc(
    """CSPPeleeNet: PeleeNet with partial dense blocks and partial transitions (Table 1).

    No official layout exists; this one (see `models/config.py` for why):
    * stage 1 is PeleeNet's: its base layer is the stem's 32 channels;
    * stages 2-4 split their base layer directly (γ bypasses) and run PeleeNet's two-way
      dense layers on the rest (same bottleneck widths, and PeleeNet's rule 4*floor(C/8)
      when the input is narrower than twice the width);
    * stages 2 and 3 end with the partial transition: `conv_transition_b` (1x1 conv-BN-ReLU
      on the dense path, keeping its width), concat [bypass, dense], the 2x2 average pool,
      and `conv_transition` (1x1 at the pooled resolution, keeping the width). Fusion
      "first" drops `conv_transition_b`, "last" drops `conv_transition`; "none" gives
      PeleeNet;
    * stage 4 does not pool: its paths are concatenated, then PeleeNet's 1x1 transition4
      (`features.csp4.conv_transition`) runs over all 704 channels, whatever the fusion.
    Widths match PeleeNet's (128, 256, 512, 704) for every γ and fusion.

    FLOPs as a fraction of PeleeNet's at 224 (the paper's Table 1 in brackets):

        γ       full           last           first
        0.25    0.956 (0.970)  0.905 (0.887)  0.801 (0.847)
        0.5     0.867 (0.873)  0.817 (0.791)  0.753 (0.742)
        0.75    0.768 (0.787)  0.718 (0.704)  0.689 (0.638)

    Defaults (γ=0.5, full): 2,643,656 trainable parameters, 0.881 GFLOPs (paper: 2.83M
    counted without BN, 0.888 BFLOPs; the parameter count is not reproduced)."""
    + _PELEE_NOTE,
    size=224,
)
def CSPPeleeNet(
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
    weights_sha256=None,
):
    return build_model("csppeleenet", **locals())


# The models whose layouts tests/models/test_architectures.py pins level by level.
APPLICATIONS = {
    "cspresnet50": CSPResNet50,
    "cspresnext50": CSPResNeXt50,
    "cspdarknet53": CSPDarknet53,
    "darknet53": Darknet53,
    "resnet50": ResNet50,
    "resnext50": ResNeXt50,
}
# The small and dense families of Tables 1 and 3 (tests/models/test_dense_families.py).
EXTRA_APPLICATIONS = {
    "resnet10": ResNet10,
    "cspresnet10": CSPResNet10,
    "densenet121": DenseNet121,
    "densenet201": DenseNet201,
    "cspdensenet121": CSPDenseNet121,
    "cspdensenet201": CSPDenseNet201,
    "peleenet": PeleeNet,
    "csppeleenet": CSPPeleeNet,
}
ALL_APPLICATIONS = {**APPLICATIONS, **EXTRA_APPLICATIONS}
