import argparse

import pytest

from keras_csp.train.cli import add_parser, config_from_args
from keras_csp.train.config import FIELDS, TrainConfig, build_config, load_config


def _parse(*argv):
    parser = argparse.ArgumentParser(prog="keras-csp")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_defaults_and_derived_values():
    cfg = TrainConfig()
    assert cfg.task == "classification" and cfg.strategy == "default"
    assert cfg.resolved_learning_rate() == pytest.approx(0.1 * 64 / 256)
    detection = TrainConfig(task="detection", batch_size=32)
    assert detection.resolved_learning_rate() == pytest.approx(0.04)  # 0.02 per 16 images
    assert TrainConfig(task="detection", optimizer="adamw").resolved_learning_rate() == (
        pytest.approx(1e-3 * 64 / 256)
    )
    assert cfg.resolved_weight_decay() == 5e-4
    assert TrainConfig(optimizer="adamw").resolved_weight_decay() == 0.05
    assert cfg.resolved_augment() == "classification"
    assert TrainConfig(aug_mix="cutmix").augmentation_overrides() == {"mix": "cutmix"}


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: cspdarknet53\nfusion: last\nepochs: 3\naug-crop-area: [0.5, 1.0]\n"
        "mixed_precision: bfloat16\njit_compile: true\n"
    )
    cfg = load_config(str(path), epochs=7)
    assert (cfg.model, cfg.fusion, cfg.epochs) == ("cspdarknet53", "last", 7)
    assert cfg.aug_crop_area == (0.5, 1.0) and cfg.jit_compile is True
    args = _parse("--config", str(path), "--epochs", "4", "--no-jit-compile", "--resume",
                  "--aug-jitter-scale", "0.5", "1.5", "--strategy", "mirrored")
    cfg = config_from_args(args)
    assert cfg.epochs == 4 and cfg.jit_compile is False and cfg.resume is True
    assert cfg.aug_jitter_scale == (0.5, 1.5) and cfg.strategy == "mirrored"
    assert cfg.fusion == "last"  # from the file: flags that are not given do not reset it


def test_every_option_is_a_flag():
    parser = argparse.ArgumentParser()
    train = add_parser(parser.add_subparsers())
    flags = {a.dest for a in train._actions}
    assert set(FIELDS) <= flags


def test_unknown_key_lists_the_valid_ones(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 3\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError) as e:
        load_config(str(path))
    message = str(e.value)
    assert "'learning_rat' (did you mean 'learning_rate'?)" in message
    assert "allowed: task, model, part_ratio" in message and "output_dir" in message
    with pytest.raises(ValueError, match="unknown option"):
        build_config({"batchsize": 3})


@pytest.mark.parametrize(
    "options, message",
    [
        ({"fusion": "middle"}, "fusion='middle' is not allowed; allowed: 'full'"),
        ({"strategy": "tpu"}, "strategy='tpu'"),
        ({"epochs": 0}, "epochs=0"),
        ({"epochs": "3"}, "epochs='3' is not allowed; allowed: an integer."),  # not "a int"
        ({"learning_rate": "x"}, "learning_rate='x' is not allowed; allowed: a number."),
        ({"overwrite": "yes"}, "overwrite='yes' is not allowed; allowed: true or false."),
        ({"part_ratio": 1.0}, "part_ratio=1.0"),
        ({"resume": True, "overwrite": True}, "contradict"),
        ({"data": "folder"}, "needs data_path"),
        ({"data": "coco", "data_path": "a.json"}, "needs images_dir"),
        ({"aug_crop_area": [1.0]}, "aug_crop_area"),
        ({"verbose": 3}, "verbose=3"),
    ],
)
def test_bad_values(options, message):
    with pytest.raises(ValueError) as e:
        build_config(options)
    assert message in str(e.value)


def test_bad_yaml_files(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_config(str(tmp_path / "none.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        load_config(str(bad))



def test_the_necks_the_cli_offers_are_the_necks_there_are():
    # train/config.py lists them itself so that `keras-csp train --help` needs no Keras import.
    from keras_csp import necks
    from keras_csp.train import config

    assert set(config.NECKS) == set(necks.NECKS)
