"""`keras_csp.benchmark` / `keras-csp benchmark` on a tiny classifier and a tiny detector.

The validation sets are labeled by the Keras model itself (each image filed under the class it
predicts; a detector's own confident boxes as the ground truth), so the Keras row scores 1.0 and
each format's number says how much of the Keras model's answers it keeps.
"""

import json

import keras
import numpy as np
import pytest
from PIL import Image

import keras_csp
from keras_csp import benchmark
from keras_csp.cli import main
from keras_csp.export.serving import build_serving
from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig

SIZE = 32
CLASSIFIER = ModelConfig(
    stem=StemConfig(filters=16, kernel_size=3, strides=2),
    stages=StagesConfig(filters=(32, 64), depth=(1, 1), strides=2, bottle_ratio=0.5),
    default_size=SIZE,
)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return path


def _randomize_batchnorm(model, rng):
    """BN statistics that make an untrained model's answers differ from image to image."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _randomize_batchnorm(layer, rng)
        elif isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
    return model


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A .keras classifier and a class folder of images filed under its own predictions."""
    keras.utils.set_random_seed(1)
    root = tmp_path_factory.mktemp("bench-classifier")
    rng = np.random.default_rng(1)
    model = _randomize_batchnorm(
        keras_csp.build_model(CLASSIFIER, input_shape=(SIZE, SIZE, 3), classes=3), rng
    )
    images = rng.integers(0, 256, (48, SIZE, SIZE, 3)).astype("uint8")
    # Noise images look alike to an untrained model; centering the head's bias on them spreads
    # its answers over the classes.
    head = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][-1]
    log_p = np.log(np.asarray(build_serving(model).deploy(images.astype("float32"))))
    kernel, bias = head.get_weights()
    head.set_weights([kernel, bias - log_p.mean(axis=0)])
    predicted = np.argmax(np.asarray(build_serving(model).deploy(images.astype("float32"))), -1)
    counts = np.bincount(predicted, minlength=3)
    assert counts.min() >= 4, counts  # every class has images to split
    for i, (image, label) in enumerate(zip(images, predicted)):
        _png(root / "folder" / f"class_{label}" / f"{i}.png", image)
    model.save(root / "tiny.keras")
    return root / "tiny.keras", root / "folder"


def test_a_classifier_in_every_format(classifier, tmp_path, capsys):
    path, folder = classifier
    out = tmp_path / "out"
    out.mkdir()
    (out / "tiny_fp16.tflite").mkdir()  # in the way of the fp16 file: that format fails alone
    result = benchmark(path, folder, output_dir=out, runs=3, warmup=1, threads=1,
                       validation_split=0.5)
    err = capsys.readouterr().err
    assert err.count("benchmark [") == 2 * 5 + 1  # the progress bar: two steps a format + timing
    assert [r["format"] for r in result.rows] == [
        "keras", "savedmodel", "tflite_fp32", "tflite_fp16", "tflite_int8"
    ]
    keras_row, saved, fp32, fp16, int8 = result.rows
    assert keras_row["top1"] == 1.0 and 21 <= keras_row["count"] <= 27  # half of each class
    # SavedModel and fp32 compute what Keras computes: the same answers.
    for row in (saved, fp32):
        assert row["top1"] == 1.0 and row["difference"] == 0.0 and not row["error"]
    assert fp16["error"].startswith("export: ValueError: path=") and "is a folder" in fp16["error"]
    assert "FAILED: export: ValueError" in result.table
    # int8 on near-ties (noise images, a centered head): it follows the model, not to the letter.
    assert 0.4 <= int8["top1"] <= 1.0 and int8["difference"] == int8["top1"] - 1.0
    assert 0 < int8["size_bytes"] < fp32["size_bytes"] < saved["size_bytes"]
    assert all(r["size_bytes"] > 0 for r in (keras_row, saved, fp32, int8))
    for row in (keras_row, saved, fp32, int8):
        assert row["latency"]["runs"] == 3 and row["latency"]["ms"] > 0
    assert fp32["gpu"].startswith("whole graph") and fp32["gpu_agreement"].startswith("agrees")
    assert keras_row["gpu"].startswith("n/a")
    document = json.loads((out / "benchmark.json").read_text())
    assert document["rows"][2]["top1"] == 1.0 and document["threads"] == 1
    trained = 48 - keras_row["count"]  # the other half calibrates int8
    assert f"int8 calibrated on the training split ({trained} images)" in document["notes"]
    assert (out / "benchmark.md").read_text().startswith("| format | size | top-1 | top-5 |")
    assert Image.open(out / "benchmark.png").format == "PNG"

    # An earlier benchmark is kept unless --overwrite; bad options are refused before writing.
    with pytest.raises(ValueError, match=r"holds an earlier benchmark .*overwrite=True"):
        benchmark(path, folder, output_dir=out, formats="tflite_fp32")
    for options, message in (
        (dict(formats="onnx"), r"formats='onnx' names no format or an unknown one \(onnx\)"),
        (dict(runs=0), r"runs=0 is not allowed; allowed: an integer >= 1"),
        (dict(images_dir="x"), r"images_dir='x' applies to detection sets"),
    ):
        with pytest.raises(ValueError, match=message):
            benchmark(path, folder, output_dir=tmp_path / "new", **options)
    assert not (tmp_path / "new").exists()


