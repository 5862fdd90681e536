"""`keras_csp.load_model`: reads a saved model back with the package's custom layers registered.

It registers the detector's layers too, so it sits in the applications layer beside
`keras_csp.detection` (not in the models package, which the detector builds on).
"""

import os
import zipfile
import zlib

import keras

import keras_csp.detection  # noqa: F401  (registers the detector and its layers)
import keras_csp.layers  # noqa: F401  (registers the custom layers)


def load_model(path, safe_mode=True, **kwargs):
    """`keras.saving.load_model` with keras_csp's layers registered (safe mode by default).

    A missing, truncated or damaged `.keras` file is a ValueError that says which (Keras itself
    says "File not found" for a truncated archive and raises zipfile's raw `BadZipFile` for a
    damaged one).
    """
    _check_keras_archive(path)
    try:
        return keras.saving.load_model(path, safe_mode=safe_mode, **kwargs)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise ValueError(
            f"path={str(path)!r} is a damaged .keras file ({type(e).__name__}: {e}); allowed: a "
            "complete file written by model.save()."
        ) from None


def _check_keras_archive(path):
    """Refuses a `.keras` path that is missing, not a zip archive, or fails its CRC checks."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).endswith(".keras"):
        return  # other formats (legacy .h5) are Keras' to judge
    allowed = "allowed: a .keras file written by model.save()"
    if not os.path.exists(path):
        raise ValueError(f"path={str(path)!r} does not exist; {allowed}.")
    if not os.path.isfile(path):
        raise ValueError(f"path={str(path)!r} is not a file; {allowed}.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            damaged = archive.testzip()  # reads every member: a flipped byte fails its CRC
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise ValueError(
            f"path={str(path)!r} is truncated or not a .keras (zip) archive ({e}); {allowed}."
        ) from None
    if damaged is not None:
        raise ValueError(
            f"path={str(path)!r} is damaged: its member {damaged!r} fails its CRC check; "
            f"{allowed}."
        )
    if "config.json" not in names:
        raise ValueError(
            f"path={str(path)!r} is a zip archive without config.json, not a .keras model; "
            f"{allowed}."
        )
