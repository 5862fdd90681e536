"""Every architecture of the package as data: one `ModelConfig` per named model.

As in timm's `cspnet.py`, `cspresnext50` and `cspdarknet53` differ only in their entries here; one
builder (`models/builder.py`) turns any entry into a Keras model. Per-stage settings may be given
once or per stage; `per_stage` expands them in one place. Residual networks use `StagesConfig`;
DenseNet and PeleeNet use `DenseStagesConfig`, whose CSP stages are partial dense blocks with
partial transitions (the paper's CSPDenseNet, Sec. 3.1).
"""

import dataclasses
from typing import Optional, Tuple, Union

PerStage = Union[float, int, Tuple]


@dataclasses.dataclass(frozen=True)
class StemConfig:
    filters: int
    kernel_size: int
    strides: int
    # "edge_max3": timm's 3x3/2 max-pool with padding 1; "max2": Darknet's 2x2/2 max-pool.
    pool: Optional[str] = None
    # "conv": one conv unit `stem.conv1` (+ `stem.pool`); "densenet": torchvision's
    # `features.conv0/norm0/relu0/pool0`; "pelee": PeleeNet's stem block (stride 4).
    kind: str = "conv"


class _PerStage:
    @property
    def num_stages(self):
        return len(self.depth)

    def per_stage(self, field):
        """The value of `field` for each stage, expanding a single value."""
        value = getattr(self, field)
        if isinstance(value, tuple):
            if len(value) != self.num_stages:
                raise ValueError(f"{field}={value} needs {self.num_stages} entries.")
            return value
        return (value,) * self.num_stages


@dataclasses.dataclass(frozen=True)
class StagesConfig(_PerStage):
    filters: Tuple[int, ...]
    depth: Tuple[int, ...]
    strides: PerStage = 2
    # Per stage or for all: "csp": `csp_stage`; "dark": `plain_stage` (Darknet-53); "residual":
    # `residual_stage` (the authors' Darknet ResNets with partial shortcuts).
    stage_type: Union[str, Tuple[str, ...]] = "csp"
    # A key of `keras_csp.layers.BLOCKS`; residual stages take "bottleneck" or "basic".
    block_type: str = "bottleneck"
    groups: int = 1
    expand_ratio: PerStage = 1.0
    bottle_ratio: PerStage = 0.5
    cross_linear: bool = False
    down_growth: bool = False
    # False: split the base layer itself, without timm's 1x1 `conv_exp` (the paper's formulation).
    conv_exp: bool = True


@dataclasses.dataclass(frozen=True)
class DenseStagesConfig(_PerStage):
    """The dense blocks of DenseNet-BC or PeleeNet; stage i is dense block i and its transition.

    A plain stage is `features.denseblock{i}` then `features.transition{i}` (which pools, except
    after the last block). A "csp" stage splits its input (γ bypasses), runs the dense layers on the
    rest, and ends with the partial transition: `conv_transition_b` on the dense path (to the
    stage width minus the bypass), concat, 2x2 average pool, `conv_transition` (see
    `keras_csp.layers.partial_dense_stage`); with fusion "first"/"last" one of the two transitions
    goes.
    """

    depth: Tuple[int, ...]
    # A key of `keras_csp.layers.DENSE_LAYERS`: "bottleneck" (DenseNet-BC) or "two_way" (PeleeNet).
    layer_type: str = "bottleneck"
    growth_rate: int = 32
    # DenseNet: bn_size (bottleneck = 4 * growth); PeleeNet: the per-stage widths (1, 2, 4, 4).
    bottleneck_width: PerStage = 4
    # Transition output / input channels (DenseNet-BC 0.5, PeleeNet 1.0); the last stage keeps all.
    compression: float = 0.5
    # True: DenseNet's BN-ReLU-conv units, no transition after the last block, `features.norm5`.
    # False: PeleeNet's conv-BN-ReLU units and a transition (without pool) after the last block.
    preactivation: bool = True
    # Per stage or for all: "dense" (plain) or "csp".
    stage_type: Union[str, Tuple[str, ...]] = "dense"

    @property
    def strides(self):
        # Every transition but the last halves the resolution.
        return (2,) * (self.num_stages - 1) + (1,)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    stem: StemConfig
    stages: Union[StagesConfig, DenseStagesConfig]
    activation: str = "leaky_relu"
    # The input size the reference checkpoints are evaluated at (timm: 256, crop 0.887).
    default_size: int = 256
    reference: str = ""
    # Head layer names: timm's CSP models say `head.fc`; DenseNet and PeleeNet say `classifier`.
    global_pool_name: str = "head.global_pool"
    classifier_name: str = "head.fc"
    # Dropout before the classifier (PeleeNet: 0.05).
    head_dropout: float = 0.0

    @property
    def is_csp(self):
        return "csp" in self.stages.per_stage("stage_type")

    @property
    def is_dense(self):
        return isinstance(self.stages, DenseStagesConfig)


