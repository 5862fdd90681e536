"""Every TFLite quantization mode on a tiny classifier: file, report, and outputs near Keras'."""

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import SIZE, mode, open_mode

from keras_csp import export, lite
from keras_csp.export.serving import build_serving

# Largest |probability difference| from the float Keras model allowed per mode (5 classes).
TOLERANCE = {"none": 1e-5, "fp16": 1e-3, "dynamic": 2e-2, "int8": 4e-2}


@pytest.fixture(scope="module")
def reference(tiny_model, pixels):
    return build_serving(tiny_model).deploy(pixels.astype("float32")).numpy()


@pytest.fixture(scope="module")
def exported(tiny_model, calibration, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite")
    runs = {
        "none": dict(quantize="none"),
        "fp16": dict(quantize="fp16"),
        "dynamic": dict(quantize="dynamic"),
        "int8": dict(quantize="int8", representative_data=calibration),
        "int8-uint8io": dict(quantize="int8", io="uint8", representative_data=calibration),
        "int8-int8io": dict(quantize="int8", io="int8", representative_data=calibration),
    }
    return {
        name: (folder / f"{name}.tflite", export.tflite(tiny_model, folder / f"{name}.tflite",
                                                       verbose=False, **kwargs))
        for name, kwargs in runs.items()
    }


@pytest.mark.parametrize("name", ["none", "fp16", "dynamic", "int8", "int8-uint8io", "int8-int8io"])
def test_each_mode_gives_the_keras_probabilities(exported, name, pixels, reference):
    path, report = exported[name]
    model = lite.LiteModel(path)
    probabilities = model(pixels)["probabilities"]
    mode = name.split("-")[0]
    assert probabilities.shape == reference.shape
    np.testing.assert_allclose(probabilities, reference, rtol=0, atol=TOLERANCE[mode])
    assert report.quantize == mode and report.format == "tflite" and report.kind == "classifier"
    assert report.size_bytes == path.stat().st_size > 0
    assert report.ops["CONV_2D"] == 18 and "SOFTMAX" in report.ops
    assert report.analyzer_verdict  # the analyzer's line is kept, whatever it says
    assert "GPU delegate" in report.summary()


def test_sizes_shrink_with_quantization(exported):
    size = {name: report.size_bytes for name, (_, report) in exported.items()}
    assert size["fp16"] < 0.7 * size["none"]
    assert size["dynamic"] < size["fp16"] and size["int8"] < size["fp16"]


def test_integer_io_and_float_io(exported):
    inputs = {name: lite.LiteModel(path).input for name, (path, _) in exported.items()}
    assert inputs["none"].dtype == np.float32 and not inputs["none"].quantized
    assert inputs["int8"].dtype == np.float32  # full-integer inside, float at the edges
    assert inputs["int8-uint8io"].dtype == np.uint8 and inputs["int8-uint8io"].quantized
    assert inputs["int8-int8io"].dtype == np.int8 and inputs["int8-int8io"].quantized
    _, report = exported["int8-int8io"]
    assert report.inputs[0]["dtype"] == "int8" and report.inputs[0]["quantization"] is not None
    assert report.outputs[0]["name"] == "probabilities"


def test_float_models_are_gpu_compatible_and_have_a_signature(exported):
    for name in ("none", "fp16"):
        path, report = exported[name]
        assert report.gpu_compatible, report.summary()
        assert report.gpu_issues == []
        assert lite.LiteModel(path).output_names == ["probabilities"]
        assert lite.LiteModel(path).input.shape == (1, SIZE, SIZE, 3)  # batch 1 by default


def test_calibration_from_a_tf_data_pipeline_and_from_a_folder(tiny_model, class_folder, tmp_path,
                                                              pixels, reference):
    dataset = tf.data.Dataset.from_tensor_slices(
        np.random.default_rng(5).integers(0, 256, (6, SIZE, SIZE, 3)).astype("uint8")
    ).batch(3).map(lambda x: (x, tf.zeros([tf.shape(x)[0]], tf.int32)))  # (images, labels)
    for data in (dataset, class_folder, str(class_folder)):
        report = export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                               representative_data=data, verbose=False)
        assert any("calibrated on 6 image(s)" in note for note in report.notes)
        got = lite.LiteModel(tmp_path / "m.tflite")(pixels)["probabilities"]
        np.testing.assert_allclose(got, reference, atol=TOLERANCE["int8"])


def test_folder_images_of_another_size_are_resized_when_asked(tiny_model, tmp_path):
    from export_helpers import write_png

    write_png(tmp_path / "calib" / "big.png", np.full((48, 64, 3), 128))
    with pytest.raises(ValueError, match=r"is 64x48; the model takes 32x32"):
        export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                      representative_data=tmp_path / "calib", verbose=False)
    assert not (tmp_path / "m.tflite").exists()
    export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8", resize="crop",
                  representative_data=tmp_path / "calib", verbose=False)
    assert (tmp_path / "m.tflite").exists()


def test_the_report_is_printed(tiny_model, tmp_path, capsys):
    export.tflite(tiny_model, tmp_path / "m.tflite", quantize="fp16")
    out = capsys.readouterr().out
    assert f"exported classifier to {tmp_path / 'm.tflite'}: tflite (fp16)" in out
    assert "ops (" in out and "CONV_2D x18" in out
    assert "GPU delegate: compatible" in out and "analyzer:" in out


def test_batch_1_by_default_a_dynamic_or_other_batch_on_request(exported, tiny_model, tmp_path,
                                                                 pixels, reference):
    path, report = exported["none"]  # no batch argument
    assert report.inputs[0]["shape"] == [1, SIZE, SIZE, 3]
    model = lite.LiteModel(path)
    np.testing.assert_allclose(model(pixels)["probabilities"], reference, atol=1e-5)  # 4 runs
    for batch, rows in (("dynamic", -1), (3, 3)):
        report = export.tflite(tiny_model, tmp_path / "b.tflite", batch=batch, verbose=False)
        assert report.inputs[0]["shape"] == [rows, SIZE, SIZE, 3]
        got = lite.LiteModel(tmp_path / "b.tflite")(pixels)["probabilities"]  # 4 images
        np.testing.assert_allclose(got, reference, atol=1e-5)


@pytest.mark.parametrize("batch", [None, 0, -1, 1.0, True, "any", "2x"])
def test_a_bad_batch_is_refused_before_anything_is_written(tiny_model, tmp_path, batch):
    with pytest.raises(ValueError, match=r"^batch=.* is not allowed; allowed: an integer >= 1 "
                                         r"\(1, the default, for phones\) or 'dynamic'"):
        export.tflite(tiny_model, tmp_path / "m.tflite", batch=batch, verbose=False)
    assert not (tmp_path / "m.tflite").exists()


def test_pixel_normalization_is_one_depthwise_op_with_preprocess_input_numbers():
    # SUB + MUL by 3-wide constants made XNNPACK broadcast over the narrow channel axis.
    import warnings

    import keras

    from keras_csp.export import PixelNormalization
    from keras_csp.preprocessing import preprocess_input

    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(PixelNormalization()(x)), preprocess_input(x),
                               atol=1e-6)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, PixelNormalization()(inputs))
    content = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    plain = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_content=content,
                                          experimental_op_resolver_type=plain)
    interpreter.allocate_tensors()
    assert [op["op_name"] for op in interpreter._get_ops_details()] == ["DEPTHWISE_CONV_2D"]


def test_files_get_the_permissions_open_gives(exported):
    for path, _ in exported.values():
        assert mode(path) == open_mode(), path  # tempfile made it 0600 whatever the umask
