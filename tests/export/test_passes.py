"""The TFLite export's options object and which rewrite passes each export runs, in order (no
conversion: the passes themselves are tested through `export.tflite` in the other files)."""

import dataclasses

import pytest

from keras_csp.export.passes import PASSES, Plan
from keras_csp.export.quantization import QuantizationOptions


def _applied(**kwargs):
    switches = {k: kwargs.pop(k) for k in ("gpu_substitutes", "widen_groups") if k in kwargs}
    plan = Plan(QuantizationOptions(**kwargs), serving=None, **switches)
    return [p.name for p in PASSES if p.applies_when(plan)]


@pytest.mark.parametrize(
    "kwargs, names",
    [
        (dict(), ["GPU equivalents", "widen groups"]),
        (dict(quantize="fp16", gpu_substitutes=False, widen_groups=False),
         ["GPU equivalents (reported only)"]),
        (dict(quantize="int8", representative_data=[]),
         ["GPU equivalents", "widen groups", "separate concatenation scales"]),
        # Training would fill the block-diagonal zeros: no widening with QAT or pruning.
        (dict(quantize="qat", train_data=[]), ["GPU equivalents", "fine-tune (prune, QAT)"]),
        (dict(prune=0.5, train_data=[]), ["GPU equivalents", "fine-tune (prune, QAT)"]),
    ],
)
def test_the_passes_an_export_runs(kwargs, names):
    assert _applied(**kwargs) == names


def test_options_are_checked_once_and_frozen():
    options = QuantizationOptions(quantize="qat", io="uint8", train_data=[], prune=0.25)
    assert options.full_integer and options.fine_tunes
    assert not QuantizationOptions(quantize="dynamic").full_integer
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.quantize = "none"
    with pytest.raises(ValueError, match=r"epochs=0 is not allowed; allowed: an integer >= 1"):
        QuantizationOptions(epochs=0)
    with pytest.raises(ValueError, match=r"steps=2.5 is not allowed; allowed: an integer >= 1"):
        QuantizationOptions(steps=2.5)
