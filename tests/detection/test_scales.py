"""CSPDetector's named sizes (scale n/s/m) and widths by hand: FLOPs, saved config, CLI, errors."""

import json

import pytest

import keras_csp
from keras_csp.cli import main as cli_main
from keras_csp.detection import CSPDetector
from keras_csp.detection.scales import SCALES, scale_backbone
from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig, get_config
from keras_csp.train.cli import add_parser, config_from_args

SIZE = 64
SMALL_BACKBONE = ModelConfig(
    stem=StemConfig(filters=16, kernel_size=3, strides=2),
    stages=StagesConfig(filters=(16, 32, 48, 64), depth=(1, 2, 1, 1), strides=2),
    default_size=SIZE,
)
# ultralytics' YOLOv8n at 128x128 with 4 classes (2 FLOPs per multiply-add, its own count).
YOLOV8N_FLOPS_128 = 0.328e9


def test_scale_n_on_csppeleenet_efm_sam_is_at_most_yolov8n_at_128(capsys):
    # `keras-csp profile csp_detector` builds CSPPeleeNet + EFM(SAM); the widths by hand are the
    # preset's own, so the numbers are the preset's and the flag's parsing is exercised.
    assert cli_main(["profile", "csp_detector", "--scale", "n", "--num-classes", "4",
                     "--input-size", "128", "--neck-filters", "80,128,256", "--json"]) == 0
    n = json.loads(capsys.readouterr().out)
    assert 0.29e9 <= n["flops"] <= YOLOV8N_FLOPS_128  # close to the peer, not far under it
    backbone = next(s for s in n["stages"] if s["name"] == "backbone")
    assert backbone["flops"] < 0.6 * 0.287e9  # narrowed too: the default backbone has 0.287
    assert cli_main(["profile", "csp_detector", "--scale", "x", "--input-size", "64"]) == 2
    assert "scale='x' is not allowed" in capsys.readouterr().err
    assert cli_main(["profile", "csp_detector", "--head-filters", "1,2", "--input-size", "64"]) == 2
    assert "--head-filters='1,2' is not allowed; allowed: three" in capsys.readouterr().err


def test_scales_multiply_the_backbone_and_set_neck_and_head():
    pelee = scale_backbone("csppeleenet", SCALES["n"])
    assert (pelee.stages.growth_rate, pelee.stem.filters) == (24, 24)
    assert pelee.stages.depth == get_config("csppeleenet").stages.depth
    wide = scale_backbone(SMALL_BACKBONE, SCALES["m"])
    assert wide.stages.filters == (24, 40, 64, 80)  # x1.25, up to a multiple of 8
    assert wide.stages.depth == (1, 3, 1, 1)  # x1.33, rounded
    assert scale_backbone("csppeleenet", SCALES["s"]) == "csppeleenet"
    model = CSPDetector(backbone=SMALL_BACKBONE, num_classes=2, input_shape=(SIZE, SIZE, 3),
                        scale="m", head_filters=(8, 16, 24))
    assert model.neck_filters == SCALES["m"].neck_filters  # the scale's
    assert model.head_filters == (8, 16, 24)  # by hand: wins over the scale's
    assert model.get_layer("backbone.stem.conv1.conv").filters == 24
    assert model.get_layer("neck.p5.maxout").output.shape[-1] == 384


def test_scale_and_widths_survive_a_keras_round_trip_in_safe_mode(tmp_path):
    model = CSPDetector(backbone=SMALL_BACKBONE, num_classes=2, input_shape=(SIZE, SIZE, 3),
                        scale="N", neck_filters=(8, 16, 24))
    path = tmp_path / "n.keras"
    model.save(path)
    restored = keras_csp.load_model(path, safe_mode=True)
    config = restored.get_config()
    assert config["scale"] == "n"
    assert tuple(config["neck_filters"]) == (8, 16, 24)
    assert tuple(config["head_filters"]) == SCALES["n"].head_filters
    assert restored.count_params() == model.count_params()
    assert [w.shape for w in restored.weights] == [w.shape for w in model.weights]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scale": "x"}, r"scale='x' is not allowed; allowed: None or 'n', 's', 'm'\."),
        ({"scale": 1}, r"scale=1 is not allowed"),
        ({"neck_filters": (8, 16)}, r"neck_filters=\(8, 16\) is not allowed for CSPDetector"),
        ({"head_filters": (8, 0, 8)}, r"head_filters=\(8, 0, 8\) is not allowed for CSPDetector"),
        ({"scale": "n", "backbone_weights": "w.h5"},
         r"backbone_weights='w.h5' is not allowed with a scale that narrows the backbone"),
    ],
)
def test_bad_scales_and_widths_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CSPDetector(**{"backbone": SMALL_BACKBONE, "num_classes": 2,
                       "input_shape": (SIZE, SIZE, 3), **kwargs})


def test_a_built_backbone_cannot_be_narrowed_by_a_scale():
    built = keras_csp.build_model(SMALL_BACKBONE, include_top=False, input_shape=(SIZE, SIZE, 3))
    with pytest.raises(ValueError, match=r"scale with backbone=.* is not allowed; allowed: a "):
        CSPDetector(backbone=built, num_classes=2, input_shape=(SIZE, SIZE, 3), scale="n")


def _train_args(argv):
    import argparse

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return config_from_args(parser.parse_args(["train", *argv]))


def test_train_flags_parse_scale_and_widths():
    cfg = _train_args(["--task", "detection", "--scale", "n", "--neck-filters", "32,64,96",
                       "--head-filters", "16,32,48"])
    assert (cfg.scale, cfg.neck_filters, cfg.head_filters) == ("n", (32, 64, 96), (16, 32, 48))
    assert cfg.to_dict()["neck_filters"] == [32, 64, 96]
    assert cfg.replace(epochs=2).neck_filters == (32, 64, 96)  # through the dict and back
    with pytest.raises(ValueError, match=r"neck_filters='32,64' is not allowed; allowed: three"):
        _train_args(["--task", "detection", "--neck-filters", "32,64"])
    with pytest.raises(ValueError, match=r"head_filters='8,-1,8' is not allowed"):
        _train_args(["--task", "detection", "--head-filters", "8,-1,8"])
    with pytest.raises(ValueError, match=r"scale='n' is a detector option; allowed: task=.de"):
        _train_args(["--scale", "n"])
    with pytest.raises(SystemExit):  # argparse's choices
        _train_args(["--task", "detection", "--scale", "x"])