_RESNET_STEM = StemConfig(filters=64, kernel_size=7, strides=2, pool="edge_max3")
# The authors' Darknet cfgs pool with 2x2/2 where timm uses 3x3/2 with padding.
_DARKNET_RESNET_STEM = StemConfig(filters=64, kernel_size=7, strides=2, pool="max2")
_DARKNET_STEM = StemConfig(filters=32, kernel_size=3, strides=1)

_DENSENET_STEM = StemConfig(filters=64, kernel_size=7, strides=2, pool="edge_max3", kind="densenet")
# Stride 4: a 3x3/2 conv, then a 3x3/2 conv beside a 2x2/2 max-pool.
_PELEE_STEM = StemConfig(filters=32, kernel_size=3, strides=2, pool="max2", kind="pelee")
_DENSE_FAMILY = dict(
    activation="relu",
    default_size=224,
    global_pool_name="global_pool",
    classifier_name="classifier",
)
# Which stages of the dense families become CSP stages, and how they end (the paper does not say;
# these are choices, documented in `keras_csp.CSPPeleeNet` and `keras_csp.CSPDenseNet121`):
# * Stages 2-4. Stage 1's base layer is the stem's narrow map (32 channels in PeleeNet, 64 in
#   DenseNet): split, it leaves 16-32 channels to a dense block (in PeleeNet below its bottleneck
#   width) for little saving, whereas from stage 2 on the base layers are 128-1024 channels wide,
#   where the paper places the bottleneck that a partial dense block halves.
# * Stages 2 and 3 end with the partial transition of the chosen fusion (their pooling inside it).
#   Stage 4 does not pool: its two paths are concatenated and go through the plain network's own
#   ending (PeleeNet's 1x1 transition4, DenseNet's norm5), i.e. it always fuses "first".
# With this layout CSPPeleeNet reproduces Table 1's FLOPs ratios and ordering for all nine cells.
# Splitting stage 1 too makes "first" and "last" far cheaper than the paper (0.65 and 0.74 of
# PeleeNet at γ=0.5 against 0.74 and 0.79); a partial transition in stage 4 makes "first" dearer
# than "last" at γ=0.75, against Table 1.
_CSP_DENSE_STAGES = ("dense", "csp", "csp", "csp")


def _densenet(depth, csp, reference):
    stages = DenseStagesConfig(depth=depth, stage_type=_CSP_DENSE_STAGES if csp else "dense")
    return ModelConfig(stem=_DENSENET_STEM, stages=stages, reference=reference, **_DENSE_FAMILY)


def _peleenet(csp, reference):
    stages = DenseStagesConfig(
        depth=(3, 4, 8, 6),
        layer_type="two_way",
        growth_rate=32,
        bottleneck_width=(1, 2, 4, 4),
        compression=1.0,
        preactivation=False,
        stage_type=_CSP_DENSE_STAGES if csp else "dense",
    )
    return ModelConfig(
        stem=_PELEE_STEM, stages=stages, head_dropout=0.05, reference=reference, **_DENSE_FAMILY
    )


def _resnet10(csp, reference):
    # resnet10.cfg: one basic block per stage, the first conv of each block strides.
    stages = StagesConfig(
        filters=(64, 128, 256, 512),
        depth=(1, 1, 1, 1),
        strides=(1, 2, 2, 2),
        stage_type=("residual", "csp", "csp", "csp") if csp else "residual",
        block_type="basic",
        bottle_ratio=1.0,
        down_growth=True,
        conv_exp=False,
    )
    return ModelConfig(stem=_DARKNET_RESNET_STEM, stages=stages, reference=reference)


