"""Quantization-aware fine-tuning and magnitude pruning with tfmot, through the tf_keras twin."""

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import SIZE

from keras_csp import export, lite
from keras_csp.export.serving import build_serving


def _conv_kernel_sparsity(path):
    """Fraction of zeros among the CONV_2D filters of a float .tflite file."""
    interpreter = tf.lite.Interpreter(model_path=str(path))
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    zeros = total = 0
    for op in interpreter._get_ops_details():
        if op["op_name"] == "CONV_2D":
            weights = interpreter.get_tensor(op["inputs"][1])
            zeros += int(np.sum(weights == 0))
            total += weights.size
    assert total and tensors
    return zeros / total


def test_qat_with_labels_exports_a_full_integer_model(tiny_model, pixels, tmp_path):
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (8, SIZE, SIZE, 3)).astype("uint8")
    labels = rng.integers(0, 5, 8)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    report = export.tflite(tiny_model, tmp_path / "qat.tflite", quantize="qat", io="int8",
                           train_data=dataset, verbose=False)

    assert report.quantize == "qat"
    assert any(n.startswith("quantization-aware fine-tuning: 1 epoch(s)") for n in report.notes)
    model = lite.LiteModel(tmp_path / "qat.tflite")
    assert model.input.dtype == np.int8 and model.outputs[0].dtype == np.int8
    interpreter = tf.lite.Interpreter(model_path=str(tmp_path / "qat.tflite"))
    conv_types = {
        interpreter.get_tensor_details()[op["inputs"][1]]["dtype"]
        for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"
    }
    assert conv_types == {np.int8}  # every convolution runs in int8
    expected = build_serving(tiny_model).deploy(pixels.astype("float32")).numpy()
    got = model(pixels)["probabilities"]
    # One epoch at lr 1e-5 barely moves the weights: the int8 model still follows the float one.
    # (Argmax agreement would be flaky: this random model's probabilities are all near 0.2.)
    assert np.abs(got - expected).max() < 0.1


def test_pruning_without_labels_distills_from_the_float_model(tiny_model, class_folder, pixels,
                                                              tmp_path):
    report = export.tflite(tiny_model, tmp_path / "pruned.tflite", prune=0.5,
                           train_data=class_folder, epochs=2, verbose=False)
    note = next(n for n in report.notes if n.startswith("pruned to"))
    assert "target 50%" in note and "fine-tuned 2 epoch(s)" in note
    assert _conv_kernel_sparsity(tmp_path / "pruned.tflite") >= 0.45
    assert report.gpu_compatible
    got = lite.LiteModel(tmp_path / "pruned.tflite")(pixels)["probabilities"]
    assert got.shape == (4, 5) and np.allclose(got.sum(-1), 1, atol=1e-5)


def _images(count, bad=()):
    rng = np.random.default_rng(4)
    images = rng.uniform(0, 255, (count, SIZE, SIZE, 3)).astype("float32")
    for i in bad:
        images[i, 0, 0, 0] = np.inf
    return images


@pytest.mark.parametrize("bad_batch, read", [(0, 4), (1, 8)])
def test_nonfinite_fine_tuning_images_are_refused_and_named(bad_batch, read):
    # What QAT and pruning run, on a one-layer model (fine-tuning the real twin takes ~30 s).
    # The second batch is read by tf.data inside model.fit, which wraps errors of the source.
    import tf_keras

    from keras_csp.export import optimize
    from keras_csp.export.serving import CLASSIFIER

    model = tf_keras.Sequential([
        tf_keras.layers.GlobalAveragePooling2D(input_shape=(SIZE, SIZE, 3)),
        tf_keras.layers.Dense(2, activation="softmax"),
    ])
    data = [(_images(4, bad=(2,) if i == bad_batch else ()), np.array([0, 1, 0, 1]))
            for i in range(2)]
    with pytest.raises(ValueError, match=rf"train_data=<list of 2 element\(s\)>: 1 of the first "
                                         rf"{read} image\(s\) read hold NaN or Inf values: "
                                         rf"image\(s\) {read - 2} "):
        optimize.finetune(model, teacher=None, kind=CLASSIFIER, train_data=data,
                          input_size=(SIZE, SIZE))


def test_keras_cv_still_imports_after_the_fine_tuning_module():
    # tfmot sets TF_USE_LEGACY_KERAS=1 on import; a first `import keras_cv` after it picked
    # Keras 2 and failed, so a QAT export broke loading a detector in the same process.
    import subprocess
    import sys

    code = (
        "import os, keras_csp.export.optimize\n"
        "assert 'TF_USE_LEGACY_KERAS' not in os.environ, os.environ['TF_USE_LEGACY_KERAS']\n"
        "import keras_cv, keras\n"
        "keras_cv.layers.NonMaxSuppression(bounding_box_format='xyxy', from_logits=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
