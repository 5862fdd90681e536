"""Bad export arguments: a ValueError naming the argument, the value and what is allowed, and no
file (or temporary file) left behind."""

import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import SIZE

import keras_csp
from keras_csp import export
from keras_csp.export import convert


def _only(folder, *names):
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(quantize="int4"), r"quantize='int4' does not exist; allowed: 'none', 'fp16', "
                                r"'dynamic', 'int8', 'qat'"),
        (dict(io="int16"), r"io='int16' does not exist; allowed: 'float', 'int8', 'uint8'"),
        (dict(quantize="fp16", io="int8"), r"io='int8' needs a full-integer model; allowed: "
                                           r"io='float' with quantize='fp16'"),
        (dict(prune=1.0, train_data=[]), r"prune=1.0 is not allowed; allowed: None or a sparsity "
                                         r"strictly between 0 and 1"),
        (dict(resize="zoom"), r"resize='zoom' does not exist; allowed: none, crop, stretch"),
        (dict(quantize="int8"), r"representative_data=None, but quantize='int8' calibrates on it"),
        (dict(quantize="qat"), r"train_data=None, but quantize='qat' fine-tunes on it"),
        (dict(prune=0.5), r"train_data=None, but prune=0.5 fine-tunes on it"),
        (dict(batch=0), r"batch=0 is not allowed; allowed: an integer >= 1"),
        (dict(calibration_steps=0), r"calibration_steps=0 is not allowed"),
    ],
)
def test_bad_arguments(tiny_model, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export.tflite(tiny_model, tmp_path / "m.tflite", verbose=False, **kwargs)
    _only(tmp_path)


@pytest.mark.parametrize(
    "data",
    [[], tf.data.Dataset.from_tensor_slices(np.zeros((0, SIZE, SIZE, 3), np.uint8)), "EMPTY"],
)
def test_a_representative_dataset_that_yields_nothing(tiny_model, tmp_path, data):
    if data == "EMPTY":
        (tmp_path / "empty").mkdir()
        data = tmp_path / "empty"
    with pytest.raises(ValueError, match=r"representative_data=.* yielded no images; allowed:"):
        export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                      representative_data=data, verbose=False)
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 16, 16, 3), np.uint8), r"yielded 16x16 images; the model takes 32x32"),
        (np.zeros((2, SIZE, SIZE, 4), np.uint8), r"yielded an element of shape \(2, 32, 32, 4\)"),
        (np.zeros((2, SIZE, SIZE), np.uint8), r"yielded an element of shape \(2, 32, 32\)"),
    ],
)
def test_representative_images_of_the_wrong_shape(tiny_model, tmp_path, images, message):
    with pytest.raises(ValueError, match=message):
        export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                      representative_data=[images], verbose=False)
    _only(tmp_path)


def test_output_in_a_missing_folder(tiny_model, tmp_path):
    target = tmp_path / "nowhere" / "m.tflite"
    with pytest.raises(ValueError, match=r"path='.*/nowhere/m.tflite': the folder '.*/nowhere' "
                                         r"does not exist; allowed: a path in an existing"):
        export.tflite(tiny_model, target, verbose=False)
    with pytest.raises(ValueError, match=r"directory='.*/nowhere/sm': the folder .* does not"):
        export.saved_model(tiny_model, tmp_path / "nowhere" / "sm", verbose=False)
    _only(tmp_path)


@pytest.fixture
def read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    immutable = False
    if os.geteuid() == 0:  # root ignores permission bits; an immutable folder stops it too
        chattr = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
        immutable = chattr.returncode == 0
        if not immutable:
            os.chmod(folder, 0o755)
            pytest.skip("running as root without chattr: no folder is read-only here")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    os.chmod(folder, 0o755)


def test_output_in_a_read_only_folder(tiny_model, read_only_folder):
    with pytest.raises(ValueError, match=r"path='.*/ro/m.tflite': the folder '.*/ro' is not "
                                         r"writable \(.*\); allowed: a path in an existing"):
        export.tflite(tiny_model, read_only_folder / "m.tflite", verbose=False)
    with pytest.raises(ValueError, match=r"directory='.*/ro/sm': the folder .* is not writable"):
        export.saved_model(tiny_model, read_only_folder / "sm", verbose=False)
    assert list(read_only_folder.iterdir()) == []


def test_output_path_of_the_wrong_kind(tiny_model, tmp_path):
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match=r"path='.*a_folder' is a folder; allowed: a file path"):
        export.tflite(tiny_model, tmp_path / "a_folder", verbose=False)
    with pytest.raises(ValueError, match=r"directory='.*a_file' is a file; allowed: a folder path"):
        export.saved_model(tiny_model, tmp_path / "a_file", verbose=False)


def test_a_failure_while_writing_leaves_no_partial_file(tiny_model, tmp_path, monkeypatch):
    (tmp_path / "m.tflite").write_bytes(b"previous export")

    def broken(path, data):
        from keras_csp import files

        with files.atomic_file(path) as tmp:
            tmp.write_bytes(data[: len(data) // 2])
            raise OSError("disk full")

    monkeypatch.setattr(convert.files, "write_bytes_atomic", broken)
    with pytest.raises(OSError, match="disk full"):
        export.tflite(tiny_model, tmp_path / "m.tflite", verbose=False)
    assert (tmp_path / "m.tflite").read_bytes() == b"previous export"  # untouched
    _only(tmp_path, "m.tflite")


def test_a_failed_conversion_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    def fail(holder, setup):
        raise RuntimeError("TFLite conversion failed: boom")

    monkeypatch.setattr(convert, "to_tflite", fail)
    with pytest.raises(RuntimeError, match="boom"):
        export.tflite(tiny_model, tmp_path / "m.tflite", verbose=False)
    _only(tmp_path)


def test_a_failed_saved_model_leaves_nothing(tiny_model, tmp_path, monkeypatch):
    def fail(obj, export_dir, signatures=None):
        (tf.io.gfile.GFile(os.path.join(export_dir, "saved_model.pb"), "w")).write("half")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        export.saved_model(tiny_model, tmp_path / "sm", verbose=False)
    _only(tmp_path)


def test_models_the_export_cannot_serve(tiny_config, tmp_path):
    gray = keras_csp.build_model(tiny_config, input_shape=(SIZE, SIZE, 1), classes=3)
    with pytest.raises(ValueError, match=r"takes 1-channel images; allowed for export: 3 \(RGB\)"):
        export.tflite(gray, tmp_path / "m.tflite", verbose=False)
    dynamic = keras_csp.build_model(tiny_config, classes=3)  # any input size
    with pytest.raises(ValueError, match=r"input_size=None, but model .* takes any image size; a "
                                         r"TFLite model needs a fixed one"):
        export.tflite(dynamic, tmp_path / "m.tflite", verbose=False)
    fixed = keras_csp.build_model(tiny_config, input_shape=(SIZE, SIZE, 3), classes=3)
    with pytest.raises(ValueError, match=r"input_size=64 does not match the model's height 32"):
        export.tflite(fixed, tmp_path / "m.tflite", input_size=64, verbose=False)
    with pytest.raises(ValueError, match=r"model='model.h5' is not allowed; allowed: a keras"):
        export.tflite("model.h5", tmp_path / "m.tflite", verbose=False)

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match=r"is not a functional Keras model"):
        export.saved_model(Subclassed(), tmp_path / "sm", verbose=False)
    _only(tmp_path)
