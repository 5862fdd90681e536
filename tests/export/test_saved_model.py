"""The SavedModel: a serving_default signature on uint8 images of any batch size."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import SIZE, mode, open_mode

import keras_csp
from keras_csp import export, lite
from keras_csp.export.serving import build_serving


@pytest.fixture(scope="module")
def saved(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sm") / "classifier"
    report = export.saved_model(tiny_model, folder, verbose=False)
    return folder, report


def test_signature_takes_uint8_images_of_any_batch(saved):
    folder, report = saved
    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, SIZE, SIZE, 3]
    assert list(signature.structured_outputs) == ["probabilities"]
    assert report.inputs[0] == {
        "name": "images", "shape": [None, SIZE, SIZE, 3], "dtype": "uint8", "quantization": None
    }
    assert report.gpu_compatible is None and "n/a" in report.analyzer_verdict
    assert report.ops["Conv2D"] == 18 and report.size_bytes > 0


@pytest.mark.parametrize("batch", [1, 3])
def test_reloaded_model_gives_the_keras_outputs(saved, tiny_model, batch):
    folder, _ = saved
    images = np.random.default_rng(batch).integers(0, 256, (batch, SIZE, SIZE, 3), dtype=np.uint8)
    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    got = signature(images=tf.constant(images))["probabilities"].numpy()
    # The Keras model on images normalized by keras_csp.preprocessing: the preprocessing is inside.
    expected = keras.ops.convert_to_numpy(
        tiny_model(keras_csp.preprocessing.preprocess_input(images.astype("float32")))
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=1e-5)


def test_logits_become_probabilities(tiny_config, tmp_path):
    model = keras_csp.build_model(
        tiny_config, input_shape=(SIZE, SIZE, 3), classes=3, classifier_activation=None
    )
    export.saved_model(model, tmp_path / "sm", verbose=False)
    images = np.zeros((2, SIZE, SIZE, 3), np.uint8)
    got = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"](
        images=tf.constant(images)
    )["probabilities"].numpy()
    logits = keras.ops.convert_to_numpy(
        model(keras_csp.preprocessing.preprocess_input(images.astype("float32")))
    )
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_dynamic_size_backbone_keeps_a_dynamic_signature(tiny_config, tmp_path):
    model = keras_csp.build_model(tiny_config, include_top=False)  # any size, pyramid dict
    report = export.saved_model(model, tmp_path / "sm", verbose=False)
    assert report.kind == "backbone" and [o["name"] for o in report.outputs] == ["P2", "P3"]
    signature = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    out = signature(images=tf.zeros((1, 64, 96, 3), tf.uint8))
    assert out["P3"].shape == (1, 8, 12, 64)


def test_an_existing_folder_is_replaced_whole(tiny_model, tmp_path):
    folder = tmp_path / "sm"
    folder.mkdir()
    (folder / "stale.txt").write_text("old")
    export.saved_model(tiny_model, folder, verbose=False)
    assert not (folder / "stale.txt").exists() and (folder / "saved_model.pb").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]  # no temporary leftovers


def _fake_detector():
    """A minimal model with the detector contract: decoded boxes and scores as outputs."""
    images = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, name="conv")(images)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    corners = keras.layers.Dense(8, activation="sigmoid", name="corners")(x)
    boxes = keras.layers.Reshape((2, 4), name="boxes")(corners)
    scores = keras.layers.Dense(2, activation="sigmoid", name="scores")(x)
    classes = keras.layers.Dense(2, activation="relu", name="classes")(x)
    return keras.Model(images, {"boxes": boxes, "scores": scores, "classes": classes})


def test_detector_outputs_pass_through_both_formats(tmp_path):
    model = _fake_detector()
    report = export.saved_model(model, tmp_path / "sm", verbose=False)  # decoded boxes out
    assert report.kind == "detector"
    assert sorted(o["name"] for o in report.outputs) == ["boxes", "classes", "scores"]
    images = np.random.default_rng(0).integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8)
    saved = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"](
        images=tf.constant(images)
    )
    report = export.tflite(model, tmp_path / "d.tflite", batch="dynamic", verbose=False)
    # Reshape with a dynamic batch keeps SHAPE ops, which the GPU delegate does not run ...
    assert report.inputs[0]["shape"][0] == -1
    assert not report.gpu_compatible and any("batch=1" in note for note in report.notes)
    report = export.tflite(model, tmp_path / "d.tflite", verbose=False)
    # ... and batch 1, the default, folds them
    assert report.kind == "detector" and report.gpu_compatible
    assert report.inputs[0]["shape"][0] == 1
    lite_model = lite.LiteModel(tmp_path / "d.tflite")
    assert lite_model.kind == "detector"
    got = lite_model(images)
    for key in ("boxes", "scores", "classes"):
        np.testing.assert_allclose(got[key], saved[key].numpy(), atol=1e-5)


def test_a_keras_cv_style_detector_is_decoded(tmp_path):
    """CSPDetector: keras-cv NMS for the SavedModel; boxes before NMS in the TFLite file."""
    from keras_csp.detection import CSPDetector
    from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig

    backbone = ModelConfig(
        stem=StemConfig(filters=8, kernel_size=3, strides=2),
        stages=StagesConfig(filters=(8, 16, 24, 32), depth=(1, 1, 1, 1), strides=2),
        default_size=64,
    )
    model = CSPDetector(backbone=backbone, num_classes=2, input_shape=(64, 64, 3),
                        neck_filters=8, head_filters=8, confidence_threshold=0.0)
    images = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    # What the SavedModel runs (saving it traces keras-cv's NMS for ~15 s, so it is called here).
    serving = build_serving(model)
    pixels = tf.constant(images.astype("float32"))
    decoded = serving.named_outputs(serving.deploy(pixels), pixels)
    assert sorted(decoded) == ["boxes", "classes", "num_detections", "scores"]
    assert decoded["boxes"].shape[-1] == 4 and decoded["scores"].shape == decoded["classes"].shape

    report = export.tflite(model, tmp_path / "d.tflite", batch=1, verbose=False)
    assert report.gpu_compatible, report.summary()
    assert any("RESIZE_NEAREST_NEIGHBOR" in note for note in report.notes)
    lite_model = lite.LiteModel(tmp_path / "d.tflite")
    out = lite_model(images)
    anchors = (64 // 8) ** 2 + (64 // 16) ** 2 + (64 // 32) ** 2
    assert out["boxes"].shape == (1, anchors, 4) and out["scores"].shape == (1, anchors, 2)
    # Before suppression the TFLite boxes are the model's own decoding.
    serving = build_serving(model, nms=False)
    raw = serving.deploy(images.astype("float32"))
    expected = serving.named_outputs(raw, images.astype("float32"))
    np.testing.assert_allclose(out["boxes"], np.asarray(expected["boxes"]), atol=1e-3)
    boxes = lite.detections(out, 0, score_threshold=0.0, iou_threshold=0.5, max_detections=5)
    assert 1 <= len(boxes) <= 5 and all(0 <= b[0] <= b[2] <= 64 for b in boxes)


def test_the_folder_gets_the_permissions_mkdir_gives(saved):
    folder, _ = saved
    assert mode(folder) == open_mode(directory=True)  # tempfile made it 0700 whatever the umask
    for path in folder.rglob("*"):
        assert mode(path) == open_mode(directory=path.is_dir()), path
