import keras
import numpy as np
import pytest

import keras_csp
from keras_csp.applications import APPLICATIONS


def assert_same_outputs(a, b, x):
    out_a, out_b = a(x, training=False), b(x, training=False)
    for ya, yb in zip(keras.tree.flatten(out_a), keras.tree.flatten(out_b)):
        np.testing.assert_array_equal(np.asarray(ya), np.asarray(yb))


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_keras_file_round_trip_in_safe_mode(name, tmp_path):
    model = APPLICATIONS[name](input_shape=(64, 64, 3), classes=10)
    x = np.random.default_rng(0).uniform(size=(1, 64, 64, 3)).astype("float32")
    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert restored.name == name
    assert_same_outputs(model, restored, x)


@pytest.mark.parametrize("fusion", ["full", "first", "last", "none"])
def test_keras_and_weights_h5_round_trip_for_each_fusion(tiny_config, fusion, tmp_path):
    def build():
        return keras_csp.build_model(tiny_config, include_top=False, part_ratio=0.25, fusion=fusion)

    model = build()
    x = np.random.default_rng(1).uniform(size=(2, 40, 48, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    assert_same_outputs(model, keras.saving.load_model(tmp_path / "m.keras", safe_mode=True), x)

    model.save_weights(tmp_path / "m.weights.h5")
    fresh = keras_csp.build_model(
        tiny_config, include_top=False, part_ratio=0.25, fusion=fusion,
        weights=str(tmp_path / "m.weights.h5"),
    )
    assert_same_outputs(model, fresh, x)


def test_builder_weights_argument_loads_a_saved_reference_model(tmp_path):
    model = keras_csp.CSPDarknet53(classes=5)
    path = tmp_path / "cspdarknet53.weights.h5"
    model.save_weights(path)
    restored = keras_csp.CSPDarknet53(classes=5, weights=str(path))
    x = np.random.default_rng(2).uniform(size=(1, 64, 64, 3)).astype("float32")
    assert_same_outputs(model, restored, x)


@pytest.mark.parametrize("fusion", ["full", "first", "last"])
@pytest.mark.parametrize("part_ratio", [0.25, 0.5, 0.75])
def test_one_training_step(tiny_config, fusion, part_ratio):
    keras.utils.set_random_seed(0)
    model = keras_csp.build_model(
        tiny_config, classes=4, part_ratio=part_ratio, fusion=fusion, input_shape=(32, 32, 3)
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(3).uniform(size=(8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 4
    before = [w.numpy().copy() for w in model.trainable_weights]
    moving_before = model.get_layer("stages.1.conv_exp.bn").moving_mean.numpy().copy()
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(changed), "every trainable weight gets a gradient"
    moving = model.get_layer("stages.1.conv_exp.bn").moving_mean.numpy()
    assert not np.allclose(moving, moving_before)
