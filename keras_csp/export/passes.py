"""The rewrites a TFLite export applies to the deploy model before converting it, in order.

Each pass is a function `(model, plan) -> (model, notes)`: the rewritten model (or the same one)
and what it did, for the export report. `PASSES` lists them in the order they run; a pass runs
when its `applies_when(plan)` holds. The order matters: the GPU equivalents come first, so every
later pass (and the fine-tuning's teacher) sees the layers that are exported; the groups are
widened and the int8 scales separated on Keras layers, before fine-tuning turns the model into its
tf_keras twin.
"""

import dataclasses
from typing import Callable

from keras_csp.export import gpu, groups, int8
from keras_csp.export.quantization import QuantizationOptions
from keras_csp.export.serving import Serving


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the passes read: the export's options and the deploy model's description."""

    options: QuantizationOptions
    serving: Serving  # kind and input size (the model itself goes from pass to pass)
    gpu_substitutes: bool = True
    widen_groups: bool = True


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


PASSES = (
    Pass("GPU equivalents", lambda plan: plan.gpu_substitutes, _gpu_equivalents),
    Pass("GPU equivalents (reported only)", lambda plan: not plan.gpu_substitutes,
         _gpu_equivalents_available),
    # Block-diagonal kernels stay exact only while nothing trains their zeros.
    Pass("widen groups", lambda plan: plan.widen_groups and not plan.options.fine_tunes,
         _widen_groups),
    # QAT learns its ranges with the plain graph; only calibrated int8 needs the extra steps.
    Pass("separate concatenation scales", lambda plan: plan.options.quantize == "int8",
         _separate_concat_scales),
    Pass("fine-tune (prune, QAT)", lambda plan: plan.options.fine_tunes, _fine_tune),
)


def run_passes(model, plan, passes=PASSES):
    """`(model, notes)` after every pass of `passes` that applies to `plan`, in order."""
    notes = []
    for step in passes:
        if step.applies_when(plan):
            model, step_notes = step.run(model, plan)
            notes.extend(step_notes)
    return model, notes
