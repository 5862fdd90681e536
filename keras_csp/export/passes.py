"""The rewrites a TFLite export applies to the deploy model before converting it, in order.

Each pass is a function `(model, plan) -> (model, notes)`: the rewritten model (or the same one)
and what it did, for the export report. `FUNCTIONS` holds them by name; `keras_csp.registry`'s
`EXPORT_PASSES` (Keras-free, so `keras-csp export --help` reads it) gives their order, the
condition under which each runs and its switch (`export.tflite`'s keyword, the CLI's flag, the
default and the help). `PASSES` joins the two; tests/export/test_passes.py checks that they name
the same passes. A new pass is one function here and one line there.
"""

import dataclasses
from typing import Callable

import keras

from keras_csp import registry
from keras_csp.export import gpu, groups, int8
from keras_csp.export.graph import layers_in_graph, replace_layers
from keras_csp.export.quantization import QuantizationOptions
from keras_csp.export.serving import Serving


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the passes read: the export's options, the deploy model's description and the value
    of every pass switch (`registry.export_switches`)."""

    options: QuantizationOptions
    serving: Serving  # kind and input size (the model itself goes from pass to pass)
    switches: dict = dataclasses.field(default_factory=registry.export_switches)


@dataclasses.dataclass(frozen=True)
class Pass:
    name: str
    applies_when: Callable[[Plan], bool]
    run: Callable  # (model, plan) -> (model, notes)


def _gpu_equivalents(model, plan):
    """Layers the GPU delegate cannot run, replaced by equivalents (see `gpu.py`)."""
    model, notes = gpu.substitute(model)
    return model, [f"GPU equivalent: {n}" for n in notes]


def _gpu_equivalents_available(model, plan):
    """With `gpu_substitutes=False`: the model is kept, the report says what could be replaced."""
    notes = [
        f"GPU equivalent available (gpu_substitutes=True): {name}: {why}"
        for name, why in gpu.planned_substitutions(model)
    ]
    return model, notes


def _widen_groups(model, plan):
    return groups.widen_groups(model)


def _separate_concat_scales(model, plan):
    return int8.separate_concat_scales(model)


def _fine_tune(model, plan):
    """Pruning and/or QAT on the tf_keras twin (imported here: tfmot changes the process's Keras
    settings on import, see `optimize.py`)."""
    from keras_csp.export import optimize

    return optimize.fine_tune_for_export(
        model, plan.serving.kind, plan.serving.input_size, plan.options
    )


# The pool a chain of stride-1 max pools is made of: pool k equals (k - 1) / 4 of them in a row
# (the windows add up; TensorFlow's and TFLite's "same" max pool leave the padding out).
CASCADE_POOL = 5


def _chainable(layer):
    """A stride-1 "same" square max pool of size 5, 9, 13, ...: what a chain of 5x5 pools
    computes."""
    if type(layer) is not keras.layers.MaxPooling2D or layer.padding != "same":
        return False
    (k, k2), strides = tuple(layer.pool_size), tuple(layer.strides)
    return k == k2 and strides == (1, 1) and k >= CASCADE_POOL and (k - 1) % 4 == 0


def _cascade_max_pools(model, plan):
    """Every max pool of size 9, 13, ... (SPP's), and a 5x5 one on the same input, as a chain of
    5x5 pools shared by the pools of one input (YOLOv5's SPPF): SPP(5, 9, 13) costs 3 x 25
    comparisons per value instead of 25 + 81 + 169, with the same outputs."""
    pools = [layer for layer in layers_in_graph(model) if _chainable(layer)]
    wide_inputs = {id(p.input) for p in pools if p.pool_size[0] > CASCADE_POOL}
    names = {p.name for p in pools if id(p.input) in wide_inputs}
    if not names:
        return model, []
    chains = {}  # id(input tensor) -> [pool 5 of it, pool 5 of that, ...]

    def make(layer, args):
        steps = (layer.pool_size[0] - 1) // 4

        def chain(x, *rest, **kwargs):
            made = chains.setdefault(id(x), [x])
            while len(made) <= steps:
                made.append(keras.layers.MaxPooling2D(
                    CASCADE_POOL, strides=1, padding="same", dtype=layer.dtype_policy,
                    name=f"{layer.name}.cascade{len(made)}")(made[-1]))
            return made[steps]

        return chain

    notes = [f"cascade max pools: {name}: part of a chain of {CASCADE_POOL}x{CASCADE_POOL} pools "
             "(same values)" for name in sorted(names)]
    return replace_layers(model, names, make), notes


# name -> the pass's function; keras_csp.registry.EXPORT_PASSES has the same names.
FUNCTIONS = {
    "GPU equivalents": _gpu_equivalents,
    "GPU equivalents (reported only)": _gpu_equivalents_available,
    "widen groups": _widen_groups,
    "cascade max pools": _cascade_max_pools,
    "separate concatenation scales": _separate_concat_scales,
    "fine-tune (prune, QAT)": _fine_tune,
}

PASSES = tuple(
    Pass(name, entry.when, FUNCTIONS[name]) for name, entry in registry.EXPORT_PASSES.items()
)


def run_passes(model, plan, passes=PASSES):
    """`(model, notes)` after every pass of `passes` that applies to `plan`, in order."""
    notes = []
    for step in passes:
        if step.applies_when(plan):
            model, step_notes = step.run(model, plan)
            notes.extend(step_notes)
    return model, notes
