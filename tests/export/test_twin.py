"""The tf_keras twin: same graph, same weights, same float outputs as the Keras 3 model."""

import keras
import numpy as np
import pytest
import tf_keras
from export_helpers import SIZE, tiny_classifier, variant_configs

import keras_csp
from keras_csp.export.graph import layers_in_graph
from keras_csp.export.serving import build_serving
from keras_csp.export.twin import TWINS, KerasOp, to_tf_keras


@pytest.mark.parametrize("variant", ["csp", "residual-max2", "edge-pool-grouped", "dark"])
def test_twin_float_outputs_equal_the_keras_model(tiny_config, variant, pixels):
    model = tiny_classifier(variant_configs(tiny_config)[variant])
    deploy = build_serving(model).deploy  # normalization and head included, nested model inside
    twin, layer_map = to_tf_keras(deploy)

    assert isinstance(twin, tf_keras.Model)
    x = pixels.astype("float32")
    np.testing.assert_allclose(
        twin(x, training=False).numpy(), deploy(x, training=False).numpy(), rtol=0, atol=2e-6
    )
    # One flat graph (tfmot refuses nested models) with the weights copied, not re-initialized.
    assert not any(isinstance(layer, tf_keras.Model) for layer in twin.layers)
    assert len(twin.get_weights()) == len(deploy.get_weights())
    kinds = {type(layer).__name__ for layer in layers_in_graph(deploy)}
    assert {"PixelNormalization", "Conv2D", "FusedBatchNormalization"} <= kinds
    assert set(layer_map) == {layer.name for layer in twin.layers if layer.name != "images"}


def test_backbone_twin_keeps_the_feature_dict(tiny_config, pixels):
    model = keras_csp.build_model(tiny_config, include_top=False, input_shape=(SIZE, SIZE, 3))
    deploy = build_serving(model).deploy
    twin, _ = to_tf_keras(deploy)
    x = pixels.astype("float32")
    expected, got = deploy(x), twin(x)
    assert sorted(got) == sorted(expected) == ["P2", "P3"]
    for key in expected:
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), atol=2e-6)


def test_custom_layers_run_their_own_call_in_tf_keras(tiny_config):
    model = tiny_classifier(variant_configs(tiny_config)["edge-pool-grouped"])
    twin, layer_map = to_tf_keras(model)
    wrapped = {layer.name: layer for layer in twin.layers if isinstance(layer, KerasOp)}
    assert "stem.pool" in wrapped and layer_map["stem.pool"].quantize == "passthrough"
    assert any(name.endswith(".split") for name in wrapped)
    # The config round-trips, which tfmot's cloning relies on.
    clone = KerasOp.from_config(wrapped["stem.pool"].get_config())
    assert type(clone._keras_layer).__name__ == "EdgePadMaxPooling2D"


def test_a_layer_without_a_twin_is_a_clear_error():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.LayerNormalization(name="ln")(inputs)
    with pytest.raises(
        ValueError, match=r"layer 'ln' is a LayerNormalization, which has no tf_keras twin; allowed"
    ):
        to_tf_keras(keras.Model(inputs, outputs))


def test_keras_op_refuses_a_layer_with_weights(monkeypatch):
    from keras_csp.export import twin as twin_module

    monkeypatch.setitem(TWINS, "Dense", twin_module.keras_op("output"))
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(inputs))
    with pytest.raises(ValueError, match=r"layer 'fc' \(Dense\) has weights, so keras_op\(\)"):
        to_tf_keras(model)
