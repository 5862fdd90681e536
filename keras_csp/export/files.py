"""Output paths: checked before any work is done, written atomically after it.

An export either leaves the complete file (or SavedModel folder) at its path or leaves nothing new
there: everything is written under a hidden temporary name in the destination folder and renamed
into place at the end (a rename within one folder is atomic on POSIX file systems).
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def check_output_path(path, argument="path", kind="file"):
    """The output path as a `Path`, once its folder is known to exist and to accept new files.

    Writability is probed by creating (and removing) a file, since permission bits do not tell the
    whole story (root ignores them; a read-only mount or an immutable folder does not).
    """
    if path is None or str(path) == "":
        raise ValueError(f"{argument}={path!r} is not allowed; allowed: a file or folder path.")
    path = Path(path).expanduser()
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(
            f"{argument}={str(path)!r}: the folder {str(parent)!r} does not exist; allowed: a path "
            "in an existing, writable folder."
        )
    if kind == "file" and path.is_dir():
        raise ValueError(
            f"{argument}={str(path)!r} is a folder; allowed: a file path (the file is replaced)."
        )
    if kind == "folder" and path.exists() and not path.is_dir():
        raise ValueError(
            f"{argument}={str(path)!r} is a file; allowed: a folder path (a folder is replaced)."
        )
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".keras_csp-probe-")
    except OSError as e:
        raise ValueError(
            f"{argument}={str(path)!r}: the folder {str(parent)!r} is not writable ({e.strerror}); "
            "allowed: a path in an existing, writable folder."
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary path next to `path`; renames it onto `path` if the block succeeds."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path, data):
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_folder(path):
    """Yields a temporary folder next to `path`; moves it onto `path` if the block succeeds.

    An existing folder at `path` is replaced only once the new one is complete.
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.replace(path, old / "previous")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
