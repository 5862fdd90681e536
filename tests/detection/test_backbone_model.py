"""CSPDetector(backbone=<built model>), as keras-cv's detectors take one."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_csp
from keras_csp.detection import CSPDetector
from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig

SIZE = 64
BACKBONE = ModelConfig(
    stem=StemConfig(filters=16, kernel_size=3, strides=2),
    stages=StagesConfig(filters=(16, 32, 48, 64), depth=(1, 1, 1, 1), strides=2),
    default_size=SIZE,
)


def _detector(backbone, **kwargs):
    return CSPDetector(
        backbone=backbone, num_classes=2, input_shape=(SIZE, SIZE, 3), neck_filters=16,
        head_filters=16, **kwargs,
    )


def test_a_built_backbone_is_copied_in_with_its_weights_and_round_trips(tmp_path):
    # A chosen γ and fusion, and weights that differ from a fresh build's.
    backbone = keras_csp.build_model(BACKBONE, include_top=False, part_ratio=0.25, fusion="last")
    for w in backbone.weights:
        w.assign(np.random.default_rng(0).normal(size=w.shape).astype("float32") * 0.1 + 0.05)
    model = _detector(backbone)
    for layer in (l for l in backbone.layers if l.weights):
        for ours, theirs in zip(
            model.get_layer(f"backbone.{layer.name}").get_weights(), layer.get_weights()
        ):
            np.testing.assert_array_equal(ours, theirs)
    # The same graph as the detector built from the config with the same γ and fusion.
    by_config = _detector(BACKBONE, part_ratio=0.25, fusion="last")
    assert [l.name for l in model.layers] == [l.name for l in by_config.layers]
    assert model.count_params() == by_config.count_params()
    # The backbone model is not a tracked sub-model: its weights are not saved twice.
    assert len(model.weights) == len(by_config.weights)

    path = tmp_path / "detector.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(restored, CSPDetector)
    dump = lambda m: json.dumps(m.get_config(), sort_keys=True)  # noqa: E731 (tuples -> lists)
    assert dump(restored) == dump(model)
    x = tf.random.uniform((2, SIZE, SIZE, 3), 0, 255)
    for key in ("boxes", "classes"):
        np.testing.assert_array_equal(np.asarray(model(x)[key]), np.asarray(restored(x)[key]))


@pytest.mark.parametrize(
    "build, message",
    [
        (dict(include_top=True, classes=3), "not a pyramid dict"),
        (dict(include_top=False, pooling="avg"), "not a pyramid dict"),
    ],
)
def test_a_model_that_is_not_a_pyramid_backbone_is_refused(build, message):
    model = keras_csp.build_model(BACKBONE, input_shape=(SIZE, SIZE, 3), **build)
    with pytest.raises(ValueError, match="allowed: a keras_csp builder's model") as e:
        _detector(model)
    assert message in str(e.value)


def test_backbone_weights_do_not_go_with_a_built_backbone():
    backbone = keras_csp.build_model(BACKBONE, include_top=False)
    with pytest.raises(ValueError, match="backbone_weights='x.weights.h5' is not allowed"):
        _detector(backbone, backbone_weights="x.weights.h5")
