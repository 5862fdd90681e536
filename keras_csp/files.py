"""Output paths: checked before any work is done, written atomically after it (exports, weights,
data exports, checkpoints).

An export either leaves the complete file (or SavedModel folder) at its path or leaves nothing new
there: everything is written under a hidden temporary name in the destination folder and renamed
into place at the end (a rename within one folder is atomic on POSIX file systems). Nothing is left
behind on an error, on Ctrl-C, or on SIGTERM (a scheduler or `kill` stopping the process).

Permissions are those `open()` and `mkdir()` would give a new file or folder (the umask applies,
and so do default ACLs), and a replaced file or folder keeps its mode: `tempfile.mkstemp` and
`mkdtemp` would make every output private (0600/0700), and a re-export would take the other
users' access to a file away.
"""

import contextlib
import os
import secrets
import shutil
import signal
import stat
import tempfile
import threading
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
def exit_on_sigterm():
    """Inside the block SIGTERM raises `SystemExit(143)`, so clean-up runs as it does for Ctrl-C.

    By default SIGTERM ends Python at once, skipping every `finally`; an export killed that way
    left its temporary SavedModel folder (~100 MB for the large models) behind. A handler the
    program installed itself is left alone, and so is any thread but the main one (only it can
    install handlers).
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _temporary(path, make, suffix=".partial"):
    """`make(candidate)` on a fresh hidden name next to `path` until one is free; returns it."""
    for _ in range(100):
        candidate = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            make(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name next to {str(path)!r}")


def new_temporary_file(path, suffix=".partial"):
    """An empty file next to `path`, created as `open(..., "w")` creates files (0666 less the
    umask), with the mode of an existing `path` if there is one. `suffix` ends its name."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    tmp = _temporary(path, lambda c: os.close(os.open(c, flags, 0o666)), suffix)
    keep_mode(tmp, path)
    return tmp


def keep_mode(tmp, path):
    """Gives `tmp` the permission bits of `path` when `path` exists (replacing keeps the mode)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    os.chmod(tmp, mode)


@contextlib.contextmanager
def atomic_file(path, suffix=".partial"):
    """Yields a temporary path next to `path`; renames it onto `path` if the block succeeds.

    The file gets `open()`'s permissions, or those of the file it replaces. `suffix` ends the
    temporary name (Keras' `save_weights` wants ".weights.h5").
    """
    path = Path(path)
    with exit_on_sigterm():
        tmp = new_temporary_file(path, suffix)
        try:
            yield tmp
            keep_mode(tmp, path)  # the block may have replaced the file (`save(tmp)`)
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

    An existing folder at `path` is replaced only once the new one is complete. The folder gets
    `mkdir()`'s permissions, or those of the folder it replaces; the folders made inside it get
    `mkdir()`'s (TensorFlow makes a SavedModel's `variables/` and `assets/` 0755 whatever the
    umask, so under umask 002 they were not group-writable while everything else was).
    """
    path = Path(path)
    with exit_on_sigterm():
        tmp = _temporary(path, lambda c: os.mkdir(c, 0o777))
        try:
            made = stat.S_IMODE(os.stat(tmp).st_mode)  # what mkdir() gives here
            yield tmp
            for root, folders, _ in os.walk(tmp):
                for folder in folders:
                    folder = os.path.join(root, folder)
                    if not os.path.islink(folder):  # chmod would follow it out of the folder
                        os.chmod(folder, made)
            keep_mode(tmp, path)
            if path.exists():
                old = Path(
                    tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old")
                )
                os.replace(path, old / "previous")
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
