"""Mobile GPU: every family exports (fp32 and fp16) with no op the GPU delegate would refuse.

The families are built from their own configs at depth 1 and a quarter of the width (the same
layer and op types, converted in about a second). `KERAS_CSP_FULL_EXPORT_TESTS=1` also runs the
real builders at 64x64 (about 10-20 s each).
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import slim_config, tiny_classifier

import keras_csp
from keras_csp import export, lite
from keras_csp.export import convert, gpu
from keras_csp.export.graph import layers_in_graph
from keras_csp.export.serving import build_serving
from keras_csp.export.twin import TWINS
from keras_csp.models.config import MODEL_CONFIGS

FAMILIES = sorted(MODEL_CONFIGS)


def _assert_gpu_compatible(check):
    assert check["compatible"], check["issues"] or check["analyzer_verdict"]
    assert check["issues"] == []
    assert check["analyzer_verdict"].startswith("Your model looks compatible with GPU delegate")
    assert "=== TFLite ModelAnalyzer ===" in check["analyzer_output"]  # captured, not printed


@pytest.mark.parametrize("family", FAMILIES)
def test_family_is_gpu_compatible_in_fp32_and_fp16(family):
    model = keras_csp.build_model(slim_config(family), input_shape=(64, 64, 3), classes=10)
    # The QAT/pruning twin knows every layer of the family too.
    assert {type(layer).__name__ for layer in layers_in_graph(model)} <= set(TWINS)
    # What export.tflite does, with one trace and freeze for both conversions.
    serving = build_serving(model, require_static=True, nms=False)
    serving.deploy, _ = gpu.substitute(serving.deploy)
    holder = convert.freeze(serving.deploy, serving.input_size, serving.named_outputs)
    for quantize in ("none", "fp16"):
        check = gpu.gpu_check(convert.to_tflite(holder, convert.configure(quantize)))
        _assert_gpu_compatible(check)
        assert check["ops"].get("CONV_2D", 0) > 0


@pytest.mark.skipif(
    not os.environ.get("KERAS_CSP_FULL_EXPORT_TESTS"), reason="set KERAS_CSP_FULL_EXPORT_TESTS=1"
)
@pytest.mark.parametrize("family", FAMILIES)
def test_full_builder_is_gpu_compatible(family, tmp_path):
    model = keras_csp.build_model(family, input_shape=(64, 64, 3))
    for quantize in ("none", "fp16"):
        report = export.tflite(model, tmp_path / "m.tflite", quantize=quantize, verbose=False)
        print(f"{family} {quantize}: {report.size_bytes:,} bytes, {sum(report.ops.values())} ops, "
              f"compatible={report.gpu_compatible}: {report.analyzer_verdict}")
        assert report.gpu_compatible, report.summary()


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
