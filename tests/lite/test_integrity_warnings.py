"""What `LiteModel` says about a file it cannot vouch for: one warning when a `.tflite` has no
keras-csp checksum (none for the files the export writes), and one per model when its outputs
hold NaN."""

import warnings

import keras
import numpy as np
import pytest

from keras_csp import lite


def _caught(action):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = action()
    return result, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def foreign_tflite(tmp_path_factory):
    """A .tflite written by TensorFlow's converter directly: a valid file without a checksum."""
    import tensorflow as tf

    images = keras.Input((8, 8, 3), batch_size=1)
    features = keras.layers.Conv2D(4, 3, name="conv")(images)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(images, features))
    path = tmp_path_factory.mktemp("foreign") / "other_tool.tflite"
    path.write_bytes(converter.convert())
    return path


def test_a_file_without_checksum_gets_one_warning(foreign_tflite):
    model, messages = _caught(lambda: lite.LiteModel(foreign_tflite))
    assert not model.checksum_verified
    assert [m for m in messages if "checksum" in m] == [
        f"model={str(foreign_tflite)!r}: no keras-csp checksum: integrity not verified (a file "
        "the export did not write, or one rewritten since; the export's checksum detects damage, "
        "not deliberate changes)."
    ]
    _, messages = _caught(lambda: model(np.zeros((8, 8, 3), np.float32)))
    assert messages == []  # said at load, not on every call


def test_an_exported_file_gets_no_warning_and_nan_outputs_get_one(artifacts):
    model, messages = _caught(lambda: lite.LiteModel(artifacts["float"]))
    assert model.checksum_verified and not [m for m in messages if "checksum" in m]
    image = np.full((32, 32, 3), 100.0, np.float32)
    _, messages = _caught(lambda: model(image))
    assert messages == []
    image[5, 5, 1] = np.nan  # a NaN pixel makes every probability NaN
    outputs, messages = _caught(lambda: model(image))
    assert np.isnan(outputs["probabilities"]).all()
    assert messages == [
        f"model={str(artifacts['float'])!r} returned NaN in 'probabilities': the images (NaN "
        "pixels?) or the file's weights are broken, and the results mean nothing (said once per "
        "model)."
    ]
    _, messages = _caught(lambda: model(image))
    assert messages == []  # once per model


def test_predict_says_it_in_one_line(foreign_tflite, tmp_path, capsys):
    from PIL import Image

    from keras_csp.lite import cli

    Image.new("RGB", (8, 8), (90, 120, 200)).save(tmp_path / "a.png")
    assert cli.main(["predict", str(foreign_tflite), str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"keras-csp: warning: model={str(foreign_tflite)!r}: no keras-csp checksum: "
                   "integrity not verified (a file the export did not write, or one rewritten "
                   "since; the export's checksum detects damage, not deliberate changes)."]
