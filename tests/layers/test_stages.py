import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_csp.layers import (
    ChannelSplit,
    PartialShortcut,
    bottleneck_block,
    csp_stage,
    dark_block,
    plain_stage,
    split_channels,
)

BLOCK = functools.partial(dark_block, bottle_ratio=0.5)


def stage_model(fusion, part_ratio=0.5, block=BLOCK, **kwargs):
    inputs = keras.Input((16, 16, 32))
    out = csp_stage(inputs, 64, 2, block, "s", part_ratio=part_ratio, fusion=fusion, **kwargs)
    return keras.Model(inputs, out)


def names(model):
    return {layer.name for layer in model.layers}


@pytest.mark.parametrize(
    "channels,ratio,multiple,expected",
    [(256, 0.5, 1, (128, 128)), (256, 0.5, 32, (128, 128)), (100, 0.25, 1, (25, 75)),
     (256, 0.3, 32, (64, 192)), (64, 0.9, 1, (58, 6))],
)
def test_split_channels(channels, ratio, multiple, expected):
    assert split_channels(channels, ratio, multiple) == expected


def test_split_that_empties_a_part_is_an_error():
    with pytest.raises(ValueError, match=r"part_ratio=0.05 leaves 0 bypass and 256 block"):
        split_channels(256, 0.05, 32, name="stages.0")
    with pytest.raises(ValueError, match=r"part_ratio=0.995 leaves 64 bypass and 0 block"):
        split_channels(64, 0.995)


@pytest.mark.parametrize("bad", [0, 1, -0.5, 1.5, float("nan"), float("inf"), "0.5", True, None])
def test_part_ratio_out_of_range(bad):
    with pytest.raises(ValueError, match=r"part_ratio=.* is not allowed; allowed: a number strictly"):
        split_channels(64, bad)


def test_fusion_layouts_follow_figure_3():
    full, first, last = (stage_model(f) for f in ("full", "first", "last"))
    assert {"s.conv_transition_b.conv", "s.conv_transition.conv"} <= names(full)
    assert "s.conv_transition.conv" in names(first)
    assert "s.conv_transition_b.conv" not in names(first)
    assert "s.conv_transition_b.conv" in names(last)
    assert "s.conv_transition.conv" not in names(last)
    assert full.output.shape[-1] == 64 and first.output.shape[-1] == 64
    # fusion "last" ends with the concat: bypass (32) + transitioned block part (32).
    assert last.output.shape[-1] == 64
    assert last.get_layer("s.concat") is last.layers[-1]


def test_bypass_comes_first_in_the_concat_like_timm():
    model = stage_model("first", part_ratio=0.25)
    split = model.get_layer("s.split")
    assert split.sizes == [16, 48]
    concat = model.get_layer("s.concat")
    assert [t.shape[-1] for t in concat.input] == [16, 48]


def test_larger_part_ratio_means_fewer_flops():
    from keras_csp.profiler import profile

    flops = [profile(stage_model("full", r), (16, 16, 32)).flops for r in (0.25, 0.5, 0.75)]
    assert flops[0] > flops[1] > flops[2]


def test_strided_stage_with_down_growth_and_groups():
    inputs = keras.Input((16, 16, 64))
    block = functools.partial(bottleneck_block, bottle_ratio=1.0, groups=8)
    out = csp_stage(inputs, 128, 1, block, "s", strides=2, down_growth=True, down_groups=8,
                    cross_linear=True, channel_multiple=8, part_ratio=0.3)
    model = keras.Model(inputs, out)
    assert model.output.shape == (None, 8, 8, 128)
    assert model.get_layer("s.conv_down.conv").groups == 8
    assert model.get_layer("s.conv_down.conv").filters == 128
    assert "s.conv_exp.act" not in names(model)  # cross_linear
    assert model.get_layer("s.split").sizes == [40, 88]  # block part rounded to a multiple of 8


