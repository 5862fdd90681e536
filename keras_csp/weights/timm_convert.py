"""timm checkpoints -> keras_csp models.

The Keras layers of this package are named after timm's modules (`stages.1.conv_exp.conv`), so a
timm tensor `<module>.<param>` goes to the variable of the Keras layer `<module>`:

* Conv2D: `weight` (out, in/groups, kh, kw) -> `kernel` (kh, kw, in/groups, out), i.e. transposed
  with axes (2, 3, 1, 0); this holds for grouped convolutions too.
* BatchNormalization: `weight` -> `gamma`, `bias` -> `beta`, `running_mean` -> `moving_mean`,
  `running_var` -> `moving_variance`; `num_batches_tracked` is a training counter and is skipped.
* Dense: `weight` (out, in) -> `kernel` (in, out), `bias` -> `bias`.

Everything is checked before anything is assigned: every timm tensor must be used and every
variable of the network's layers (`stem.*`, `stages.*`, `head.*`) set, with equal shapes; otherwise
a ValueError lists the offenders and the model is left as it was. Layers in front of the network
(e.g. a `Normalization` given through `input_tensor`) keep their own weights.
"""

import os

import numpy as np

# timm tensors that carry no model state.
SKIPPED_SUFFIXES = (".num_batches_tracked",)
CLASSIFIER = "head.fc"
# Layer names of the architectures (timm module paths). Layers named otherwise, e.g. preprocessing
# layers in front of the network given through `input_tensor`, are not the checkpoint's business.
ARCHITECTURE_PREFIXES = ("stem.", "stages.", "head.")
LIST_LIMIT = 10

_BN_PARAMS = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}
_TORCH_SUFFIXES = (".pth", ".pt", ".bin")


def _layer_kind(layer):
    import keras

    if isinstance(layer, keras.layers.BatchNormalization):
        return "bn"
    if isinstance(layer, keras.layers.Conv2D):
        return "conv"
    if isinstance(layer, keras.layers.Dense):
        return "dense"
    return None


def _convert_tensor(kind, param, value):
    """(keras variable name, converted array) for one timm tensor, or None if it has no target."""
    if kind == "bn":
        name = _BN_PARAMS.get(param)
        return None if name is None else (name, value)
    if kind == "conv":
        if param == "weight" and value.ndim == 4:
            return "kernel", np.transpose(value, (2, 3, 1, 0))
        if param == "bias":
            return "bias", value
        return None
    if kind == "dense":
        if param == "weight" and value.ndim == 2:
            return "kernel", np.transpose(value)
        if param == "bias":
            return "bias", value
        return None
    return None


