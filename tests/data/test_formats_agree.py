"""One synthetic detection set written as COCO, YOLO and VOC reads back as the same boxes and
classes, loads as the same batches, scores the same mAP, and trains from the YOLO files."""

import json

import keras
import numpy as np
import pytest

from keras_csp import coco_eval
from keras_csp.cli import main
from keras_csp.data import (
    coco_detection,
    synthetic_shapes,
    voc_detection,
    write_coco,
    write_voc,
    write_yolo,
    yolo_detection,
)

SIZE = 64


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """{"data": the ImageData, "coco": {"data", "images_dir"}, "yolo": yaml, "voc": root}."""
    root = tmp_path_factory.mktemp("formats")
    data = synthetic_shapes("detection", num_train=8, num_validation=6, image_size=SIZE, seed=3,
                            difficulty="hard", max_boxes=16)
    write_coco(data, root / "coco")
    written = write_yolo(data, root / "yolo")
    write_voc(data, root / "voc")
    return {
        "data": data,
        "coco": {"data": str(root / "coco" / "val.json"), "images_dir": str(root / "coco" / "val")},
        "yolo": written["val"]["data"],
        "voc": str(root / "voc"),
    }


def _read_all(sets, split="val"):
    coco = coco_eval.read_detection_set(sets["coco"]["data"], sets["coco"]["images_dir"])
    return {
        "coco": coco,
        "yolo": coco_eval.read_detection_set(sets["yolo"], split=split),
        "voc": coco_eval.read_detection_set(sets["voc"], split=split),
    }


def _named(detection_set):
    """Per image: (boxes, class names) of the set, in its image order."""
    names = detection_set.categories
    return [(np.asarray(b, np.float64).reshape(-1, 4), [names[c] for c in ids])
            for _, b, ids, _ in detection_set.records]


def test_the_three_readers_give_the_same_boxes_and_classes(sets):
    read = _read_all(sets)
    assert read["yolo"].data_format == "yolo" and read["voc"].data_format == "voc"
    coco = _named(read["coco"])
    assert len(coco) == 6 and sum(len(c) for _, c in coco) > 20
    for name in ("yolo", "voc"):
        other = _named(read[name])
        assert len(other) == len(coco)
        for (boxes, classes), (b2, c2) in zip(coco, other):
            assert c2 == classes, name
            np.testing.assert_allclose(b2, boxes, atol=0.01, err_msg=name)  # within rounding
    # COCO and YOLO keep the data's class order; VOC's is the sorted names of its training set.
    assert list(read["yolo"].categories.values()) == sets["data"].class_names
    assert list(read["voc"].categories.values()) == sorted(sets["data"].class_names)


def test_the_three_loaders_give_the_same_batches(sets):
    coco = coco_detection(sets["coco"]["data"].replace("val", "train"),
                          sets["coco"]["images_dir"].replace("val", "train"),
                          image_size=SIZE, max_boxes=16,
                          validation_annotations=sets["coco"]["data"],
                          validation_images_dir=sets["coco"]["images_dir"])
    yolo = yolo_detection(sets["yolo"], image_size=SIZE, max_boxes=16)
    voc = voc_detection(sets["voc"], image_size=SIZE, max_boxes=16,
                        classes=sets["data"].class_names)
    for data in (coco, yolo, voc):
        assert data.class_names == sets["data"].class_names
        assert (data.train.size, data.validation.size) == (8, 6)
    batches = [next(iter(d.validation.as_dataset(6, shuffle=False))) for d in (coco, yolo, voc)]
    for other in batches[1:]:
        np.testing.assert_array_equal(other["images"], batches[0]["images"])  # the same JPEGs
        np.testing.assert_allclose(other["bounding_boxes"]["boxes"],
                                   batches[0]["bounding_boxes"]["boxes"], atol=0.01)
        np.testing.assert_array_equal(other["bounding_boxes"]["classes"],
                                      batches[0]["bounding_boxes"]["classes"])


