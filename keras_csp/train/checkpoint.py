"""The files of a run, written atomically, and the checkpoints that make resume lossless.

Layout of `output_dir`:

    keras-csp-run.json            the marker: only a folder holding it counts as a run
    config.yaml                   the resolved options of the run
    config_changes.json           what each `--resume --allow-config-change` changed
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
resuming with another model is refused. `--overwrite` removes only these files (by name), never
anything else in the folder; a truncated or corrupt latest checkpoint falls back to an older one.
A subfolder that is a symlink out of `output_dir` is refused (`check_links`): nothing is written
or deleted through it.
"""

import hashlib
import io
import json
import os
import re
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

from keras_csp import files

CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
MARKER = "keras-csp-run.json"
CHANGES_FILE = "config_changes.json"
RUN_FILES = ("config.yaml", "summary.json", "learning_curves.png", "model.keras", CHANGES_FILE)
_CKPT = re.compile(r"^ckpt-(\d{4})-(\d{6})\.npz$")
# TensorBoard's event files: the only files the package writes under logs/train, logs/validation.
_EVENTS = re.compile(r"^events\.out\.tfevents\.")
LOG_SPLITS = ("train", "validation")
# Options whose change breaks what a resumed run means (the data it sees, the order it sees it in,
# the optimization it continues); the model itself is checked by the checkpoint's fingerprint.
RESUME_GUARDED = (
    "task", "data", "data_path", "images_dir", "val_data_path", "val_images_dir",
    "validation_split", "train_size", "val_size", "data_seed", "input_size",
    "bounding_box_format", "max_boxes", "batch_size", "steps_per_epoch", "seed", "optimizer",
    "learning_rate", "momentum", "weight_decay", "schedule", "warmup_epochs", "min_lr_ratio",
    "clipnorm",
)
# Options that say how to start, not what the run is: never recorded as changes.
_NOT_RECORDED = ("resume", "overwrite", "allow_config_change", "verbose", "output_dir")


class NonFiniteError(ValueError):
    """A run stopped because its loss or weights became NaN or infinite (a ValueError: the CLI
    prints it in one line and exits non-zero)."""


ALLOWED_AFTER_DIVERGING = (
    "Allowed: a smaller learning_rate (--learning-rate), gradient clipping (--clipnorm) or a "
    "longer warm-up (--warmup-epochs)."
)


def non_finite_arrays(arrays):
    """The indices of the floating-point arrays holding a NaN or an infinity."""
    return [i for i, a in enumerate(arrays) if a.dtype.kind == "f" and not np.isfinite(a).all()]


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