def test_any_channel_preserving_user_block():
    def se_block(x, name):
        c = x.shape[-1]
        s = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}.pool")(x)
        s = keras.layers.Conv2D(c, 1, activation="sigmoid", name=f"{name}.fc")(s)
        return keras.layers.Multiply(name=f"{name}.scale")([x, s])

    model = stage_model("full", block=se_block)
    assert "s.blocks.1.fc" in names(model)
    y = model(np.ones((1, 16, 16, 32), "float32"))
    assert y.shape == (1, 16, 16, 64)


def test_unknown_fusion():
    with pytest.raises(ValueError, match=r"fusion='middle' does not exist; allowed: 'full', 'first'"):
        stage_model("middle")


def test_plain_stage():
    inputs = keras.Input((16, 16, 32))
    model = keras.Model(inputs, plain_stage(inputs, 64, 2, BLOCK, "p", strides=2))
    assert model.output.shape == (None, 8, 8, 64)
    assert "p.blocks.1.add" in names(model)


def test_channel_split_and_partial_shortcut():
    x = np.arange(2 * 4 * 4 * 6, dtype="float32").reshape(2, 4, 4, 6)
    for training in (False, True):
        a, b, c = ChannelSplit([2, 3, 1])(x, training=training)
        np.testing.assert_array_equal(a, x[..., :2])
        np.testing.assert_array_equal(b, x[..., 2:5])
        np.testing.assert_array_equal(c, x[..., 5:])

    short = np.ones((1, 4, 4, 2), "float32")
    res = np.zeros((1, 2, 2, 5), "float32")
    out = PartialShortcut(strides=2)([short, res]).numpy()
    assert out.shape == (1, 2, 2, 5)
    np.testing.assert_array_equal(out[..., :2], 1.0)
    np.testing.assert_array_equal(out[..., 2:], 0.0)
    wide = np.ones((1, 2, 2, 8), "float32")
    np.testing.assert_array_equal(PartialShortcut()([wide, res]).numpy(), 1.0)


@pytest.mark.parametrize("size", [8, 9])
def test_partial_shortcut_subsamples_exactly_as_slicing(size):
    rng = np.random.default_rng(0)
    short = rng.normal(size=(2, size, size, 3)).astype("float32")
    res = rng.normal(size=(2, (size + 1) // 2, (size + 1) // 2, 3)).astype("float32")
    out = PartialShortcut(strides=2)([short, res]).numpy()
    np.testing.assert_array_equal(out, res + short[:, ::2, ::2])


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_partial_shortcut_stays_inside_xnnpack(tmp_path, quantize):
    # A strided slice would leave the delegate (XNNPACK runs unit-stride slices only).
    from keras_csp.export import tflite
    from keras_csp.lite import LiteModel

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="c2")(x)
    model = keras.Model(inputs, PartialShortcut(strides=2, name="short")([x, y]))
    rng = np.random.default_rng(0)
    data = [rng.uniform(0, 255, (16, 16, 3)).astype("float32") for _ in range(4)]
    path = tmp_path / "m.tflite"
    tflite(model, path, quantize=quantize, batch=1, representative_data=data, verbose=False)
    lite = LiteModel(path, num_threads=1, backend="tensorflow")
    assert "STRIDED_SLICE" not in lite.ops()
    assert lite.undelegated_ops() == []


def test_channel_split_is_one_split_op_in_training_and_slices_otherwise():
    split = ChannelSplit([2, 4])
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 3, 6)).astype("float32"))

    def op_types(training):
        def loss(t):
            a, b = split(t, training=training)
            return tf.reduce_sum(a * a) + tf.reduce_sum(3.0 * b)

        def grad(t):
            with tf.GradientTape() as tape:
                tape.watch(t)
                value = loss(t)
            return tape.gradient(value, t)

        graph = tf.function(grad).get_concrete_function(x).graph
        return {op.type for op in graph.get_operations()}, grad(x)

    train_ops, train_grad = op_types(True)
    infer_ops, infer_grad = op_types(False)
    assert "SplitV" in train_ops and "StridedSliceGrad" not in train_ops
    assert "StridedSlice" in infer_ops and "SplitV" not in infer_ops
    np.testing.assert_allclose(train_grad.numpy(), infer_grad.numpy())
    np.testing.assert_allclose(train_grad[..., 2:].numpy(), 3.0)
