"""The one place that says where each architecture's ImageNet weights come from.

Every entry is a checkpoint trained by timm and published on the Hugging Face hub as
`https://huggingface.co/timm/<tag>/resolve/main/model.safetensors`. `weights="imagenet"`
downloads that file, checks its SHA-256 where one is recorded here, converts it to this package's
layout and caches the converted `.weights.h5` (see `keras_csp.weights.loading`).

The download location can be redirected with the environment variable `KERAS_CSP_WEIGHTS_URL`
(a base URL that replaces `https://huggingface.co/timm`; the file is then fetched from
`$KERAS_CSP_WEIGHTS_URL/<tag>/resolve/main/model.safetensors`), e.g. for a local mirror or for
tests, or per call with the `base_url` argument of `ImageNetWeights.url`.
"""

import dataclasses
import os
from typing import Optional

WEIGHTS_URL_ENV = "KERAS_CSP_WEIGHTS_URL"
DEFAULT_BASE_URL = "https://huggingface.co/timm"


@dataclasses.dataclass(frozen=True)
class ImageNetWeights:
    """One published checkpoint.

    Attributes:
        arch: the architecture name in this package (`keras_csp.build_model` name).
        tag: the timm model tag, also the Hugging Face repository `timm/<tag>`.
        sha256: hex SHA-256 of `model.safetensors`, or None where no published value was found;
            the download is verified whenever it is set.
        top1: ImageNet-1k top-1 (%) reported by timm for this checkpoint at `input_size`.
        input_size: the evaluation size (square) the top-1 refers to.
        crop_pct: the center-crop fraction of timm's evaluation transform.
        interpolation: the resize interpolation of timm's evaluation transform.
        classes: number of classes of the classifier.
        filename: the file fetched from the repository.
    """

    arch: str
    tag: str
    sha256: Optional[str]
    top1: float
    input_size: int = 256
    crop_pct: float = 0.887
    interpolation: str = "bilinear"
    classes: int = 1000
    filename: str = "model.safetensors"

    def url(self, base_url=None):
        """The download URL; `base_url`, then `$KERAS_CSP_WEIGHTS_URL`, then the hub."""
        base = base_url or os.environ.get(WEIGHTS_URL_ENV) or DEFAULT_BASE_URL
        return f"{base.rstrip('/')}/{self.tag}/resolve/main/{self.filename}"

    @property
    def cache_name(self):
        """File name of the converted weights in the cache; changes when the checksum does."""
        suffix = f"-{self.sha256[:8]}" if self.sha256 else ""
        return f"{self.tag}{suffix}.weights.h5"


# Top-1: timm `results/results-imagenet.csv` at 256x256, crop 0.887 (see
# shared/reference/architectures.md §3.4).
# SHA-256: the "Git LFS Details" of https://huggingface.co/timm/<tag>/blob/main/model.safetensors.
IMAGENET_WEIGHTS = {
    "cspresnet50": ImageNetWeights(
        arch="cspresnet50",
        tag="cspresnet50.ra_in1k",
        sha256="f34ed53e4bb92e01538a2265c5d503db0bcfe149be6fc1ae21d3be842af2cea8",
        top1=79.578,
    ),
    "cspresnext50": ImageNetWeights(
        arch="cspresnext50",
        tag="cspresnext50.ra_in1k",
        # No published SHA-256 of this model.safetensors could be looked up when this entry was
        # written; the download is then not verified. Fill it in from the file's hub page.
        sha256=None,
        top1=80.548,
    ),
    "cspdarknet53": ImageNetWeights(
        arch="cspdarknet53",
        tag="cspdarknet53.ra_in1k",
        # Not found either (see cspresnext50).
        sha256=None,
        top1=80.078,
    ),
    "darknet53": ImageNetWeights(
        arch="darknet53",
        tag="darknet53.c2ns_in1k",
        # Not found either (see cspresnext50).
        sha256=None,
        top1=80.008,
        interpolation="bicubic",
    ),
}


def get_imagenet_weights(arch):
    """The registry entry of `arch`, or a ValueError naming the architectures that have one."""
    if arch is None:
        raise ValueError(
            "weights='imagenet' needs a named architecture (e.g. build_model('cspdarknet53')); "
            "a custom ModelConfig has no published weights. Allowed: weights=None or a file."
        )
    key = str(arch).lower()
    if key not in IMAGENET_WEIGHTS:
        raise ValueError(
            f"weights='imagenet' is not available for {arch!r}: no ImageNet checkpoint is "
            f"published for it. Architectures with ImageNet weights: "
            f"{', '.join(IMAGENET_WEIGHTS)}. Allowed for {arch!r}: weights=None or the path of "
            "a weights file."
        )
    return IMAGENET_WEIGHTS[key]