def _predictor(coco_set, categories, seed=0):
    """A "detector" that returns the COCO ground truth of each image, moved, rescored, some
    boxes lost and some false ones added, in the class order of `categories` (pre-NMS outputs:
    boxes (n, A, 4), scores (n, A, classes)). Images are recognized by their pixels."""
    rng = np.random.default_rng(seed)
    index = {categories[c]: k for k, c in enumerate(sorted(categories))}  # name -> class
    from keras_csp import lite

    table = {}
    for path, boxes, ids, _ in coco_set.records:
        rows, scores = [], []
        for box, c in zip(boxes, ids):
            if rng.random() < 0.2:
                continue  # missed
            rows.append(np.asarray(box) + rng.normal(0, 1.5, 4))
            scores.append((index[coco_set.categories[c]], rng.uniform(0.3, 1.0)))
        for _ in range(2):  # false positives
            x, y = rng.uniform(0, SIZE - 12, 2)
            rows.append([x, y, x + 10, y + 10])
            name = coco_set.categories[sorted(coco_set.categories)[rng.integers(len(index))]]
            scores.append((index[name], rng.uniform(0.0, 0.6)))
        score_rows = np.zeros((len(rows), len(index)), np.float32)
        for k, (c, s) in enumerate(scores):
            score_rows[k, c] = s
        table[lite.load_image(path).tobytes()] = (np.asarray(rows, np.float32), score_rows)

    def predict(images):
        found = [table[image.tobytes()] for image in images]
        width = max(len(b) for b, _ in found)
        boxes = np.zeros((len(images), width, 4), np.float32)
        scores = np.zeros((len(images), width, len(index)), np.float32)
        for i, (b, s) in enumerate(found):
            boxes[i, : len(b)], scores[i, : len(s)] = b, s
        return {"boxes": boxes, "scores": scores}

    return predict


def test_the_same_predictions_score_the_same_map_in_every_format(sets):
    read = _read_all(sets)
    results = {
        name: coco_eval.evaluate_detector(
            _predictor(read["coco"], s.categories), s, input_size=(SIZE, SIZE)
        )
        for name, s in read.items()
    }
    coco = results["coco"]
    assert 0.2 < coco["mAP"] < coco["mAP50"] < 1.0, coco  # the perturbations cost something
    for name in ("yolo", "voc"):
        for key in ("mAP", "mAP50", "count", "boxes", "classes"):
            assert results[name][key] == pytest.approx(coco[key], abs=1e-9), (name, key)


def test_data_commands_write_yolo_and_voc(tmp_path, capsys):
    common = ["--difficulty", "easy", "--num-train", "3", "--num-validation", "1",
              "--image-size", "32"]
    assert main(["data", "export-yolo", str(tmp_path / "y"), *common]) == 0
    out = capsys.readouterr().out
    assert "train: 3 images" in out and "data.yaml" in out
    assert sorted(p.name for p in (tmp_path / "y").iterdir()) == ["data.yaml", "images", "labels"]
    assert len(list((tmp_path / "y" / "labels" / "train").iterdir())) == 3
    assert main(["data", "export-voc", str(tmp_path / "v"), *common]) == 0
    assert "val: 1 images" in capsys.readouterr().out
    sets = (tmp_path / "v" / "ImageSets" / "Main")
    assert sets.joinpath("trainval.txt").read_text().split() == [
        "train_000000", "train_000001", "train_000002", "val_000000"]
    assert len(list((tmp_path / "v" / "Annotations").iterdir())) == 4
    assert main(["data", "export-voc", str(tmp_path / "v"), *common]) == 2
    assert "not empty" in capsys.readouterr().err


def _grid_detector(classes):
    """A detector-shaped Keras model: fixed 16x16 boxes on an 8x8 grid, scores from one conv
    (untrained: its mAP is small but not zero, and the same for the same images)."""
    images = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255)(images)
    features = keras.layers.Conv2D(classes, 8, strides=8, activation="sigmoid")(x)
    scores = keras.layers.Reshape((64, classes), name="scores")(features)
    centres = (np.arange(8) + 0.5) * 8
    cx, cy = np.meshgrid(centres, centres)
    anchors = np.stack([cx - 8, cy - 8, cx + 8, cy + 8], -1).reshape(-1).astype("float32")
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    constant = keras.layers.Dense(256, kernel_initializer="zeros",
                                  bias_initializer=keras.initializers.Constant(anchors))(pooled)
    boxes = keras.layers.Reshape((64, 4), name="boxes")(constant)
    return keras.Model(images, {"boxes": boxes, "scores": scores})


