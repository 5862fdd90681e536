"""Options that used to be accepted and then broke a run: non-finite numbers (a NaN model written
with rc 0), absurd input sizes (minutes of silence), and a detection backbone without the levels
the neck reads (an error that named no model). Each is refused up front, in one line, and nothing
is written."""

import math
import os

import pytest

from keras_csp.cli import main
from keras_csp.train import fit_detector
from keras_csp.train.config import FIELDS, build_config, field_kind

FLOAT_OPTIONS = [name for name in FIELDS if field_kind(name) in ("float", "pair")]


def test_every_float_option_is_covered():
    # The check reads the annotations: a new float option is checked without being listed.
    assert {"learning_rate", "momentum", "part_ratio", "clipnorm", "aug_crop_area"} <= set(
        FLOAT_OPTIONS
    )


@pytest.mark.parametrize("name", FLOAT_OPTIONS)
@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_refused_for_every_float_option(name, bad):
    value = (0.5, bad) if field_kind(name) == "pair" else bad
    with pytest.raises(ValueError, match=rf"^{name}=.*(nan|inf).* allowed: finite numbers") as e:
        build_config({name: value})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("momentum", [1.0, 1.5, -0.1])
def test_momentum_is_in_zero_to_one(momentum):
    with pytest.raises(ValueError, match=rf"momentum={momentum!r} .*allowed: 0 <= x < 1"):
        build_config({"momentum": momentum})
    assert build_config({"momentum": 0.0}).momentum == 0.0


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--learning-rate", "inf"], r"learning_rate=inf .*allowed: finite numbers"),
        (["--momentum", "nan"], r"momentum=nan .*allowed: finite numbers"),
        (["--input-size", "100000"], r"input_size=100000 .*allowed: an integer from 32 to 4096"),
        (["--input-size", "8"], r"input_size=8 .*allowed: an integer from 32 to 4096"),
    ],
)
def test_the_cli_refuses_in_one_line_and_writes_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert main(["train", "--output-dir", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("keras-csp: error: ") and "\n" not in err
    assert __import__("re").search(message, err), err
    assert not out.exists()


def test_input_sizes_at_the_bounds_are_allowed():
    assert build_config({"input_size": 32}).input_size == 32
    assert build_config({"input_size": 4096}).input_size == 4096


def test_a_backbone_without_the_necks_levels_is_named(tmp_path):
    # cspdarknet_small has three stages (P2..P4): the default neck reads P3..P5.
    out = tmp_path / "run"
    with pytest.raises(ValueError) as e:
        fit_detector(
            model="cspdarknet_small", input_size=64, train_size=8, val_size=8, batch_size=8,
            epochs=1, verbose=0, output_dir=str(out),
        )
    text = str(e.value)
    assert "backbone='ModelConfig'" not in text and "\n" not in text
    assert "backbone='cspdarknet_small' gives levels ['P2', 'P3', 'P4']" in text
    assert "neck='efm' needs ['P2', 'P3', 'P4', 'P5']" in text
    allowed = text.split("allowed backbones: ")[1]
    assert "cspdarknet53" in allowed and "csppeleenet" in allowed
    assert "cspdarknet_small" not in allowed and "cspdarknet_tiny" not in allowed
    assert not os.path.exists(out)


@pytest.mark.parametrize("name", ["cspdarknet_tiny", "cspdarknet_small", "csppeleenet"])
def test_the_levels_listed_are_the_levels_built(name):
    # The allowed list comes from the configs, without building 16 models: it must agree with
    # the builder (a dense family taps before its pooling, the others after a strided stage).
    from keras_csp.detection.backbone import config_levels
    from keras_csp.applications.factory import build_model
    from keras_csp.models.config import get_config

    built = build_model(name, include_top=False, weights=None, input_shape=(64, 64, 3))
    assert sorted(built.output) == config_levels(get_config(name))


@pytest.mark.parametrize("size", ["100000", "0"])
def test_export_refuses_an_absurd_input_size_before_building(tmp_path, capsys, size):
    # 100000 crashed the process (or filled the memory) while building and converting.
    out = tmp_path / "model.tflite"
    assert main(["export", "cspdarknet_tiny", "--input-size", size, "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"keras-csp: error: --input-size={size} is not allowed; allowed: an integer from 1 to "
        "4096, or no --input-size for the model's own size."
    )
    assert not os.listdir(tmp_path)
