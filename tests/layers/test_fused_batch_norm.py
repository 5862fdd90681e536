"""FusedBatchNormalization: Keras' BatchNormalization, trained through TF's fused kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_csp
from keras_csp.layers import FusedBatchNormalization

SHAPE = (3, 5, 7, 6)


def _pair(shape=SHAPE, **kwargs):
    kwargs = dict(
        epsilon=1e-5, momentum=0.9, gamma_initializer="random_normal",
        beta_initializer="random_normal", **kwargs,
    )
    plain = keras.layers.BatchNormalization(**kwargs)
    fused = FusedBatchNormalization(**kwargs)
    plain.build(shape)
    fused.build(shape)
    fused.set_weights(plain.get_weights())
    return plain, fused


def _inputs(shape=SHAPE, seed=0):
    return tf.constant(np.random.default_rng(seed).normal(2.0, 3.0, size=shape).astype("float32"))


def _step(layer, x, training):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training)
        # Channel-dependent weights, so the gradient through the batch statistics is not zero.
        loss = tf.reduce_sum(y * y * tf.range(1.0, x.shape[-1] + 1.0))
    return y, tape.gradient(loss, [x, *layer.trainable_weights])


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("graph", [False, True])
def test_outputs_gradients_and_moving_statistics_equal_keras(training, graph):
    plain, fused = _pair()
    x = _inputs()
    run = tf.function(_step) if graph else _step
    for _ in range(2):  # the second step starts from updated moving statistics
        y_plain, g_plain = run(plain, x, training)
        y_fused, g_fused = run(fused, x, training)
        np.testing.assert_allclose(y_fused.numpy(), y_plain.numpy(), atol=1e-5)
        for a, b in zip(g_fused, g_plain):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    for a, b in zip(fused.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    if training:  # the moving statistics did move, by the biased batch variance as Keras does
        assert not np.allclose(fused.moving_variance.numpy(), 1.0)


def test_runs_the_fused_kernel_in_training_only():
    _, fused = _pair()
    x = _inputs()

    def op_types(training):
        graph = tf.function(lambda t: fused(t, training=training)).get_concrete_function(x).graph
        return {op.type for op in graph.get_operations()}

    assert "FusedBatchNormV3" in op_types(True)
    assert "FusedBatchNormV3" not in op_types(False)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_matches_keras(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        plain, fused = _pair()
        x = tf.cast(_inputs(), keras.config.dtype_policy().compute_dtype)
        y_plain, y_fused = plain(x, training=True), fused(x, training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert y_fused.dtype == y_plain.dtype == x.dtype
    np.testing.assert_allclose(
        tf.cast(y_fused, "float32").numpy(), tf.cast(y_plain, "float32").numpy(), atol=0.05
    )
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-3)


@pytest.mark.parametrize(
    "shape,kwargs",
    [((4, 6), {}), (SHAPE, {"axis": 1}), (SHAPE, {"center": False}), (SHAPE, {"renorm": True})],
)
def test_other_configurations_keep_keras_path(shape, kwargs):
    plain, fused = _pair(shape, **kwargs)
    x = _inputs(shape)
    np.testing.assert_allclose(
        fused(x, training=True).numpy(), plain(x, training=True).numpy(), atol=1e-6
    )


def test_frozen_layer_uses_moving_statistics():
    plain, fused = _pair()
    plain.trainable = fused.trainable = False
    x = _inputs()
    np.testing.assert_allclose(
        fused(x, training=True).numpy(), plain(x, training=True).numpy(), atol=1e-6
    )
    np.testing.assert_array_equal(fused.moving_mean.numpy(), np.zeros(SHAPE[-1]))


def test_config_weights_and_safe_mode_round_trip(tmp_path):
    plain, fused = _pair()
    assert fused.get_config() == {**plain.get_config(), "name": fused.name}
    inputs = keras.Input(SHAPE[1:])
    model = keras.Model(inputs, fused(inputs))
    path = tmp_path / "bn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded.layers[-1]) is FusedBatchNormalization
    x = _inputs()
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_builders_use_it_and_keep_timm_names():
    model = keras_csp.CSPDarknet53(weights=None, input_shape=(64, 64, 3))
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(type(layer) is FusedBatchNormalization for layer in bns)
    assert bns[0].name == "stem.conv1.bn"
