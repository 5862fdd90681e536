"""CSPDetector: training on drawn rectangles, NMS decoding, `.keras` round trips, bad input."""

import json
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_csp
from keras_csp.detection import CSPDetector, anchor_points, profile_detector, sanitize_boxes
from keras_csp.models.config import MODEL_CONFIGS, ModelConfig, StagesConfig, StemConfig

SIZE = 64
NUM_CLASSES = 3
# Four stages give P2..P5 (strides 4..32), enough for every neck, and train in well under a second.
SMALL_BACKBONE = ModelConfig(
    stem=StemConfig(filters=16, kernel_size=3, strides=2),
    stages=StagesConfig(filters=(16, 32, 48, 64), depth=(1, 1, 1, 1), strides=2),
    default_size=SIZE,
)


def small_detector(**kwargs):
    args = dict(
        backbone=SMALL_BACKBONE,
        num_classes=NUM_CLASSES,
        input_shape=(SIZE, SIZE, 3),
        neck_filters=24,
        head_filters=24,
    )
    return CSPDetector(**{**args, **kwargs})


def drawn_rectangles(batch, seed=0, max_boxes=3):
    """Images with up to two filled rectangles, each in its class's colour channel (xywh boxes)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((batch, SIZE, SIZE, 3), "float32")
    boxes = -np.ones((batch, max_boxes, 4), "float32")
    classes = -np.ones((batch, max_boxes), "float32")
    for i in range(batch):
        for j in range(rng.integers(1, 3)):
            c = rng.integers(NUM_CLASSES)
            x, y = rng.integers(0, SIZE - 24, size=2)
            w, h = rng.integers(12, 24, size=2)
            images[i, y : y + h, x : x + w, c] = 1.0
            boxes[i, j] = (x, y, w, h)
            classes[i, j] = c
    return images, {"boxes": boxes, "classes": classes}


@pytest.fixture(scope="module")
def trained():
    """A small EFM (SAM) detector fitted for 20 steps on one batch, with two bad boxes in it."""
    keras.utils.set_random_seed(0)
    model = small_detector(
        bounding_box_format="xywh", confidence_threshold=0.01, max_detections=10
    )
    images, labels = drawn_rectangles(16)
    labels["boxes"][0, 2], labels["classes"][0, 2] = (50, 50, 30, 10), 1  # sticks out: clipped
    labels["boxes"][1, 2], labels["classes"][1, 2] = (30, 30, -10, 5), 0  # negative width: dropped
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, global_clipnorm=10.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(images, labels, batch_size=16, epochs=20, verbose=0)
    ours = [w for w in caught if "CSPDetector: a training batch" in str(w.message)]
    yield model, images, labels, history.history, ours
    keras.backend.clear_session()


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    # Overrides the suite's per-test clear_session: the module fixture's model lives across tests.
    yield


def test_loss_decreases_over_20_steps_and_bad_boxes_are_counted_and_warned_once(trained):
    _, _, _, history, ours = trained
    losses = history["loss"]
    assert len(losses) == 20 and np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
    # (The box term is weighted by the assigner's alignment scores, which grow as the boxes get
    # better, so it need not fall in 20 steps; the class term must.)
    assert history["class_loss"][-1] < 0.5 * history["class_loss"][0]
    # Counted in every epoch (one step each), warned about once.
    assert history["clipped_boxes"] == [1.0] * 20
    assert history["dropped_boxes"] == [1.0] * 20
    assert len(ours) == 1
    assert "1 box(es) outside the image (clipped) and 1 empty" in str(ours[0].message)


def test_predict_decodes_through_nms_into_the_keras_cv_dict(trained):
    model, images, _, _, _ = trained
    out = model.predict(images[:4], verbose=0)
    assert sorted(out) == ["boxes", "classes", "confidence", "num_detections"]
    assert out["boxes"].shape == (4, 10, 4)
    assert out["classes"].shape == out["confidence"].shape == (4, 10)
    assert out["num_detections"].shape == (4,)
    for i, n in enumerate(out["num_detections"]):
        assert 0 <= n <= 10
        assert np.all(out["classes"][i, n:] == -1)
        assert np.all((out["classes"][i, :n] >= 0) & (out["classes"][i, :n] < NUM_CLASSES))
        boxes = out["boxes"][i, :n]  # xywh, inside the image
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, :2] + boxes[:, 2:] <= SIZE + 1e-3)
    assert out["num_detections"].sum() > 0
    # The same decoding, called directly on the raw head outputs (tensors in, as keras-cv needs).
    x = tf.constant(images[:4])
    direct = model.decode_boxes(model(x, training=False), x)
    assert not hasattr(model, "decode_predictions")  # that name is ImageNet label decoding's
    np.testing.assert_allclose(np.asarray(direct["boxes"]), out["boxes"], atol=1e-4)


def test_evaluate_accepts_keras_cv_dicts_with_ragged_boxes(trained):
    model, images, labels, _, _ = trained
    lengths = (labels["classes"] >= 0).sum(axis=1)
    ragged = {
        "boxes": tf.RaggedTensor.from_tensor(labels["boxes"], lengths=lengths),
        "classes": tf.RaggedTensor.from_tensor(labels["classes"], lengths=lengths),
    }
    data = tf.data.Dataset.from_tensor_slices({"images": images, "bounding_boxes": ragged})
    result = model.evaluate(data.batch(8), verbose=0, return_dict=True)
    assert np.isfinite(result["loss"]) and result["loss"] > 0


def test_keras_round_trip_in_safe_mode(trained, tmp_path):
    model, images, _, _, _ = trained
    path = tmp_path / "detector.keras"
    model.save(path)
    restored = keras_csp.load_model(path, safe_mode=True)
    assert isinstance(restored, CSPDetector)
    assert restored.get_config() == model.get_config()
    x = tf.constant(images[:2])
    a, b = model(x, training=False), restored(x, training=False)
    for key in ("boxes", "classes"):
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]))
    # Compiled state comes back too (box loss and weights), ready to continue training.
    assert restored.compiled and type(restored.box_loss).__name__ == "CIoULoss"
    assert restored.box_loss_weight == 7.5


def test_round_trip_of_a_named_backbone_with_another_neck(tmp_path):
    model = CSPDetector(
        backbone="cspresnet10", num_classes=2, neck="panet", attention="spp",
        input_shape=(64, 64, 3), neck_filters=16, head_filters=16,
    )
    model.save(tmp_path / "d.keras")
    restored = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    x = tf.random.uniform((1, 64, 64, 3))
    np.testing.assert_array_equal(
        np.asarray(model(x)["classes"]), np.asarray(restored(x)["classes"])
    )


@pytest.mark.parametrize("name", ["cspdarknet53", "csppeleenet"])
def test_a_model_config_backbone_survives_the_json_config(name):
    from keras_csp.detection.backbone import config_from_dict as _config_from_dict
    from keras_csp.detection.backbone import config_to_dict as _config_to_dict

    if name not in MODEL_CONFIGS:
        pytest.skip(f"{name} not in this build")
    config = MODEL_CONFIGS[name]
    assert _config_from_dict(json.loads(json.dumps(_config_to_dict(config)))) == config


def test_loss_stays_finite_with_only_bad_boxes_no_boxes_and_nan_boxes():
    model = small_detector(bounding_box_format="rel_xyxy")
    model.compile()
    x = tf.random.uniform((2, SIZE, SIZE, 3))
    raw = model(x, training=False)
    cases = {
        "outside and negative": ([[[1.2, 1.2, 1.5, 1.5], [0.6, 0.6, 0.2, 0.7]]] * 2, [[0, 1]] * 2),
        "nan": ([[[np.nan, 0.1, 0.5, 0.5], [0.1, 0.1, 0.4, 0.4]]] * 2, [[0, 1]] * 2),
        "padding only": ([[[-1.0] * 4]] * 2, [[-1]] * 2),
        "no rows": (np.zeros((2, 0, 4)), np.zeros((2, 0))),
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, (boxes, classes) in cases.items():
            y = {"boxes": tf.constant(boxes, "float32"), "classes": tf.constant(classes, "float32")}
            loss = float(model.compute_loss(x, y, raw))
            assert np.isfinite(loss), name
    # Eagerly too, one warning for the model: 2 clipped-then-empty and 2 NaN boxes were dropped.
    ours = [str(w.message) for w in caught if "CSPDetector: a training batch" in str(w.message)]
    assert len(ours) == 1 and "0 box(es) outside the image (clipped) and 4 empty" in ours[0]


def test_sanitize_boxes_clips_drops_and_counts():
    boxes = tf.constant(
        [[[-5, 10, 20, 30], [10, 10, 5, 40], [70, 70, 90, 90], [1, 2, 3, 4], [-1, -1, -1, -1]]],
        "float32",
    )
    classes = tf.constant([[0, 1, 2, 7, -1]], "float32")
    out, cls, valid, clipped, dropped = sanitize_boxes(boxes, classes, 64, 64, num_classes=3)
    np.testing.assert_array_equal(np.asarray(out)[0, 0], [0, 10, 20, 30])
    np.testing.assert_array_equal(np.asarray(valid), [[True, False, False, False, False]])
    np.testing.assert_array_equal(np.asarray(cls), [[0, -1, -1, -1, -1]])
    # Negative width, entirely outside, class 7 >= num_classes: dropped. Padding is not counted.
    assert int(clipped) == 1 and int(dropped) == 3


def test_anchor_points_follow_the_heads_row_major_order():
    centers, strides = anchor_points(64, 96)
    assert centers.shape == (8 * 12 + 4 * 6 + 2 * 3, 2)
    np.testing.assert_array_equal(np.asarray(centers)[:2], [[4, 4], [12, 4]])  # x moves first
    np.testing.assert_array_equal(np.asarray(centers)[12], [4, 12])
    assert float(strides[-1]) == 32


@pytest.mark.parametrize("num_classes", [0, -1, 2.5, True, "3"])
def test_num_classes_must_be_a_positive_integer(num_classes):
    with pytest.raises(ValueError, match=r"num_classes=.* is not allowed; allowed: an integer >="):
        small_detector(num_classes=num_classes)


@pytest.mark.parametrize("shape", [(100, 100, 3), (64, 48, 3), (16, 16, 3)])
def test_input_size_must_be_a_multiple_of_the_network_stride(shape):
    with pytest.raises(ValueError, match=r"allowed: multiples of the network stride 32"):
        small_detector(input_shape=shape)


def test_image_size_of_a_free_size_detector_is_checked_when_decoding():
    model = small_detector(input_shape=None)
    x = tf.random.uniform((1, 72, 72, 3))
    message = r"images of shape \(1, 72, 72, 3\): height x width 72x72 is not allowed; allowed: "
    with pytest.raises(ValueError, match=message + "multiples of the network stride 32"):
        model(x)
    raw = model(tf.random.uniform((1, 64, 64, 3)))
    with pytest.raises(ValueError, match=message):
        model.decode_boxes(raw, x)


def test_unknown_names():
    with pytest.raises(ValueError, match=r"neck='yolo' is not known; allowed: 'efm'"):
        small_detector(neck="yolo")
    with pytest.raises(ValueError, match=r"attention='se' is not allowed; allowed: None, 'sam'"):
        small_detector(attention="se")
    with pytest.raises(ValueError, match=r"bounding_box_format='ltrb' is not allowed; allowed:"):
        small_detector(bounding_box_format="ltrb")
    with pytest.raises(ValueError, match=r"model='vgg16' is not a known architecture"):
        small_detector(backbone="vgg16")
    model = small_detector()
    with pytest.raises(ValueError, match=r"box_loss='smooth_l1' is not allowed; allowed: 'ciou'"):
        model.compile(box_loss="smooth_l1")
    with pytest.raises(ValueError, match=r"loss='mse' is not allowed; CSPDetector computes"):
        model.compile(loss="mse")


def test_bad_widths_and_thresholds():
    with pytest.raises(ValueError, match=r"neck_filters=\(8, 8\) is not allowed for CSPDetector"):
        small_detector(neck_filters=(8, 8))
    with pytest.raises(ValueError, match=r"head_filters=0 is not allowed for CSPDetector"):
        small_detector(head_filters=0)
    with pytest.raises(ValueError, match=r"iou_threshold=1.5 is not allowed; allowed: a number in"):
        small_detector(iou_threshold=1.5)


def test_backbone_without_the_levels_the_neck_needs():
    two_stages = ModelConfig(
        stem=StemConfig(filters=8, kernel_size=3, strides=2),
        stages=StagesConfig(filters=(16, 32), depth=(1, 1), strides=2),
    )
    with pytest.raises(ValueError, match=r"gives levels \['P2', 'P3'\]; neck='efm' needs \['P2', "):
        small_detector(backbone=two_stages)


def test_backbone_weights_are_copied_into_the_detector(tmp_path):
    backbone = keras_csp.build_model(SMALL_BACKBONE, include_top=False, input_shape=(SIZE, SIZE, 3))
    path = str(tmp_path / "backbone.weights.h5")
    backbone.save_weights(path)
    model = small_detector(backbone_weights=path)
    for name in ("stem.conv1.conv", "stages.3.conv_transition.bn"):
        for ours, theirs in zip(model.get_layer(f"backbone.{name}").get_weights(),
                                backbone.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    assert "backbone_weights" not in model.get_config()


def test_profile_reports_backbone_neck_and_head():
    profile = keras_csp.profile(small_detector())
    assert [s.name for s in profile.stages] == ["backbone", "neck", "head"]
    assert all(s.params > 0 and s.flops > 0 for s in profile.stages)
    assert profile.params == sum(s.params for s in profile.stages)


@pytest.mark.skipif("csppeleenet" not in MODEL_CONFIGS, reason="CSPPeleeNet not in this build")
def test_efm_sam_csppeleenet_at_416_is_near_the_papers_size():
    profile = profile_detector("csppeleenet", "efm", "sam", num_classes=80, input_size=416)
    # Paper Table 4: EFM (SAM) + CSPPeleeNet, 416x416: 4.31 M parameters, 5.07 BFLOPs.
    assert profile.params == pytest.approx(4.31e6, rel=0.15)
    assert profile.flops == pytest.approx(5.07e9, rel=0.15)


def test_loss_and_assigner_options_are_checked_and_kept_in_the_compile_config():
    model = small_detector()
    model.compile()
    assert model.get_compile_config()["dfl_loss_weight"] == 1.5  # YOLOv8's DFL by default
    model.compile(dfl_loss_weight=1.5, assigner_top_k=5, assigner_alpha=1.0, assigner_beta=4.0)
    config = model.get_compile_config()
    assert (config["dfl_loss_weight"], config["assigner_top_k"]) == (1.5, 5)
    assert (config["assigner_alpha"], config["assigner_beta"]) == (1.0, 4.0)
    encoder = model._label_encoder
    assert (encoder.max_anchor_matches, encoder.alpha, encoder.beta) == (5, 1.0, 4.0)
    with pytest.raises(ValueError, match="dfl_loss_weight=-1 is not allowed"):
        model.compile(dfl_loss_weight=-1)
    with pytest.raises(ValueError, match="assigner_top_k=0 is not allowed"):
        model.compile(assigner_top_k=0)
