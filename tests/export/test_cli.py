"""`keras-csp export | predict | evaluate` through the handlers' standalone `main`s
(`keras_csp.export.cli`, `keras_csp.lite.cli`)."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from export_helpers import SIZE, write_png

from keras_csp import lite
from keras_csp.export import cli
from keras_csp.lite import cli as lite_cli


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
    assert set(cli.COMMANDS) == {"export"} and set(lite_cli.COMMANDS) == {"predict", "evaluate"}


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


def test_export_batch_is_1_unless_told(keras_file, tmp_path, capsys):
    for argv, batch in (([], 1), (["--batch", "dynamic"], -1), (["--batch", "3"], 3)):
        out = tmp_path / "m.tflite"
        assert cli.main(["export", str(keras_file), "-o", str(out), "--json", *argv]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["inputs"][0]["shape"] == [batch, SIZE, SIZE, 3]
        assert lite.LiteModel(out).input.shape[0] == batch


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
        (["--batch", "0"], "--batch='0' is not allowed; allowed: an integer >= 1 (1, the default"),
        (["--batch", "any"], "--batch='any' is not allowed; allowed: an integer >= 1"),
        (["--format", "savedmodel", "--batch", "1"], "--batch='1' applies to .tflite files"),
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


def test_export_a_small_registry_model(tmp_path, capsys):
    # The small models that `train` accepts are in the one registry, so `export` builds them too.
    out = tmp_path / "tiny.tflite"
    assert cli.main(["export", "cspdarknet_tiny", "--input-size", "32", "-o", str(out)]) == 0
    assert out.is_file()


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
    assert lite_cli.main(["predict", str(tflite_file), str(image), "--labels", str(labels)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(image) and len(lines) == 6
    assert lines[1].lstrip().startswith("1. ") and lines[5].lstrip().startswith("5. ")
    assert {line.split()[1] for line in lines[1:]} == {"ant", "bee", "cat", "dog", "elk"}


def test_predict_refuses_bad_images(tflite_file, tmp_path, capsys):
    big = write_png(tmp_path / "big.png", [[[0, 0, 0]] * 40] * 50)
    assert lite_cli.main(["predict", str(tflite_file), str(big)]) == 2
    assert "is 40x50; the model takes 32x32" in capsys.readouterr().err
    assert lite_cli.main(["predict", str(tflite_file), str(big), "--resize", "crop"]) == 0
    capsys.readouterr()
    assert lite_cli.main(["predict", str(tflite_file), str(big),
                          "--draw", str(tmp_path / "o.png")]) == 2
    assert "is a classifier; allowed: --draw with a detector model" in capsys.readouterr().err


def test_evaluate_prints_top1(tflite_file, class_folder, capsys):
    assert lite_cli.main(["evaluate", str(tflite_file), "--data", str(class_folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 6 and result["classes"] == 3 and 0 <= result["top1"] <= 1


def _mixed_folder(root):
    """RGB, grey, grey+alpha, RGBA and 16-bit grey PNGs, a text file and a truncated PNG."""
    from PIL import Image

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
    write_png(root / "a_rgb.png", rgb)
    Image.fromarray(rgb[..., 0]).save(root / "b_grey.png")
    Image.fromarray(rgb[..., :2], "LA").save(root / "c_grey_alpha.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA").save(root / "d_rgba.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(root / "e_grey16.png")
    (root / "f_text.png").write_text("not an image")
    (root / "g_cut.png").write_bytes((root / "a_rgb.png").read_bytes()[:80])
    return rgb


def test_predict_converts_like_training_and_skips_unreadable_files(tflite_file, tmp_path, capsys):
    folder = tmp_path / "images"
    rgb = _mixed_folder(folder)
    # Each converted file is the RGB image training's decoder gives: grey replicated, alpha
    # dropped, 16 bits scaled to 8.
    grey = np.repeat(rgb[..., :1], 3, axis=-1)
    np.testing.assert_array_equal(lite.load_image(folder / "b_grey.png", SIZE), grey)
    np.testing.assert_array_equal(lite.load_image(folder / "c_grey_alpha.png", SIZE), grey)
    np.testing.assert_array_equal(lite.load_image(folder / "d_rgba.png", SIZE), rgb)
    np.testing.assert_array_equal(lite.load_image(folder / "e_grey16.png", SIZE), grey)
    with pytest.raises(lite.UnreadableImageError, match=r"f_text.png' is not an image file"):
        lite.load_image(folder / "f_text.png")

    # A folder is its images; the two unreadable ones are skipped, counted and named.
    assert lite_cli.main(["predict", str(tflite_file), str(folder), "--json"]) == 0
    out = capsys.readouterr()
    results = json.loads(out.out)
    assert [Path(r["image"]).name for r in results if "top" in r] == [
        "a_rgb.png", "b_grey.png", "c_grey_alpha.png", "d_rgba.png", "e_grey16.png"
    ]
    assert [Path(r["image"]).name for r in results if "skipped" in r] == ["f_text.png", "g_cut.png"]
    assert lite_cli.main(["predict", str(tflite_file), str(folder / "f_text.png"),
                     str(folder / "a_rgb.png")]) == 0
    assert "1 unreadable image(s) skipped: " in capsys.readouterr().err
    assert lite_cli.main(["predict", str(tflite_file), str(folder / "f_text.png")]) == 2
    assert "none of the 1 image(s) could be decoded" in capsys.readouterr().err
    assert lite_cli.main(["predict", str(tflite_file), str(tmp_path / "nothing.png")]) == 2
    assert "IMAGE=" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert lite_cli.main(["predict", str(tflite_file), str(tmp_path / "empty")]) == 2
    assert "is a folder without images" in capsys.readouterr().err


def test_evaluate_skips_and_counts_unreadable_files(tflite_file, class_folder, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(class_folder, data)
    _mixed_folder(data / "ant")
    assert lite_cli.main(["evaluate", str(tflite_file), "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == 6 + 5 and result["skipped"] == 2
    assert [Path(p).name for p in result["skipped_files"]] == ["f_text.png", "g_cut.png"]
    assert lite_cli.main(["evaluate", str(tflite_file), "--data", str(data)]) == 0
    assert "2 unreadable image(s) skipped" in capsys.readouterr().err


def test_load_image_sizes(tmp_path):
    path = write_png(tmp_path / "wide.png", np.zeros((40, 80, 3)))
    assert lite.load_image(path, size=64, resize="stretch").shape == (64, 64, 3)
    assert lite.load_image(path, size=(20, 30), resize="crop").shape == (20, 30, 3)
    for size in (0, -3, (32,), (32, 0), 2.5, "64", True):
        with pytest.raises(ValueError, match=r"size=.* is not allowed; allowed: None, an integer"):
            lite.load_image(path, size=size, resize="stretch")
    with pytest.raises(ValueError, match=r"image='.*' is a folder; allowed: an image file"):
        lite.load_image(tmp_path)


def test_predict_and_evaluate_on_the_gpu_accelerator(tflite_file, class_folder, gpu_accelerator,
                                                     capsys):
    image = str(next(class_folder.glob("ant/*.png")))
    assert lite_cli.main(["predict", str(tflite_file), image, "--json"]) == 0
    on_cpu = json.loads(capsys.readouterr().out)
    assert lite_cli.main(["predict", str(tflite_file), image, "--json",
                          "--accelerator", "gpu"]) == 0
    out = capsys.readouterr()
    assert "GPU accelerator (" in out.err and "whole graph" in out.err
    on_gpu = json.loads(out.out)
    assert [t["class"] for t in on_gpu[0]["top"]] == [t["class"] for t in on_cpu[0]["top"]]
    for a, b in zip(on_gpu[0]["top"], on_cpu[0]["top"]):
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)
    assert lite_cli.main(["evaluate", str(tflite_file), "--data", str(class_folder),
                     "--accelerator", "auto"]) == 0
    assert "on the GPU" in capsys.readouterr().out


def test_unknown_accelerator(tflite_file, class_folder, capsys):
    assert lite_cli.main(["predict", str(tflite_file), "x.png", "--accelerator", "tpu"]) == 2
    assert ("--accelerator='tpu' does not exist; allowed: cpu, gpu, auto."
            in capsys.readouterr().err)
    assert lite_cli.main(["evaluate", str(tflite_file), "--data", str(class_folder),
                     "--accelerator", "GPU"]) == 2
    assert "--accelerator='GPU' does not exist" in capsys.readouterr().err
