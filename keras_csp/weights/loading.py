"""`weights=` for the builders: None, "imagenet", a timm checkpoint or a file saved by Keras.

* `"imagenet"`: the timm checkpoint named in `keras_csp.weights.registry` is downloaded once,
  verified, converted and cached as a `.weights.h5` under `$KERAS_HOME/models/keras_csp/`
  (`~/.keras/models/keras_csp/` by default); later calls read the cache and need no network.
* A timm checkpoint (`.safetensors`; `.pth`/`.pt`/`.bin` when PyTorch is installed): converted on
  the fly by `keras_csp.weights.from_timm`.
* A `.weights.h5` (`model.save_weights`) or `.keras` (`model.save`) file of this package: matched
  by layer name (Keras 3 records it in the file). Files without layer names are loaded by order,
  as Keras does, after their layout was compared with the model's.

With `include_top=False` everything but the classifier (`head.fc`) is loaded. Nothing is assigned
unless the whole file fits: on any mismatch the model is unchanged and a ValueError lists the
first offending names and shapes.
"""

import os
import shutil
import sys
import tempfile

import h5py

from keras_csp.weights import registry
from keras_csp.weights.download import WeightsDownloadError, download
from keras_csp.weights.h5_by_name import open_weights_h5, plan_from_layers, read_layer_weights
from keras_csp.weights.timm_convert import (
    CLASSIFIER,
    apply_plan,
    is_architecture_layer,
    plan_from_timm,
    read_checkpoint,
)

TIMM_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
KERAS_SUFFIXES = (".weights.h5", ".keras")
ALLOWED = (
    "None, 'imagenet', the path of a timm checkpoint (.safetensors; .pth/.pt/.bin with PyTorch "
    "installed) or of a file saved by this package (.weights.h5 or .keras)"
)


# --------------------------------------------------------------------------- Keras files


def _h5_layout(path):
    """{dataset path: shape} of a weights file, or a ValueError for a file h5py cannot read."""
    layout = {}
    with open_weights_h5(path) as f:
        f.visititems(
            lambda key, obj: layout.__setitem__(key, tuple(obj.shape))
            if isinstance(obj, h5py.Dataset)
            else None
        )
    return layout


def _model_layout(model):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "expected.weights.h5")
        model.save_weights(path)
        return _h5_layout(path)


def describe_mismatch(expected, found, limit=5):
    """Lines naming the first missing, unexpected and wrongly shaped entries."""
    lines = []
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    shapes = [k for k in expected if k in found and expected[k] != found[k]]
    if missing:
        lines.append(f"missing ({len(missing)}): " + ", ".join(missing[:limit]))
    if extra:
        lines.append(f"unexpected ({len(extra)}): " + ", ".join(extra[:limit]))
    if shapes:
        lines.append(
            f"shape mismatch ({len(shapes)}): "
            + ", ".join(f"{k} expects {expected[k]}, file has {found[k]}" for k in shapes[:limit])
        )
    return lines


def _load_by_order(model, path):
    found = _h5_layout(path)
    expected = _model_layout(model)
    mismatch = describe_mismatch(expected, found)
    if mismatch:
        raise ValueError(
            f"weights={path!r} does not fit the architecture {model.name!r}; the model is "
            "unchanged.\n  " + "\n  ".join(mismatch)
        )
    model.load_weights(path)


def load_weights_file(model, path, include_top=None):
    """Loads a `.weights.h5` or `.keras` file saved from the same architecture.

    Layers are matched by name; `head.fc` in the file is skipped when the model has no
    classifier (`include_top=False`, the default guess when `include_top` is None).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"weights={path!r} is not a file; allowed: {ALLOWED}.")
    if not path.endswith(KERAS_SUFFIXES):
        raise ValueError(
            f"weights={path!r} is not a .weights.h5 or .keras file; allowed: {ALLOWED}."
        )
    layer_weights = read_layer_weights(path)
    if layer_weights is None:
        _load_by_order(model, path)
        return
    has_head = any(layer.name == CLASSIFIER for layer in model.layers)
    if include_top is None:
        include_top = has_head
    ignore = () if include_top else (CLASSIFIER,)
    plan = plan_from_layers(model, layer_weights, ignore_layers=ignore)
    apply_plan(model, plan, f"weights={path!r}")


# --------------------------------------------------------------------------- timm files


def load_timm_file(model, path, include_top=None):
    """Loads a timm checkpoint file, converting it (see `keras_csp.weights.from_timm`)."""
    path = os.fspath(path)
    state = read_checkpoint(path)
    ignore = None if include_top is None else not include_top
    plan = plan_from_timm(model, state, ignore_classifier=ignore)
    apply_plan(model, plan, f"timm checkpoint {path!r}")


# --------------------------------------------------------------------------- "imagenet"


def cache_dir():
    """`$KERAS_HOME/models/keras_csp`: `~/.keras/...` by default, `/tmp/.keras/...` if unwritable."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    probe = home
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK):
        home = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return os.path.join(home, "models", "keras_csp")


def imagenet_cache_path(arch):
    """Where the converted ImageNet weights of `arch` are (or will be) cached."""
    entry = registry.get_imagenet_weights(arch)
    return os.path.join(cache_dir(), entry.cache_name)


