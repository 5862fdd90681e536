"""YOLO (ultralytics) detection sets: the TF-free reader, its checks, and `yolo_detection`."""

import numpy as np
import pytest

from keras_csp.coco_eval import read_detection_set
from keras_csp.lite.yolo import label_path, read_yolo


def _yolo(root, make_image, labels=None, yaml_text=None):
    """root/data.yaml, images/{train,val}/, labels/{train,val}/: wide.jpg 100x50 with two
    boxes, tall.png 40x80 with an empty label file, none.png 32x32 with no label file."""
    make_image(str(root / "images" / "train" / "wide.jpg"), size=(50, 100))
    make_image(str(root / "images" / "train" / "tall.png"), size=(80, 40))
    make_image(str(root / "images" / "val" / "none.png"), size=(32, 32))
    make_image(str(root / "images" / "val" / "wide.jpg"), size=(50, 100))
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    wide = labels if labels is not None else "1 0.25 0.3 0.3 0.4\n0 0.8 0.5 0.4 1.0\n"
    (root / "labels" / "train" / "wide.txt").write_text(wide)
    (root / "labels" / "train" / "tall.txt").write_text("")
    (root / "labels" / "val" / "wide.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(
        yaml_text or "train: images/train\nval: images/val\nnames: {0: car, 1: dog}\n"
    )
    return str(root / "data.yaml")


def test_reader_gives_pixel_boxes_and_the_names_ids(tmp_path, make_image):
    data = _yolo(tmp_path, make_image)
    categories, records = read_yolo(data, "train")
    assert categories == {0: "car", 1: "dog"}
    (tall, b_tall, c_tall, _), (wide, boxes, classes, ignore) = records  # sorted file names
    assert tall.endswith("tall.png") and b_tall == [] and c_tall == []
    np.testing.assert_allclose(boxes, [[10, 5, 40, 25], [60, 0, 100, 50]], atol=1e-9)
    assert classes == [1, 0] and ignore == [False, False]
    val = read_detection_set(data)  # the val split, format from the suffix
    assert val.data_format == "yolo" and [r[0].rsplit("/", 1)[1] for r in val.records] == [
        "none.png", "wide.jpg"]
    assert val.records[0][1] == [] and val.records[1][2] == [1]


def test_names_as_a_list_txt_lists_and_a_relative_path(tmp_path, make_image):
    _yolo(tmp_path / "set", make_image)
    (tmp_path / "set" / "val.txt").write_text("./images/val/wide.jpg\nimages/train/wide.jpg\n")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "d.yml").write_text(
        "path: ../set\ntrain: [images/train, val.txt]\nval: val.txt\nnames: [car, dog]\n"
    )
    categories, records = read_yolo(str(tmp_path / "cfg" / "d.yml"), "val")
    assert categories == {0: "car", 1: "dog"}
    assert [r[2] for r in records] == [[1], [1, 0]]
    _, train = read_yolo(str(tmp_path / "cfg" / "d.yml"), "train")
    assert len(train) == 4


def test_label_paths_are_ultralytics(tmp_path):
    assert label_path("/d/images/train/images/a.b.jpg") == "/d/images/train/labels/a.b.txt"
    assert label_path("/d/pics/a.png") == "/d/pics/a.txt"


@pytest.mark.parametrize(
    "row, message",
    [
        ("1 0.5 0.5 0.2", "4 values"),
        ("1 0.5 0.5 0.2 0.2 0.9", "6 values"),
        ("2 0.5 0.5 0.2 0.2", "class 2 is not in 'names'; allowed: 0..1"),
        ("-1 0.5 0.5 0.2 0.2", "class -1 is not in 'names'"),
        ("dog 0.5 0.5 0.2 0.2", "class 'dog' is not an integer"),
        ("0 0.5 0.5 nan 0.2", "'nan' is not a finite number"),
        ("0 0.5 0.5 inf 0.2", "'inf' is not a finite number"),
        ("0 1.2 0.5 0.2 0.2", "lies outside the image"),
        ("0 0.5 0.5 0 0.2", "is empty"),
    ],
)
def test_bad_label_rows_name_the_file_and_line(tmp_path, make_image, row, message):
    data = _yolo(tmp_path, make_image, labels=f"0 0.5 0.5 0.2 0.2\n\n{row}\n")
    with pytest.raises(ValueError, match=message) as e:
        read_yolo(data, "train")
    assert f"{tmp_path}/labels/train/wide.txt line 3:" in str(e.value)
    assert "\n" not in str(e.value)


