"""Mobile GPU: every registered family's and neck's fp16 and int8 export runs whole on LiteRT's
GPU accelerator and agrees with the CPU, the static checks pass too (fp32: the shared harness,
tests/export/test_harness.py); what the export does for the GPU (the equivalents, the checks, the
report without a GPU).

The families are built from their own configs at depth 1 and a quarter of the width (the same
layer and op types, converted in about a second), at 64x64; each is exported once per format by
`export.tflite`, whose report carries the accelerator's run (`export.gpu.accelerator_check`, on
SwiftShader here). `KERAS_CSP_FULL_EXPORT_TESTS=1` also runs the real builders at 64x64 (about
10-20 s each, and seconds per file on SwiftShader).
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import (
    assert_whole_on_the_gpu_and_agrees,
    export_formats,
    harness_family_model,
    randomize_batchnorm,
    tiny_classifier,
    tiny_detector,
)

import keras_csp
from keras_csp import export, lite, registry
from keras_csp.export import gpu

SIZE = 64
# The fp32 file of every registered family and neck is tests/export/test_harness.py's (with the
# .keras file and the tf_keras twin); these are the quantized ones.
QUANTIZED = ("fp16", "int8")


@pytest.mark.parametrize("family", registry.MODEL_FAMILIES)
def test_family_runs_whole_on_the_gpu_in_fp16_and_int8(family, gpu_accelerator, tmp_path):
    # The same seeded model as the harness's (see there why seeded).
    model = harness_family_model(family, SIZE)
    for report in export_formats(model, tmp_path, SIZE, QUANTIZED).values():
        # The static checks agree (they are what the report falls back to).
        assert report.gpu_issues == [], report.gpu_issues
        assert report.analyzer_verdict.startswith("Your model looks compatible with GPU delegate")
        assert "=== TFLite ModelAnalyzer ===" in report.analyzer_output  # captured, not printed
        assert_whole_on_the_gpu_and_agrees(report)


@pytest.mark.parametrize("neck", sorted(registry.NECKS))
def test_detector_runs_whole_on_the_gpu_in_fp16_and_int8(neck, gpu_accelerator, tmp_path):
    # The default export (no batch argument): batch 1, what phones run.
    for report in export_formats(tiny_detector(neck, SIZE), tmp_path, SIZE, QUANTIZED).values():
        assert report.kind == "detector" and report.inputs[0]["shape"][0] == 1
        assert_whole_on_the_gpu_and_agrees(report)


def test_a_dynamic_batch_detector_is_refused_with_the_batch_1_hint(gpu_accelerator, tmp_path):
    from keras_csp.export.verify import SHAPE_OPS_HINT
    from keras_csp.lite.model import DYNAMIC_BATCH_GPU_HINT

    path = tmp_path / "dynamic.tflite"
    report = export.tflite(tiny_detector("efm", SIZE), path, batch="dynamic", verbose=False)
    assert report.inputs[0]["shape"][0] == -1 and not report.gpu_compatible
    assert SHAPE_OPS_HINT in report.notes
    # The engine says only "Failed to modify graph with delegate"; the error says why and what to
    # export instead, in the report and from LiteModel alike.
    assert "Failed to modify graph with delegate" in report.gpu_accelerator["error"]
    assert report.gpu_accelerator["error"].endswith(DYNAMIC_BATCH_GPU_HINT)
    with pytest.raises(ValueError, match="refused the file: .*export it with batch 1"):
        lite.LiteModel(path, accelerator="gpu")


@pytest.mark.skipif(
    not os.environ.get("KERAS_CSP_FULL_EXPORT_TESTS"), reason="set KERAS_CSP_FULL_EXPORT_TESTS=1"
)
@pytest.mark.parametrize("family", registry.MODEL_FAMILIES)
def test_full_builder_runs_whole_on_the_gpu(family, gpu_accelerator, tmp_path):
    model = randomize_batchnorm(keras_csp.build_model(family, input_shape=(SIZE, SIZE, 3)))
    for quantize, report in export_formats(model, tmp_path, SIZE).items():
        print(f"{family} {quantize}: {report.size_bytes:,} bytes, {sum(report.ops.values())} ops, "
              f"compatible={report.gpu_compatible}: {report.analyzer_verdict}")
        assert not report.gpu_issues, report.summary()
        assert_whole_on_the_gpu_and_agrees(report)


def test_an_incompatible_activation_gets_its_equivalent(tiny_config, tmp_path, pixels):
    # log_softmax lowers to LOG_SOFTMAX, which the GPU delegate does not run.
    model = tiny_classifier(tiny_config, classifier_activation="log_softmax")
    kept = export.tflite(model, tmp_path / "kept.tflite", gpu_substitutes=False, verbose=False)
    assert "LOG_SOFTMAX" in kept.ops and not kept.gpu_compatible
    assert any("LOG_SOFTMAX" in issue for issue in kept.gpu_issues)
    assert any(n.startswith("GPU equivalent available") and "head.fc" in n for n in kept.notes)

    swapped = export.tflite(model, tmp_path / "swapped.tflite", verbose=False)
    assert "LOG_SOFTMAX" not in swapped.ops and swapped.gpu_compatible, swapped.summary()
    assert any(n.startswith("GPU equivalent: head.fc: log_softmax") for n in swapped.notes)
    # Same values: softmax(log_softmax(z)) is softmax(z) either way.
    a = lite.LiteModel(tmp_path / "kept.tflite")(pixels)["probabilities"]
    b = lite.LiteModel(tmp_path / "swapped.tflite")(pixels)["probabilities"]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_nearest_upsampling_equivalent_has_the_same_values():
    inputs = keras.Input((4, 6, 3))
    outputs = keras.layers.UpSampling2D(2, name="up")(keras.layers.Conv2D(3, 1)(inputs))
    model = keras.Model(inputs, outputs)
    swapped, notes = gpu.substitute(model)
    assert notes and notes[0].startswith("up: nearest UpSampling2D")
    x = np.random.default_rng(0).normal(size=(2, 4, 6, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(swapped(x)), np.asarray(model(x)))


def test_op_check_flags_what_the_delegate_cannot_run():
    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 4], tf.float32)])
    def top_k(x):
        return tf.math.top_k(tf.reshape(x, [1, -1]), 3).values

    content = tf.lite.TFLiteConverter.from_concrete_functions(
        [top_k.get_concrete_function()], top_k
    ).convert()
    check = gpu.gpu_check(content)
    assert not check["compatible"]
    assert check["issues"] == ["op #1 TOPK_V2: not an op the GPU delegate implements"]
    assert check["analyzer_verdict"]  # TF 2.21's analyzer calls this compatible; we report both


def test_a_file_the_gpu_refuses_is_written_and_its_ops_named(tiny_config, tmp_path,
                                                              gpu_accelerator):
    model = tiny_classifier(tiny_config, classifier_activation="log_softmax")
    report = export.tflite(model, tmp_path / "kept.tflite", gpu_substitutes=False, verbose=False)
    assert (tmp_path / "kept.tflite").exists()
    check = report.gpu_accelerator
    assert check["started"] and not check["whole"] and not report.gpu_compatible
    assert check["refused"] == ["LOG_SOFTMAX: Operation is not supported"]
    summary = report.summary()
    assert "GPU delegate: NOT compatible (the accelerator run)" in summary
    assert f"{check['cpu_ops']} of {check['ops']} ops left on the CPU: LOG_SOFTMAX" in summary
    assert check["agrees"]  # the CPU runs what the GPU refuses: same values


@pytest.fixture
def no_vulkan(monkeypatch, gpu_worker_restarts):
    """The accelerator's process restarted where no Vulkan driver exists, then restarted back."""
    monkeypatch.setenv("VK_ICD_FILENAMES", "/nonexistent/vk_icd.json")


def test_without_a_gpu_the_report_says_its_verdict_is_only_static(tiny_model, tmp_path,
                                                                    no_vulkan):
    report = export.tflite(tiny_model, tmp_path / "m.tflite", verbose=False)
    assert report.gpu_accelerator["started"] is False
    assert report.gpu_compatible  # the static checks' verdict
    summary = report.summary()
    assert "GPU delegate: compatible (static checks only)" in summary
    assert ("GPU accelerator: did not start (LiteRT's GPU accelerator cannot start: no Vulkan "
            in summary)
    assert (tmp_path / "m.tflite").exists()
