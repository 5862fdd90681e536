"""keras_csp.optimize_for_inference: same outputs (within 1e-4), fewer ops, a normal Keras model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_csp
from keras_csp.layers import FoldedBatchNormalization, GroupedConv2D
from keras_csp.layers.grouped_conv import fast_grouped_conv_available


def _randomize_batch_norms(model, seed=0):
    """Gives every BN non-trivial statistics, so that folding has something to get wrong."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.2, n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0, 0.2, n))
    return model


def _outputs(fn, x):
    out = fn(x)
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else np.asarray(out)


def _assert_close(got, expected):
    if isinstance(expected, dict):
        assert set(got) == set(expected)
        for key in expected:
            _assert_close(got[key], expected[key])
        return
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# resnet10: the Darknet-style twins end each block with a PartialShortcut into a LeakyReLU, the
# pattern TF's oneDNN fusion gets wrong in graph mode (see test_tf_onednn_fusion_bug_...).
@pytest.mark.parametrize(
    "name", ["cspresnext50", "cspdarknet53", "densenet121", "csppeleenet", "resnet10"]
)
def test_same_outputs_as_the_plain_model(name):
    model = _randomize_batch_norms(
        keras_csp.build_model(name, input_shape=(64, 64, 3), include_top=False)
    )
    x = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    expected = _outputs(lambda t: model(t, training=False), x)
    before = [w.numpy().copy() for w in model.weights]

    optimized = keras_csp.optimize_for_inference(model)
    _assert_close(_outputs(lambda t: optimized(t, training=False), x), expected)  # eager
    _assert_close(_outputs(lambda t: optimized.predict(t, verbose=0), x), expected)  # graph
    xla = tf.function(lambda t: optimized(t, training=False), jit_compile=True)
    _assert_close(_outputs(xla, x), expected)

    assert [l.name for l in optimized.layers] == [l.name for l in model.layers]
    folded = [l for l in optimized.layers if isinstance(l, FoldedBatchNormalization)]
    assert len(folded) > len(model.layers) // 10
    for after, original in zip(model.weights, before):  # the input model is left alone
        np.testing.assert_array_equal(after.numpy(), original)


def test_grouped_convolutions_of_a_plain_keras_model_become_fast():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", groups=4, name="g")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    model = _randomize_batch_norms(keras.Model(inputs, keras.layers.ReLU(name="act")(x)))
    optimized = keras_csp.optimize_for_inference(model)
    # Without oneDNN (TF leaves it off on CPUs without AVX-512/AVX-VNNI) the Keras path stays.
    fast = GroupedConv2D if fast_grouped_conv_available() else keras.layers.Conv2D
    assert type(optimized.get_layer("g")) is fast
    assert optimized.get_layer("g").use_bias  # BN folded into it
    assert type(optimized.get_layer("bn")) is FoldedBatchNormalization
    assert type(optimized.get_layer("c1")) is keras.layers.Conv2D  # nothing after it to fold
    x = np.random.default_rng(0).normal(size=(1, 16, 16, 3)).astype("float32")
    _assert_close(optimized.predict(x, verbose=0), model(x).numpy())

    kept = keras_csp.optimize_for_inference(model, fold_batch_norm=False, fast_grouped_conv=False)
    assert type(kept.get_layer("g")) is keras.layers.Conv2D
    assert type(kept.get_layer("bn")) is keras.layers.BatchNormalization


def test_round_trips_through_keras_file_in_safe_mode(tmp_path):
    model = _randomize_batch_norms(keras_csp.build_model("cspresnext50", input_shape=(64, 64, 3)))
    optimized = keras_csp.optimize_for_inference(model)
    path = tmp_path / "optimized.keras"
    optimized.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(x).numpy(), optimized(x).numpy())


def _residual_leaky_model(bias, batch_norm):
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 1, use_bias=bias, bias_initializer="ones", name="conv")(inputs)
    if batch_norm:
        x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Add(name="add")([x, inputs])
    return keras.Model(inputs, keras.layers.LeakyReLU(negative_slope=0.01, name="act")(x))


@pytest.mark.skipif(
    not fast_grouped_conv_available(), reason="oneDNN is off in this TensorFlow (CPU without "
    "AVX-512/AVX-VNNI, or TF_ENABLE_ONEDNN_OPTS=0): its fused kernel and the bug are not used"
)
def test_tf_onednn_fusion_bug_that_folding_avoids():
    # TF 2.21 + oneDNN: grappler fuses Conv2D+BiasAdd+Add+LeakyRelu and the fused kernel uses
    # slope 0.2 instead of the layer's. If this test fails, TF fixed it and the workaround in
    # keras_csp/inference.py (_feeds_add_then_leaky_relu) can go.
    model = _residual_leaky_model(bias=True, batch_norm=False)
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 4)).astype("float32") * 3
    assert np.abs(tf.function(model)(x).numpy() - model(x).numpy()).max() > 1e-2

    plain = _randomize_batch_norms(_residual_leaky_model(bias=False, batch_norm=True))
    optimized = keras_csp.optimize_for_inference(plain)
    assert type(optimized.get_layer("bn")) is keras.layers.BatchNormalization  # left unfolded
    _assert_close(optimized.predict(x, verbose=0), plain(x).numpy())


@pytest.mark.parametrize("name", ["cspresnext50", "resnet10"])
def test_frozen_function_gives_the_model_outputs_and_keeps_its_weights(name):
    model = _randomize_batch_norms(
        keras_csp.build_model(name, input_shape=(64, 64, 3), include_top=False)
    )
    x = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    expected = _outputs(lambda t: model(t, training=False), x)
    optimized = keras_csp.optimize_for_inference(model)
    for fn in (keras_csp.frozen_function(model), keras_csp.frozen_function(optimized, 2)):
        _assert_close(_outputs(fn, x), expected)
    # Any batch size unless fixed; a snapshot: later weight changes do not reach it.
    frozen = keras_csp.frozen_function(optimized)
    _assert_close(_outputs(frozen, x[:1]), {k: v[:1] for k, v in expected.items()})
    for w in optimized.weights:
        w.assign(np.zeros(w.shape, w.dtype))
    _assert_close(_outputs(frozen, x), expected)


def test_frozen_function_bad_input():
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match=rf"batch_size={bad!r} is not allowed; allowed: None"):
            keras_csp.frozen_function(model, batch_size=bad)
    a, b = keras.Input((4,)), keras.Input((4,))
    two = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="model has 2 inputs; allowed: a model with one input"):
        keras_csp.frozen_function(two)
    with pytest.raises(ValueError, match="model=.* has no known inputs"):
        keras_csp.frozen_function(object())


def test_bad_input():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="model=.* is not a functional keras.Model"):
        keras_csp.optimize_for_inference(Subclassed())
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    with pytest.raises(ValueError, match="jit_compile='yes' is not allowed; allowed: True, False"):
        keras_csp.optimize_for_inference(model, jit_compile="yes")
