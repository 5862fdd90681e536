"""`keras_csp.load_model`: reads a saved model back with the package's custom layers registered.

It registers the detector's layers too, so it sits in the applications layer beside
`keras_csp.detection` (not in the models package, which the detector builds on).
"""

import json
import os
import re
import zipfile
import zlib

import keras

import keras_csp.detection  # noqa: F401  (registers the detector and its layers)
import keras_csp.layers  # noqa: F401  (registers the custom layers)


def load_model(path, safe_mode=True, **kwargs):
    """`keras.saving.load_model` with keras_csp's layers registered (safe mode by default).

    A missing, truncated or damaged `.keras` file is a ValueError that says which (Keras itself
    says "File not found" for a truncated archive and raises zipfile's raw `BadZipFile` for a
    damaged one), and so is an archive that would expand past the free memory or expands 100-fold
    (a zip bomb), a config.json that is not JSON or nests over MAX_CONFIG_DEPTH levels, and a
    config Keras cannot rebuild (a Lambda layer in safe mode, an unknown layer): one line naming
    the file, checked before anything is decompressed or deserialized.
    """
    _check_keras_archive(path)
    try:
        return keras.saving.load_model(path, safe_mode=safe_mode, **kwargs)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise ValueError(
            f"path={str(path)!r} is a damaged .keras file ({type(e).__name__}: {e}); allowed: a "
            "complete file written by model.save()."
        ) from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as e:
        # What Keras raises for a config it cannot rebuild: pages of nested configs, or a bare
        # KeyError: 'name' with no file named.
        raise ValueError(f"path={str(path)!r} cannot be loaded: {_reason(e)}; {_ALLOWED}.") from None


_ALLOWED = (
    "allowed: a .keras file written by model.save() from keras_csp's or Keras' layers (no Lambda "
    "layers: loading runs no code from a file)"
)
# Deeper than any real config (a detector's is 4 levels, a functional model's about 11, each
# nested model adds ~6) and shallow enough for Keras' recursive deserialization.
MAX_CONFIG_DEPTH = 100


def _reason(error):
    """Keras' error in one short line: its innermost message, without the configs it dumps."""
    if isinstance(error, KeyError):
        return f"its config.json lacks the key {error} (KeyError)"
    if isinstance(error, RecursionError):
        return "its config.json nests too deep to rebuild (RecursionError)"
    text = str(error)
    if "`Lambda` layer" in text and "safe_mode" in text:
        return "it holds a Lambda layer, whose Python code is not run (safe_mode)"
    where = re.search(r"deserializing class '([^']+)'", text)
    inner = text.rsplit("Exception encountered:", 1)[-1].strip()
    inner = re.split(r"(?<=\.)\s", (inner.splitlines() or [""])[0])[0]  # its first sentence
    if len(inner) > 200:
        inner = inner[:200] + "..."
    where = f"in class {where.group(1)!r}: " if where else ""
    return f"its config.json cannot be rebuilt ({where}{type(error).__name__}: {inner})"


def _check_config(path, text):
    """Refuses a config.json that is not JSON or nests deeper than MAX_CONFIG_DEPTH levels."""
    try:
        config = json.loads(text)
    except RecursionError:
        raise ValueError(
            f"path={str(path)!r} cannot be loaded: its config.json nests deeper than Python's "
            f"JSON reader goes; {_ALLOWED}."
        ) from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(
            f"path={str(path)!r} cannot be loaded: its config.json is not JSON ({e}); "
            f"{_ALLOWED}."
        ) from None
    depth, stack = 0, [(config, 1)]
    while stack:  # iterative: a deep config must not exhaust the stack here either
        value, level = stack.pop()
        depth = max(depth, level)
        if isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level + 1) for v in value)
    if depth > MAX_CONFIG_DEPTH:
        raise ValueError(
            f"path={str(path)!r} cannot be loaded: its config.json nests {depth} levels deep; "
            f"{_ALLOWED} (at most {MAX_CONFIG_DEPTH} levels)."
        )


def _check_keras_archive(path):
    """Refuses a `.keras` path that is missing, not a zip archive, a zip bomb (or larger than the
    free memory), fails its CRC checks, or whose config.json is not JSON or nests too deep."""
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
            has_config = damaged is None and "config.json" in names
            config = archive.read("config.json") if has_config else None
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
    _check_config(path, config)


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
