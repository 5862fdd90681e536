"""Pascal VOC detection sets: the TF-free reader, its checks, `difficult` objects, and
`voc_detection`."""

import numpy as np
import pytest

from keras_csp import coco_eval
from keras_csp.coco_eval import read_detection_set
from keras_csp.lite.voc import read_voc

WIDE = """<annotation>
  <folder>VOC</folder>
  <filename>wide.jpg</filename>
  <size><width>100</width><height>50</height><depth>3</depth></size>
  <object>
    <name>dog</name>
    <difficult>0</difficult>
    <bndbox><xmin>11</xmin><ymin>6</ymin><xmax>40</xmax><ymax>25</ymax></bndbox>
  </object>
  <object>
    <name>car</name>
    <difficult>1</difficult>
    <bndbox><xmin>61</xmin><ymin>1</ymin><xmax>100</xmax><ymax>50</ymax></bndbox>
  </object>
</annotation>
"""
TALL = """<annotation><filename>tall.png</filename>
<object><name>car</name><bndbox><xmin>1</xmin><ymin>41</ymin><xmax>20</xmax><ymax>80</ymax>
</bndbox></object></annotation>
"""


def _voc(root, make_image, wide=WIDE, val="wide\n"):
    make_image(str(root / "JPEGImages" / "wide.jpg"), size=(50, 100))
    make_image(str(root / "JPEGImages" / "tall.png"), size=(80, 40))
    (root / "Annotations").mkdir()
    (root / "Annotations" / "wide.xml").write_text(wide)
    (root / "Annotations" / "tall.xml").write_text(TALL)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("wide\ntall\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text(val)
    return str(root)


def test_reader_converts_voc_pixels_and_flags_difficult(tmp_path, make_image):
    root = _voc(tmp_path, make_image)
    categories, records = read_voc(root, "train")
    assert categories == {0: "car", 1: "dog"}  # sorted names of the training set
    (wide, boxes, classes, difficult), (tall, b2, c2, d2) = records  # in the set's order
    # 1-based inclusive (xmin 11 .. xmax 40) is the continuous [10, 40].
    np.testing.assert_allclose(boxes, [[10, 5, 40, 25], [60, 0, 100, 50]])
    assert classes == [1, 0] and difficult == [False, True]
    assert tall.endswith("tall.png") and b2 == [[0, 40, 20, 80]] and d2 == [False]
    val = read_detection_set(root)  # VOC from the folder, the val set, the train set's classes
    assert val.data_format == "voc" and val.categories == categories and len(val.records) == 1


def test_difficult_boxes_are_neither_missed_nor_false(tmp_path, make_image):
    truth = [(np.array([[10, 5, 40, 25], [60, 0, 100, 50]]), [1, 0], [False, True])]
    found_dog = [(10, 5, 40, 25, 0.9, 1)]
    assert coco_eval.coco_metrics(truth, [found_dog])["mAP"] == pytest.approx(1.0)
    # found the difficult car too: not a false positive
    both = found_dog + [(60, 0, 100, 50, 0.95, 0)]
    assert coco_eval.coco_metrics(truth, [both])["mAP"] == pytest.approx(1.0)
    # the same car as an ordinary box: missed, the car class scores 0
    plain = [(truth[0][0], truth[0][1], [False, False])]
    assert coco_eval.coco_metrics(plain, [found_dog])["mAP"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "wide, line, message",
    [
        (WIDE.replace("</object>\n  <object>", "</object>\n  <object", 1), 11,
         "not well-formed XML"),
        ('<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY x "xx">]>\n<annotation>&x;</annotation>',
         2, "a DOCTYPE"),
        (WIDE.replace("<xmin>11</xmin>", "<xmin>x</xmin>"), 8, "<xmin> is 'x'; allowed: a finite"),
        (WIDE.replace("<xmax>40</xmax>", "<xmax>inf</xmax>"), 8, "<xmax> is 'inf'"),
        (WIDE.replace("<xmax>100</xmax>", "<xmax>102</xmax>"), 13, "lies outside the image"),
        (WIDE.replace("<xmax>40</xmax>", "<xmax>5</xmax>"), 8, "is empty"),
        (WIDE.replace("<filename>wide.jpg", "<filename>gone.jpg").replace(
            "<name>dog", "<name>cat"), 3, "the image is missing"),
    ],
)
def test_bad_annotations_name_the_file_and_line(tmp_path, make_image, wide, line, message):
    root = _voc(tmp_path, make_image, wide=wide)
    if "gone.jpg" in wide:
        (tmp_path / "JPEGImages" / "wide.jpg").unlink()
    with pytest.raises(ValueError, match=message) as e:
        read_voc(root, "train")
    assert str(e.value).startswith(f"{tmp_path}/Annotations/wide.xml line {line}:"), e.value


def test_a_class_outside_the_training_sets_is_refused(tmp_path, make_image):
    root = _voc(tmp_path, make_image, val="wide\nextra\n")
    (tmp_path / "Annotations" / "extra.xml").write_text(TALL.replace("car", "horse"))
    with pytest.raises(ValueError, match=r"extra.xml line 2: the class 'horse' is not among"):
        read_voc(root, "val")


def test_missing_sets_and_roots(tmp_path, make_image):
    root = _voc(tmp_path, make_image)
    with pytest.raises(ValueError, match=r"test.txt: no such image set; allowed: train, val"):
        read_voc(root, "test")
    with pytest.raises(ValueError, match="has no Annotations/ folder"):
        read_voc(str(tmp_path / "JPEGImages"), "val")
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("wide\nnope\n")
    with pytest.raises(ValueError, match="nope.xml: no such annotation file"):
        read_voc(root, "val")


def test_voc_detection_leaves_difficult_objects_out_of_training(tmp_path, make_image):
    from keras_csp.data import voc_detection

    data = voc_detection(_voc(tmp_path, make_image), image_size=100, max_boxes=3)
    assert data.class_names == ["car", "dog"] and (data.train.size, data.validation.size) == (2, 1)
    batch = next(iter(data.train.as_dataset(2, shuffle=False)))
    classes = batch["bounding_boxes"]["classes"].numpy()
    np.testing.assert_array_equal(classes, [[1, -1, -1], [0, -1, -1]])  # the difficult car: out
    np.testing.assert_allclose(batch["bounding_boxes"]["boxes"][0, 0], [10, 5, 40, 25], atol=1e-4)
    ordered = voc_detection(str(tmp_path), image_size=64, classes=["dog", "car"])
    assert ordered.class_names == ["dog", "car"]
    with pytest.raises(ValueError, match="the class 'car' is not among the given classes"):
        voc_detection(str(tmp_path), classes=["dog"])


def test_an_annotation_that_is_a_fifo_is_not_opened(tmp_path, make_image):
    import os

    root = _voc(tmp_path, make_image)
    (tmp_path / "Annotations" / "wide.xml").unlink()
    os.mkfifo(tmp_path / "Annotations" / "wide.xml")
    with pytest.raises(ValueError, match=r"wide.xml is not a regular file but a FIFO; allowed"):
        read_voc(root, "train")
