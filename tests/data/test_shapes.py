import numpy as np
import pytest

from keras_csp.data import SHAPES, synthetic_shapes


def _arrays(split, batch=200):
    xs, ys = [], []
    for x, y in split.as_dataset(batch, shuffle=False):
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def test_deterministic_from_seed_and_index():
    a = synthetic_shapes(num_train=24, num_validation=8, image_size=32, seed=5)
    b = synthetic_shapes(num_train=24, num_validation=8, image_size=32, seed=5)
    c = synthetic_shapes(num_train=24, num_validation=8, image_size=32, seed=6)
    xa, ya = _arrays(a.train)
    xb, yb = _arrays(b.train)
    xc, _ = _arrays(c.train)
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(xa, xc)
    assert xa.shape == (24, 32, 32, 3) and xa.dtype == np.float32
    assert 0.0 <= xa.min() and xa.max() <= 255.0
    assert ya.shape == (24, len(SHAPES)) and set(ya.sum(1)) == {1.0}
    # Validation images are other indices: never copies of training images.
    xv, _ = _arrays(a.validation)
    assert not any(np.array_equal(v, t) for v in xv for t in xa)
    # The per-epoch training order is a permutation fixed by (seed, epoch), equal across calls.
    first = a.train.indices(True, seed=1, epoch=3).numpy()
    assert sorted(first) == list(range(24))
    np.testing.assert_array_equal(first, a.train.indices(True, seed=1, epoch=3).numpy())
    assert not np.array_equal(first, a.train.indices(True, seed=1, epoch=4).numpy())


def _histogram_features(images):
    q = np.clip((images / 256.0 * 4).astype(int), 0, 3)
    joint = q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]
    h = np.stack([np.bincount(j.ravel(), minlength=64) for j in joint]).astype(np.float64)
    per_channel = [
        np.stack([np.histogram(im[..., c], bins=16, range=(0, 256))[0] for im in images])
        for c in range(3)
    ]
    return np.concatenate([h, *per_channel], 1) / (images.shape[1] * images.shape[2])


def test_colour_histogram_classifier_stays_near_chance():
    """Colours and foreground area carry no class information: only shape does."""
    data = synthetic_shapes(num_train=1500, num_validation=900, image_size=48, seed=11)
    x_train, y_train = _arrays(data.train, 500)
    x_val, y_val = _arrays(data.validation, 500)
    f_train, f_val = _histogram_features(x_train), _histogram_features(x_val)
    mean, std = f_train.mean(0), f_train.std(0) + 1e-6
    f_train, f_val = (f_train - mean) / std, (f_val - mean) / std
    # Multinomial logistic regression on the colour histograms (it fits the training set
    # somewhat, as any classifier would, but does not generalize).
    k = y_train.shape[1]
    w, b = np.zeros((f_train.shape[1], k)), np.zeros(k)
    for _ in range(400):
        z = f_train @ w + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        g = (p - y_train) / len(f_train)
        w -= 0.5 * (f_train.T @ g + 1e-3 * w)
        b -= 0.5 * g.sum(0)
    accuracy = ((f_val @ w + b).argmax(1) == y_val.argmax(1)).mean()
    chance = 1.0 / k
    assert accuracy < chance + 0.06, accuracy


def test_detection_boxes_are_tight_and_padded():
    data = synthetic_shapes("detection", num_train=6, num_validation=0, image_size=64, max_objects=4)
    assert data.validation is None
    batch = next(iter(data.train.as_dataset(6, shuffle=False)))
    images = batch["images"].numpy()
    boxes = batch["bounding_boxes"]["boxes"].numpy()
    classes = batch["bounding_boxes"]["classes"].numpy()
    assert images.shape == (6, 64, 64, 3)
    assert boxes.shape == (6, 4, 4) and classes.shape == (6, 4)
    for i in range(6):
        valid = classes[i] >= 0
        assert 1 <= valid.sum() <= 4
        assert np.all(boxes[i][~valid] == -1)
        for x1, y1, x2, y2 in boxes[i][valid]:
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
        assert set(classes[i][valid].astype(int)) <= set(range(len(SHAPES)))
    # Other keras-cv formats are converted, e.g. relative xywh.
    rel = synthetic_shapes(
        "detection", num_train=6, num_validation=0, image_size=64, bounding_box_format="rel_xywh"
    )
    rb = next(iter(rel.train.as_dataset(6, shuffle=False)))["bounding_boxes"]["boxes"].numpy()
    x1, y1, x2, y2 = boxes[0][0]
    np.testing.assert_allclose(rb[0][0], [x1 / 64, y1 / 64, (x2 - x1) / 64, (y2 - y1) / 64], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"classes": ["circle", "hexagon"]}, "classes="),
        ({"classes": ["circle"]}, "at least two"),
        ({"num_train": 0}, "num_train=0"),
        ({"task": "segmentation"}, "task='segmentation'"),
        ({"area_range": (0.2, 0.1)}, "area_range="),
        ({"bounding_box_format": "xy"}, "bounding_box_format='xy'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match="allowed") as e:
        synthetic_shapes(**kwargs)
    assert message in str(e.value)


def test_class_subset():
    data = synthetic_shapes(num_train=40, num_validation=0, image_size=32, classes=["ring", "star"])
    assert data.class_names == ["ring", "star"]
    _, y = _arrays(data.train)
    assert y.shape == (40, 2) and 0 < y[:, 0].sum() < 40
