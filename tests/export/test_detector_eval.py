"""Detectors exported to TFLite keep their COCO mAP: `keras-csp evaluate det.tflite --data val.json`,
int8 calibration and QAT on a small trained detector, and the TF-free metric against keras-cv's.
"""

import json

import keras
import numpy as np
import pytest
from PIL import Image

import keras_csp
from keras_csp import coco_eval
from keras_csp.cli import main
from keras_csp.detection import CSPDetector
from keras_csp.export import evaluate_keras_detector
from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig
from keras_csp.train.tasks import coco_map

SIZE, CLASSES = 64, 2


def _rectangles(count, seed):
    """Grey images with 1-3 bright rectangles, class = the colour channel (xyxy boxes)."""
    rng = np.random.default_rng(seed)
    images = np.full((count, SIZE, SIZE, 3), 40, np.uint8)
    boxes, classes = -np.ones((count, 3, 4), "float32"), -np.ones((count, 3), "float32")
    for i in range(count):
        for j in range(rng.integers(1, 4)):
            c = rng.integers(CLASSES)
            x, y = rng.integers(0, SIZE - 24, size=2)
            w, h = rng.integers(10, 24, size=2)
            images[i, y : y + h, x : x + w, c] = 220
            boxes[i, j], classes[i, j] = (x, y, x + w, y + h), c
    return images, {"boxes": boxes, "classes": classes}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small detector fitted on 32 images, and the images as a COCO set (PNG, category ids 1, 2)."""
    keras.utils.set_random_seed(0)
    backbone = ModelConfig(
        stem=StemConfig(filters=16, kernel_size=3, strides=2),
        stages=StagesConfig(filters=(16, 32, 48, 64), depth=(1, 1, 1, 1), strides=2),
        default_size=SIZE,
    )
    # predict() keeps the boxes that training's validation and coco_eval score: all above COCO's
    # 0.001 (the deployment default, 0.2, would score fewer).
    model = CSPDetector(backbone=backbone, num_classes=CLASSES, input_shape=(SIZE, SIZE, 3),
                        neck_filters=24, head_filters=24,
                        confidence_threshold=coco_eval.COCO_SCORE_THRESHOLD)
    images, labels = _rectangles(32, 0)
    inputs = keras_csp.preprocess_input(images.astype("float32"))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(inputs, labels, batch_size=16, epochs=30, verbose=0)

    root = tmp_path_factory.mktemp("coco")
    (root / "val").mkdir()
    doc = {"images": [], "annotations": [],
           "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}]}
    for i, image in enumerate(images):
        Image.fromarray(image).save(root / "val" / f"{i:03d}.png")
        doc["images"].append({"id": i + 1, "file_name": f"{i:03d}.png", "width": SIZE,
                              "height": SIZE})
        for (x1, y1, x2, y2), c in zip(labels["boxes"][i], labels["classes"][i]):
            if c >= 0:
                doc["annotations"].append({
                    "id": len(doc["annotations"]) + 1, "image_id": i + 1,
                    "category_id": int(c) + 1, "bbox": [float(x1), float(y1), float(x2 - x1),
                                                        float(y2 - y1)], "iscrowd": 0,
                })
    (root / "val.json").write_text(json.dumps(doc))
    keras_map = coco_map([(labels, model.predict(inputs, verbose=0))], "xyxy")
    yield model, inputs, labels, root, keras_map
    keras.backend.clear_session()


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    yield  # the module fixture's model lives across tests


def test_the_tf_free_metric_is_keras_cvs_box_coco_metrics(trained):
    model, inputs, labels, _, keras_map = trained
    assert keras_map["val_mAP50"] > 0.2, keras_map  # the detector did learn something
    predicted = model.predict(inputs, verbose=0)  # keras-cv's NMS
    truth, found = [], []
    for i in range(len(inputs)):
        keep = labels["classes"][i] >= 0
        truth.append((labels["boxes"][i][keep], labels["classes"][i][keep]))
        n = int(predicted["num_detections"][i])
        found.append([
            (*map(float, predicted["boxes"][i][k]), float(predicted["confidence"][i][k]),
             int(predicted["classes"][i][k]))
            for k in range(n)
        ])
    ours = coco_eval.coco_metrics(truth, found)
    assert ours["mAP"] == pytest.approx(keras_map["val_mAP"], abs=1e-6)
    assert ours["mAP50"] == pytest.approx(keras_map["val_mAP50"], abs=1e-6)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The detector as full-integer int8 (calibrated on the images) and after QAT fine-tuning."""
    model, _, _, root, _ = trained
    folder = tmp_path_factory.mktemp("tflite")
    options = {
        "int8": {"representative_data": str(root / "val")},
        "qat": {"train_data": str(root / "val"), "steps": 2, "batch_size": 8,
                "learning_rate": 1e-5},
    }
    for quantize, kwargs in options.items():
        keras_csp.export.tflite(model, folder / f"det_{quantize}.tflite", quantize=quantize,
                                verbose=False, **kwargs)
    return folder


def test_int8_and_qat_detectors_keep_their_map(trained, exported, capsys):
    """fp16 is checked by the detection demo's test (tests/train/test_demo_detection.py)."""
    model, _, _, root, keras_map = trained
    annotations, images_dir = str(root / "val.json"), str(root / "val")
    # The Keras side, measured as the .tflite files are (letterbox, NumPy NMS, the same metric):
    # equal to training's validation mAP up to keras-cv's and NumPy's suppression.
    ours = evaluate_keras_detector(model, annotations, images_dir)
    assert ours["count"] == 32 and ours["classes"] == CLASSES
    assert ours["mAP50"] == pytest.approx(keras_map["val_mAP50"], abs=0.02)
    results = {}
    # QAT (2 steps on this barely trained detector) lost up to 0.20 mAP50 with oneDNN's kernels in
    # a full-suite run (within 0.1 without oneDNN): the QAT path works, its accuracy on tiny
    # detectors is an open question (issue notes), so its bound is loose.
    for quantize, tolerance in {"int8": 0.05, "qat": 0.25}.items():
        path = str(exported / f"det_{quantize}.tflite")
        assert main(["evaluate", path, "--data", annotations, "--images-dir", images_dir,
                     "--json"]) == 0
        results[quantize] = json.loads(capsys.readouterr().out)
        assert results[quantize]["count"] == 32
        assert abs(results[quantize]["mAP50"] - ours["mAP50"]) <= tolerance, (quantize, results)
    # The plain-text line.
    assert main(["evaluate", str(exported / "det_int8.tflite"), "--data", annotations,
                 "--images-dir", images_dir]) == 0
    assert "COCO mAP" in capsys.readouterr().out


def test_evaluate_refuses_data_of_the_other_kind(trained, exported, tmp_path, capsys):
    _, _, _, root, _ = trained
    path = str(exported / "det_int8.tflite")
    assert main(["evaluate", path, "--data", str(root / "val")]) == 2
    assert "is a detector" in capsys.readouterr().err
    assert main(["evaluate", path, "--data", str(root / "val.json"),
                 "--images-dir", str(tmp_path)]) == 2
    assert "none of its 32 image files" in capsys.readouterr().err
