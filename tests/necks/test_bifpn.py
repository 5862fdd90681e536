"""BiFPN: the fast normalized fusion's arithmetic, its options through CSPDetector and the `.keras`
file, and its tf_keras twin (QAT). Shapes and the neck-only round trip: tests/necks/test_necks.py
(every registered neck); the GPU: tests/export/test_gpu.py."""

import keras
import numpy as np
import pytest

from keras_csp.detection import CSPDetector
from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig
from keras_csp.necks.bifpn import WeightedFusion

SIZE = 64
BACKBONE = ModelConfig(
    stem=StemConfig(filters=8, kernel_size=3, strides=2),
    stages=StagesConfig(filters=(8, 16, 24, 32), depth=(1, 1, 1, 1), strides=2),
    default_size=SIZE,
)


def tiny_detector(**options):
    return CSPDetector(backbone=BACKBONE, num_classes=3, input_shape=(SIZE, SIZE, 3),
                       neck="bifpn", neck_filters=(8, 8, 12), head_filters=8, attention=None,
                       neck_options=options)


def images(seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")


def test_fast_normalized_fusion_weights_are_relu_then_normalized():
    layer = WeightedFusion(epsilon=1e-4)
    x = [np.full((1, 2, 2, 3), v, "float32") for v in (1.0, 10.0, 100.0)]
    layer(x)
    layer.set_weights([np.array([1.0, -2.0, 3.0], "float32")])  # relu: 1, 0, 3
    expected = (1 * 1.0 + 3 * 100.0) / (4 + 1e-4)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-6)


def test_repeats_stack_fusion_nodes_and_round_trip_in_the_keras_file(tmp_path):
    model = tiny_detector(repeats=3, epsilon=1e-3)
    fusions = [layer for layer in model.layers if isinstance(layer, WeightedFusion)]
    assert len(fusions) == 4 * 3  # two top-down and two bottom-up nodes per BiFPN layer
    assert {layer.epsilon for layer in fusions} == {1e-3}
    assert model.get_config()["neck_options"] == {"repeats": 3, "epsilon": 1e-3}
    assert tiny_detector().neck_options == {"repeats": 2, "epsilon": 1e-4}  # the defaults
    for layer in fusions:  # not the initial even average, so the file must keep them
        layer.set_weights([np.array(range(1, len(layer.get_weights()[0]) + 1), "float32")])
    path = tmp_path / "bifpn.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert restored.neck == "bifpn" and restored.neck_options == model.neck_options
    x = images()
    for key in ("boxes", "classes"):
        np.testing.assert_allclose(np.asarray(restored(x)[key]), np.asarray(model(x)[key]),
                                   rtol=0, atol=1e-5)


def test_tf_keras_twin_has_the_same_outputs_quantizes_and_prunes():
    import tf_keras

    from keras_csp.export.optimize import prune, quantize_aware
    from keras_csp.export.twin import to_tf_keras

    model = tiny_detector(repeats=1)
    for layer in model.layers:
        if isinstance(layer, WeightedFusion):
            layer.set_weights([np.linspace(0.5, 2.0, layer.get_weights()[0].size, dtype="float32")])
    twin, layer_map = to_tf_keras(model)
    x = images(1)
    got, expected = twin(x, training=False), model(x, training=False)
    for key in ("boxes", "classes"):
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(expected[key]), rtol=0,
                                   atol=1e-4)
    fusions = [layer for layer in twin.layers if type(layer).__name__ == "WeightedFusion"]
    assert len(fusions) == 4 and isinstance(fusions[0], tf_keras.layers.Layer)
    assert layer_map[fusions[0].name].quantize == "output"
    qat = quantize_aware(twin, layer_map)  # tfmot rebuilds the twin's own layer from its config
    assert np.isfinite(np.asarray(qat(x, training=False)["classes"])).all()
    pruned = prune(twin, 0.5)  # the fusion weights are not pruned (get_prunable_weights)
    assert np.isfinite(np.asarray(pruned(x, training=False)["classes"])).all()


@pytest.mark.parametrize("options,message", [
    ({"repeat": 3}, r"neck_options=\{'repeat': 3\} is not allowed for neck='bifpn': unknown key "
                    r"'repeat'; allowed keys: repeats \(int > 0, default 2\), epsilon"),
    ({"repeats": 0}, r"neck_options=\{'repeats': 0\} is not allowed for neck='bifpn'; allowed: "
                     r"repeats \(int > 0, default 2\)\."),
    ({"repeats": 2.5}, r"\{'repeats': 2.5\} is not allowed for neck='bifpn'"),
    ({"epsilon": "small"}, r"\{'epsilon': 'small'\} is not allowed for neck='bifpn'; allowed: "
                           r"epsilon \(float > 0, default 0.0001\)\."),
])
def test_bad_neck_options_are_one_line_errors(options, message):
    with pytest.raises(ValueError, match=message):
        tiny_detector(**options)


def test_a_neck_without_options_refuses_any():
    with pytest.raises(ValueError, match=r"for neck='efm': unknown key 'repeats'; allowed keys: "
                                         r"none \(no options\)"):
        CSPDetector(backbone=BACKBONE, num_classes=3, neck="efm", neck_options={"repeats": 2})
    with pytest.raises(ValueError, match=r"neck_options=\[2\] is not allowed; allowed: a dict"):
        CSPDetector(backbone=BACKBONE, num_classes=3, neck="bifpn", neck_options=[2])
