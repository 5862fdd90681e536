"""What a benchmark measures on and calibrates with: each detection format, and a class folder."""

import numpy as np
import pytest
from PIL import Image

from keras_csp import coco_eval
from keras_csp.bench.data import classification_data, detection_data


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """One small synthetic set written as YOLO and as VOC."""
    from keras_csp.data import export_voc, export_yolo

    root = tmp_path_factory.mktemp("bench-data")
    # Two classes, so that the 6 training images (whose names are VOC's classes) hold both.
    options = dict(num_train=6, num_validation=3, image_size=64, difficulty="easy",
                   classes=("circle", "square"))
    return {
        "yolo": export_yolo(root / "yolo", **options),
        "voc": export_voc(root / "voc", **options),
        "root": root,
    }


@pytest.mark.parametrize("data_format", ["yolo", "voc"])
def test_detection_sets_measure_val_and_calibrate_on_train(shapes, data_format):
    root = shapes["root"] / data_format
    data = root / "data.yaml" if data_format == "yolo" else root
    bench = detection_data(data)
    val = coco_eval.read_detection_set(data, split="val")
    train = coco_eval.read_detection_set(data, split="train")
    assert len(bench.detection_set.records) == len(val.records) == 3
    assert bench.calibration_paths == [record[0] for record in train.records]
    assert len(bench.calibration_paths) == 6
    note = f"int8 calibrated on the {data_format.upper()} set's train split"
    assert bench.calibration_note == note
    images = bench.calibration((32, 32), count=4)  # letterboxed as the measured images
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8


def test_a_class_folder_is_split_as_training_splits_it(tmp_path):
    from keras_csp.data import image_folder

    for name in ("a", "b"):
        for i in range(5):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / f"{name}{i}.png")
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / f"{name}{i}.png").rename(tmp_path / name / f"{i}.png")
    bench = classification_data(tmp_path, validation_split=0.4, seed=3)
    files, labels, classes = bench.files
    training = image_folder(tmp_path, image_size=8, validation_split=0.4, seed=3)
    assert classes == training.class_names == ["a", "b"]
    assert len(files) == training.validation.size == 4 and list(labels) == [0, 0, 1, 1]
    assert len(bench.calibration_paths) == training.train.size == 6
    assert not set(map(str, files)) & set(map(str, bench.calibration_paths))
    whole = classification_data(tmp_path, validation_split=0)
    assert len(whole.files[0]) == 10 and "whole folder" in whole.notes[0]
    with pytest.raises(ValueError, match=r"calibration_data='.*nothing' is neither a folder"):
        classification_data(tmp_path, calibration_data=tmp_path / "nothing")
