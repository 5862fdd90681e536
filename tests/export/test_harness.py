"""The shared harness (keras-hub's `run_vision_backbone_test`, in spirit): every registered
backbone family (`registry.MODEL_FAMILIES`), neck (`registry.NECKS`) and export pass
(`registry.EXPORT_PASSES`) is built tiny and checked the same way: it builds, its outputs have
the expected shapes, its `.keras` file loads with `safe_mode=True` and gives the same outputs, its
tf_keras twin (QAT and pruning's model) gives close ones, and its `.tflite` file converts and runs
whole on LiteRT's GPU engine (SwiftShader here), agreeing with the CPU. A new entry is tested by
being registered.

Families are their own configs at depth 1 and a quarter of the width, necks a CSPDetector on a
four-stage 8-32 channel backbone, at 64x64 (the same layer and op types, converted in about a
second each), exported in fp32 at batch 1 (their fp16 and int8 files: tests/export/test_gpu.py);
each pass is run on one detector that has what every pass rewrites, after the passes before it,
and the model the passes end in is exported in fp32 (once per plan).
"""

import keras
import numpy as np
import pytest
from export_helpers import (
    assert_whole_on_the_gpu_and_agrees,
    harness_family_model,
    randomize_batchnorm,
    tiny_detector,
)

from keras_csp import export, load_model, registry
from keras_csp.export.passes import FUNCTIONS, PASSES, Plan, run_passes
from keras_csp.export.quantization import QuantizationOptions
from keras_csp.export.serving import build_serving
from keras_csp.export.twin import to_tf_keras
from keras_csp.applications.saving import load_model

SIZE = 64
CLASSES = 10
# Anchor points of a detector: one per cell of P3, P4 and P5 (strides 8, 16, 32).
ANCHORS = sum((SIZE // stride) ** 2 for stride in (8, 16, 32))


def _inputs(model, batch=2):
    shape = (batch, *model.inputs[0].shape[1:])
    return np.random.default_rng(5).uniform(0, 255, shape).astype("float32")


def _assert_keras_and_twin(model, x, tmp_path):
    """The `.keras` round trip (safe mode) gives the same outputs; the tf_keras twin close ones."""
    expected = keras.tree.map_structure(np.asarray, model(x))
    model.save(tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras", safe_mode=True)
    keras.tree.map_structure(np.testing.assert_array_equal,
                             keras.tree.map_structure(np.asarray, loaded(x)), expected)
    twin, _ = to_tf_keras(model)
    got = keras.tree.map_structure(np.asarray, twin(x, training=False))
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), got, expected
    )


def _assert_fp32_runs_whole_on_the_gpu(model, tmp_path):
    """The default export (fp32, batch 1); fp16 and int8: tests/export/test_gpu.py."""
    report = export.tflite(model, tmp_path / "model.tflite", verbose=False)
    assert report.gpu_issues == [], report.gpu_issues  # the static checks agree
    assert report.ops.get("CONV_2D", 0) > 0
    assert_whole_on_the_gpu_and_agrees(report)


@pytest.mark.parametrize("family", registry.MODEL_FAMILIES)
def test_family(family, gpu_accelerator, tmp_path):
    model = harness_family_model(family, SIZE, CLASSES)
    x = _inputs(model)
    assert tuple(model(x).shape) == (2, CLASSES)
    _assert_keras_and_twin(model, x, tmp_path)
    _assert_fp32_runs_whole_on_the_gpu(model, tmp_path)


@pytest.mark.parametrize("neck", sorted(registry.NECKS))
def test_neck(neck, gpu_accelerator, tmp_path):
    keras.utils.set_random_seed(0)
    model = randomize_batchnorm(tiny_detector(neck, SIZE))
    x = _inputs(model)
    outputs = model(x)
    assert tuple(outputs["classes"].shape) == (2, ANCHORS, 3)
    assert tuple(outputs["boxes"].shape)[:2] == (2, ANCHORS)
    _assert_keras_and_twin(model, x, tmp_path)
    _assert_fp32_runs_whole_on_the_gpu(model, tmp_path)


@pytest.fixture(scope="module")
def pass_model():
    """A detector with what each pass rewrites: nearest upsampling (PANet; the GPU equivalents),
    grouped convolutions of 4-16 channels per group (widened), SPP's pools (cascaded),
    concatenations of split parts (int8 scales); the deploy model the passes see."""
    keras.utils.set_random_seed(0)
    model = randomize_batchnorm(tiny_detector("panet", SIZE, attention="spp", groups=2))
    return build_serving(model, None, None, require_static=True, nms=False)


# Passes that train (a minute here even for one step on two images, mostly tfmot's set-up): their
# exports are tests/export/test_optimize.py's and test_tflite.py's.
TRAINED = ("fine-tune (prune, QAT)",)
_CONVERTED = {}  # (quantize, switches) -> the ExportReport of the passes' final model


def _plan_where_it_runs(name, serving):
    """A plan under which the pass runs: the default export, every switch flipped, or int8."""
    defaults = registry.export_switches()
    options = (QuantizationOptions(), QuantizationOptions(quantize="int8", representative_data=[]))
    for option in options:
        for switches in (defaults, {key: not value for key, value in defaults.items()}):
            plan = Plan(option, serving, switches)
            if registry.EXPORT_PASSES[name].when(plan):
                return plan
    raise AssertionError(
        f"the pass {name!r} runs under none of the harness's plans: add its plan (or, if it "
        "trains, its name to TRAINED and its test elsewhere)"
    )


@pytest.mark.parametrize("name", [n for n in registry.EXPORT_PASSES if n not in TRAINED])
def test_export_pass(name, pass_model, gpu_accelerator, tmp_path):
    plan = _plan_where_it_runs(name, pass_model)
    index = list(registry.EXPORT_PASSES).index(name)
    # The model as the passes before it leave it (the GPU equivalents come first, say).
    deploy, _ = run_passes(pass_model.deploy, plan, PASSES[:index])
    x = _inputs(deploy, batch=1)
    rewritten, notes = FUNCTIONS[name](deploy, plan)
    assert notes, f"the pass {name!r} found nothing to do in the harness's model"
    got, expected = rewritten(x, training=False), deploy(x, training=False)
    assert {k: tuple(v.shape) for k, v in got.items()} == {
        k: tuple(v.shape) for k, v in expected.items()}
    if rewritten is deploy:
        return  # a pass that only reports
    for key in expected:  # a pass keeps the outputs (int8's requantizing steps are identities)
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]),
                                   rtol=1e-4, atol=1e-4)
    _assert_keras_and_twin(rewritten, x, tmp_path)
    # Converted after the passes that follow it (without the widened groups, LiteRT's GPU engine
    # on SwiftShader runs grouped convolutions of few channels whole but wrong), in fp32.
    # Passes of one plan end in the same model: converted once per plan.
    key = (plan.options.quantize, tuple(sorted(plan.switches.items())))
    if key not in _CONVERTED:
        final, _ = run_passes(rewritten, plan, PASSES[index + 1:])
        off = {switch: False for switch in plan.switches}  # no pass rewrites it again
        _CONVERTED[key] = export.tflite(final, tmp_path / "pass.tflite", verbose=False, **off)
    assert_whole_on_the_gpu_and_agrees(_CONVERTED[key])