def _fmt_shape(shape):
    return "(" + ", ".join(str(int(d)) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def format_list(title, items, limit=LIST_LIMIT):
    """'title (n): a (shape), b (shape), ... and k more' for (name, shape) pairs."""
    shown = ", ".join(f"{name} {_fmt_shape(shape)}" for name, shape in items[:limit])
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"{title} ({len(items)}): {shown}{more}"


def _as_array(value, name):
    if hasattr(value, "detach"):  # a torch tensor, when one is passed directly.
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.numpy()
    try:
        array = np.asarray(value)
    except Exception as e:  # noqa: BLE001 - anything unconvertible is a bad checkpoint.
        raise ValueError(f"tensor {name!r} of the checkpoint is not an array ({e}).") from None
    if array.dtype.kind not in "fiub":
        raise ValueError(
            f"tensor {name!r} of the checkpoint has dtype {array.dtype}; expected numbers."
        )
    return array


class WeightPlan:
    """What a source provides for a model: matched pairs and every kind of mismatch."""

    def __init__(self, source_label="checkpoint tensors"):
        self.source_label = source_label
        self.assign = []  # (variable, array, source name)
        self.unused = []  # (source name, shape): nothing in the model takes it.
        self.shape_mismatch = []  # (source name, source shape, variable path, expected shape)
        self.ignored = []  # source names deliberately skipped (e.g. the classifier).
        self.missing = []  # (variable path, shape): nothing in the source sets it.

    def errors(self):
        lines = []
        if self.unused:
            lines.append(format_list(f"{self.source_label} not used", self.unused))
        if self.missing:
            lines.append(format_list("Keras model weights not set", self.missing))
        if self.shape_mismatch:
            shown = ", ".join(
                f"{src} {_fmt_shape(s)} -> {path} expects {_fmt_shape(e)}"
                for src, s, path, e in self.shape_mismatch[:LIST_LIMIT]
            )
            more = (
                f", ... and {len(self.shape_mismatch) - LIST_LIMIT} more"
                if len(self.shape_mismatch) > LIST_LIMIT
                else ""
            )
            lines.append(f"shape mismatches ({len(self.shape_mismatch)}): {shown}{more}")
        return lines


def is_architecture_layer(layer):
    return layer.name.startswith(ARCHITECTURE_PREFIXES)


def architecture_weights(model):
    """The variables of the network's own layers (named `stem.*`, `stages.*`, `head.*`)."""
    return [v for layer in model.layers if is_architecture_layer(layer) for v in layer.weights]


def finish_plan(model, plan):
    """Fills `plan.missing` with the network's variables that no source entry set."""
    order = {v.path: i for i, v in enumerate(model.weights)}
    plan.shape_mismatch.sort(key=lambda item: order.get(item[2], len(order)))
    covered = {id(v) for v, _, _ in plan.assign}
    covered.update(id(v) for v in _mismatched_variables(model, plan))
    plan.missing = [
        (v.path, tuple(v.shape)) for v in architecture_weights(model) if id(v) not in covered
    ]
    return plan


def _mismatched_variables(model, plan):
    paths = {path for _, _, path, _ in plan.shape_mismatch}
    return [v for v in model.weights if v.path in paths]


def apply_plan(model, plan, what):
    """Assigns every planned array, or raises a ValueError (model untouched) on any mismatch."""
    errors = plan.errors()
    if errors:
        raise ValueError(
            f"{what} does not fit the model {model.name!r}; the model is unchanged.\n  "
            + "\n  ".join(errors)
        )
    # Everything was validated; keep a copy anyway so that an unexpected failure mid-way cannot
    # leave a half-loaded model behind.
    backup = [(v, np.array(v.numpy())) for v, _, _ in plan.assign]
    try:
        for variable, array, _ in plan.assign:
            variable.assign(array.astype(variable.dtype, copy=False))
    except Exception:
        for variable, old in backup:
            variable.assign(old)
        raise


def plan_from_timm(model, state_dict, ignore_classifier=None):
    """Matches a timm state dict with the model's variables (see the module docstring)."""
    layers = {layer.name: layer for layer in model.layers}
    if ignore_classifier is None:
        ignore_classifier = CLASSIFIER not in layers
    plan = WeightPlan()
    for name, value in state_dict.items():
        name = str(name)
        if name.endswith(SKIPPED_SUFFIXES):
            continue
        array = _as_array(value, name)
        module, _, param = name.rpartition(".")
        if ignore_classifier and module == CLASSIFIER:
            plan.ignored.append(name)
            continue
        layer = layers.get(module)
        kind = _layer_kind(layer) if layer is not None else None
        converted = _convert_tensor(kind, param, array) if kind else None
        if converted is None:
            plan.unused.append((name, array.shape))
            continue
        var_name, converted_array = converted
        variable = next((v for v in layer.weights if v.name == var_name), None)
        if variable is None:
            plan.unused.append((name, array.shape))
        elif tuple(variable.shape) != converted_array.shape:
            plan.shape_mismatch.append(
                (name, array.shape, variable.path, tuple(variable.shape))
            )
        else:
            plan.assign.append((variable, converted_array, name))
    return finish_plan(model, plan)


def read_checkpoint(path):
    """A timm checkpoint file as {name: numpy array}.

    `.safetensors` is read with `safetensors`; `.pth`/`.pt`/`.bin` need PyTorch and are read with
    `torch.load(..., weights_only=True)` (no arbitrary code runs). Unreadable files raise a
    ValueError that says what the file should be.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} is not a file.")
    if path.endswith(".safetensors"):
        return _read_safetensors(path)
    if path.endswith(_TORCH_SUFFIXES):
        return _read_torch(path)
    raise ValueError(
        f"checkpoint {path!r} has an unknown extension; allowed: .safetensors, or "
        ".pth/.pt/.bin when PyTorch is installed."
    )


def _read_safetensors(path):
    try:
        from safetensors.numpy import load_file

        return load_file(path)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types.
        raise ValueError(
            f"{path!r} is not a readable .safetensors file ({e.__class__.__name__}: {e}); "
            "expected a timm checkpoint such as the hub's model.safetensors."
        ) from None


def _read_torch(path):
    try:
        import torch
    except ImportError:
        raise ValueError(
            f"reading {path!r} needs PyTorch, which is not installed. Use the checkpoint's "
            ".safetensors file instead (timm publishes model.safetensors next to "
            "pytorch_model.bin), or install torch."
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file.
        raise ValueError(
            f"{path!r} is not a readable PyTorch checkpoint ({e.__class__.__name__}: {e})."
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise ValueError(f"{path!r} does not hold a state dict (found {type(obj).__name__}).")
    state = {}
    for name, value in obj.items():
        if not hasattr(value, "detach"):
            continue
        name = name[len("module."):] if name.startswith("module.") else name
        state[name] = _as_array(value, name)
    return state


def from_timm(model, checkpoint, ignore_classifier=None):
    """Loads timm weights into a keras_csp model built for the same architecture.

    Args:
        model: a model from `keras_csp` (e.g. `keras_csp.CSPDarknet53(weights=None)`).
        checkpoint: the path of a timm checkpoint (`.safetensors`; `.pth`/`.bin` with PyTorch
            installed) or a state dict, i.e. a mapping of timm tensor names to arrays.
        ignore_classifier: skip timm's `head.fc.*`. Default (None): skip it exactly when the model
            has no `head.fc` layer (`include_top=False`).

    Raises:
        ValueError: when a timm tensor is not used, a weight of the network is not set or shapes
            differ; the message lists the first names with their shapes and the model is
            unchanged.

    Returns:
        The model.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        what = f"checkpoint {os.fspath(checkpoint)!r}"
        checkpoint = read_checkpoint(checkpoint)
    elif hasattr(checkpoint, "items"):
        what = "the state dict"
    else:
        raise ValueError(
            f"from_timm() takes a checkpoint path or a mapping name -> array; got "
            f"{type(checkpoint).__name__}."
        )
    plan = plan_from_timm(model, checkpoint, ignore_classifier=ignore_classifier)
    apply_plan(model, plan, what)
    return model


def to_timm(model):
    """The inverse of `from_timm`: the model's weights as a timm-style state dict of numpy arrays.

    Useful to compare against timm, or to write a checkpoint with `safetensors.numpy.save_file`.
    BatchNorm `num_batches_tracked` counters are not produced.
    """
    inverse_bn = {v: k for k, v in _BN_PARAMS.items()}
    state = {}
    for layer in model.layers:
        kind = _layer_kind(layer)
        if kind is None or not is_architecture_layer(layer):
            continue
        for variable in layer.weights:
            value = np.array(variable.numpy())
            if kind == "bn":
                state[f"{layer.name}.{inverse_bn[variable.name]}"] = value
            elif variable.name == "kernel":
                value = np.transpose(value, (3, 2, 0, 1)) if kind == "conv" else value.T
                state[f"{layer.name}.weight"] = np.ascontiguousarray(value)
            else:
                state[f"{layer.name}.{variable.name}"] = value
    return state
