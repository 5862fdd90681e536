"""Reading Keras `.weights.h5` / `.keras` weights by layer name.

`model.save_weights()` stores each layer's variables under a path built from the layer's *class*
and position (`layers/conv2d_7/vars/0`), so Keras' own loader matches files to models by order.
Keras 3 also records the layer's name as the attribute `name` of every `vars` group; this module
uses that to read a file as {layer name: [arrays]}, which lets a file saved from a model with a
classifier load into the same backbone without one, and lets errors name the layers involved.
"""

import io
import os
import zipfile

import h5py
import numpy as np

from keras_csp.weights.timm_convert import WeightPlan, finish_plan

_KERAS_ARCHIVE_WEIGHTS = "model.weights.h5"


def _unreadable(path, e, kind):
    return ValueError(
        f"weights={path!r} is not a readable {kind} file ({e.__class__.__name__}: {e}); "
        "allowed: a file written by model.save_weights() (.weights.h5) or model.save() (.keras)."
    )


def open_weights_h5(path):
    """An open `h5py.File` with the weights of a `.weights.h5` or `.keras` file (caller closes)."""
    path = os.fspath(path)
    if path.endswith(".keras"):
        try:
            with zipfile.ZipFile(path) as archive:
                data = archive.read(_KERAS_ARCHIVE_WEIGHTS)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise _unreadable(path, e, ".keras") from None
        try:
            return h5py.File(io.BytesIO(data), "r")
        except OSError as e:
            raise _unreadable(path, e, ".keras") from None
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise _unreadable(path, e, ".weights.h5") from None


def read_layer_weights(path):
    """{layer name: [arrays in save order]} of a weights file, or None when it has no names.

    Files written by Keras versions that did not record layer names (or with repeated names,
    as nested models can have) return None; the caller then falls back to loading by order.
    """
    layers = {}
    try:
        with open_weights_h5(path) as f:
            groups = []
            f.visititems(
                lambda key, obj: groups.append(obj)
                if isinstance(obj, h5py.Group) and key.split("/")[-1] == "vars"
                else None
            )
            for group in groups:
                keys = list(group.keys())
                if not keys:
                    continue
                name = group.attrs.get("name")
                if isinstance(name, bytes):
                    name = name.decode("utf-8")
                if not isinstance(name, str) or name in layers:
                    return None
                if sorted(keys) != sorted(str(i) for i in range(len(keys))):
                    return None
                layers[name] = [np.asarray(group[str(i)]) for i in range(len(keys))]
    except OSError as e:
        raise _unreadable(os.fspath(path), e, "weights") from None
    return layers


def _save_order(layer):
    """The layer's variables in the order `save_own_variables` writes them ("0", "1", ...)."""
    store = {}
    layer.save_own_variables(store)
    return [store[str(i)] for i in range(len(store))]


def plan_from_layers(model, layer_weights, ignore_layers=()):
    """Matches {layer name: [arrays]} with the model's layers, variable by variable."""
    model_layers = {layer.name: layer for layer in model.layers}
    plan = WeightPlan(source_label="file weights")
    for name, arrays in layer_weights.items():
        if name in ignore_layers:
            plan.ignored.append(name)
            continue
        layer = model_layers.get(name)
        variables = _save_order(layer) if layer is not None else []
        if layer is None or len(variables) != len(arrays):
            plan.unused.extend((f"{name}/{i}", a.shape) for i, a in enumerate(arrays))
            continue
        for variable, array in zip(variables, arrays):
            if tuple(variable.shape) != array.shape:
                plan.shape_mismatch.append(
                    (f"{name}/{variable.name}", array.shape, variable.path, tuple(variable.shape))
                )
            else:
                plan.assign.append((variable, array, f"{name}/{variable.name}"))
    return finish_plan(model, plan)
