"""Weights for keras_csp models: ImageNet checkpoints, timm conversion, Keras files.

* `load_weights(model, weights, ...)`: what the builders call for `weights=` (None, "imagenet",
  a timm checkpoint or a `.weights.h5` / `.keras` file).
* `from_timm(model, path_or_state_dict)`: converts a timm checkpoint into a keras_csp model;
  `to_timm(model)` is the inverse.
* `IMAGENET_WEIGHTS` / `get_imagenet_weights(arch)`: the registry (URL, SHA-256, top-1).
* `fetch_imagenet_weights(arch)`: downloads, verifies against a known SHA-256, converts and
  caches; returns the cached path (checked against its recorded SHA-256 on every use).
"""

from keras_csp.weights.download import WeightsDownloadError
from keras_csp.weights.loading import (
    cache_dir,
    fetch_imagenet_weights,
    imagenet_cache_path,
    load_weights,
    load_weights_file,
)
from keras_csp.weights.registry import IMAGENET_WEIGHTS, ImageNetWeights, get_imagenet_weights
from keras_csp.weights.timm_convert import from_timm, read_checkpoint, to_timm

__all__ = [
    "IMAGENET_WEIGHTS",
    "ImageNetWeights",
    "WeightsDownloadError",
    "cache_dir",
    "fetch_imagenet_weights",
    "from_timm",
    "get_imagenet_weights",
    "imagenet_cache_path",
    "load_weights",
    "load_weights_file",
    "read_checkpoint",
    "to_timm",
]