def atomic_write(path, data):
    """Writes bytes (or str) to `path` so that readers only ever see a complete file."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    atomic_save(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_save(path, save):
    """Runs `save(tmp_path)` on a temporary file next to `path`, then renames it to `path`
    (`keras_csp.files.atomic_file`: open()'s permissions, nothing left on errors or SIGTERM), and
    syncs the folder so that the rename survives a power cut.

    The temporary name keeps `path`'s suffix (Keras wants `.keras` / `.weights.h5`).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    ending = ".weights.h5" if base.endswith(".weights.h5") else os.path.splitext(base)[1]
    with files.atomic_file(path, suffix=f".partial{ending}") as tmp:
        save(str(tmp))
    _fsync_dir(folder)


# --- the run folder -------------------------------------------------------------------------------


# A write cut short by a kill leaves `keras_csp.files`' temporary name (".NAME.1a2b3c4d.partial"
# plus NAME's suffix), or ".tmp-...NAME" from versions before it.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.partial(\.[\w.]+)?$")


def _temporary(name):
    """True for the temporary name of one of the package's files (a write cut short by a kill)."""
    found = _TEMPORARY.match(name)
    if found:
        name = found.group("name")
    elif name.startswith(".tmp-"):
        name = name[len(".tmp-"):]
    else:
        return False
    return bool(re.search(r"ckpt-\d{4}-\d{6}\.npz$", name)) or name.endswith(
        (*RUN_FILES, MARKER)
    )


def existing_run_files(output_dir):
    """The files in `output_dir` that the package writes, found by name (relative paths).

    Other files, also inside logs/ and checkpoints/, are not the package's and are never listed.
    """
    found = []
    folder = os.path.join(output_dir, CHECKPOINT_DIR)
    if os.path.isdir(folder):
        found.extend(
            f"{CHECKPOINT_DIR}/{n}" for n in sorted(os.listdir(folder))
            if _CKPT.match(n) or _temporary(n)
        )
    for split in LOG_SPLITS:
        folder = os.path.join(output_dir, LOG_DIR, split)
        if os.path.isdir(folder):
            found.extend(
                f"{LOG_DIR}/{split}/{n}" for n in sorted(os.listdir(folder)) if _EVENTS.match(n)
            )
    if os.path.isdir(output_dir):
        found.extend(
            n for n in sorted(os.listdir(output_dir))
            if n in RUN_FILES or n == MARKER or _temporary(n)
        )
    return found


def is_run(output_dir):
    """A folder holds a run if the package marked it, or (runs of versions before the marker)
    holds checkpoints with the package's names."""
    return os.path.isfile(os.path.join(output_dir, MARKER)) or bool(list_checkpoints(output_dir))


def prepare_output_dir(output_dir, resume, overwrite, is_chief=True):
    """Checks `output_dir` against the run's intent; changes nothing (see `begin_run`).

    Returns the latest checkpoint path to resume from (or None).
    """
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(
            f"output_dir={output_dir!r} is a file; nothing was changed. Allowed: a folder path "
            "(a new folder, or one holding a keras-csp run)."
        )
    check_links(output_dir)
    if not is_chief and not resume:
        # Other workers write nothing; the chief checks (and, with overwrite, cleans) the folder.
        return None
    ours = existing_run_files(output_dir)
    if is_run(output_dir):
        if resume:
            return latest_checkpoint(output_dir)
        if not overwrite:
            raise ValueError(
                f"output_dir={output_dir!r} already holds a run ({', '.join(_short(ours))}); "
                "nothing was changed. Allowed: resume=True (--resume) to continue it, "
                "overwrite=True (--overwrite) to replace it, or another output_dir."
            )
        return None
    if ours:
        # Files with the names a run writes, in a folder no run of ours marked: the user's own.
        raise ValueError(
            f"output_dir={output_dir!r} holds {', '.join(_short(ours))}, which a run would "
            f"replace, but it is not a keras-csp run (no {MARKER}); nothing was changed. "
            "Allowed: another output_dir (overwrite and resume only apply to a folder that "
            "keras-csp wrote)."
        )
    return None


def check_links(output_dir):
    """Refuses a folder of the run (checkpoints/, logs/, logs/train, logs/validation) that is a
    symlink leading out of `output_dir`: the run would write its files there and `overwrite`
    would delete that folder's files by name. A link that stays inside is the user's choice."""
    root = os.path.realpath(output_dir)
    for sub in (CHECKPOINT_DIR, LOG_DIR, *(f"{LOG_DIR}/{s}" for s in LOG_SPLITS)):
        path = os.path.join(output_dir, sub)
        if not os.path.islink(path):
            continue
        target = os.path.realpath(path)
        if os.path.commonpath([root, target]) != root:
            raise ValueError(
                f"output_dir={output_dir!r}: {sub} is a symlink to {target!r}, outside the output "
                "folder, and the run would write and delete files through it; nothing was "
                f"changed. Allowed: a real folder (or a link within output_dir) at {sub}, or "
                "another output_dir."
            )


def _short(names, limit=6):
    return names[:limit] + ([f"... ({len(names) - limit} more)"] if len(names) > limit else [])


def begin_run(output_dir, overwrite, say=print):
    """The chief's first write: with `overwrite`, removes the earlier run's files (only the
    package's, by name), removes temporary files a killed write left, and marks the folder.

    Called once the run is known to start (data read, model built, checkpoint restored), so a run
    that fails before it leaves the folder as it was.
    """
    check_links(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    files = existing_run_files(output_dir)
    leftovers = [n for n in files if _temporary(os.path.basename(n))]
    doomed = files if overwrite else leftovers
    for name in doomed:
        try:
            os.unlink(os.path.join(output_dir, name))
        except FileNotFoundError:
            pass
    if overwrite:
        for folder in (*(os.path.join(LOG_DIR, s) for s in LOG_SPLITS), LOG_DIR, CHECKPOINT_DIR):
            try:
                os.rmdir(os.path.join(output_dir, folder))  # only if nothing else is left in it
            except OSError:
                pass
    elif leftovers:
        say(
            f"note: removed {len(leftovers)} temporary file(s) that an interrupted write left in "
            f"{output_dir!r}: {', '.join(_short(leftovers))}."
        )
    marker = os.path.join(output_dir, MARKER)
    if not os.path.isfile(marker):
        record = {"written_by": "keras-csp train", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write(marker, json.dumps(record, indent=2) + "\n")


def config_changes(previous, current):
    """{option: [before, after]} of the options that differ between two `TrainConfig.to_dict()`s
    (learning rate and weight decay compared as resolved, so an explicit default is no change)."""
    return {
        key: [previous.get(key), value]
        for key, value in current.items()
        if key not in _NOT_RECORDED and key in previous and previous[key] != value
    }


def check_config_changes(changes, allowed, checkpoint_path):
    """Refuses a resume whose changes break the run's meaning unless `allowed`."""
    breaking = {k: v for k, v in changes.items() if k in RESUME_GUARDED}
    if breaking and not allowed:
        listed = "; ".join(f"{k}: {v[0]!r} -> {v[1]!r}" for k, v in breaking.items())
        raise ValueError(
            f"resume=True would continue {checkpoint_path!r} with changed option(s) ({listed}), "
            "so the run's record would misdescribe its earlier epochs; nothing was changed. "
            "Allowed: the run's own values, or allow_config_change=True "
            "(--allow-config-change) to continue anyway (the changes are recorded in "
            f"{CHANGES_FILE})."
        )


def record_config_changes(output_dir, changes, checkpoint_path, position):
    """Appends one entry to `config_changes.json` (rewritten atomically)."""
    path = os.path.join(output_dir, CHANGES_FILE)
    entries = []
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                entries = json.load(f)
        except (OSError, ValueError):
            entries = []
        if not isinstance(entries, list):
            entries = []
    entries.append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "resumed_from": os.path.relpath(checkpoint_path, output_dir),
            "position": position,
            "changes": changes,
        }
    )
    atomic_write(path, json.dumps(entries, indent=2, default=str) + "\n")


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


def kept_checkpoint(output_dir):
    """How a stopped run's message names what it keeps."""
    kept = latest_checkpoint(output_dir)
    if not kept:
        return "no checkpoint had been written"
    return f"the last finite checkpoint {os.path.relpath(kept, output_dir)} is kept"


def check_finite_weights(output_dir, model, optimizer, where):
    """The model's and the optimizer's variables as arrays; a `NonFiniteError` naming `where`
    ("at epoch E/N, step S/M") if one is not finite. Every worker checks, so all stop together."""
    values = _values(model.variables), _values(optimizer.variables)
    bad = non_finite_arrays(values[0] + values[1])
    if bad:
        names = [v.path for v in (*model.variables, *optimizer.variables)]
        raise NonFiniteError(
            f"training stopped: the weights became non-finite {where} ({len(bad)} of "
            f"{len(names)} arrays, first: {names[bad[0]]}); that checkpoint was not written: "
            f"{kept_checkpoint(output_dir)}, and no model.keras. {ALLOWED_AFTER_DIVERGING}"
        )
    return values


def save_checkpoint(output_dir, model, optimizer, state, keep, where=None):
    """Writes one checkpoint for `state["epoch"], state["step"]` and prunes old ones; refuses
    (writing nothing, pruning nothing) when a model weight is not finite, so that the checkpoints
    on disk are always ones a run can go on from."""
    arrays = {}
    where = where or f"at checkpoint {checkpoint_name(state['epoch'], state['step'])}"
    model_values, optimizer_values = check_finite_weights(output_dir, model, optimizer, where)
    for i, value in enumerate(model_values):
        arrays[f"model/{i:05d}"] = value
    for i, value in enumerate(optimizer_values):
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
    """(state dict, model arrays, optimizer arrays) of a checkpoint file.

    Every member is read in full, so zip's CRC-32 check covers every byte of every array.
    """
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PK\x03\x04":
        # Not a zip archive: np.load would try it as a pickle and say "contains pickled data".
        raise ValueError(
            f"checkpoint {path!r} is not a keras-csp checkpoint (not a .npz archive: starts with "
            f"{head!r}); allowed: a checkpoint written by keras-csp train."
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            state = json.loads(bytes(data["state"]).decode("utf-8"))
            model = [data[k] for k in sorted(k for k in data.files if k.startswith("model/"))]
            opt = [data[k] for k in sorted(k for k in data.files if k.startswith("optimizer/"))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise ValueError(
            f"checkpoint {path!r} is truncated or corrupt ({type(e).__name__}: {e}); allowed: a "
            "complete checkpoint written by keras-csp train."
        ) from None
    if not isinstance(state, dict) or "epoch" not in state or "step" not in state:
        raise ValueError(
            f"checkpoint {path!r} has no training state; allowed: a checkpoint written by "
            "keras-csp train."
        )
    bad = non_finite_arrays(model)
    if bad:
        # Written by a version that saved diverged runs: resuming would only train NaNs.
        raise ValueError(
            f"checkpoint {path!r} holds non-finite model weights ({len(bad)} of {len(model)} "
            "arrays hold NaN or inf); allowed: a checkpoint of finite weights."
        )
    return state, model, opt


def read_latest_checkpoint(output_dir, say=None):
    """`(path, (state, model arrays, optimizer arrays))` of the newest checkpoint that reads in
    full, or `(None, None)` when there is none. A truncated or corrupt newer one (a disk that
    filled up, a copy cut short) is passed over with a note; it is left in place, not deleted.
    """
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    found = list_checkpoints(output_dir)
    problems = []
    for _, _, path in reversed(found):
        try:
            contents = read_checkpoint(path)
        except ValueError as e:
            problems.append(str(e))
            continue
        for problem in problems:
            say(f"note: {problem}; resuming from the older {os.path.basename(path)} instead.")
        return path, contents
    if found:
        raise ValueError(
            f"output_dir={output_dir!r}: none of its {len(found)} checkpoint(s) can be read ("
            + "; ".join(problems)
            + "); nothing was changed. Allowed: overwrite=True (--overwrite) to start over, or "
            "another output_dir."
        )
    return None, None


def describe(fp):
    keys = ("model", "task", "classes", "input_size", "part_ratio", "fusion")
    return ", ".join(f"{k}={fp.get(k)!r}" for k in keys if k in fp)


def restore_checkpoint(path, model, optimizer, expected, contents=None):
    """Loads a checkpoint into `model` and `optimizer` after checking it belongs to this model.

    `contents`: what `read_checkpoint(path)` returned, if it was read already.
    """
    state, model_values, opt_values = contents or read_checkpoint(path)
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