def _tiny_detector():
    from keras_csp.detection import CSPDetector

    backbone = ModelConfig(
        stem=StemConfig(filters=8, kernel_size=3, strides=2),
        stages=StagesConfig(filters=(8, 16, 24, 32), depth=(1, 1, 1, 1), strides=2),
        default_size=64,
    )
    return CSPDetector(backbone=backbone, num_classes=2, input_shape=(64, 64, 3),
                       neck_filters=8, head_filters=8)


def _self_labeled_coco(model, folder, count=6):
    """A COCO set whose boxes are the Keras model's own most confident detections."""
    from keras_csp import lite

    rng = np.random.default_rng(2)
    serving = build_serving(model, nms=False)
    images, annotations = [], []
    for i in range(count):
        pixels = rng.integers(0, 256, (1, 64, 64, 3)).astype("float32")
        outputs = serving.named_outputs(serving.deploy(pixels), pixels)
        found = lite.detections({k: np.asarray(v) for k, v in outputs.items()}, 0, 0.0, 0.5, 3)
        _png(folder / "val" / f"{i}.png", pixels[0])
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 64, "height": 64})
        for x1, y1, x2, y2, _, c in found:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": int(c) + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    (folder / "val.json").write_text(json.dumps(coco))
    return folder / "val.json", folder / "val"


def test_a_detector_through_the_command(tmp_path, capsys):
    keras.utils.set_random_seed(2)
    model = _tiny_detector()
    model.save(tmp_path / "det.keras")
    annotations, images_dir = _self_labeled_coco(model, tmp_path / "coco")
    out = tmp_path / "out"
    assert main(["benchmark", str(tmp_path / "det.keras"), "--data", str(annotations),
                 "--images-dir", str(images_dir), "--formats", "savedmodel,tflite_fp32,tflite_int8",
                 "--runs", "2", "--warmup", "1", "--output", str(out),
                 "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| format | size | mAP | mAP50 | mAP - Keras | mAP50 - Keras |")
    rows = {r["format"]: r for r in json.loads((tmp_path / "r.json").read_text())["rows"]}
    assert list(rows) == ["keras", "savedmodel", "tflite_fp32", "tflite_int8"]  # Keras always
    assert rows["keras"]["mAP50"] > 0.9  # its own boxes
    # The SavedModel's before_nms signature and the fp32 file keep the Keras model's boxes.
    for name in ("savedmodel", "tflite_fp32"):
        assert abs(rows[name]["difference"]) <= 0.02 and rows[name]["count"] == 6
        assert rows[name]["differences"]["mAP"] == rows[name]["mAP"] - rows["keras"]["mAP"]
    assert rows["tflite_int8"]["size_bytes"] < rows["tflite_fp32"]["size_bytes"]
    assert rows["tflite_fp32"]["gpu"].startswith("whole graph")
    assert Image.open(tmp_path / "r.png").format == "PNG"
    assert main(["benchmark", str(tmp_path / "det.keras"), "--data", str(annotations),
                 "--formats", "tflite_fp64", "--output", str(tmp_path / "x")]) == 2
    assert "formats='tflite_fp64' names no format" in capsys.readouterr().err
