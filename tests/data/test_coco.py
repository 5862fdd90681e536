import json
import os

import numpy as np
import pytest

from keras_csp.data import coco_detection


def _coco(tmp_path, make_image, annotations=None, categories=None, images=None):
    img_dir = tmp_path / "images"
    make_image(str(img_dir / "wide.jpg"), size=(50, 100))  # h=50, w=100
    make_image(str(img_dir / "tall.png"), size=(80, 40))
    make_image(str(img_dir / "empty.png"), size=(32, 32))
    doc = {
        "images": images
        or [
            {"id": 1, "file_name": "wide.jpg", "width": 100, "height": 50},
            {"id": 2, "file_name": "tall.png", "width": 40, "height": 80},
            {"id": 7, "file_name": "empty.png", "width": 32, "height": 32},
        ],
        "annotations": annotations
        or [
            {"id": 10, "image_id": 1, "category_id": 18, "bbox": [10, 5, 30, 20], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [60, 0, 40, 50], "iscrowd": 0},
            {"id": 12, "image_id": 2, "category_id": 18, "bbox": [0, 40, 20, 40]},
            {"id": 13, "image_id": 2, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 1},
        ],
        "categories": categories or [{"id": 3, "name": "car"}, {"id": 18, "name": "dog"}],
    }
    path = tmp_path / "train.json"
    path.write_text(json.dumps(doc))
    return str(path), str(img_dir)


def _by_size(split):
    out = []
    for batch in split.as_dataset(8, shuffle=False):
        for i in range(len(batch["images"])):
            cls = batch["bounding_boxes"]["classes"][i].numpy()
            out.append((batch["bounding_boxes"]["boxes"][i].numpy()[cls >= 0], cls[cls >= 0]))
    return out


def test_boxes_follow_the_letterbox_and_categories_become_indices(tmp_path, make_image):
    ann, images = _coco(tmp_path, make_image)
    data = coco_detection(ann, images, image_size=64, max_boxes=5)
    assert data.class_names == ["car", "dog"] and data.category_ids == [3, 18]
    assert data.train.size == 3 and data.validation is None
    batch = next(iter(data.train.as_dataset(3, shuffle=False)))
    assert batch["images"].shape == (3, 64, 64, 3)
    assert batch["bounding_boxes"]["boxes"].shape == (3, 5, 4)
    (b1, c1), (b2, c2), (b7, c7) = _by_size(data.train)  # in image id order
    s = 64 / 100  # wide.jpg: the longer side (100) becomes 64
    expected = [[10 * s, 5 * s, 40 * s, 25 * s], [60 * s, 0, 100 * s, 50 * s]]
    np.testing.assert_allclose(b1, expected, atol=1e-4)
    np.testing.assert_array_equal(c1, [1, 0])  # dog (18) -> 1, car (3) -> 0
    s = 64 / 80
    np.testing.assert_allclose(b2, [[0, 40 * s, 20 * s, 80 * s]], atol=1e-4)  # crowd box left out
    assert len(b7) == 0
    xywh = coco_detection(ann, images, image_size=64, bounding_box_format="xywh")
    (w1, _), _, _ = _by_size(xywh.train)
    np.testing.assert_allclose(w1[0], [10 * 0.64, 5 * 0.64, 30 * 0.64, 20 * 0.64], atol=1e-4)


def test_validation_split_and_file(tmp_path, make_image):
    ann, images = _coco(tmp_path, make_image)
    data = coco_detection(ann, images, image_size=32, validation_split=0.34, seed=0)
    assert data.train.size == 2 and data.validation.size == 1
    data = coco_detection(ann, images, image_size=32, validation_annotations=ann)
    assert data.validation.size == 3