def _offline_hint(entry, url, cache_path):
    return (
        f"Cache file: {cache_path} (written after the first successful download). Without "
        f"network access: download "
        f"{url} on another machine and pass the file, e.g. "
        f"keras_csp.build_model({entry.arch!r}, weights='/path/to/model.safetensors'), or "
        f"convert it once with `keras-csp convert-timm model.safetensors "
        f"{entry.cache_name} --model {entry.arch}` and copy the result to {cache_path}. "
        f"A mirror can be named with ${registry.WEIGHTS_URL_ENV}."
    )


def _is_clean_reference(model, entry):
    """True if `model` can itself produce the cache: full classifier, float32, nothing foreign."""
    layers = {layer.name: layer for layer in model.layers}
    head = layers.get(CLASSIFIER)
    return (
        head is not None
        and getattr(head, "units", None) == entry.classes
        and all(str(v.dtype) == "float32" for v in model.weights)
        and all(is_architecture_layer(layer) for layer in model.layers if layer.weights)
    )


def fetch_imagenet_weights(arch, base_url=None, quiet=False):
    """The path of the cached converted ImageNet weights of `arch`, downloading them if needed.

    On a cache miss the timm checkpoint is downloaded to a temporary folder inside the cache
    folder, checked against the registry's SHA-256 (when recorded), converted, saved as a
    `.weights.h5` and renamed into place; a failure at any step leaves nothing behind. The file
    is a plain Keras weights file of the full model (`build_model(arch)` can `load_weights` it).

    Args:
        arch: architecture name with an entry in `keras_csp.weights.registry`.
        base_url: overrides `$KERAS_CSP_WEIGHTS_URL` / the Hugging Face hub.
        quiet: no progress lines on stderr.

    Raises:
        WeightsDownloadError: the download failed; the message names the URL, the cache path
            and how to use a local file instead.
    """
    return _fetch_imagenet(arch, None, base_url, quiet)[0]


def _fetch_imagenet(arch, model, base_url, quiet):
    """`fetch_imagenet_weights`, converting with `model` itself when it fits: (path, loaded).

    `model` (optional) is used for the conversion when it is the full 1000-class network (saves
    building a second model); `loaded` then says that it already holds the weights.
    """
    entry = registry.get_imagenet_weights(arch)
    target = os.path.join(cache_dir(), entry.cache_name)
    if os.path.isfile(target):
        return target, False
    url = entry.url(base_url)
    hint = _offline_hint(entry, url, target)
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        work = tempfile.mkdtemp(prefix=".download-", dir=os.path.dirname(target))
    except OSError as e:
        raise WeightsDownloadError(
            f"Cannot create the weights cache folder {os.path.dirname(target)} ({e}).\n{hint}"
        ) from None
    try:
        raw = os.path.join(work, entry.filename)
        digest = download(url, raw, sha256=entry.sha256, quiet=quiet, hint=hint)
        if entry.sha256 is None and not quiet:
            print(
                f"SHA-256 {digest} (not verified: the registry records none for {entry.tag})",
                file=sys.stderr,
                flush=True,
            )
        state = read_checkpoint(raw)
        loaded = False
        if model is not None and _is_clean_reference(model, entry):
            plan = plan_from_timm(model, state, ignore_classifier=False)
            if not plan.errors():
                apply_plan(model, plan, f"{url}")
                reference, loaded = model, True
        if not loaded:
            from keras_csp.models.builder import build_model  # late: models import weights.

            reference = build_model(arch, include_top=True, weights=None, classes=entry.classes)
            apply_plan(reference, plan_from_timm(reference, state, ignore_classifier=False), url)
        converted = os.path.join(work, entry.cache_name)
        reference.save_weights(converted)
        os.replace(converted, target)
        if not quiet:
            print(f"Cached converted weights at {target}", file=sys.stderr, flush=True)
        return target, loaded
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_imagenet(model, arch, include_top=True, classes=1000, base_url=None):
    entry = registry.get_imagenet_weights(arch)
    if include_top and classes != entry.classes:
        raise ValueError(
            f"weights='imagenet' comes with a {entry.classes}-class classifier, but "
            f"classes={classes!r}. Allowed: classes={entry.classes}, or include_top=False to "
            "load the backbone and put your own head on it."
        )
    path, loaded = _fetch_imagenet(arch, model, base_url, quiet=False)
    if loaded:
        return
    try:
        layer_weights = read_layer_weights(path)
    except ValueError as e:
        raise ValueError(f"{e}\nThe cached file {path} is damaged: delete it and retry.") from None
    if layer_weights is None:
        raise ValueError(f"The cached file {path} has no layer names: delete it and retry.")
    ignore = () if include_top else (CLASSIFIER,)
    apply_plan(model, plan_from_layers(model, layer_weights, ignore_layers=ignore), path)


# --------------------------------------------------------------------------- entry point


def load_weights(model, weights, arch=None, include_top=True, classes=1000):
    """Loads `weights` into a freshly built model (see the module docstring)."""
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        load_imagenet(model, arch, include_top=include_top, classes=classes)
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights={weights!r} is not allowed; allowed: {ALLOWED}.")
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(f"weights={path!r} is not a file; allowed: {ALLOWED}.")
    if path.endswith(TIMM_SUFFIXES):
        load_timm_file(model, path, include_top=include_top)
    elif path.endswith(KERAS_SUFFIXES):
        load_weights_file(model, path, include_top=include_top)
    else:
        raise ValueError(f"weights={path!r} has an unknown extension; allowed: {ALLOWED}.")


__all__ = [
    "cache_dir",
    "fetch_imagenet_weights",
    "imagenet_cache_path",
    "load_imagenet",
    "load_timm_file",
    "load_weights",
    "load_weights_file",
]
