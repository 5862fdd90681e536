"""The one place that says where each architecture's ImageNet weights come from.

Every entry is a checkpoint trained by timm and published on the Hugging Face hub as
`https://huggingface.co/timm/<tag>/resolve/main/model.safetensors`. `weights="imagenet"`
downloads that file, checks its SHA-256 where one is recorded here, converts it to this package's
layout and caches the converted `.weights.h5` (see `keras_csp.weights.loading`).

The download location can be redirected with the environment variable `KERAS_CSP_WEIGHTS_URL`
(a base URL that replaces `https://huggingface.co/timm`; the file is then fetched from
`$KERAS_CSP_WEIGHTS_URL/<tag>/resolve/main/model.safetensors`), e.g. for a local mirror or for
tests, or per call with the `base_url` argument of `ImageNetWeights.url`.

A downloaded file is only ever accepted against a known SHA-256 (see `keras_csp.weights.loading`):
the user's (`weights_sha256=`, or `$KERAS_CSP_WEIGHTS_SHA256`, parsed by `user_sha256`), the one
recorded here, or, from the hub itself, the one the hub announces for a Git LFS file.
"""

import dataclasses
import os
import re
from typing import Optional

from keras_csp.images import DEFAULT_CROP_FRACTION

WEIGHTS_URL_ENV = "KERAS_CSP_WEIGHTS_URL"
WEIGHTS_SHA256_ENV = "KERAS_CSP_WEIGHTS_SHA256"
DEFAULT_BASE_URL = "https://huggingface.co/timm"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclasses.dataclass(frozen=True)
class ImageNetWeights:
    """One published checkpoint.

    Attributes:
        arch: the architecture name in this package (`keras_csp.build_model` name).
        tag: the timm model tag, also the Hugging Face repository `timm/<tag>`.
        sha256: hex SHA-256 of `model.safetensors`, or None where no published value was found
            (the download is then verified against the hub's own, or the user's).
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
    crop_pct: float = DEFAULT_CROP_FRACTION
    interpolation: str = "bilinear"
    classes: int = 1000
    filename: str = "model.safetensors"

    def url(self, base_url=None):
        """The download URL; `base_url`, then `$KERAS_CSP_WEIGHTS_URL`, then the hub."""
        return f"{_base(base_url)}/{self.tag}/resolve/main/{self.filename}"

    def from_hub(self, base_url=None):
        """True when `url(base_url)` is the Hugging Face hub itself, not a mirror."""
        return _base(base_url) == DEFAULT_BASE_URL.rstrip("/")

    def cache_name(self, sha256):
        """File name of the converted weights of the checkpoint whose SHA-256 is `sha256`."""
        return f"{self.tag}-{sha256}.weights.h5"


def _base(base_url):
    return (base_url or os.environ.get(WEIGHTS_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")


def check_sha256(value, argument):
    """A SHA-256 as 64 lower-case hex digits, or a ValueError naming `argument`."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text is None or not _SHA256.fullmatch(text):
        raise ValueError(
            f"{argument}={value!r} is not allowed; allowed: a SHA-256 as 64 hex digits."
        )
    return text


def user_sha256(entry, weights_sha256=None):
    """The SHA-256 the user gives for `entry`'s checkpoint, or None.

    `weights_sha256` (the builders' argument) wins; else `$KERAS_CSP_WEIGHTS_SHA256`, either one
    hash or `name=hash` pairs separated by commas, a name being the architecture or the timm tag
    (`cspresnext50=ab12...,darknet53=cd34...`).
    """
    if weights_sha256 is not None:
        return check_sha256(weights_sha256, "weights_sha256")
    text = os.environ.get(WEIGHTS_SHA256_ENV, "").strip()
    if not text:
        return None
    if "=" not in text:
        return check_sha256(text, f"${WEIGHTS_SHA256_ENV}")
    for item in text.split(","):
        name, _, value = item.partition("=")
        if not value:
            raise ValueError(
                f"${WEIGHTS_SHA256_ENV}={text!r} is not allowed; allowed: one SHA-256, or "
                "name=sha256 pairs separated by commas (name: an architecture or a timm tag)."
            )
        if name.strip().lower() in (entry.arch, entry.tag):
            return check_sha256(value, f"${WEIGHTS_SHA256_ENV} ({name.strip()})")
    return None


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
        # written. From the hub the download is checked against the SHA-256 the hub announces;
        # from a mirror it needs one from the user. Fill it in from the file's hub page.
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
