"""`keras_csp.load_model` on files that are not complete `.keras` archives: one clear ValueError."""

import io
import json
import re
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



def _rezip(keras_bytes, path, replace, compression=zipfile.ZIP_STORED):
    """`keras_bytes` re-zipped at `path` with the members in `replace` (name -> bytes, or an int:
    that many MiB of zeros, streamed as a zip bomb is made: never all in memory)."""
    with zipfile.ZipFile(io.BytesIO(keras_bytes)) as source, zipfile.ZipFile(
        path, "w", compression, compresslevel=1
    ) as out:
        for name in source.namelist():
            content = replace.get(name, source.read(name))
            if isinstance(content, int):
                with out.open(name, "w", force_zip64=True) as member:
                    for _ in range(content):
                        member.write(bytes(1 << 20))
            else:
                out.writestr(name, content)
    return path


def test_a_decompression_bomb_is_refused_before_it_is_read(keras_bytes, tmp_path):
    # 48 MiB of zeros stored in ~0.3 MB: Keras would read all of it into memory (a 4 GiB one
    # took 3.8 GB); real weights compress about 1.1:1, and model.save() stores them (1:1).
    bomb = _rezip(keras_bytes, tmp_path / "m.keras", {"model.weights.h5": 48},
                  zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match=r"path='.*m\.keras': its member 'model\.weights\.h5' "
                                         r"expands from 0\.\d+ MiB to 48\.0 MiB \(\d{3,}:1\), as "
                                         r"a decompression bomb does; allowed: a \.keras file"):
        keras_csp.load_model(bomb)
    # The same model deflated (as a user's zip tool may store it) still loads.
    deflated = _rezip(keras_bytes, tmp_path / "d.keras", {}, zipfile.ZIP_DEFLATED)
    assert keras_csp.load_model(deflated).output_shape == (None, 3)


def test_an_archive_larger_than_the_free_memory_is_refused(keras_bytes, tmp_path, monkeypatch):
    # The zip reading is real; only the machine's free memory is made smaller than the model.
    from keras_csp.applications import saving

    (tmp_path / "m.keras").write_bytes(keras_bytes)
    monkeypatch.setattr(saving, "available_memory", lambda: 50_000)
    with pytest.raises(ValueError, match=r"path='.*m\.keras' expands to 0\.\d+ MiB, more than the "
                                         r"0\.048 MiB of memory available; allowed: a \.keras file "
                                         r"whose model fits in memory"):
        keras_csp.load_model(tmp_path / "m.keras")
    monkeypatch.undo()
    assert saving.available_memory() > 1 << 20  # the real reading: /proc/meminfo or sysconf
    assert keras_csp.load_model(tmp_path / "m.keras").output_shape == (None, 3)


def _config(keras_bytes, change):
    config = json.loads(zipfile.ZipFile(io.BytesIO(keras_bytes)).read("config.json"))
    change(config["config"]["layers"])
    return json.dumps(config)


def _nested(levels):
    value = 1
    for _ in range(levels):
        value = {"a": [value]}
    return value


BAD_CONFIGS = {  # config.json -> what the one-line error says
    "unknown layer": (
        lambda b: _config(b, lambda layers: layers[1].update(class_name="Frobnicate")),
        r"cannot be loaded: its config\.json cannot be rebuilt \(.*'keras\.layers\.Frobnicate'",
    ),
    "layer without a name": (
        lambda b: _config(b, lambda layers: layers[1].pop("name")),
        r"cannot be loaded: its config\.json lacks the key 'name' \(KeyError\)",
    ),
    "not JSON": (
        lambda b: "this is {not json",
        r"cannot be loaded: its config\.json is not JSON \(Expecting value: line 1 column 1",
    ),
    "too deep for Python": (
        lambda b: "[" * 100_000 + "]" * 100_000,
        r"cannot be loaded: its config\.json nests deeper than Python's JSON reader goes",
    ),
    "deeply nested": (
        lambda b: _config(b, lambda layers: layers[1]["config"].update(units=_nested(300))),
        r"cannot be loaded: its config\.json nests 60\d levels deep",
    ),
}


@pytest.fixture(scope="module")
def lambda_keras(tmp_path_factory):
    import keras

    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2.0, name="double")(inputs)
    path = tmp_path_factory.mktemp("lambda") / "m.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def _bad_model(name, keras_bytes, lambda_keras, tmp_path):
    if name == "Lambda":
        return lambda_keras, r"cannot be loaded: it holds a Lambda layer, whose Python code is not run"
    make, message = BAD_CONFIGS[name]
    return _rezip(keras_bytes, tmp_path / "m.keras", {"config.json": make(keras_bytes)}), message


@pytest.mark.parametrize("name", ["Lambda", *BAD_CONFIGS])
def test_models_that_cannot_be_rebuilt_get_one_line(keras_bytes, lambda_keras, tmp_path, name,
                                                    capsys):
    from keras_csp import cli

    path, message = _bad_model(name, keras_bytes, lambda_keras, tmp_path)
    with pytest.raises(ValueError, match=rf"^path='{re.escape(str(path))}' {message}.*; allowed: "):
        keras_csp.load_model(path)
    output = tmp_path / "out.tflite"
    assert cli.main(["export", str(path), "-o", str(output)]) == 2
    err = capsys.readouterr().err.strip()
    assert re.match(rf"keras-csp: error: path='{re.escape(str(path))}' {message}", err), err
    assert len(err.splitlines()) == 1 and len(err) < 600, err
    assert not output.exists()


def test_the_cli_refuses_a_zip_bomb_in_one_line(keras_bytes, tmp_path, capsys):
    from keras_csp import cli

    bomb = _rezip(keras_bytes, tmp_path / "m.keras", {"model.weights.h5": 16},
                  zipfile.ZIP_DEFLATED)
    assert cli.main(["export", str(bomb), "-o", str(tmp_path / "out.tflite")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "as a decompression bomb does" in err, err
