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
            _check_expansion(path, archive.infolist())  # before anything is decompressed
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


# A member larger than this that expands more than BOMB_RATIO times is a decompression bomb:
# model.save() stores members (1:1), and real weights deflate to about 1:1.1 when a user's zip
# tool recompresses them; only zero-filled (crafted) data expands 100-fold or more.
BOMB_FLOOR = 8 << 20
BOMB_RATIO = 100


def available_memory():
    """Bytes of memory the process can still take (MemAvailable, which counts reclaimable
    caches; the free pages where /proc/meminfo is missing)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no such name on this system
        return None


def _mib(size):
    return f"{size / (1 << 20):.2g} MiB" if size < 1 << 20 else f"{size / (1 << 20):.1f} MiB"


def _check_expansion(path, members):
    """Refuses an archive whose members decompress to far more than they store, or to more than
    the memory left: Keras reads the weights member into memory whole (the weights it holds must
    fit in memory anyway, so free disk space is not the limit)."""
    for info in members:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > BOMB_FLOOR and ratio > BOMB_RATIO:
            raise ValueError(
                f"path={str(path)!r}: its member {info.filename!r} expands from "
                f"{_mib(info.compress_size)} to {_mib(info.file_size)} ({ratio:.0f}:1), as a "
                "decompression bomb does; allowed: a .keras file written by model.save() (its "
                "members are stored, about 1:1)."
            )
    total = sum(info.file_size for info in members)
    memory = available_memory()
    if memory is not None and total > memory:
        raise ValueError(
            f"path={str(path)!r} expands to {_mib(total)}, more than the {_mib(memory)} of memory "
            "available; allowed: a .keras file whose model fits in memory."
        )
