"""Decompression bombs and special files among the images (issue 24, items 3 and 15).

Every reader (folders for training, COCO sets for training and `evaluate`, `keras-csp predict`,
calibration folders, the runtime's folder accuracy) skips and counts them with the reason, never
decoding the bomb (TensorFlow's decoder would allocate 1.2 GB for it) and never opening the
device or the FIFO (reading `/dev/zero` never ends; opening a FIFO waits for a writer).
"""

import json
import os
import resource
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from keras_csp import images as image_files
from keras_csp import lite

BOMB = "DecompressionBombError: Image size (400000000 pixels) exceeds limit of 178956970 pixels"
ZERO = "not a regular file but a character device"
FIFO = "not a regular file but a FIFO"


def write_bomb(path, side=20000):
    """A side x side PNG of 1-bit zeros: 49 KB on disk, 1.2 GB as TensorFlow's RGB tensor."""

    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"\0" * ((1 + (side + 7) // 8) * 1000)  # each row: filter byte 0, then the pixels
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(rows) for _ in range(side // 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels)
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return write_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


def _good(path, value=120, size=(32, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


def _plant(folder, bomb, fifo=True):
    """The bomb, a link to /dev/zero and (if `fifo`) a FIFO, named as images, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(bomb, folder / "bomb.png")
    os.symlink("/dev/zero", folder / "zero.jpg")
    if fifo:
        os.mkfifo(folder / "pipe.png")
    return {"bomb.png": BOMB, "zero.jpg": ZERO, **({"pipe.png": FIFO} if fifo else {})}


def _reasons(skipped):
    return {os.path.basename(path): reason for path, reason in skipped}


def _matches(reasons, expected):
    assert sorted(reasons) == sorted(expected)
    for name, why in expected.items():
        assert reasons[name].startswith(why), (name, reasons[name])


def test_headers_are_read_without_decoding(bomb, tmp_path):
    planted = _plant(tmp_path, bomb)
    for name, why in planted.items():
        with pytest.raises(lite.UnreadableImageError, match=f"{name}' is not an image file that "
                                                            "can be decoded") as error:
            image_files.image_header(tmp_path / name)
        assert error.value.reason.startswith(why)
        assert not image_files.safe_to_decode(str(tmp_path / name).encode())
        with pytest.raises(lite.UnreadableImageError):
            lite.load_image(tmp_path / name)
    assert image_files.image_header(_good(tmp_path / "ok.png", size=(30, 40))) == (40, 30)
    assert image_files.safe_to_decode(str(tmp_path / "ok.png"))


def test_predict_skips_and_counts_them_with_the_reason(artifacts, bomb, tmp_path, capsys):
    from keras_csp.lite import cli

    folder = tmp_path / "images"
    _good(folder / "a.png")
    planted = _plant(folder, bomb)
    assert cli.main(["predict", str(artifacts["float"]), str(folder), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [os.path.basename(r["image"]) for r in results if "top" in r] == ["a.png"]
    _matches({os.path.basename(r["image"]): r["skipped"] for r in results if "skipped" in r},
             planted)
    # An IMAGE argument that is a device is skipped the same way, and the line says why.
    assert cli.main(["predict", str(artifacts["float"]), str(folder / "a.png"),
                     str(folder / "zero.jpg")]) == 0
    assert f"1 unreadable image(s) skipped: {folder / 'zero.jpg'} ({ZERO})" in (
        capsys.readouterr().err
    )


def test_calibration_and_folder_accuracy_skip_them(artifacts, bomb, tmp_path):
    from keras_csp.export import data

    folder = tmp_path / "calibration"
    _good(folder / "a.png")
    planted = _plant(folder, bomb)
    skipped = []
    samples = data.samples(folder, (32, 32), "representative_data", 8, skipped=skipped)
    assert len(samples) == 1
    _matches(_reasons(skipped), planted)

    classes = tmp_path / "classes"
    for name in ("ant", "bee", "cat"):
        _good(classes / name / "0.png")
    planted = _plant(classes / "bee", bomb)
    result = lite.evaluate(artifacts["float"], classes)
    assert result["count"] == 3 and result["skipped"] == 3
    assert sorted(os.path.basename(p) for p in result["skipped_files"]) == sorted(planted)


def _peak_growth_mb(run):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = run()
    return out, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


@pytest.mark.parametrize("verify", [False, True])
def test_training_folders_skip_them_without_decoding(bomb, tmp_path, verify):
    from keras_csp.data import image_folder

    root = tmp_path / "folder"
    for name in ("a", "b"):
        for i in range(2):
            _good(root / name / f"{i}.png", value=60 * i)
    planted = _plant(root / "a", bomb)
    data = image_folder(str(root), image_size=16, validation_split=0.0, verify=verify)

    def images():
        return sum(len(x) for x, _ in data.train.as_dataset(8, shuffle=False))

    count, growth = _peak_growth_mb(images)
    assert count == 4 and data.skipped.count == 3
    _matches(_reasons(data.skipped.reasons()), planted)
    assert "3 unreadable image(s) skipped: " in data.skipped.report() and BOMB in (
        data.skipped.report()
    )
    assert growth < 600  # decoding the bomb takes 1.2 GB (a lower bound: ru_maxrss is a peak)


def test_coco_training_and_evaluate_skip_a_bomb(bomb, tmp_path):
    from keras_csp import coco_eval
    from keras_csp.data import coco_detection

    folder = tmp_path / "images"
    _good(folder / "a.png", size=(30, 40))
    os.symlink(bomb, folder / "bomb.png")
    os.symlink("/dev/zero", folder / "zero.png")
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30},
                   {"id": 2, "file_name": "bomb.png", "width": 20000, "height": 20000},
                   {"id": 3, "file_name": "zero.png", "width": 40, "height": 30}],
        "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 9, 9]}
                        for i in (1, 2, 3)],
        "categories": [{"id": 1, "name": "thing"}],
    }
    annotations = tmp_path / "set.json"
    annotations.write_text(json.dumps(doc))
    data = coco_detection(str(annotations), str(folder), image_size=32)

    def images():
        return sum(len(b["images"]) for b in data.train.as_dataset(4, shuffle=False))

    count, growth = _peak_growth_mb(images)
    assert count == 1 and growth < 600
    _matches(_reasons(data.skipped.reasons()), {"bomb.png": BOMB, "zero.png": ZERO})

    def detector(batch):  # one box per image, in the one class
        n = len(batch)
        return {"boxes": np.tile([[[1.0, 1.0, 10.0, 10.0]]], (n, 1, 1)),
                "scores": np.full((n, 1, 1), 0.9)}

    result = coco_eval.evaluate_detector(detector, str(annotations), str(folder), input_size=32)
    assert result["count"] == 1 and result["skipped"] == 2
    assert sorted(os.path.basename(p) for p in result["skipped_files"]) == ["bomb.png", "zero.png"]


def test_yolo_sets_skip_a_bomb(bomb, tmp_path):
    from keras_csp.lite.yolo import read_yolo

    _good(tmp_path / "images" / "val" / "a.png", size=(30, 40))
    os.symlink(bomb, tmp_path / "images" / "val" / "bomb.png")
    os.mkfifo(tmp_path / "images" / "val" / "pipe.png")
    (tmp_path / "labels" / "val").mkdir(parents=True)
    for name in ("a", "bomb", "pipe"):
        (tmp_path / "labels" / "val" / f"{name}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "data.yaml").write_text("val: images/val\nnames: [thing]\n")
    _, records = read_yolo(str(tmp_path / "data.yaml"), "val")
    # The unreadable ones are kept for the loaders to skip and count (without boxes: their
    # sizes are unknown).
    assert [(os.path.basename(r[0]), len(r[1])) for r in records] == [
        ("a.png", 1), ("bomb.png", 0), ("pipe.png", 0)]
