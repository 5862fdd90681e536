"""Per-stage parameters, FLOPs and activation memory of a Keras model, computed from layer shapes.

FLOPs count 2 per multiply-add of convolutions and dense layers (the Darknet/paper convention;
BN, activations, pooling and adds are not counted). Activation memory is the bytes of every layer
output written in one forward pass at batch 1: the paper's memory-traffic argument. Layers are
grouped into stages by name (`stem.*`, `stages.N.*`, `head.*`, torchvision's `features.<part>N.*`;
other layers by the first dotted part of their name).
"""

import dataclasses
import math
import re

import keras
import numpy as np


@dataclasses.dataclass
class StageProfile:
    name: str
    params: int = 0
    flops: int = 0
    activation_bytes: int = 0
    output_shape: tuple = ()


@dataclasses.dataclass
class Profile:
    model_name: str
    input_shape: tuple
    stages: list

    @property
    def params(self):
        return sum(s.params for s in self.stages)

    @property
    def flops(self):
        return sum(s.flops for s in self.stages)

    @property
    def activation_bytes(self):
        return sum(s.activation_bytes for s in self.stages)

    def stage(self, name):
        return next(s for s in self.stages if s.name == name)

    def to_dict(self):
        return {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "params": self.params,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "stages": [dataclasses.asdict(s) for s in self.stages],
        }

    def table(self):
        width = max([len("stage")] + [len(s.name) for s in self.stages]) + 1
        header = f"{'stage':<{width}} {'output':<18} {'params':>12} {'GFLOPs':>8} {'act. MB':>8}"
        rule = "-" * len(header)
        lines = [f"{self.model_name} at {'x'.join(map(str, self.input_shape))}", header, rule]
        for s in self.stages:
            shape = "x".join(str(d) for d in s.output_shape[1:]) if s.output_shape else ""
            lines.append(
                f"{s.name:<{width}} {shape:<18} {s.params:>12,} {s.flops / 1e9:>8.3f} "
                f"{s.activation_bytes / 2**20:>8.2f}"
            )
        lines.append(rule)
        lines.append(
            f"{'total':<{width}} {'':<18} {self.params:>12,} {self.flops / 1e9:>8.3f} "
            f"{self.activation_bytes / 2**20:>8.2f}"
        )
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def stage_of(layer_name):
    """`stages.2.blocks.0.conv1` -> `stages.2`; torchvision-style `features.denseblock2.*`,
    `features.transition2.*` and `features.csp2.*` -> `features.2` (one stage, by its number)."""
    parts = layer_name.split(".")
    if len(parts) > 1 and parts[1].isdigit():
        return f"{parts[0]}.{parts[1]}"
    if parts[0] == "features" and len(parts) > 1:
        number = re.search(r"\d+$", parts[1].split("_")[0])
        return f"features.{number.group() if number else parts[1]}"
    return parts[0]


def _shapes(tensors):
    return [tuple(t.shape) for t in keras.tree.flatten(tensors)]


def layer_flops(layer, input_shapes, output_shapes):
    """FLOPs (2 per multiply-add) of one conv or dense layer at batch 1, else 0."""
    if not output_shapes:
        return 0
    out = output_shapes[0]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return 2 * math.prod(out[1:]) * math.prod(layer.kernel_size)
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        in_channels = input_shapes[0][-1]
        per_output = math.prod(layer.kernel_size) * in_channels // layer.groups
        return 2 * math.prod(out[1:]) * per_output
    if isinstance(layer, (keras.layers.Conv2DTranspose,)):
        inp = input_shapes[0]
        return 2 * math.prod(inp[1:]) * math.prod(layer.kernel_size) * layer.filters
    if isinstance(layer, keras.layers.Dense):
        return 2 * math.prod(out[1:]) * input_shapes[0][-1]
    return 0


def _with_fixed_input(model, input_shape):
    """A copy of a functional model whose input has a fixed (1, *input_shape) shape."""
    config = model.get_config()
    inputs = [c for c in config["layers"] if c["class_name"] == "InputLayer"]
    if len(inputs) != 1:
        raise ValueError("profile() needs a functional model with exactly one input.")
    inputs[0]["config"]["batch_shape"] = [1, *input_shape]
    fixed = keras.Model.from_config(config)
    return fixed


def _resolve(model, input_shape, build_kwargs):
    if isinstance(model, str):
        from keras_csp.applications.factory import build_model
        from keras_csp.models.config import get_config

        size = get_config(model).default_size
        shape = tuple(input_shape or (size, size, 3))
        return build_model(model, input_shape=shape, **build_kwargs), shape
    if build_kwargs:
        raise ValueError(
            f"{sorted(build_kwargs)} apply only when model is a name; got a {type(model).__name__}."
        )
    known = tuple(model.input_shape[1:])
    shape = tuple(input_shape) if input_shape is not None else known
    if any(d is None for d in shape):
        raise ValueError(
            f"input_shape={input_shape!r}: the model accepts {known}; pass a concrete "
            "(height, width, channels) to profile it."
        )
    if shape == known:
        return model, shape
    return _with_fixed_input(model, shape), shape


def profile(model, input_shape=None, **build_kwargs):
    """Profiles a Keras model, or a model name built with `build_kwargs` (e.g. `part_ratio`).

    Args:
        model: a functional `keras.Model` or a name such as `"cspresnext50"`.
        input_shape: `(height, width, channels)`; defaults to the model's own input shape, or
            the architecture's default size for names.
        **build_kwargs: with a name, arguments of `keras_csp.build_model` (`part_ratio`, `fusion`,
            `include_top`, `classes`, ...).

    Returns:
        A `Profile`: `.params`, `.flops`, `.activation_bytes`, `.stages`, `.table()`, `.to_dict()`.
    """
    model, shape = _resolve(model, input_shape, build_kwargs)
    stages = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        stage = stages.setdefault(stage_of(layer.name), StageProfile(stage_of(layer.name)))
        input_shapes = _shapes(layer.input)
        output_shapes = _shapes(layer.output)
        stage.params += sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        stage.flops += layer_flops(layer, input_shapes, output_shapes)
        itemsize = np.dtype(layer.compute_dtype).itemsize
        stage.activation_bytes += sum(math.prod(s[1:]) * itemsize for s in output_shapes)
        if len(output_shapes) == 1:
            stage.output_shape = output_shapes[0]
    return Profile(model.name, shape, list(stages.values()))
