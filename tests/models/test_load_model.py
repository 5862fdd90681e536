"""`keras_csp.load_model` on files that are not complete `.keras` archives: one clear ValueError."""

import zipfile

import pytest

import keras_csp
from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig


@pytest.fixture(scope="module")
def keras_bytes(tmp_path_factory):
    config = ModelConfig(StemConfig(filters=8, kernel_size=3, strides=2),
                         StagesConfig(filters=(16, 32), depth=(1, 1), strides=2))
    path = tmp_path_factory.mktemp("load") / "tiny.keras"
    keras_csp.build_model(config, input_shape=(32, 32, 3), classes=3).save(path)
    return path.read_bytes()


def test_a_complete_file_loads(keras_bytes, tmp_path):
    (tmp_path / "m.keras").write_bytes(keras_bytes)
    assert keras_csp.load_model(tmp_path / "m.keras").output_shape == (None, 3)


def _flip_middle(data):
    data = bytearray(data)
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda data: data[: len(data) // 2], r"is truncated or not a \.keras \(zip\) archive"),
        (lambda data: b"\x00" * 3000, r"is truncated or not a \.keras \(zip\) archive"),
        (_flip_middle, r"is damaged: its member 'model\.weights\.h5' fails its CRC check"),
        (None, r"does not exist; allowed: a \.keras file written by model\.save\(\)"),
    ],
)
def test_truncated_corrupt_and_missing_files(keras_bytes, tmp_path, make, message):
    path = tmp_path / "m.keras"
    if make is not None:
        path.write_bytes(make(keras_bytes))
    with pytest.raises(ValueError, match=rf"path='.*m\.keras' {message}"):
        keras_csp.load_model(path)


def test_a_zip_that_is_not_a_model(tmp_path):
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match=r"a zip archive without config\.json, not a \.keras"):
        keras_csp.load_model(tmp_path / "m.keras")
