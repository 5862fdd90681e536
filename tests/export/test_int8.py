"""Full-integer export keeps CSP stages inside XNNPACK: a requantizing step on each bypass."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_csp
from keras_csp import export
from keras_csp.export.int8 import Requantize, separate_split_scales
from keras_csp.layers import ChannelSplit
from keras_csp.lite import LiteModel

SIZE = 16


def _csp_like(block_gain):
    """conv -> LeakyReLU -> split; one part bypasses, the other runs a conv whose output range is
    `block_gain` times wider; both concatenated, as in a CSP stage."""
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv_exp")(inputs)
    x = keras.layers.LeakyReLU(negative_slope=0.01, name="act_exp")(x)
    bypass, block = ChannelSplit([8, 8], name="split")(x)
    block = keras.layers.Conv2D(
        8, 3, padding="same", name="block",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.2 * block_gain, seed=1),
    )(block)
    x = keras.layers.Concatenate(name="concat")([bypass, block])
    x = keras.layers.Conv2D(4, 1, name="transition")(x)
    return keras.Model(inputs, x)


def _calibration(n=16):
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 255, (SIZE, SIZE, 3)).astype("float32") for _ in range(n)]


def test_requantize_is_the_identity_in_float():
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 5, 6)).astype("float32"))
    np.testing.assert_array_equal(Requantize()(x).numpy(), x.numpy())


def test_separate_split_scales_wraps_only_split_parts_of_a_concat():
    model = _csp_like(1.0)
    rebuilt, notes = separate_split_scales(model)
    names = [layer.name for layer in rebuilt.layers]
    assert names.count("concat.requantize0") == 1 and "concat.requantize1" not in names
    assert len(notes) == 1 and "requantized 1 CSP bypass" in notes[0]
    x = np.random.default_rng(1).normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_array_equal(rebuilt(x).numpy(), model(x).numpy())
    # Nothing to do: the same model comes back, without notes.
    plain = keras_csp.build_model("resnet10", weights=None, input_shape=(32, 32, 3))
    assert separate_split_scales(plain) == (plain, [])


def test_wide_block_range_no_longer_pushes_leaky_relu_out_of_xnnpack(tmp_path):
    model = _csp_like(block_gain=20.0)
    # The plain graph shows the problem: LEAKY_RELU inherits the concatenation's wide scale.
    fn = tf.function(model, input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3))])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None] / 255.0] for s in _calibration())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(converter.convert())
    assert LiteModel(plain, num_threads=1).undelegated_ops() == ["LEAKY_RELU"]

    path = tmp_path / "int8.tflite"
    report = export.tflite(
        model, path, quantize="int8", batch=1, representative_data=_calibration(), verbose=False
    )
    assert any("requantized 1 CSP bypass" in note for note in report.notes)
    assert report.ops.get("DEPTHWISE_CONV_2D") == 1
    lite = LiteModel(path, num_threads=1)
    assert lite.undelegated_ops() == []
    # And it still computes the float model's numbers, to int8 precision.
    export.tflite(model, tmp_path / "fp32.tflite", batch=1, verbose=False)
    images = np.stack(_calibration(4))
    (want,) = LiteModel(tmp_path / "fp32.tflite", num_threads=1)(images).values()
    (got,) = lite(images).values()
    assert np.abs(got - want).max() < 0.03 * np.ptp(want)


@pytest.mark.parametrize("quantize", ["none", "fp16"])
def test_float_exports_keep_the_plain_graph(tmp_path, quantize):
    report = export.tflite(
        _csp_like(1.0), tmp_path / "m.tflite", quantize=quantize, batch=1, verbose=False
    )
    assert "DEPTHWISE_CONV_2D" not in report.ops
    assert not any("requantized" in note for note in report.notes)
