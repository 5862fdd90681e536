"""keras_csp.lite in the main environment (TensorFlow's interpreter as the runtime)."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import SIZE, _png
from PIL import Image

from keras_csp import lite


def test_importing_lite_and_the_cli_loads_neither_tensorflow_nor_keras(artifacts):
    code = (
        "import sys, numpy as np\n"
        "import keras_csp.lite as lite, keras_csp.lite.cli, keras_csp.export.cli\n"
        f"image = lite.load_image({str(artifacts['images'][0])!r}, size=(32, 32))\n"
        "lite.top_k(np.array([0.1, 0.7, 0.2]), 2)\n"
        "lite.verify_tflite_bytes(open(" + repr(str(artifacts["float"])) + ", 'rb').read())\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules, 'tf_keras' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"]


def test_backend_choice(monkeypatch):
    assert lite.interpreter_class("tensorflow")[0] == "tensorflow"
    with pytest.raises(ValueError, match=r"backend='coreml' does not exist; allowed: litert, "
                                         r"tflite-runtime, tensorflow"):
        lite.interpreter_class("coreml")
    monkeypatch.setenv("KERAS_CSP_LITE_BACKEND", "tensorflow")
    assert lite.interpreter_class()[0] == "tensorflow"


def test_float_and_int8_models_agree_with_keras(artifacts):
    from keras_csp.export.serving import build_serving

    images = np.stack([lite.load_image(p, (SIZE, SIZE)) for p in artifacts["images"]])
    expected = build_serving(artifacts["keras_model"]).deploy(images.astype("float32")).numpy()
    float_model = lite.LiteModel(artifacts["float"])
    assert (float_model.kind, float_model.input_size) == ("classifier", (SIZE, SIZE))
    np.testing.assert_allclose(float_model(images)["probabilities"], expected, atol=1e-5)
    int8_model = lite.LiteModel(artifacts["int8"])
    assert int8_model.input.dtype == np.uint8 and int8_model.input.quantized
    np.testing.assert_allclose(int8_model(images)["probabilities"], expected, atol=0.05)
    # One image without a batch axis works too.
    assert float_model(images[0])["probabilities"].shape == (1, 3)


def test_bad_images_for_the_model(artifacts):
    model = lite.LiteModel(artifacts["float"])
    with pytest.raises(ValueError, match=r"images are 16x16; the model takes 32x32"):
        model(np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match=r"images have 4 channels; the model takes 3"):
        model(np.zeros((1, SIZE, SIZE, 4), np.uint8))
    with pytest.raises(ValueError, match=r"images of shape \(32, 32\) and dtype uint8 are not "):
        model(np.zeros((SIZE, SIZE), np.uint8))
    with pytest.raises(ValueError, match=r"dtype <U1 are not allowed"):
        model(np.full((1, SIZE, SIZE, 3), "a"))


@pytest.mark.parametrize("mode, color", [("L", 77), ("LA", (77, 9)), ("RGBA", (77, 77, 77, 9)),
                                         ("I;16", 77 * 257)])
def test_non_rgb_files_are_converted_as_training_converts_them(tmp_path, mode, color):
    path = tmp_path / "image.png"
    Image.new(mode, (SIZE, SIZE), color).save(path)
    assert lite.load_image(path, (SIZE, SIZE))[0, 0].tolist() == [77, 77, 77]


def test_files_that_are_not_images(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=r"image='.*notes.png' is not an image file that can be "
                                         r"decoded \(UnidentifiedImageError"):
        lite.load_image(text)
    cut = tmp_path / "cut.png"
    _png(tmp_path / "whole.png", np.zeros((SIZE, SIZE, 3)))
    cut.write_bytes((tmp_path / "whole.png").read_bytes()[:60])
    with pytest.raises(ValueError, match=r"image='.*cut.png' is not an image file that can be"):
        lite.load_image(cut)
    with pytest.raises(ValueError, match=r"image='.*missing.jpg' does not exist"):
        lite.load_image(tmp_path / "missing.jpg")


def test_sizes_and_resizing(tmp_path):
    path = _png(tmp_path / "wide.png", np.random.default_rng(0).integers(0, 256, (40, 80, 3)))
    with pytest.raises(ValueError, match=r"is 80x40; the model takes 32x32: allowed: an image of "
                                         r"that size, or resize='crop' or 'stretch'"):
        lite.load_image(path, (SIZE, SIZE))
    assert lite.load_image(path, (SIZE, SIZE), resize="crop").shape == (SIZE, SIZE, 3)
    assert lite.load_image(path, (SIZE, SIZE), resize="stretch").shape == (SIZE, SIZE, 3)
    assert lite.load_image(path).shape == (40, 80, 3)
    with pytest.raises(ValueError, match=r"resize='zoom' does not exist; allowed: none, crop"):
        lite.load_image(path, (SIZE, SIZE), resize="zoom")
    palette = tmp_path / "palette.png"
    Image.new("RGB", (SIZE, SIZE), (10, 20, 30)).convert("P", palette=Image.ADAPTIVE).save(palette)
    assert lite.load_image(palette, (SIZE, SIZE))[0, 0].tolist() == [10, 20, 30]


def test_files_that_are_not_models(artifacts, tmp_path):
    text = tmp_path / "model.tflite"
    text.write_text("hello, this is not a flatbuffer at all")
    with pytest.raises(ValueError, match=r"model='.*model.tflite' is not a TFLite model \(no TFL3 "
                                         r"identifier\); allowed: a .tflite file"):
        lite.LiteModel(text)
    with pytest.raises(ValueError, match=r"model='.*nothing.tflite' does not exist"):
        lite.LiteModel(tmp_path / "nothing.tflite")


def test_every_truncation_is_caught_before_the_interpreter(artifacts, tmp_path):
    data = artifacts["float"].read_bytes()
    lite.verify_tflite_bytes(data)
    for path in ("int8", "detector"):
        lite.verify_tflite_bytes(artifacts[path].read_bytes())
    cuts = sorted({int(len(data) * f) for f in np.linspace(0.001, 0.9999, 60)} | {8, len(data) - 1})
    for cut in cuts:
        with pytest.raises(ValueError, match=r"past the end|outside"):
            lite.verify_tflite_bytes(data[:cut])
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model='.*truncated.tflite' is truncated or corrupt"):
        lite.LiteModel(truncated)


def test_evaluate_matches_the_keras_model(artifacts):
    from keras_csp.export import compare_accuracy, evaluate_keras

    got = lite.evaluate(artifacts["float"], artifacts["folder"], batch_size=4)
    expected = evaluate_keras(artifacts["keras_model"], artifacts["folder"])
    assert got == expected and got["count"] == 6 and got["classes"] == 3
    result = compare_accuracy(artifacts["keras_model"], artifacts["int8"], artifacts["folder"])
    assert set(result) == {"keras", "tflite", "top1_drop"}
    with pytest.raises(ValueError, match=r"is a detector \(outputs .*\); allowed: a classifier"):
        lite.evaluate(artifacts["detector"], artifacts["folder"])


def test_image_folder_layout(artifacts, tmp_path):
    files, labels, names = lite.image_folder(artifacts["folder"])
    assert names == ["ant", "bee", "cat"] and labels.tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match=r"data='.*' holds no images in class subfolders"):
        lite.image_folder(tmp_path)
    with pytest.raises(ValueError, match=r"data='.*nope' is not a folder"):
        lite.image_folder(tmp_path / "nope")


def test_detector_boxes_and_drawing(artifacts, tmp_path):
    model = lite.LiteModel(artifacts["detector"])
    assert model.kind == "detector" and model.input.shape[0] == 1  # fixed batch
    images = np.stack([lite.load_image(p, (SIZE, SIZE)) for p in artifacts["images"]])
    out = model(images)  # three images through a batch-1 model
    assert out["boxes"].shape == (3, 2, 4) and out["scores"].shape == (3, 2)
    boxes = lite.detections(out, 1, score_threshold=0.0)
    assert len(boxes) == 2 and boxes[0][4] >= boxes[1][4]
    drawn = lite.draw_boxes(images[1], boxes, tmp_path / "boxes.png", ["a", "b"])
    assert Image.open(drawn).size == (SIZE, SIZE) and not (tmp_path / ".boxes.png.partial").exists()


def test_non_max_suppression_of_raw_detector_outputs():
    boxes = np.array([[[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 5, 5]]], "float32")
    scores = np.array([[[0.9, 0.1], [0.8, 0.0], [0.1, 0.7], [0.05, 0.1]]], "float32")
    result = lite.detections({"boxes": boxes, "scores": scores}, 0, score_threshold=0.2)
    assert [(r[4], r[5]) for r in result] == [(pytest.approx(0.9), 0), (pytest.approx(0.7), 1)]