def test_evaluate_command_scores_a_tflite_detector_alike_on_the_three_formats(sets, tmp_path,
                                                                             capsys):
    from keras_csp import export

    keras.utils.set_random_seed(1)
    path = tmp_path / "grid.tflite"
    export.tflite(_grid_detector(len(sets["data"].class_names)), path, verbose=False)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(sets["data"].class_names) + "\n")
    runs = {
        "coco": ["--data", sets["coco"]["data"], "--images-dir", sets["coco"]["images_dir"]],
        "yolo": ["--data", sets["yolo"]],
        "voc": ["--data", sets["voc"], "--labels", str(labels)],
    }
    results = {}
    for name, args in runs.items():
        assert main(["evaluate", str(path), *args, "--json"]) == 0, capsys.readouterr().err
        results[name] = json.loads(capsys.readouterr().out)
    assert results["coco"]["mAP50"] > 0 and results["coco"]["count"] == 6
    for name in ("yolo", "voc"):
        for key in ("mAP", "mAP50", "count", "boxes"):
            assert results[name][key] == pytest.approx(results["coco"][key], abs=1e-9), name
    # The training split by --split; the plain-text line.
    assert main(["evaluate", str(path), "--data", sets["yolo"], "--split", "train"]) == 0
    assert "on 8 images" in capsys.readouterr().out
    # Options of another format are refused, before the model is read.
    for bad, message in (
        (["--data", sets["yolo"], "--images-dir", "x"], "--images-dir='x' is for COCO files"),
        (["--data", sets["coco"]["data"], "--split", "train"], "a COCO file is one split"),
        (["--data", sets["yolo"], "--labels", str(labels)], "orders a VOC set's classes"),
        (["--data", sets["voc"], "--split", "test"], "test.txt: no such image set"),
    ):
        assert main(["evaluate", str(tmp_path / "none.tflite"), *bad]) == 2
        assert message in capsys.readouterr().err


def test_training_reads_yolo_and_voc_files(sets, tmp_path):
    from keras_csp.train import fit_detector
    from keras_csp.train.config import build_config
    from keras_csp.train.inputs import load_data

    cfg = build_config({"task": "detection", "data": "voc", "data_path": sets["voc"],
                        "input_size": SIZE})
    voc = load_data(cfg, "detection")
    assert voc.class_names == sorted(sets["data"].class_names) and voc.validation.size == 6
    with pytest.raises(ValueError, match="data='yolo' needs data_path"):
        build_config({"task": "detection", "data": "yolo"})
    with pytest.raises(ValueError, match="data='voc' is detection data"):
        build_config({"data": "voc", "data_path": sets["voc"]})
    with pytest.raises(ValueError, match="finds its images and validation split in data_path"):
        build_config({"task": "detection", "data": "yolo", "data_path": sets["yolo"],
                      "images_dir": "x"})
    from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig

    backbone = ModelConfig(
        stem=StemConfig(filters=8, kernel_size=3, strides=2),
        stages=StagesConfig(filters=(16, 16, 32, 32), depth=(1, 1, 1, 1), strides=2,
                            block_type="dark", bottle_ratio=1.0, down_growth=True),
        default_size=SIZE,
    )
    result = fit_detector(data="yolo", data_path=sets["yolo"], model=backbone,
                          neck="fpn", attention="none", epochs=1, steps_per_epoch=1,
                          batch_size=4, input_size=SIZE, output_dir=str(tmp_path / "det"),
                          verbose=0)
    summary = result.summary
    assert summary["task"] == "detection" and summary["history"][0]["loss"] > 0
    assert summary["val_mAP50"] is None or 0.0 <= summary["val_mAP50"] <= 1.0
