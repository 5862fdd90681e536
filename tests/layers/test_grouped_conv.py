"""GroupedConv2D: the fast grouped convolution is a Conv2D in every observable way."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_csp.layers import GroupedConv2D, fast_grouped_conv_available


def _pair(groups, strides, padding, dilation, seed=0):
    kwargs = dict(
        filters=16, kernel_size=3, strides=strides, padding=padding, dilation_rate=dilation,
        groups=groups, use_bias=True, bias_initializer="random_normal",
    )
    plain = keras.layers.Conv2D(**kwargs)
    fast = GroupedConv2D(**kwargs)
    shape = (2, 11, 11, 8)
    plain.build(shape)
    fast.build(shape)
    fast.set_weights(plain.get_weights())
    x = tf.constant(np.random.default_rng(seed).normal(size=shape).astype("float32"))
    return plain, fast, x


def test_fast_path_is_available_here():
    # tests/conftest.py turns oneDNN on (TF's default only on CPUs with AVX-512/AVX-VNNI).
    assert fast_grouped_conv_available()


@pytest.mark.parametrize(
    "groups,strides,padding,dilation",
    [(4, 1, "same", 1), (8, 2, "valid", 1), (2, 1, "valid", 2), (1, 1, "same", 1)],
)
def test_outputs_and_gradients_equal_keras_conv2d(groups, strides, padding, dilation):
    plain, fast, x = _pair(groups, strides, padding, dilation)

    def value_and_grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(y * y)
        return y, tape.gradient(loss, [x, *layer.trainable_weights])

    for run in (value_and_grads, tf.function(value_and_grads)):
        (y_plain, g_plain), (y_fast, g_fast) = run(plain), run(fast)
        np.testing.assert_allclose(y_fast.numpy(), y_plain.numpy(), atol=1e-5)
        for a, b in zip(g_fast, g_plain):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_weights_and_config_are_conv2d_ones(tmp_path):
    plain, fast, x = _pair(4, 1, "same", 1)
    assert [w.shape for w in fast.weights] == [w.shape for w in plain.weights]
    assert [w.path.split("/")[-1] for w in fast.weights] == ["kernel", "bias"]
    config = fast.get_config()
    assert config == {**plain.get_config(), "name": config["name"]}
    inputs = keras.Input((11, 11, 8))
    model = keras.Model(inputs, GroupedConv2D(16, 3, groups=4, name="g")(inputs))
    path = tmp_path / "g.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.get_layer("g")) is GroupedConv2D
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_builders_use_it_only_for_grouped_convolutions():
    import keras_csp

    model = keras_csp.build_model("cspresnext50", input_shape=(64, 64, 3), include_top=False)
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    grouped = [l for l in convs if l.groups > 1]
    assert grouped and all(type(l) is GroupedConv2D for l in grouped)
    assert all(type(l) is keras.layers.Conv2D for l in convs if l.groups == 1)


def test_falls_back_to_keras_when_onednn_is_off():
    # Without oneDNN, TF's CPU kernels have no grouped-conv gradient; the layer must still train.
    code = textwrap.dedent(
        """
        import numpy as np, tensorflow as tf
        from keras_csp.layers import GroupedConv2D, fast_grouped_conv_available
        layer = GroupedConv2D(8, 3, groups=4, padding="same")
        x = tf.constant(np.ones((1, 6, 6, 8), "float32"))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        grads = tape.gradient(loss, layer.trainable_weights)
        print("available", fast_grouped_conv_available(), "grads", len(grads))
        """
    )
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "available False grads 2" in out.stdout


def test_exports_to_tflite_as_one_grouped_conv(tmp_path):
    from keras_csp.export import tflite

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 1, use_bias=False)(inputs)
    x = GroupedConv2D(16, 3, groups=4, padding="same", use_bias=False)(x)
    x = GroupedConv2D(16, 3, strides=2, groups=8, padding="valid", use_bias=False)(x)
    report = tflite(keras.Model(inputs, x), tmp_path / "g.tflite", batch=1, verbose=False)
    # One CONV_2D per convolution: no SPLIT/CONCATENATION of per-group convolutions.
    assert report.ops["CONV_2D"] == 3
    assert not {"SPLIT", "SPLIT_V", "CONCATENATION"} & set(report.ops)