def test_corrupt_image_is_skipped_and_counted(tmp_path, make_image):
    ann, images = _coco(tmp_path, make_image)
    with open(os.path.join(images, "tall.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n garbage")
    data = coco_detection(ann, images, image_size=32)
    assert len(_by_size(data.train)) == 2
    assert data.skipped.count == 1 and data.skipped.sources[0].endswith("tall.png")


def test_box_outside_image(tmp_path, make_image):
    ann, images = _coco(
        tmp_path,
        make_image,
        annotations=[{"id": 5, "image_id": 1, "category_id": 3, "bbox": [90, 10, 30, 10]}],
    )
    with pytest.raises(ValueError, match="outside their image") as e:
        coco_detection(ann, images)
    assert "annotation 5" in str(e.value) and "wide.jpg" in str(e.value) and "100x50" in str(e.value)


def test_unknown_category(tmp_path, make_image):
    ann, images = _coco(
        tmp_path,
        make_image,
        annotations=[{"id": 5, "image_id": 1, "category_id": 99, "bbox": [1, 1, 3, 3]}],
    )
    with pytest.raises(ValueError, match=r"category id\(s\) 99 are not declared; allowed: 3, 18"):
        coco_detection(ann, images)


def test_missing_image_file(tmp_path, make_image):
    ann, images = _coco(
        tmp_path,
        make_image,
        images=[
            {"id": 1, "file_name": "wide.jpg", "width": 100, "height": 50},
            {"id": 2, "file_name": "gone.jpg", "width": 10, "height": 10},
        ],
        annotations=[{"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 3, 3]}],
    )
    with pytest.raises(ValueError, match=r"1 image file\(s\) missing .*gone.jpg"):
        coco_detection(ann, images)


def test_other_bad_input(tmp_path, make_image):
    ann, images = _coco(
        tmp_path,
        make_image,
        annotations=[{"id": 5, "image_id": 42, "category_id": 3, "bbox": [1, 1, 3, 3]}],
    )
    with pytest.raises(ValueError, match="refer to image ids not in 'images'"):
        coco_detection(ann, images)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        coco_detection(str(bad), images)
    with pytest.raises(ValueError, match="no such file"):
        coco_detection(str(tmp_path / "nope.json"), images)
    with pytest.raises(ValueError, match="bounding_box_format='xyz'"):
        coco_detection(ann, images, bounding_box_format="xyz")


def test_boxes_sticking_out_are_refused_or_clipped_and_counted(tmp_path, make_image):
    ann, images = _coco(
        tmp_path,
        make_image,
        annotations=[
            {"id": 5, "image_id": 1, "category_id": 3, "bbox": [90, 10, 30, 10]},  # out by 20
            {"id": 6, "image_id": 2, "category_id": 18, "bbox": [-0.5, 2, 10, 10]},  # tolerated
        ],
    )
    with pytest.raises(ValueError, match=r"clip_boxes=True \(--clip-boxes\)") as e:
        coco_detection(ann, images)
    assert "annotation 5" in str(e.value) and "wide.jpg" in str(e.value)
    with pytest.warns(UserWarning, match=r"clipped 1 box\(es\).*annotation 5"):
        data = coco_detection(ann, images, image_size=100, clip_boxes=True)
    assert data.clipped_boxes == 1
    (b1, _), (b2, _), _ = _by_size(data.train)
    np.testing.assert_allclose(b1, [[90, 10, 100, 20]], atol=1e-4)
    np.testing.assert_allclose(b2, [[0, 2 * 1.25, 9.5 * 1.25, 12 * 1.25]], atol=1e-4)
    # A box entirely outside is empty after clipping: still an error.
    ann, images = _coco(
        tmp_path,
        make_image,
        annotations=[{"id": 7, "image_id": 1, "category_id": 3, "bbox": [120, 10, 5, 5]}],
    )
    with pytest.raises(ValueError, match="annotation 7"):
        coco_detection(ann, images, clip_boxes=True)


def test_a_data_set_without_boxes_is_refused(tmp_path, make_image):
    ann, images = _coco(
        tmp_path,
        make_image,
        annotations=[{"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 3, 3], "iscrowd": 1}],
    )
    with pytest.raises(ValueError, match=r"train.json' has no boxes: 3 image\(s\).*allowed: a "):
        coco_detection(ann, images)


def test_unknown_category_names_the_annotation(tmp_path, make_image):
    ann, images = _coco(
        tmp_path,
        make_image,
        annotations=[
            {"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 3, 3]},
            {"id": 8, "image_id": 2, "category_id": 4, "bbox": [1, 1, 3, 3]},
        ],
    )
    with pytest.raises(ValueError, match=r"train.json.*category id\(s\) 4 .*annotation\(s\) 8"):
        coco_detection(ann, images)
    # A validation file's categories must be the training file's.
    with pytest.raises(ValueError, match="not declared by the training annotations"):
        coco_detection(_coco(tmp_path / "t", make_image)[0], images, validation_annotations=ann)


def test_annotation_file_of_another_image_set(tmp_path, make_image):
    ann, images = _coco(tmp_path, make_image)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match="none of its 3 image files is in images_dir=.*another"):
        coco_detection(ann, str(other))
    # Same file names, other sizes.
    ann, images = _coco(
        tmp_path,
        make_image,
        images=[
            {"id": 1, "file_name": "wide.jpg", "width": 640, "height": 480},
            {"id": 2, "file_name": "tall.png", "width": 40, "height": 80},
        ],
        annotations=[{"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 1, 3, 3]}],
    )
    with pytest.raises(ValueError, match=r"1 of 2 .*wide.jpg \(100x50, recorded 640x480\)"):
        coco_detection(ann, images)


def test_train_command_refuses_bad_coco_before_training(tmp_path, make_image, capsys):
    from keras_csp.cli import main

    ann, images = _coco(
        tmp_path,
        make_image,
        annotations=[{"id": 5, "image_id": 1, "category_id": 3, "bbox": [90, 10, 30, 10]}],
    )
    out = tmp_path / "run"
    args = ["train", "--task", "detection", "--data", "coco", "--data-path", ann,
            "--images-dir", images, "--output-dir", str(out), "--input-size", "64"]
    assert main(args) == 2
    assert "--clip-boxes" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
