"""`keras-csp export | predict | evaluate` through the handlers' standalone `main`."""

import argparse
import json

import pytest
from export_helpers import SIZE, write_png

from keras_csp.export import cli


@pytest.fixture(scope="module")
def keras_file(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "tiny.keras"
    tiny_model.save(path)
    return path


def test_handlers_plug_into_any_parser():
    parser = argparse.ArgumentParser(prog="keras-csp")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.add_parser(sub)
    args = parser.parse_args(["export", "m.keras", "--quantize", "fp16"])
    assert (args.command, args.model, args.quantize, args.format) == (
        "export", "m.keras", "fp16", "tflite"
    )
    assert set(cli.COMMANDS) == {"export", "predict", "evaluate"}


def test_export_tflite_prints_the_report(keras_file, tmp_path, capsys):
    out = tmp_path / "tiny_fp16.tflite"
    assert cli.main(["export", str(keras_file), "--quantize", "fp16", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"exported classifier to {out}: tflite (fp16)" in text
    assert "GPU delegate: compatible" in text and out.exists()


def test_export_int8_from_a_folder_as_json(keras_file, class_folder, tmp_path, capsys):
    out = tmp_path / "int8.tflite"
    code = cli.main(["export", str(keras_file), "--quantize", "int8", "--io", "uint8",
                     "--data", str(class_folder), "-o", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quantize"] == "int8" and report["inputs"][0]["dtype"] == "uint8"
    assert "calibrated on 6 image(s)" in report["notes"]


def test_export_savedmodel(keras_file, tmp_path, capsys):
    out = tmp_path / "sm"
    assert cli.main(["export", str(keras_file), "--format", "savedmodel", "-o", str(out)]) == 0
    assert (out / "saved_model.pb").exists()
    assert "savedmodel" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--quantize", "int4"], "quantize='int4' does not exist; allowed: 'none', 'fp16'"),
        (["--format", "onnx"], "--format='onnx' does not exist; allowed: savedmodel, tflite"),
        (["--format", "savedmodel", "--quantize", "fp16"], "applies to --format tflite"),
        (["--io", "int16"], "io='int16' does not exist"),
    ],
)
def test_export_bad_options(keras_file, tmp_path, capsys, argv, message):
    assert cli.main(["export", str(keras_file), "-o", str(tmp_path / "x"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_export_unknown_model(tmp_path, capsys):
    assert cli.main(["export", "resnet99", "-o", str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err
    assert "MODEL_OR_FILE='resnet99' is neither a .keras file nor an architecture" in err
    assert cli.main(["export", str(tmp_path / "missing.keras")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tflite_file(keras_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-tflite") / "tiny.tflite"
    assert cli.main(["export", str(keras_file), "-o", str(out), "--json"]) == 0
    return out


def test_predict_prints_the_top_classes(tflite_file, tmp_path, capsys):
    image = write_png(tmp_path / "img.png", [[[(x * 8) % 256, y * 8, 100] for x in range(SIZE)]
                                            for y in range(SIZE)])
    labels = tmp_path / "labels.txt"
    labels.write_text("ant\nbee\ncat\ndog\nelk\n")
    assert cli.main(["predict", str(tflite_file), str(image), "--labels", str(labels)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(image) and len(lines) == 6
    assert lines[1].lstrip().startswith("1. ") and lines[5].lstrip().startswith("5. ")
    assert {line.split()[1] for line in lines[1:]} == {"ant", "bee", "cat", "dog", "elk"}


def test_predict_refuses_bad_images(tflite_file, tmp_path, capsys):
    gray = write_png(tmp_path / "gray.png", [[0] * SIZE] * SIZE)
    assert cli.main(["predict", str(tflite_file), str(gray)]) == 2
    assert "has mode 'L'" in capsys.readouterr().err
    big = write_png(tmp_path / "big.png", [[[0, 0, 0]] * 40] * 50)
    assert cli.main(["predict", str(tflite_file), str(big)]) == 2
    assert "is 40x50; the model takes 32x32" in capsys.readouterr().err
    assert cli.main(["predict", str(tflite_file), str(big), "--resize", "crop"]) == 0
    capsys.readouterr()
    assert cli.main(["predict", str(tflite_file), str(big), "--draw", str(tmp_path / "o.png")]) == 2
    assert "is a classifier; allowed: --draw with a detector model" in capsys.readouterr().err


def test_evaluate_prints_top1(tflite_file, class_folder, capsys):
    assert cli.main(["evaluate", str(tflite_file), "--data", str(class_folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 6 and result["classes"] == 3 and 0 <= result["top1"] <= 1
