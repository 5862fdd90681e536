import os

import numpy as np
import pytest

from keras_csp.data import image_folder


def _tree(root, make_image, per_class=5, classes=("cats", "dogs", "owls")):
    colours = {"cats": (250, 0, 0), "dogs": (0, 250, 0), "owls": (0, 0, 250)}
    for c in classes:
        for i in range(per_class):
            ext = "png" if i % 2 else "jpg"
            size = (20 + i, 40 - i)  # any size: resized and center-cropped
            make_image(os.path.join(root, c, f"{i}.{ext}"), size, colours.get(c, (9, 9, 9)))
    return root


def _collect(split):
    xs, ys = [], []
    for x, y in split.as_dataset(4, shuffle=False):
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def test_class_per_folder_with_stratified_validation_split(tmp_path, make_image):
    root = _tree(str(tmp_path / "d"), make_image)
    # Not images: ignored.
    (tmp_path / "d" / "cats" / "notes.txt").write_text("hello")
    data = image_folder(root, image_size=16, validation_split=0.2, seed=1)
    assert data.class_names == ["cats", "dogs", "owls"]
    assert data.train.size == 12 and data.validation.size == 3
    x, y = _collect(data.train)
    assert x.shape == (12, 16, 16, 3)
    # Label k is folder k: the images' colours say which folder they came from.
    np.testing.assert_array_equal(x[:, 8, 8].argmax(1), y.argmax(1))
    xv, yv = _collect(data.validation)
    assert sorted(yv.argmax(1)) == [0, 1, 2]  # one per class
    # The split is fixed by the seed.
    again = image_folder(root, image_size=16, validation_split=0.2, seed=1)
    np.testing.assert_array_equal(_collect(again.validation)[0], xv)
    assert image_folder(root, image_size=16, validation_split=0.0).validation is None


def _corrupt_two(tmp_path, make_image):
    root = _tree(str(tmp_path / "d"), make_image, per_class=3, classes=("a", "b"))
    (tmp_path / "d" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    good = tmp_path / "d" / "b" / "0.jpg"
    (tmp_path / "d" / "b" / "truncated.jpg").write_bytes(good.read_bytes()[:40])
    return root


def test_unreadable_images_are_left_out_up_front_and_counted(tmp_path, make_image):
    root = _corrupt_two(tmp_path, make_image)
    data = image_folder(root, image_size=16, validation_split=0.2)
    # Split sizes (and so the trainer's batch-size check and the summary) count readable images.
    assert data.train.size + data.validation.size == 6
    assert data.skipped.count == 2 and "2 unreadable image(s)" in data.skipped.report()
    assert "4 train / 2 validation" in repr(data)  # unverified: 6 train / 2 validation
    assert len(_collect(data.train)[0]) == 4


def test_a_class_without_readable_images_is_named(tmp_path, make_image):
    root = _tree(str(tmp_path / "d"), make_image, per_class=2, classes=("a", "b"))
    os.makedirs(tmp_path / "d" / "c")
    for i in range(3):
        (tmp_path / "d" / "c" / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    with pytest.raises(ValueError, match=r"class folder\(s\) 'c' hold no readable image \(3 unr"):
        image_folder(root)
    for c in ("a", "b"):
        for f in os.listdir(tmp_path / "d" / c):
            (tmp_path / "d" / c / f).write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"none of its 7 image file\(s\) can be decoded"):
        image_folder(root)
    # Unverified, the folder is accepted and the files are skipped when decoded.
    assert image_folder(root, verify=False).train.size == 4  # + 3 validation
    with pytest.raises(ValueError, match="verify='yes' is not allowed"):
        image_folder(root, verify="yes")


def test_corrupt_images_are_skipped_and_counted(tmp_path, make_image):
    root = _corrupt_two(tmp_path, make_image)
    data = image_folder(root, image_size=16, validation_split=0.0, verify=False)
    assert data.train.size == 8
    for _ in range(2):  # counted once per file, however many passes
        x, y = _collect(data.train)
        assert len(x) == 6
    assert data.skipped.count == 2
    assert any(s.endswith("broken.jpg") for s in data.skipped.sources)
    assert "2 unreadable image(s)" in data.skipped.report()
    # In padded evaluation batches the unreadable images get weight 0.
    batches = list(data.train.evaluation_dataset(4, 3, normalize=False))
    weights = np.concatenate([b[2].numpy() for b in batches])
    assert weights.shape == (12,) and weights.sum() == 6


def test_no_images(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "readme.md").write_text("no images here")
    with pytest.raises(ValueError, match="holds no images; allowed"):
        image_folder(str(tmp_path))


def test_one_class(tmp_path, make_image):
    make_image(str(tmp_path / "only" / "x.png"))
    with pytest.raises(ValueError, match="at least two") as e:
        image_folder(str(tmp_path))
    assert "'only'" in str(e.value) or "only" in str(e.value)


def test_empty_class_folder(tmp_path, make_image):
    make_image(str(tmp_path / "a" / "x.png"))
    make_image(str(tmp_path / "b" / "x.png"))
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="'c' hold no images"):
        image_folder(str(tmp_path))


def test_bad_arguments(tmp_path, make_image):
    with pytest.raises(ValueError, match="is not a folder"):
        image_folder(str(tmp_path / "missing"))
    _tree(str(tmp_path / "d"), make_image, per_class=2, classes=("a", "b"))
    with pytest.raises(ValueError, match="validation_split=1.5"):
        image_folder(str(tmp_path / "d"), validation_split=1.5)
    with pytest.raises(ValueError, match="image_size=0"):
        image_folder(str(tmp_path / "d"), image_size=0)
