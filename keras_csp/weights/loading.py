"""`weights=` for the builders: None, a file saved by this package, or (later) "imagenet".

Keras' `.weights.h5` files address variables by layer order and class, not by layer name, so a file
from another architecture can fail deep inside Keras or, worse, half-load. The file's layout is
therefore compared with the model's before anything is assigned; the model is left untouched on any
mismatch.
"""

import os
import tempfile

import h5py


def _h5_layout(path):
    """{dataset path: shape} of an HDF5 file, or a ValueError for a file h5py cannot read."""
    layout = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(
                lambda key, obj: layout.__setitem__(key, tuple(obj.shape))
                if isinstance(obj, h5py.Dataset)
                else None
            )
    except OSError as e:
        raise ValueError(
            f"weights={str(path)!r} is not a readable .weights.h5 file ({e.__class__.__name__}: "
            f"{e}); allowed: a file written by model.save_weights()."
        ) from None
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


def load_weights_file(model, path):
    """Loads a `.weights.h5` file after checking that it was saved from this architecture."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(
            f"weights={path!r} is not a file; allowed: None or the path of a .weights.h5 file."
        )
    if not path.endswith(".weights.h5"):
        raise ValueError(
            f"weights={path!r} is not a .weights.h5 file; allowed: None or a file written by "
            "model.save_weights()."
        )
    found = _h5_layout(path)
    expected = _model_layout(model)
    mismatch = describe_mismatch(expected, found)
    if mismatch:
        raise ValueError(
            f"weights={path!r} does not fit the architecture {model.name!r}; the model is "
            "unchanged.\n  " + "\n  ".join(mismatch)
        )
    model.load_weights(path)


def load_weights(model, weights, arch=None, include_top=True, classes=1000):
    """Loads `weights` (None, "imagenet" or a path) into a freshly built model."""
    if weights is None:
        return
    if weights == "imagenet":
        raise ValueError(
            "weights='imagenet' is not available yet: converted ImageNet checkpoints come with "
            "the weights release. Allowed now: None or the path of a .weights.h5 file saved by "
            "this package."
        )
    load_weights_file(model, weights)