def test_a_pixel_of_overshoot_is_clipped(tmp_path, make_image):
    # 0.5 px beyond the right edge of a 100 px wide image: rounding, clipped to the image.
    data = _yolo(tmp_path, make_image, labels="0 0.9025 0.5 0.2 0.2\n")
    _, records = read_yolo(data, "train")
    assert records[1][1][0][2] == 100.0


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("train: images/train\nval: images/val\n", "'names' is missing"),
        ("val: images/val\nnames: [a, b]\n", "the split 'train' is missing"),
        ("train: images/nope\nnames: [a, b]\n", "'images/nope' is not a folder or a .txt list"),
        ("train: images/train\nnames: {0: a, 2: b}\n", "allowed: the ids 0..n-1"),
        ("train: images/train\nnc: 3\nnames: [a, b]\n", "nc=3 but 'names' lists 2"),
        ("train: [images/train\nnames: [a]\n", "line 2: not valid YAML"),
    ],
)
def test_bad_data_yaml(tmp_path, make_image, yaml_text, message):
    data = _yolo(tmp_path, make_image, yaml_text=yaml_text)
    with pytest.raises(ValueError, match=message) as e:
        read_yolo(data, "train")
    assert str(e.value).startswith(data)


def test_a_listed_image_that_is_missing_names_the_list_and_line(tmp_path, make_image):
    data = _yolo(tmp_path, make_image, yaml_text="train: t.txt\nnames: [a, b]\n")
    (tmp_path / "t.txt").write_text("./images/train/wide.jpg\n./images/train/gone.jpg\n")
    with pytest.raises(ValueError, match=r"t.txt line 2: the image './images/train/gone.jpg' does"):
        read_yolo(data, "train")


def test_without_pyyaml_the_error_says_what_to_install(tmp_path, make_image, monkeypatch):
    import sys

    data = _yolo(tmp_path, make_image)
    monkeypatch.setitem(sys.modules, "yaml", None)  # as on a device-side install without it
    with pytest.raises(ImportError, match=r"needs pyyaml \(pip install pyyaml\)"):
        read_detection_set(data)


def test_yolo_detection_loads_letterboxed_boxes(tmp_path, make_image):
    from keras_csp.data import yolo_detection

    data = yolo_detection(_yolo(tmp_path, make_image), image_size=64, max_boxes=4)
    assert data.class_names == ["car", "dog"] and (data.train.size, data.validation.size) == (2, 2)
    batch = next(iter(data.train.as_dataset(2, shuffle=False)))
    boxes, classes = batch["bounding_boxes"]["boxes"][1].numpy(), batch["bounding_boxes"][
        "classes"][1].numpy()
    s = 64 / 100  # wide.jpg: the longer side (100) becomes 64
    np.testing.assert_allclose(boxes[:2], [[10 * s, 5 * s, 40 * s, 25 * s],
                                           [60 * s, 0, 100 * s, 50 * s]], atol=1e-4)
    np.testing.assert_array_equal(classes, [1, 0, -1, -1])
    with pytest.raises(ValueError, match="the training split has no boxes"):
        (tmp_path / "labels" / "train" / "wide.txt").write_text("")
        yolo_detection(str(tmp_path / "data.yaml"))


def test_reading_imports_neither_tensorflow_nor_keras(tmp_path, make_image):
    import json
    import subprocess
    import sys

    data = _yolo(tmp_path, make_image)
    script = (
        "import json, sys\n"
        "from keras_csp.coco_eval import read_detection_set\n"
        f"s = read_detection_set({data!r})\n"
        "print(json.dumps([len(s.records), sorted(m for m in ('tensorflow', 'keras') "
        "if m in sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [2, []]


def test_hostile_text_files(tmp_path, make_image):
    import os

    data = _yolo(tmp_path, make_image)
    (tmp_path / "labels" / "train" / "wide.txt").write_bytes(b"0 0.5 0.5 0.2 0.2\n1 0.5\xe9\n")
    with pytest.raises(ValueError, match=r"wide.txt line 2: not UTF-8 text \(byte 5"):
        read_yolo(data, "train")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it would wait for a writer
    with pytest.raises(ValueError, match=r"fifo.yaml' is not a regular file but a FIFO; allowed"):
        read_yolo(str(fifo))
    # An alias chain: nine levels of ten references would print as 10**9 names.
    chain = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10))
    (tmp_path / "bomb.yaml").write_text(
        "l0: &l0 [a]\n" + chain + "train: images/train\nnames: [*l9]\n"
    )
    with pytest.raises(ValueError, match="'names' holds a list or mapping as a name"):
        read_yolo(str(tmp_path / "bomb.yaml"), "train")
    (tmp_path / "bomb.yaml").write_text("l0: &l0 [a]\n" + chain + "train: [*l9]\nnames: [a]\n")
    with pytest.raises(ValueError, match="'train' holds a list or mapping as a path"):
        read_yolo(str(tmp_path / "bomb.yaml"), "train")
