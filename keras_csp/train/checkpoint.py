"""The files of a run, written atomically, and the checkpoints that make resume lossless.

Layout of `output_dir`:

    config.yaml                   the resolved options of the run
    checkpoints/ckpt-EEEE-SSSSSS.npz
                                  position "next: epoch EEEE, step SSSSSS"; one at every epoch end
                                  (and every `save_every_steps` steps); the newest `keep` are kept
    logs/train, logs/validation   TensorBoard event files
    learning_curves.png, summary.json, model.keras   at the end

Every file is written to a temporary name in the same folder, flushed, fsynced and renamed over the
final name, so a run killed at any instant (SIGKILL included) leaves either the old file or the new
one, never a torn one. A checkpoint is a single `.npz` holding every model variable (weights and BN
statistics), every optimizer variable (iteration count, momenta, loss scale) and, as JSON, the
training state (position, history, partial-epoch sums, wall time) and a fingerprint of the model, so
resuming with another model is refused.
"""

import hashlib
import io
import json
import os
import re
import shutil
import tempfile

import numpy as np

CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
RUN_FILES = ("config.yaml", "summary.json", "learning_curves.png", "model.keras")
_CKPT = re.compile(r"^ckpt-(\d{4})-(\d{6})\.npz$")


# --- atomic files ---------------------------------------------------------------------------------


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path, data):
    """Writes bytes (or str) to `path` so that readers only ever see a complete file."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 -> what open() would have given
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def atomic_save(path, save):
    """Runs `save(tmp_path)` on a temporary file next to `path`, then renames it to `path`.

    The temporary name keeps `path`'s suffix (Keras wants `.keras` / `.weights.h5`).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{base}")
    try:
        save(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


# --- the run folder -------------------------------------------------------------------------------


def existing_run_files(output_dir):
    """The files and folders of an earlier run in `output_dir` (relative names)."""
    found = []
    for name in (CHECKPOINT_DIR, LOG_DIR):
        path = os.path.join(output_dir, name)
        if os.path.isdir(path) and os.listdir(path):
            found.append(name + "/")
    found.extend(n for n in RUN_FILES if os.path.exists(os.path.join(output_dir, n)))
    return found


def prepare_output_dir(output_dir, resume, overwrite, is_chief=True):
    """Checks `output_dir` against the run's intent; with `overwrite`, removes the earlier run.

    Returns the latest checkpoint path to resume from (or None).
    """
    if resume:
        return latest_checkpoint(output_dir)
    if not is_chief:
        # Other workers write nothing; the chief checks (and, with overwrite, cleans) the folder.
        return None
    existing = existing_run_files(output_dir) if os.path.isdir(output_dir) else []
    if existing and not overwrite:
        raise ValueError(
            f"output_dir={output_dir!r} already holds a run ({', '.join(existing)}); nothing was "
            "changed. Allowed: resume=True (--resume) to continue it, overwrite=True "
            "(--overwrite) to replace it, or another output_dir."
        )
    if existing and overwrite:
        for name in existing:
            path = os.path.join(output_dir, name.rstrip("/"))
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    return None


# --- checkpoints ----------------------------------------------------------------------------------


def checkpoint_name(epoch, step):
    return f"ckpt-{epoch:04d}-{step:06d}.npz"


def list_checkpoints(output_dir):
    """[(epoch, step, path)] of the checkpoints in `output_dir`, oldest first."""
    folder = os.path.join(output_dir, CHECKPOINT_DIR)
    if not os.path.isdir(folder):
        return []
    found = []
    for name in os.listdir(folder):
        m = _CKPT.match(name)
        if m:
            found.append((int(m.group(1)), int(m.group(2)), os.path.join(folder, name)))
    return sorted(found)


def latest_checkpoint(output_dir):
    found = list_checkpoints(output_dir)
    return found[-1][2] if found else None


def fingerprint(model, description):
    """What a checkpoint must match: the description and every variable's path and shape."""
    h = hashlib.sha256()
    for v in model.variables:
        h.update(f"{v.path}:{tuple(v.shape)};".encode())
    return {**description, "variables": len(model.variables), "digest": h.hexdigest()[:16]}


def _values(variables):
    import keras

    return [np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]


def save_checkpoint(output_dir, model, optimizer, state, keep):
    """Writes one checkpoint for `state["epoch"], state["step"]` and prunes old ones."""
    arrays = {}
    for i, value in enumerate(_values(model.variables)):
        arrays[f"model/{i:05d}"] = value
    for i, value in enumerate(_values(optimizer.variables)):
        arrays[f"optimizer/{i:05d}"] = value
    arrays["state"] = np.frombuffer(json.dumps(state).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path = os.path.join(output_dir, CHECKPOINT_DIR, checkpoint_name(state["epoch"], state["step"]))
    atomic_write(path, buffer.getvalue())
    for _, _, old in list_checkpoints(output_dir)[:-keep]:
        try:
            os.unlink(old)
        except FileNotFoundError:
            pass
    return path


def read_checkpoint(path):
    """(state dict, model arrays, optimizer arrays) of a checkpoint file."""
    try:
        with np.load(path) as data:
            state = json.loads(bytes(data["state"]).decode("utf-8"))
            model = [data[k] for k in sorted(k for k in data.files if k.startswith("model/"))]
            opt = [data[k] for k in sorted(k for k in data.files if k.startswith("optimizer/"))]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(
            f"checkpoint {path!r} cannot be read ({e}); allowed: a keras-csp checkpoint."
        ) from None
    return state, model, opt


def describe(fp):
    keys = ("model", "task", "classes", "input_size", "part_ratio", "fusion")
    return ", ".join(f"{k}={fp.get(k)!r}" for k in keys if k in fp)


def restore_checkpoint(path, model, optimizer, expected):
    """Loads a checkpoint into `model` and `optimizer` after checking it belongs to this model."""
    state, model_values, opt_values = read_checkpoint(path)
    found = state.get("fingerprint", {})
    if found != expected:
        raise ValueError(
            f"checkpoint {path!r} belongs to another model ({describe(found)}; "
            f"{found.get('variables')} variables, digest {found.get('digest')}) than this run "
            f"({describe(expected)}; {expected['variables']} variables, digest "
            f"{expected['digest']}); nothing was loaded. Allowed: resume with the checkpoint's "
            "model settings, or start over with overwrite=True (--overwrite) or another output_dir."
        )
    if len(opt_values) != len(optimizer.variables):
        raise ValueError(
            f"checkpoint {path!r} holds {len(opt_values)} optimizer variables, this run's optimizer "
            f"has {len(optimizer.variables)}; allowed: resume with the same optimizer and "
            "mixed-precision settings."
        )
    for variable, value in zip(model.variables, model_values):
        variable.assign(value)
    for variable, value in zip(optimizer.variables, opt_values):
        if tuple(variable.shape) != value.shape:
            raise ValueError(
                f"checkpoint {path!r}: optimizer variable {variable.path} has shape {value.shape}, "
                f"expected {tuple(variable.shape)}; allowed: the same optimizer settings."
            )
        variable.assign(value)
    return state
