"""Full-integer export keeps CSP stages inside XNNPACK: a requantizing step before each concat."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_csp
from keras_csp import export
from keras_csp.export.int8 import (
    Requantize,
    nodes_outside_xnnpack,
    refused_leaky_relus,
    requantize_after,
    separate_concat_scales,
)
from keras_csp.layers import ChannelSplit
from keras_csp.lite import LiteModel

SIZE = 16


def _csp_like(block_gain, block_activation=False):
    """conv -> LeakyReLU -> split; one part bypasses, the other runs a conv (and a LeakyReLU)
    whose output range is about `block_gain` times the bypass'; both concatenated, as in a CSP
    stage."""
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv_exp")(inputs)
    x = keras.layers.LeakyReLU(negative_slope=0.01, name="act_exp")(x)
    bypass, block = ChannelSplit([8, 8], name="split")(x)
    block = keras.layers.Conv2D(
        8, 3, padding="same", name="block",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.2 * block_gain, seed=1),
    )(block)
    if block_activation:
        block = keras.layers.LeakyReLU(negative_slope=0.01, name="act_block")(block)
    x = keras.layers.Concatenate(name="concat")([bypass, block])
    x = keras.layers.Conv2D(4, 1, name="transition")(x)
    return keras.Model(inputs, x)


def _plain_int8(model, path):
    """The model converted without keras_csp's export (no requantizing steps)."""
    fn = tf.function(model, input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3))])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None] / 255.0] for s in _calibration())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(converter.convert())
    return path


def _calibration(n=16):
    rng = np.random.default_rng(0)
    return [rng.uniform(0, 255, (SIZE, SIZE, 3)).astype("float32") for _ in range(n)]


def test_requantize_is_the_identity_in_float():
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 5, 6)).astype("float32"))
    np.testing.assert_array_equal(Requantize()(x).numpy(), x.numpy())


def test_separate_concat_scales_wraps_split_parts_and_leaky_relus_only():
    model = _csp_like(1.0, block_activation=True)
    rebuilt, notes = separate_concat_scales(model)
    names = [layer.name for layer in rebuilt.layers]
    assert {"concat.requantize0", "concat.requantize1"} <= set(names)
    assert len(notes) == 1 and "requantized 2 concatenation input(s)" in notes[0]
    x = np.random.default_rng(1).normal(size=(2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_array_equal(rebuilt(x).numpy(), model(x).numpy())
    # A conv output entering the concatenation keeps its plain path.
    rebuilt, _ = separate_concat_scales(_csp_like(1.0))
    names = [layer.name for layer in rebuilt.layers]
    assert "concat.requantize0" in names and "concat.requantize1" not in names
    # Nothing to do: the same model comes back, without notes.
    plain = keras_csp.build_model("resnet10", weights=None, input_shape=(32, 32, 3))
    assert separate_concat_scales(plain) == (plain, [])


@pytest.mark.parametrize(
    "block_gain,outside",
    [(20.0, "the bypass' LeakyReLU (before the split)"),
     (0.02, "the block path's LeakyReLU")],
)
def test_leaky_relu_before_a_concat_stays_in_xnnpack(tmp_path, block_gain, outside):
    model = _csp_like(block_gain, block_activation=True)
    # The plain graph shows the problem: the narrower LeakyReLU inherits the concat's wide scale.
    plain = _plain_int8(model, tmp_path / "plain.tflite")
    assert LiteModel(plain, num_threads=1).undelegated_ops() == ["LEAKY_RELU"], outside

    path = tmp_path / "int8.tflite"
    report = export.tflite(
        model, path, quantize="int8", batch=1, representative_data=_calibration(), verbose=False
    )
    assert any("requantized 2 concatenation input(s)" in note for note in report.notes)
    assert report.ops.get("DEPTHWISE_CONV_2D") == 2 + 1  # the steps, and the pixel normalization
    lite = LiteModel(path, num_threads=1)
    assert lite.undelegated_ops() == []
    # And it still computes the float model's numbers, to int8 precision.
    export.tflite(model, tmp_path / "fp32.tflite", batch=1, verbose=False)
    images = np.stack(_calibration(4))
    (want,) = LiteModel(tmp_path / "fp32.tflite", num_threads=1)(images).values()
    (got,) = lite(images).values()
    assert np.abs(got - want).max() < 0.03 * np.ptp(want)


def _residual_like(other_gain):
    """A LeakyReLU added to a branch whose range is about `other_gain` times wider (a residual
    block's end): the converter gives the LeakyReLU's output the Add's scale."""
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    a = keras.layers.Conv2D(8, 3, padding="same", name="conv_a")(inputs)
    a = keras.layers.LeakyReLU(negative_slope=0.01, name="act_a")(a)
    b = keras.layers.Conv2D(
        8, 3, padding="same", name="conv_b",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.2 * other_gain, seed=1),
    )(inputs)
    x = keras.layers.Add(name="add")([a, b])
    return keras.Model(inputs, keras.layers.Conv2D(4, 1, name="out")(x))


def test_leaky_relu_refused_elsewhere_is_found_and_requantized(tmp_path):
    model = _residual_like(20.0)
    plain = _plain_int8(model, tmp_path / "plain.tflite")
    assert LiteModel(plain, num_threads=1).undelegated_ops() == ["LEAKY_RELU"]
    assert refused_leaky_relus(nodes_outside_xnnpack(plain.read_bytes()), model) == ["act_a"]

    path = tmp_path / "int8.tflite"
    report = export.tflite(
        model, path, quantize="int8", batch=1, representative_data=_calibration(), verbose=False
    )
    assert any("XNNPACK refused 1 LEAKY_RELU op(s)" in n and "act_a" in n for n in report.notes)
    assert LiteModel(path, num_threads=1).undelegated_ops() == []
    assert not any("leaves to the interpreter" in note for note in report.notes)
    rebuilt = requantize_after(model, ["act_a"])
    assert "act_a.requantize" in [layer.name for layer in rebuilt.layers]


def test_ops_left_outside_xnnpack_are_reported(tmp_path):
    # XNNPACK has no int8 softmax: a classifier's last op stays with the interpreter, and says so.
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    probs = keras.layers.Dense(3, activation="softmax", name="fc")(x)
    report = export.tflite(
        keras.Model(inputs, probs), tmp_path / "c.tflite", quantize="int8", batch=1,
        representative_data=_calibration(), verbose=False,
    )
    assert any(
        "leaves to the interpreter: 1 SOFTMAX" in note and "no int8 SOFTMAX" in note
        for note in report.notes
    )


@pytest.mark.parametrize("quantize", ["none", "fp16"])
def test_float_exports_keep_the_plain_graph(tmp_path, quantize):
    report = export.tflite(
        _csp_like(1.0), tmp_path / "m.tflite", quantize=quantize, batch=1, verbose=False
    )
    assert report.ops.get("DEPTHWISE_CONV_2D") == 1  # the pixel normalization only
    assert not any("requantized" in note for note in report.notes)
