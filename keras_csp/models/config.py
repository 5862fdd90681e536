"""Every architecture of the package as data: one `ModelConfig` per named model.

As in timm's `cspnet.py`, `cspresnext50` and `cspdarknet53` differ only in their entries here; one
builder (`models/builder.py`) turns any entry into a Keras model. Per-stage settings may be given
once or per stage; `StagesConfig.per_stage` expands them in one place.
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


@dataclasses.dataclass(frozen=True)
class StagesConfig:
    filters: Tuple[int, ...]
    depth: Tuple[int, ...]
    strides: PerStage = 2
    # "csp": `csp_stage`; "dark": `plain_stage` (Darknet-53); "residual": `residual_stage`
    # (the authors' Darknet ResNet-50/ResNeXt-50 with partial shortcuts).
    stage_type: str = "csp"
    block_type: str = "bottleneck"
    groups: int = 1
    expand_ratio: PerStage = 1.0
    bottle_ratio: PerStage = 0.5
    cross_linear: bool = False
    down_growth: bool = False

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
class ModelConfig:
    stem: StemConfig
    stages: StagesConfig
    activation: str = "leaky_relu"
    # The input size the reference checkpoints are evaluated at (timm: 256, crop 0.887).
    default_size: int = 256
    reference: str = ""

    @property
    def is_csp(self):
        return self.stages.stage_type == "csp"


_RESNET_STEM = StemConfig(filters=64, kernel_size=7, strides=2, pool="edge_max3")
# The authors' Darknet cfgs pool with 2x2/2 where timm uses 3x3/2 with padding.
_DARKNET_RESNET_STEM = StemConfig(filters=64, kernel_size=7, strides=2, pool="max2")
_DARKNET_STEM = StemConfig(filters=32, kernel_size=3, strides=1)

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
}


def get_config(name):
    """The `ModelConfig` of a named model (case-insensitive)."""
    key = str(name).lower()
    if key not in MODEL_CONFIGS:
        raise ValueError(
            f"model={name!r} is not a known architecture; allowed: {', '.join(sorted(MODEL_CONFIGS))}."
        )
    return MODEL_CONFIGS[key]
