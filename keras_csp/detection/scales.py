"""`CSPDetector`'s named sizes (`scale="n" | "s" | "m"`), as ultralytics names YOLOv8n/s/m.

A scale is a width and a depth multiplier of the backbone (applied to its `ModelConfig`: the stem's
and stages' filters, or a dense network's growth rate, and the blocks per stage) and the widths of
the neck and the head. The presets are sized on the package's mobile detector, CSPPeleeNet +
EFM(SAM) (`keras-csp profile csp_detector --scale S --input-size 128`); on another backbone the
same multipliers apply and the FLOPs follow that backbone.

    scale  backbone width x depth  neck P3, P4, P5    head P3, P4, P5   GFLOPs at 128, 4 classes
    n      0.75 x 1                (80, 128, 256)     (96, 192, 384)    0.303 (YOLOv8n: 0.328)
    s      1 x 1 (the defaults)    (96, 128, 256)     (112, 256, 448)   0.474
    m      1.25 x 1.33             (128, 192, 384)    (160, 320, 640)   1.05
"""

import dataclasses
import math

from keras_csp.models.config import DenseStagesConfig, ModelConfig, StagesConfig, get_config


@dataclasses.dataclass(frozen=True)
class Scale:
    width: float
    depth: float
    neck_filters: tuple
    head_filters: tuple


# Widths of the neck's and the head's P3, P4, P5 levels without a scale (= scale "s"), sized so
# that EFM (SAM) on CSPPeleeNet at 416x416 with 80 classes lands near the paper's 4.31 M parameters
# and 5.07 BFLOPs (Table 4): it has 4.16 M and 5.09 with this package's CSPPeleeNet. P5 is wide
# and P3 narrow because a 3x3 conv at P3 (52x52) costs 16 times the FLOPs of the same conv at P5
# (13x13) for the same parameters.
DEFAULT_NECK_FILTERS = (96, 128, 256)
DEFAULT_HEAD_FILTERS = (112, 256, 448)

# CSPPeleeNet + EFM(SAM) with 4 classes at 128x128, GFLOPs (2 per multiply-add) and parameters:
# n 0.303 / 2.84 M, under YOLOv8n's 0.328 (ultralytics' count at 128, 4 classes) with the
# backbone's growth rate and stem at 24 instead of 32 (backbone 0.163 of 0.287 GFLOPs) and the
# neck and head a little narrower than s; s 0.474 / 4.10 M, the detector's defaults (the issue-16
# benchmark's `efm-sam` row); m 1.05 / 9.69 M, wider and a third deeper.
SCALES = {
    "n": Scale(0.75, 1.0, (80, 128, 256), (96, 192, 384)),
    "s": Scale(1.0, 1.0, DEFAULT_NECK_FILTERS, DEFAULT_HEAD_FILTERS),
    "m": Scale(1.25, 1.33, (128, 192, 384), (160, 320, 640)),
}


def check_scale(scale):
    """The `Scale` of a name, or None for None."""
    if scale is None:
        return None
    if not isinstance(scale, str) or scale.lower() not in SCALES:
        raise ValueError(
            f"scale={scale!r} is not allowed; allowed: None or {', '.join(map(repr, SCALES))}."
        )
    return SCALES[scale.lower()]


def resolve_scale(scale, neck_filters, head_filters):
    """`(Scale or None, neck_filters, head_filters)`: widths given by hand win over the scale's;
    without either, the defaults (scale "s")."""
    preset = check_scale(scale)
    widths = preset or SCALES["s"]
    neck_filters = widths.neck_filters if neck_filters is None else neck_filters
    head_filters = widths.head_filters if head_filters is None else head_filters
    return preset, neck_filters, head_filters


def _width(value, multiplier, multiple=8):
    """`value * multiplier` rounded to a multiple of 8 (at least 8), as ultralytics rounds."""
    return max(multiple, int(math.ceil(value * multiplier / multiple)) * multiple)


def _depth(value, multiplier):
    return max(1, int(round(value * multiplier)))


def scale_backbone(backbone, scale, weights=None):
    """The backbone (a name or `ModelConfig`) with `scale`'s width and depth: a `ModelConfig`, or
    the backbone unchanged when both multipliers are 1."""
    if scale.width == 1.0 and scale.depth == 1.0:
        return backbone
    if weights is not None:
        raise ValueError(
            f"backbone_weights={weights!r} is not allowed with a scale that narrows the backbone; "
            "allowed: None, or scale=None / 's' (the backbone's own widths)."
        )
    config = get_config(backbone) if isinstance(backbone, str) else backbone
    if not isinstance(config, ModelConfig):
        raise ValueError(
            f"scale with backbone={backbone!r} is not allowed; allowed: a backbone given by name "
            "or ModelConfig (a built backbone model keeps its own width)."
        )
    stem = dataclasses.replace(config.stem, filters=_width(config.stem.filters, scale.width))
    stages = config.stages
    depth = tuple(_depth(d, scale.depth) for d in stages.depth)
    if isinstance(stages, DenseStagesConfig):
        stages = dataclasses.replace(
            stages, depth=depth, growth_rate=_width(stages.growth_rate, scale.width)
        )
    elif isinstance(stages, StagesConfig):
        multiple = 8 * stages.groups if stages.groups > 1 else 8
        filters = tuple(_width(f, scale.width, multiple) for f in stages.filters)
        stages = dataclasses.replace(stages, depth=depth, filters=filters)
    return dataclasses.replace(config, stem=stem, stages=stages)
