"""The hard detection setting of synthetic_shapes, and writing detection data as COCO files."""

import json

import numpy as np
import pytest
from PIL import Image

from keras_csp.cli import main
from keras_csp.data import SHAPES, coco_detection, export_coco, synthetic_shapes


def _examples(split, batch=16):
    out = []
    for b in split.as_dataset(batch, shuffle=False):
        for i in range(len(b["images"])):
            cls = b["bounding_boxes"]["classes"][i].numpy()
            boxes = b["bounding_boxes"]["boxes"][i].numpy()
            out.append((b["images"][i].numpy(), boxes[cls >= 0], cls[cls >= 0]))
    return out


@pytest.fixture(scope="module")
def hard():
    data = synthetic_shapes(
        "detection", num_train=12, num_validation=4, image_size=64, seed=3, difficulty="hard"
    )
    return data, _examples(data.train)


def _iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_hard_scenes_are_deterministic_crowded_and_varied(hard):
    data, examples = hard
    assert data.train.max_boxes == 16 and "hard" in repr(data)
    again = _examples(
        synthetic_shapes(
            "detection", num_train=12, num_validation=0, image_size=64, seed=3, difficulty="hard"
        ).train
    )
    for (x, b, c), (x2, b2, c2) in zip(examples, again):
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(b, b2)
        np.testing.assert_array_equal(c, c2)
    counts = [len(c) for _, _, c in examples]
    assert max(counts) <= 16 and np.mean(counts) >= 4, counts
    boxes = np.concatenate([b for _, b, _ in examples])
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= 64)
    assert np.all(boxes[:, 2:] > boxes[:, :2])
    assert set(np.concatenate([c for _, _, c in examples]).astype(int)) <= set(range(len(SHAPES)))
    sides = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    assert sides.max() / sides.min() > 5, sides  # small and large objects
    overlapping = sum(
        _iou(b[i], b[j]) > 0 for _, b, _ in examples for i in range(len(b)) for j in range(i)
    )
    assert overlapping >= 5  # objects overlap and occlude
    # Backgrounds are photographs: far more distinct colours than a drawn background has.
    assert min(len(np.unique(x.reshape(-1, 3), axis=0)) for x, _, _ in examples) > 1000
    # Validation images are other indices.
    val = _examples(data.validation)
    assert not any(np.array_equal(v[0], t[0]) for v in val for t in examples)


def test_hard_boxes_are_tight_and_nothing_unlabelled_is_drawn():
    """On a flat grey background without clutter, lines or noise, every non-grey pixel is an object.

    Every such pixel lies in some box (occluded objects that were dropped are not drawn), and each
    box's four edges touch non-grey pixels (boxes are tight).
    """
    import tensorflow as tf

    from keras_csp.data.scenes import SceneDrawer

    class FlatDrawer(SceneDrawer):
        def _photo(self, index):
            return tf.fill([self.size, self.size, 3], 0.5)

        def _clutter(self, index, image, xs, ys):
            return image

    drawer = FlatDrawer(64, SHAPES, 1, (0.004, 0.2), (0.0, 0.0), 0, 16).bind()
    for index in range(6):
        image, boxes, classes = (t.numpy() for t in drawer(index))
        assert len(boxes) == len(classes) >= 1
        drawn = np.any(image != 127.5, axis=-1)
        covered = np.zeros_like(drawn)
        for x1, y1, x2, y2 in boxes.astype(int):
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
            covered[y1:y2, x1:x2] = True
            inside = drawn[y1:y2, x1:x2]
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        assert not np.any(drawn & ~covered)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "detection", "difficulty": "medium"}, "difficulty='medium'"),
        ({"difficulty": "hard"}, "task='classification'"),
        ({"task": "detection", "difficulty": "hard", "area_range": (0.0, 0.1)}, "area_range="),
    ],
)
def test_bad_difficulty_arguments(kwargs, message):
    with pytest.raises(ValueError, match="allowed") as e:
        synthetic_shapes(**kwargs)
    assert message in str(e.value)


def test_export_coco_round_trips_through_coco_detection(tmp_path, hard):
    out = tmp_path / "coco"
    written = export_coco(
        str(out), num_train=12, num_validation=4, image_size=64, seed=3, quality=100
    )
    assert written["train"]["images"] == 12 and written["val"]["images"] == 4
    doc = json.loads((out / "train.json").read_text())
    assert [c["name"] for c in doc["categories"]] == list(SHAPES)
    assert {c["id"] for c in doc["categories"]} == set(range(1, 7))
    assert len(doc["annotations"]) == written["train"]["boxes"]
    data = coco_detection(
        str(out / "train.json"),
        str(out / "train"),
        image_size=64,
        validation_annotations=str(out / "val.json"),
        validation_images_dir=str(out / "val"),
        max_boxes=16,
    )
    assert data.class_names == list(SHAPES) and data.validation.size == 4
    for k, ((x, b, c), (_, b2, c2)) in enumerate(zip(hard[1], _examples(data.train))):
        np.testing.assert_allclose(b2, b, atol=1e-3)
        np.testing.assert_array_equal(c2, c)
        written = np.asarray(Image.open(out / "train" / f"{k:06d}.jpg"), np.float32)
        assert np.abs(written - np.round(x)).mean() < 1.0  # JPEG at quality 100, 4:4:4
    # A non-empty folder is refused unless overwritten.
    with pytest.raises(ValueError, match="not empty"):
        export_coco(str(out), num_train=2, num_validation=0, image_size=64)


def test_export_coco_command(tmp_path, capsys):
    out = tmp_path / "easy"
    args = ["data", "export-coco", str(out), "--difficulty", "easy", "--num-train", "3"]
    assert main(args + ["--num-validation", "0", "--image-size", "32"]) == 0
    assert "train: 3 images" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["train", "train.json"]
    assert main(args + ["--num-validation", "0"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(args + ["--num-validation", "1", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["train", "train.json", "val", "val.json"]
