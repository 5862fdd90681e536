"""Malformed and hostile COCO files (issue 24, items 2, 10, 11): each is refused before anything
is read or trained, in one line naming the file, the image or annotation, the value and what is
allowed. `read_coco` is the one reader of training (`coco_detection`) and of `keras-csp evaluate`.
"""

import copy
import json
import os

import numpy as np
import pytest
from PIL import Image

from keras_csp.lite.coco import read_coco

GOOD = {
    "images": [
        {"id": 1, "file_name": "a.png", "width": 40, "height": 30},
        {"id": 2, "file_name": "sub/b.png", "width": 40, "height": 30},
    ],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 5], "iscrowd": 0},
        {"id": 11, "image_id": 2, "category_id": 7, "bbox": [5, 5, 20, 20]},
    ],
    "categories": [{"id": 3, "name": "car"}, {"id": 7, "name": "dog"}],
}


@pytest.fixture
def coco_dir(tmp_path):
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(images / name)
    (tmp_path / "secret.png").write_bytes((images / "a.png").read_bytes())
    return tmp_path


def _changed(edit):
    doc = copy.deepcopy(GOOD)
    edit(doc)
    return doc


def _set(where, index, key, value):
    return lambda doc: doc[where][index].__setitem__(key, value)


def _drop(where, index, key):
    return lambda doc: doc[where][index].pop(key)


# (case, edit of GOOD, what the one-line error must say)
CASES = [
    # Item 2: a non-finite box passed the box check (every comparison with NaN is false).
    ("nan width", _set("annotations", 0, "bbox", [1, 2, float("nan"), 5]),
     r"annotation 10 \(annotations\[0\]\) has bbox=\[1, 2, NaN, 5\]; allowed: \[x, y, width, "
     r"height\]: 4 finite numbers"),
    ("nan x", _set("annotations", 1, "bbox", [float("nan"), 2, 3, 5]),
     r"annotation 11 \(annotations\[1\]\) has bbox=\[NaN, 2, 3, 5\]"),
    ("infinite height", _set("annotations", 0, "bbox", [1, 2, 3, float("inf")]),
     r"annotation 10 .* has bbox=\[1, 2, 3, Infinity\]"),
    # Item 11: malformed fields.
    ("category id 1.5", _set("annotations", 0, "category_id", 3.5),
     r"annotation 10 \(annotations\[0\]\) has category_id=3.5; allowed: an integer category id"),
    ("category id true", _set("annotations", 1, "category_id", True),
     r"annotation 11 \(annotations\[1\]\) has category_id=true; allowed: an integer"),
    ("image id of an annotation a string", _set("annotations", 0, "image_id", "1"),
     r"annotation 10 .* has image_id=\"1\"; allowed: an integer image id"),
    ("bbox of 3 values", _set("annotations", 0, "bbox", [1, 2, 3]),
     r"annotation 10 .* has bbox=\[1, 2, 3\]; allowed: \[x, y, width, height\]"),
    ("bbox of strings", _set("annotations", 1, "bbox", ["1", "2", "3", "4"]),
     r"annotation 11 .* has bbox=\[\"1\", \"2\", \"3\", \"4\"\]"),
    ("bbox missing", _drop("annotations", 0, "bbox"), r"annotation 10 .* has no 'bbox'"),
    ("iscrowd a string", _set("annotations", 0, "iscrowd", "0"),
     r"annotation 10 .* has iscrowd=\"0\"; allowed: 0 or 1"),
    ("annotation not an object", lambda doc: doc["annotations"].append([1, 2, 3]),
     r"annotations\[2\] is a JSON array \(\[1, 2, 3\]\); allowed: an object"),
    ("annotation without id", lambda doc: doc["annotations"][1].update(id=None, category_id=None),
     r"annotation null \(annotations\[1\]\) has category_id=null"),
    ("duplicate image id", _set("images", 1, "id", 1),
     r"image 1 \(images\[1\]\) repeats the id of images\[0\]; allowed: each image id once"),
    ("image id a string", _set("images", 0, "id", "1"),
     r"images\[0\] has id=\"1\"; allowed: an integer image id \(not a string or a boolean\)"),
    ("image id a boolean", _set("images", 0, "id", True), r"images\[0\] has id=true"),
    ("width missing", _drop("images", 1, "width"),
     r"image 2 \(images\[1\]\) has no 'width'; allowed: a whole number of pixels >= 1"),
    ("height 0", _set("images", 0, "height", 0), r"image 1 \(images\[0\]\) has height=0"),
    ("width 40.5", _set("images", 0, "width", 40.5), r"image 1 .* has width=40.5"),
    ("file_name null", _set("images", 0, "file_name", None),
     r"image 1 \(images\[0\]\) has file_name=null; allowed: a file name \(a non-empty string\)"),
    ("image not an object", lambda doc: doc["images"].insert(0, "a.png"),
     r"images\[0\] is a JSON string \(\"a.png\"\); allowed: an object"),
    ("images not a list", lambda doc: doc.update(images={"1": "a.png"}),
     r"'images' is a JSON object; allowed: a list of objects"),
    ("categories not a list", lambda doc: doc.update(categories="car"),
     r"'categories' is a JSON string; allowed: a list of objects"),
    ("category without id", _drop("categories", 1, "id"),
     r"categories\[1\] has no 'id'; allowed: an integer category id"),
    ("category declared with id 1.5", _set("categories", 0, "id", 1.5),
     r"categories\[0\] has id=1.5"),
    ("duplicate category id", _set("categories", 1, "id", 3),
     r"categories\[1\] repeats category id 3"),
    # Item 10: file names that lead out of the images folder.
    ("parent folder", _set("images", 0, "file_name", "../secret.png"),
     r"image 1 \(images\[0\]\) has file_name='../secret.png', which leads out of images_dir="
     r"'.*images'; allowed: a relative path that stays inside images_dir"),
    ("deep parents", _set("images", 1, "file_name", "sub/../../../../etc/passwd"),
     r"image 2 .* has file_name='sub/../../../../etc/passwd', which leads out"),
    ("absolute path", _set("images", 0, "file_name", "/etc/passwd"),
     r"file_name='/etc/passwd', which leads out of images_dir"),
]


