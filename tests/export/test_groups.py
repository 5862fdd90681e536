"""Widened groups: a grouped convolution with few channels per group becomes block-diagonal, with
the same outputs, in the TFLite export only."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_csp import export
from keras_csp.export.groups import block_diagonal_kernel, planned_widenings, widen_groups
from keras_csp.layers import GroupedConv2D
from keras_csp.lite import LiteModel

SIZE = 16


def _grouped_model(groups=8, channels=32, strides=1):
    """conv -> grouped 3x3 conv (`channels / groups` per group) -> 1x1 conv, as in ResNeXt."""
    inputs = keras.Input((SIZE, SIZE, 3), name="images")
    x = keras.layers.Conv2D(channels, 1, name="conv1")(inputs)
    x = GroupedConv2D(channels, 3, strides=strides, padding="same", groups=groups, name="conv2")(x)
    x = keras.layers.LeakyReLU(negative_slope=0.01, name="act")(x)
    return keras.Model(inputs, keras.layers.Conv2D(4, 1, name="conv3")(x))


def _images(n=4, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, SIZE, SIZE, 3)).astype("float32")


@pytest.mark.parametrize("groups,channels,strides", [(8, 32, 1), (32, 128, 2), (4, 8, 1)])
def test_widened_model_computes_the_same(groups, channels, strides):
    model = _grouped_model(groups, channels, strides)
    before = [w.numpy().copy() for w in model.weights]
    wide, notes = widen_groups(model)
    # The fewest merged groups that reach 16 channels; all of them when the layer is narrower.
    factor = next((f for f in range(2, groups) if groups % f == 0 and f * channels // groups >= 16),
                  groups)
    assert wide.get_layer("conv2").groups == groups // factor
    assert wide.get_layer("conv2").kernel.shape == (3, 3, factor * channels // groups, channels)
    assert f"{groups} -> {groups // factor} groups" in notes[0]
    x = _images()
    np.testing.assert_allclose(wide(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-4)
    for after, original in zip(model.weights, before):  # the input model is left alone
        np.testing.assert_array_equal(after.numpy(), original)


def test_block_diagonal_kernel_keeps_each_output_channel_on_its_own_inputs():
    kernel = np.arange(1, 1 + 3 * 3 * 2 * 8, dtype="float32").reshape(3, 3, 2, 8)  # 4 groups
    merged = block_diagonal_kernel(kernel, groups=4, factor=2)  # 2 groups of 4 inputs
    assert merged.shape == (3, 3, 4, 8)
    for o in range(8):
        slot = (o // 2) % 2
        np.testing.assert_array_equal(merged[:, :, 2 * slot : 2 * slot + 2, o], kernel[..., o])
        assert not merged[:, :, 2 * (1 - slot) : 2 * (1 - slot) + 2, o].any()


def test_only_narrow_groups_are_planned():
    assert planned_widenings(_grouped_model(groups=8, channels=32)) == {"conv2": 4}  # 2 x 16
    assert planned_widenings(_grouped_model(groups=2, channels=32)) == {}  # 16 per group already
    assert planned_widenings(_grouped_model(groups=1, channels=32)) == {}
    model = _grouped_model(groups=2, channels=32)
    assert widen_groups(model) == (model, [])


def _conv_filter_shapes(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        details = tf.lite.Interpreter(model_path=str(path)).get_tensor_details()
    return {tuple(d["shape"]) for d in details if len(d["shape"]) == 4 and d["shape"][1] == 3}


def test_tflite_export_has_one_wider_grouped_conv_with_the_same_outputs(tmp_path):
    model = _grouped_model(groups=8, channels=32)
    report = export.tflite(model, tmp_path / "wide.tflite", batch=1, verbose=False)
    assert any("widened the groups of 1 grouped convolution(s)" in n for n in report.notes)
    assert report.ops.get("CONV_2D") == 3  # still one CONV_2D for the grouped conv
    assert (32, 3, 3, 16) in _conv_filter_shapes(tmp_path / "wide.tflite")  # 2 groups of 16

    plain = export.tflite(model, tmp_path / "plain.tflite", batch=1, widen_groups=False,
                          verbose=False)
    assert not any("widened" in n for n in plain.notes)
    assert (32, 3, 3, 4) in _conv_filter_shapes(tmp_path / "plain.tflite")

    images = _images()
    (want,) = LiteModel(tmp_path / "plain.tflite", num_threads=1)(images).values()
    (got,) = LiteModel(tmp_path / "wide.tflite", num_threads=1)(images).values()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)

    # Full integer: inside XNNPACK, and the float numbers to int8 precision.
    int8 = tmp_path / "int8.tflite"
    report = export.tflite(model, int8, quantize="int8", batch=1, verbose=False,
                           representative_data=list(_images(16, seed=1)))
    assert any("widened" in n for n in report.notes)
    lite = LiteModel(int8, num_threads=1)
    assert lite.undelegated_ops() == []
    (got,) = lite(images).values()
    assert np.abs(got - want).max() < 0.03 * np.ptp(want)
