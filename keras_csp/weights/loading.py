"""`weights=` for the builders: None, "imagenet", a timm checkpoint or a file saved by Keras.

* `"imagenet"`: the timm checkpoint named in `keras_csp.weights.registry` is downloaded once,
  verified against a known SHA-256 (see `fetch_imagenet_weights`), converted and cached as a
  `.weights.h5` under `$KERAS_HOME/models/keras_csp/` (`~/.keras/models/keras_csp/` by default);
  later calls check the cached file against its recorded SHA-256 and need no network.
* A timm checkpoint (`.safetensors`; `.pth`/`.pt`/`.bin` when PyTorch is installed): converted on
  the fly by `keras_csp.weights.from_timm`.
* A `.weights.h5` (`model.save_weights`) or `.keras` (`model.save`) file of this package: matched
  by layer name (Keras 3 records it in the file). Files without layer names are loaded by order,
  as Keras does, after their layout was compared with the model's.

With `include_top=False` everything but the classifier (`head.fc`) is loaded. Nothing is assigned
unless the whole file fits: on any mismatch the model is unchanged and a ValueError lists the
first offending names and shapes.
"""

import json
import os
import shutil
import sys
import tempfile

import h5py

from keras_csp import files
from keras_csp.weights import registry
from keras_csp.weights.download import WeightsDownloadError, download, sha256_of
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


def _expected_sha256(entry, weights_sha256):
    """(SHA-256 the checkpoint must have, where it comes from), or (None, None) when unknown."""
    user = registry.user_sha256(entry, weights_sha256)
    if user is not None:
        where = "weights_sha256" if weights_sha256 is not None else f"${registry.WEIGHTS_SHA256_ENV}"
        return user, where
    if entry.sha256 is not None:
        return entry.sha256, "the registry (keras_csp/weights/registry.py)"
    return None, None


def _record_path(path):
    return path + ".json"


def _cached(entry, expected):
    """The cache file for `entry`: the one of the `expected` checkpoint, or with no hash known,
    the newest one verified earlier (any `<tag>-<sha256>.weights.h5`); None if there is none."""
    folder = cache_dir()
    if expected is not None:
        path = os.path.join(folder, entry.cache_name(expected))
        return path if os.path.isfile(path) else None
    prefix, suffix = f"{entry.tag}-", ".weights.h5"
    try:
        names = os.listdir(folder)
    except OSError:
        return None
    found = [
        os.path.join(folder, n) for n in names
        if n.startswith(prefix) and n.endswith(suffix)
        and registry._SHA256.fullmatch(n[len(prefix) : -len(suffix)])
    ]
    return max(found, key=os.path.getmtime) if found else None