# Note on timm's `block_ratio`: with γ = 0.5 timm's block width `out_chs * block_ratio` always equals
# half of `conv_exp`, so here the block width follows from the split instead and needs no field.
MODEL_CONFIGS = {
    "cspresnet50": ModelConfig(
        stem=_RESNET_STEM,
        stages=StagesConfig(
            filters=(128, 256, 512, 1024),
            depth=(3, 3, 5, 2),
            strides=(1, 2, 2, 2),
            expand_ratio=2.0,
            bottle_ratio=0.5,
            cross_linear=True,
        ),
        reference="timm cspresnet50",
    ),
    "cspresnext50": ModelConfig(
        stem=_RESNET_STEM,
        stages=StagesConfig(
            filters=(256, 512, 1024, 2048),
            depth=(3, 3, 5, 2),
            strides=(1, 2, 2, 2),
            groups=32,
            expand_ratio=1.0,
            bottle_ratio=1.0,
            cross_linear=True,
        ),
        reference="timm cspresnext50",
    ),
    "cspdarknet53": ModelConfig(
        stem=_DARKNET_STEM,
        stages=StagesConfig(
            filters=(64, 128, 256, 512, 1024),
            depth=(1, 2, 8, 8, 4),
            strides=2,
            block_type="dark",
            expand_ratio=(2.0, 1.0, 1.0, 1.0, 1.0),
            bottle_ratio=(0.5, 1.0, 1.0, 1.0, 1.0),
            down_growth=True,
        ),
        reference="timm cspdarknet53 (= the authors' csdarknet53.cfg)",
    ),
    "darknet53": ModelConfig(
        stem=_DARKNET_STEM,
        stages=StagesConfig(
            filters=(64, 128, 256, 512, 1024),
            depth=(1, 2, 8, 8, 4),
            strides=2,
            stage_type="dark",
            block_type="dark",
            bottle_ratio=0.5,
        ),
        reference="timm darknet53 (= the authors' darknet53.cfg)",
    ),
    "resnet50": ModelConfig(
        stem=_DARKNET_RESNET_STEM,
        stages=StagesConfig(
            filters=(256, 512, 1024, 2048),
            depth=(3, 4, 6, 3),
            strides=(1, 2, 2, 2),
            stage_type="residual",
            bottle_ratio=0.25,
        ),
        reference="the authors' resnet50.cfg (the paper's ResNet-50 baseline)",
    ),
    "resnext50": ModelConfig(
        stem=_DARKNET_RESNET_STEM,
        stages=StagesConfig(
            filters=(256, 512, 1024, 2048),
            depth=(3, 4, 6, 3),
            strides=(1, 2, 2, 2),
            stage_type="residual",
            groups=32,
            bottle_ratio=0.5,
        ),
        reference="the authors' resnext50.cfg (the paper's ResNeXt-50 baseline)",
    ),
    "resnet10": _resnet10(False, "the authors' resnet10.cfg (the paper's ResNet-10, Table 3)"),
    "cspresnet10": _resnet10(True, "CSPResNet-10 of Table 3 (unpublished; this package's layout)"),
    "densenet121": _densenet((6, 12, 24, 16), False, "torchvision/timm densenet121"),
    "densenet201": _densenet((6, 12, 48, 32), False, "torchvision/timm densenet201"),
    "cspdensenet121": _densenet((6, 12, 24, 16), True, "CSPDenseNet-121 (partial dense blocks)"),
    "cspdensenet201": _densenet((6, 12, 48, 32), True, "CSPDenseNet-201 (partial dense blocks)"),
    "peleenet": _peleenet(False, "PeleeNet (Robert-JunWang/PeleeNet), Table 1's baseline"),
    "csppeleenet": _peleenet(True, "CSPPeleeNet of Table 1 (unpublished; this package's layout)"),
}


# The paper's networks are sized for ImageNet; these are the same CSPDarknet design at a width and
# depth that train on a CPU in minutes (the demo trains `cspdarknet_small` and its non-CSP twin,
# `fusion="none"`; the tests use `cspdarknet_tiny`). Not paper models, so kept apart from
# MODEL_CONFIGS (which the paper's tables and the per-family tests iterate).
SMALL_MODEL_CONFIGS = {
    # A CSPDarknet-53 in miniature (Darknet residual blocks, CSP stages with down-growth): a
    # stride-2 stem and three stages of 32..128 channels (total stride 16).
    "cspdarknet_small": ModelConfig(
        stem=StemConfig(filters=16, kernel_size=3, strides=2),
        stages=StagesConfig(
            filters=(32, 64, 128),
            depth=(1, 2, 2),
            strides=2,
            block_type="dark",
            expand_ratio=1.0,
            bottle_ratio=1.0,
            down_growth=True,
        ),
        default_size=64,
        reference="a small CSPDarknet for CPU-sized data (the demo's)",
    ),
    # Smaller still: for tests and quick runs.
    "cspdarknet_tiny": ModelConfig(
        stem=StemConfig(filters=8, kernel_size=3, strides=2),
        stages=StagesConfig(
            filters=(16, 32),
            depth=(1, 1),
            strides=2,
            block_type="dark",
            expand_ratio=1.0,
            bottle_ratio=1.0,
            down_growth=True,
        ),
        default_size=32,
        reference="a tiny CSPDarknet for tests",
    ),
}

# Every named architecture: the one table that build_model, profile, train, export and
# `keras-csp models` read.
ARCHITECTURES = {**MODEL_CONFIGS, **SMALL_MODEL_CONFIGS}


def get_config(name):
    """The `ModelConfig` of a named model (case-insensitive)."""
    key = str(name).lower()
    if key not in ARCHITECTURES:
        raise ValueError(
            f"model={name!r} is not a known architecture; allowed: {', '.join(sorted(ARCHITECTURES))}."
        )
    return ARCHITECTURES[key]
