"""Every bad argument gets a ValueError naming the argument, the value and what is allowed."""

import dataclasses

import numpy as np
import pytest

import keras_csp
from keras_csp.models.config import StagesConfig


@pytest.mark.parametrize("part_ratio", [0, 1, -0.25, float("nan"), 1.5])
def test_part_ratio_outside_the_open_interval(part_ratio):
    with pytest.raises(ValueError, match=r"part_ratio=.* is not allowed; allowed: a number strictly"):
        keras_csp.CSPResNeXt50(part_ratio=part_ratio)


def test_part_ratio_that_leaves_a_path_without_channels():
    # CSPResNeXt50's first stage splits 256 channels in groups of 32: γ=0.05 leaves no bypass.
    with pytest.raises(ValueError, match=r"part_ratio=0.05 leaves 0 bypass and 256 block channels"):
        keras_csp.CSPResNeXt50(part_ratio=0.05)
    with pytest.raises(ValueError, match=r"part_ratio=0.999 leaves .* and 0 block channels"):
        keras_csp.CSPDarknet53(part_ratio=0.999)


def test_unknown_fusion():
    with pytest.raises(
        ValueError, match=r"fusion='fusion_last' does not exist; allowed: 'full', 'first', 'last', 'none'"
    ):
        keras_csp.CSPResNet50(fusion="fusion_last")


def test_channels_not_divisible_by_groups(tiny_config):
    config = dataclasses.replace(
        tiny_config, stages=dataclasses.replace(tiny_config.stages, groups=32, filters=(64, 128))
    )
    # The 16-channel stem output cannot feed a conv_down with 32 groups.
    with pytest.raises(ValueError, match=r"groups=32 does not divide the 16 input channels of 'stages.0"):
        keras_csp.build_model(config)


def test_input_channels_must_be_rgb_with_weights():
    with pytest.raises(ValueError, match=r"input_shape=\(64, 64, 1\) has 1 channels, but weights="):
        keras_csp.CSPResNeXt50(weights="imagenet", input_shape=(64, 64, 1))
    # Without weights any channel count works.
    assert keras_csp.CSPDarknet53(input_shape=(64, 64, 1), classes=2).input_shape == (None, 64, 64, 1)


@pytest.mark.parametrize("shape", [(16, 16, 3), (64, 31, 3)])
def test_input_smaller_than_the_total_stride(shape):
    with pytest.raises(ValueError, match=r"smaller than the network's total stride; allowed: height"):
        keras_csp.CSPDarknet53(input_shape=shape)


def test_input_shape_with_wrong_rank():
    with pytest.raises(ValueError, match=r"input_shape=\(64, 64\) must have 3 entries"):
        keras_csp.Darknet53(input_shape=(64, 64))


@pytest.mark.parametrize("classes", [0, -3, 2.5, True])
def test_classes_below_one_with_top(classes):
    with pytest.raises(ValueError, match=r"classes=.* is not allowed with include_top=True"):
        keras_csp.ResNet50(classes=classes)
    # Without the top, classes is ignored.
    keras_csp.ResNet50(include_top=False, classes=0, input_shape=(32, 32, 3))


def test_unknown_pooling():
    with pytest.raises(ValueError, match=r"pooling='mean' is not allowed; allowed: None, 'avg'"):
        keras_csp.ResNeXt50(include_top=False, pooling="mean")


def test_weights_file_of_another_architecture_leaves_the_model_unchanged(tmp_path):
    other = tmp_path / "cspresnet50.weights.h5"
    keras_csp.CSPResNet50(input_shape=(64, 64, 3)).save_weights(other)
    with pytest.raises(ValueError) as info:
        keras_csp.CSPResNeXt50(weights=str(other), input_shape=(64, 64, 3))
    message = str(info.value)
    assert f"weights={str(other)!r} does not fit" in message
    assert "shape mismatch" in message and "expects" in message


def test_corrupt_and_missing_weights_files(tmp_path):
    corrupt = tmp_path / "broken.weights.h5"
    corrupt.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=r"is not a readable .weights.h5 file"):
        keras_csp.Darknet53(weights=str(corrupt))
    with pytest.raises(ValueError, match=r"is not a file; allowed: None"):
        keras_csp.Darknet53(weights=str(tmp_path / "nope.weights.h5"))


def test_stage_config_lists_must_cover_every_stage():
    stages = StagesConfig(filters=(8, 16), depth=(1, 1), bottle_ratio=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match=r"bottle_ratio=\(0.5, 0.5, 0.5\) needs 2 entries"):
        stages.per_stage("bottle_ratio")