def _check_cached(path):
    """Refuses a cache file whose SHA-256 is not the one recorded when it was written."""
    advice = "delete it (and its .json record) and retry to download and convert it again"
    try:
        with open(_record_path(path), encoding="utf-8") as f:
            recorded = json.load(f)["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"The cached file {path} has no readable record of its SHA-256 ({_record_path(path)}: "
            f"{e}), so it cannot be trusted: {advice}."
        ) from None
    actual = sha256_of(path)
    if actual != recorded:
        raise ValueError(
            f"The cached file {path} is damaged or was changed after it was cached: its SHA-256 "
            f"is {actual}, {recorded} was recorded. It is not loaded: {advice}."
        )


def imagenet_cache_path(arch, weights_sha256=None):
    """Where the converted ImageNet weights of `arch` are (or will be) cached.

    The file name carries the SHA-256 of the checkpoint they were converted from. When no hash is
    known (neither given nor in the registry: it is learnt from the hub at download time) this is
    the cached file found, or None before the first download.
    """
    entry = registry.get_imagenet_weights(arch)
    expected, _ = _expected_sha256(entry, weights_sha256)
    if expected is not None:
        return os.path.join(cache_dir(), entry.cache_name(expected))
    return _cached(entry, None)


def _offline_hint(entry, url):
    return (
        f"Cache folder: {cache_dir()} (written after the first verified download). Without "
        f"network access: download {url} on another machine and pass the file, e.g. "
        f"keras_csp.build_model({entry.arch!r}, weights='/path/to/model.safetensors'), or "
        f"convert it once with `keras-csp convert-timm model.safetensors "
        f"{entry.tag}.weights.h5 --model {entry.arch}` and pass that file as weights=. "
        f"A mirror can be named with ${registry.WEIGHTS_URL_ENV}."
    )


def _unknown_hash_hint(entry):
    return (
        f"Give the file's SHA-256 (its 'Git LFS Details' on "
        f"https://huggingface.co/timm/{entry.tag}/blob/main/{entry.filename}, or sha256sum of a "
        f"copy you trust): build_model({entry.arch!r}, weights='imagenet', "
        f"weights_sha256='<64 hex digits>'), or set {registry.WEIGHTS_SHA256_ENV}="
        f"{entry.arch}=<64 hex digits>; or download from the hub itself (unset "
        f"${registry.WEIGHTS_URL_ENV}), whose announced SHA-256 is checked."
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


def fetch_imagenet_weights(arch, base_url=None, quiet=False, weights_sha256=None):
    """The path of the cached converted ImageNet weights of `arch`, downloading them if needed.

    The timm checkpoint is accepted only against a known SHA-256: `weights_sha256` (or
    `$KERAS_CSP_WEIGHTS_SHA256`), else the registry's, else, from the Hugging Face hub itself,
    the SHA-256 the hub announces for the file (a mirror's announcement is not trusted). On a
    cache miss it is downloaded to a temporary folder inside the cache folder, verified,
    converted, saved as `<tag>-<checkpoint sha256>.weights.h5` with a `.json` record of the
    converted file's own SHA-256, and renamed into place; a failure at any step leaves nothing
    behind. A cached file is checked against its record before it is used. The file is a plain
    Keras weights file of the full model (`build_model(arch)` can `load_weights` it).

    Args:
        arch: architecture name with an entry in `keras_csp.weights.registry`.
        base_url: overrides `$KERAS_CSP_WEIGHTS_URL` / the Hugging Face hub.
        quiet: no progress lines on stderr.
        weights_sha256: the SHA-256 the checkpoint must have (64 hex digits).

    Raises:
        WeightsDownloadError: the download failed or could not be verified; the message names
            the URL, the cache folder and how to use a local file instead.
        ValueError: a cached file does not match its record.
    """
    return _fetch_imagenet(arch, None, base_url, quiet, weights_sha256)[0]


def _fetch_imagenet(arch, model, base_url, quiet, weights_sha256=None):
    """`fetch_imagenet_weights`, converting with `model` itself when it fits: (path, loaded).

    `model` (optional) is used for the conversion when it is the full 1000-class network (saves
    building a second model); `loaded` then says that it already holds the weights.
    """
    entry = registry.get_imagenet_weights(arch)
    expected, source = _expected_sha256(entry, weights_sha256)
    cached = _cached(entry, expected)
    if cached is not None:
        _check_cached(cached)
        return cached, False
    url = entry.url(base_url)
    hint = _offline_hint(entry, url)
    hub = entry.from_hub(base_url)
    if expected is None and not hub:
        # A mirror could serve any file and announce its hash: only a known one is trusted.
        raise WeightsDownloadError(
            f"Refusing to download {url}: the registry records no SHA-256 for {entry.tag}, and a "
            f"file from a mirror is only accepted against a known one. "
            f"{_unknown_hash_hint(entry)}\n{hint}"
        )
    folder = cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".download-", dir=folder)
    except OSError as e:
        raise WeightsDownloadError(
            f"Cannot create the weights cache folder {folder} ({e}).\n{hint}"
        ) from None
    try:
        with files.exit_on_sigterm():  # a kill mid-download leaves no partial file in the cache
            raw = os.path.join(work, entry.filename)
            digest = download(
                url, raw, sha256=expected, quiet=quiet, header_sha256=hub, require_sha256=True,
                hint=f"{_unknown_hash_hint(entry)}\n{hint}" if expected is None else hint,
            )
            verified = source or "the SHA-256 the hub announced for the file (X-Linked-Etag/ETag)"
            reference, loaded = _converted(arch, model, entry, read_checkpoint(raw), url)
            target = _cache(reference, entry, work, folder, {
                "checkpoint_url": url,
                "checkpoint_sha256": digest,
                "checkpoint_verified_against": verified,
            })
        if not quiet:
            print(
                f"Verified SHA-256 {digest} against {verified}; cached converted weights at "
                f"{target}",
                file=sys.stderr,
                flush=True,
            )
        return target, loaded
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _converted(arch, model, entry, state, url):
    """(network holding the timm `state`, whether it is `model`): `model` itself when it is the
    clean full network, else a reference network built for the conversion."""
    if model is not None and _is_clean_reference(model, entry):
        plan = plan_from_timm(model, state, ignore_classifier=False)
        if not plan.errors():
            apply_plan(model, plan, f"{url}")
            return model, True
    # Late: the weights package (the CLI imports it on start) loads no Keras.
    from keras_csp.models.builder import build_network

    reference = build_network(arch, include_top=True, classes=entry.classes)
    apply_plan(reference, plan_from_timm(reference, state, ignore_classifier=False), url)
    return reference, False


def _cache(reference, entry, work, folder, checkpoint):
    """Saves the converted weights in `work`, with their record, then moves both into `folder`."""
    name = entry.cache_name(checkpoint["checkpoint_sha256"])
    converted = os.path.join(work, name)
    reference.save_weights(converted)
    record = {"file": name, "sha256": sha256_of(converted), **checkpoint}
    with open(_record_path(converted), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    target = os.path.join(folder, name)
    # The record first: a cache file without one is refused, a record alone is ignored.
    os.replace(_record_path(converted), _record_path(target))
    os.replace(converted, target)
    return target


def load_imagenet(model, arch, include_top=True, classes=1000, base_url=None,
                  weights_sha256=None):
    entry = registry.get_imagenet_weights(arch)
    if include_top and classes != entry.classes:
        raise ValueError(
            f"weights='imagenet' comes with a {entry.classes}-class classifier, but "
            f"classes={classes!r}. Allowed: classes={entry.classes}, or include_top=False to "
            "load the backbone and put your own head on it."
        )
    path, loaded = _fetch_imagenet(arch, model, base_url, quiet=False,
                                   weights_sha256=weights_sha256)
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


def load_weights(model, weights, arch=None, include_top=True, classes=1000, weights_sha256=None):
    """Loads `weights` into a freshly built model (see the module docstring).

    `weights_sha256` (64 hex digits) is the SHA-256 the file must have: the downloaded checkpoint
    for "imagenet", the given file otherwise.
    """
    if weights_sha256 is not None:
        weights_sha256 = registry.check_sha256(weights_sha256, "weights_sha256")
        if weights is None:
            raise ValueError(
                f"weights_sha256={weights_sha256!r} checks a weights file, but weights=None; "
                "allowed: weights_sha256=None, or weights='imagenet' or a file path."
            )
    if weights is None:
        return
    if isinstance(weights, str) and weights == "imagenet":
        load_imagenet(model, arch, include_top=include_top, classes=classes,
                      weights_sha256=weights_sha256)
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"weights={weights!r} is not allowed; allowed: {ALLOWED}.")
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise ValueError(f"weights={path!r} is not a file; allowed: {ALLOWED}.")
    if weights_sha256 is not None and sha256_of(path) != weights_sha256:
        raise ValueError(
            f"weights={path!r} has the SHA-256 {sha256_of(path)}, not weights_sha256="
            f"{weights_sha256!r}; the model is unchanged. Allowed: the file with that SHA-256."
        )
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
