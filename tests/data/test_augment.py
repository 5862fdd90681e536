import numpy as np
import pytest
import tensorflow as tf

from keras_csp.data import (
    AUGMENTATION_PRESETS,
    ClassificationAugmentation,
    augmentation_options,
    augmenter,
    synthetic_shapes,
)


def test_presets_are_named_and_documented():
    assert set(AUGMENTATION_PRESETS) == {"classification", "detection", "none"}
    for cls in (v for v in AUGMENTATION_PRESETS.values() if v is not None):
        assert cls.__doc__
    assert augmenter("none", 32) is None
    options = augmentation_options("classification", mix="cutmix", crop_area=[0.5, 1.0])
    assert options == ClassificationAugmentation(mix="cutmix", crop_area=(0.5, 1.0))


def test_classification_preset_on_a_tf_data_pipeline():
    data = synthetic_shapes(num_train=16, num_validation=0, image_size=32)
    aug = augmenter("classification", 32, seed=1)
    assert aug.options.label_smoothing == 0.1
    images, labels = next(iter(data.train.as_dataset(16, augment=aug)))
    assert isinstance(images, tf.Tensor)
    assert images.shape == (16, 32, 32, 3) and labels.shape == (16, 6)
    # Pixel range kept, up to float rounding of MixUp's convex combination (seen: 255.00002).
    assert float(tf.reduce_min(images)) >= -1e-3 and float(tf.reduce_max(images)) <= 255.0 + 1e-3
    np.testing.assert_allclose(labels.numpy().sum(1), 1.0, atol=1e-5)
    # Normalization (after augmentation, when both are asked for): ImageNet statistics.
    norm, _ = next(iter(data.train.as_dataset(16, normalize=True)))
    assert float(tf.reduce_min(norm)) < 0.0


def test_detection_preset_keeps_boxes_inside_and_dense():
    data = synthetic_shapes("detection", num_train=8, num_validation=0, image_size=64, max_objects=4)
    aug = augmenter("detection", 64, bounding_box_format="xyxy", max_boxes=4, seed=2)
    batch = next(iter(data.train.as_dataset(8, augment=aug)))
    boxes = batch["bounding_boxes"]["boxes"].numpy()
    classes = batch["bounding_boxes"]["classes"].numpy()
    assert batch["images"].shape == (8, 64, 64, 3)
    assert boxes.shape == (8, 4, 4) and classes.shape == (8, 4)
    valid = classes >= 0
    assert valid.any()
    inside = boxes[valid]
    assert np.all(inside[:, 0] >= -1e-3) and np.all(inside[:, 2] <= 64 + 1e-3)
    assert np.all(inside[:, 0] <= inside[:, 2]) and np.all(inside[:, 1] <= inside[:, 3])


def test_bad_options():
    with pytest.raises(ValueError, match="do not exist for augment='classification'; allowed: .*mix"):
        augmentation_options("classification", mosaic=True)
    with pytest.raises(ValueError, match="mix='blend'"):
        augmentation_options("classification", mix="blend")
    with pytest.raises(ValueError, match="augment='fancy' is not a preset"):
        augmenter("fancy", 32)
    with pytest.raises(ValueError, match="needs bounding_box_format"):
        augmenter("detection", 32)