@pytest.mark.parametrize("edit, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_coco_is_refused_in_one_line(coco_dir, edit, message):
    path = coco_dir / "bad.json"
    path.write_text(json.dumps(_changed(edit)))
    with pytest.raises(ValueError, match=f"^annotations='.*bad.json'.*{message}") as error:
        read_coco(str(path), str(coco_dir / "images"))
    assert "\n" not in str(error.value)


def _raw_file_error(coco_dir, name, data):
    path = coco_dir / name
    path.write_bytes(data)
    with pytest.raises(ValueError) as error:
        read_coco(str(path), str(coco_dir / "images"))
    text = str(error.value)
    assert text.startswith(f"annotations={str(path)!r}") and "\n" not in text
    return text


def test_encodings_depth_and_special_files(coco_dir):
    # UTF-16 and UTF-32 are JSON encodings (RFC 7159): read, not refused.
    text = json.dumps(GOOD)
    for encoding in ("utf-16", "utf-16-le", "utf-32", "utf-8-sig"):
        path = coco_dir / f"{encoding}.json"
        path.write_bytes(text.encode(encoding))
        categories, records, _ = read_coco(str(path), str(coco_dir / "images"))
        assert categories == {3: "car", 7: "dog"} and len(records) == 2
    assert "is not UTF-8 text (byte 1: invalid continuation byte)" in _raw_file_error(
        coco_dir, "latin1.json", b'{\xe9"images": []}'
    )
    deep = b'{"images": [], "annotations": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    assert "nests arrays or objects deeper than Python's JSON reader can follow" in (
        _raw_file_error(coco_dir, "deep.json", deep)
    )
    zero = coco_dir / "zero.json"
    os.symlink("/dev/zero", zero)  # read to its end, it would fill the memory
    with pytest.raises(ValueError, match=r"zero.json' is not a regular file but a character "
                                         r"device; allowed: a COCO-format JSON file\.$"):
        read_coco(str(zero), str(coco_dir / "images"))


def test_links_inside_the_folder_are_the_users(coco_dir):
    # Decided on the names, not by following links: a link inside images_dir may lead anywhere.
    os.symlink(coco_dir / "secret.png", coco_dir / "images" / "linked.png")
    doc = _changed(_set("images", 0, "file_name", "sub/../linked.png"))
    path = coco_dir / "ok.json"
    path.write_text(json.dumps(doc))
    _, records, _ = read_coco(str(path), str(coco_dir / "images"))
    assert records[0][0] == os.path.join(str(coco_dir / "images"), "sub/../linked.png")


def test_training_refuses_a_nan_box(coco_dir):
    # A set whose every width was NaN trained to rc 0 and gave a higher mAP than the clean set.
    from keras_csp.data import coco_detection

    doc = copy.deepcopy(GOOD)
    for annotation in doc["annotations"]:
        annotation["bbox"][2] = float("nan")
    path = coco_dir / "nan.json"
    path.write_text(json.dumps(doc))
    message = r"annotation 10 \(annotations\[0\]\) has bbox=\[1, 2, NaN"
    with pytest.raises(ValueError, match=message):
        coco_detection(str(path), str(coco_dir / "images"), image_size=32)
