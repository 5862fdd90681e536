"""Dense layers, the partial dense block (csp_stage without conv_exp) and the partial transition."""

import functools

import keras
import numpy as np
import pytest

from keras_csp.layers import (
    basic_block,
    bn_act_conv,
    conv_bn_act,
    csp_stage,
    dense_block,
    dense_layer,
    densenet_transition,
    partial_basic_block,
    pelee_stem_block,
    peleenet_bottleneck,
    peleenet_transition,
    residual_stage,
    two_way_dense_layer,
)

TWO_WAY = functools.partial(two_way_dense_layer, growth_rate=32, bottleneck_width=2)


def names(model):
    return {layer.name for layer in model.layers}


def build(fn, shape=(8, 8, 64)):
    inputs = keras.Input(shape)
    return keras.Model(inputs, fn(inputs))


def partial_dense_stage(fusion, part_ratio=0.5, **kwargs):
    kwargs = {"pool": "avg", "transition_b_filters": "complement", **kwargs}

    def fn(x):
        return csp_stage(
            x, 128, 2, TWO_WAY, "s", part_ratio=part_ratio, fusion=fusion, activation="relu",
            conv_exp=False, **kwargs,
        )

    return build(fn)


@pytest.mark.parametrize(
    "channels,width,expected",
    [(32, 1, 16), (128, 2, 32), (256, 4, 64), (16, 1, 8), (48, 4, 24), (7, 1, 0)],
)
def test_peleenet_bottleneck_rule(channels, width, expected):
    assert peleenet_bottleneck(channels, 32, width) == expected


def test_two_way_dense_layer_grows_by_the_growth_rate_with_peleenet_names():
    model = build(lambda x: TWO_WAY(x, name="l"))
    assert model.output.shape == (None, 8, 8, 64 + 32)
    for branch in ("branch1a", "branch1b", "branch2a", "branch2b", "branch2c"):
        assert {f"l.{branch}.conv", f"l.{branch}.norm"} <= names(model)
    assert model.get_layer("l.branch1a.conv").filters == 32
    assert model.get_layer("l.branch2c.conv").filters == 16


def test_two_way_dense_layer_too_narrow_input():
    with pytest.raises(ValueError, match=r"'l' gets 6 input channels.*allowed: at least 8"):
        build(lambda x: TWO_WAY(x, name="l"), (8, 8, 6))


def test_densenet_layer_is_pre_activation_with_torchvision_names():
    model = build(lambda x: dense_block(x, 2, dense_layer, "b"))
    assert model.output.shape == (None, 8, 8, 64 + 2 * 32)
    units = ("norm", "relu", "conv")
    expected = {f"b.denselayer{j}.{unit}{k}" for j in (1, 2) for unit in units for k in (1, 2)}
    assert expected <= names(model)
    assert model.get_layer("b.denselayer2.conv1").filters == 128
    # The first layer's BN normalizes the block input: 64 channels.
    assert model.get_layer("b.denselayer1.norm1").gamma.shape == (64,)


def test_transitions_return_the_map_before_the_pool():
    inputs = keras.Input((8, 8, 64))
    out, unpooled = densenet_transition(inputs, 32, "t")
    assert out.shape == (None, 4, 4, 32) and unpooled.shape == (None, 8, 8, 32)
    out, unpooled = peleenet_transition(inputs, 64, "p", pool=False)
    assert out is unpooled and out.shape == (None, 8, 8, 64)
    model = keras.Model(inputs, peleenet_transition(inputs, 64, "q")[0])
    assert {"q.conv", "q.norm", "q_pool"} <= names(model)


@pytest.mark.parametrize("size", [56, 50, 49])
def test_pelee_stem_block_is_stride_4_on_any_size(size):
    model = build(lambda x: pelee_stem_block(x, 32), (size, size, 3))
    assert model.output.shape == (None, -(-size // 4), -(-size // 4), 32)
    x = np.random.default_rng(0).normal(size=(1, size, size, 3)).astype("float32")
    assert np.isfinite(model(x).numpy()).all()


def test_norm_name_and_pre_activation_unit():
    model = build(lambda x: conv_bn_act(x, 8, 1, name="u", norm_name="norm"))
    assert {"u.conv", "u.norm", "u.act"} <= names(model)
    model = build(lambda x: bn_act_conv(x, 8, 3, name="v", suffix="2"))
    assert {"v.norm2", "v.relu2", "v.conv2"} <= names(model)
    assert model.output.shape == (None, 8, 8, 8)


def test_partial_dense_block_splits_the_base_layer_directly():
    model = partial_dense_stage("full")
    assert "s.conv_exp.conv" not in names(model)
    split = model.get_layer("s.split")
    assert split.sizes == [32, 32]
    # The dense layers see only the 32 channels of part 2 (and their own outputs).
    assert model.get_layer("s.blocks.0.branch1a.conv").kernel.shape[2] == 32
    assert model.get_layer("s.blocks.1.branch1a.conv").kernel.shape[2] == 64


@pytest.mark.parametrize("fusion", ["full", "first", "last"])
def test_partial_transition_widths_and_pooling(fusion):
    model = partial_dense_stage(fusion)
    # Every fusion ends at `filters` channels, pooled once where the two paths meet.
    assert model.output.shape == (None, 4, 4, 128)
    assert model.get_layer("s.pool").input.shape == (None, 8, 8, 128)
    if fusion != "first":
        # "complement": 128 - 32 bypass channels.
        assert model.get_layer("s.conv_transition_b.conv").filters == 96
    if fusion != "last":
        assert model.get_layer("s.conv_transition.conv").input.shape == (None, 4, 4, 128)


def test_return_unpooled_and_block_names():
    inputs = keras.Input((8, 8, 64))
    out, unpooled = csp_stage(
        inputs, 128, 2, TWO_WAY, "s", conv_exp=False, transition_b_filters="complement",
        pool="avg", block_name="d.layer{}".format, return_unpooled=True,
    )
    assert unpooled.shape == (None, 8, 8, 128) and out.shape == (None, 4, 4, 128)
    assert {"d.layer0.branch1a.conv", "d.layer1.branch2c.conv"} <= names(keras.Model(inputs, out))
    out, unpooled = csp_stage(inputs, 64, 1, basic_block, "r", conv_exp=False, return_unpooled=True)
    assert out is unpooled


def test_pre_activation_transition_unit():
    unit = lambda x, filters, name: bn_act_conv(x, filters, 1, name=name)  # noqa: E731
    model = partial_dense_stage("full", unit=unit)
    expected = {"s.conv_transition_b.norm", "s.conv_transition_b.relu", "s.conv_transition.conv"}
    assert expected <= names(model)
    assert "s.conv_transition.bn" not in names(model)


def test_larger_part_ratio_means_fewer_flops_in_a_partial_dense_block():
    from keras_csp.profiler import profile

    for fusion in ("full", "first", "last"):
        flops = [profile(partial_dense_stage(fusion, r)).flops for r in (0.25, 0.5, 0.75)]
        assert flops[0] > flops[1] > flops[2]


def test_partial_dense_block_trains():
    model = partial_dense_stage("full")
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 64)).astype("float32")
    loss = model.train_on_batch(x, np.zeros((2, 4, 4, 128), "float32"))
    assert np.isfinite(loss)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"pool": "sum"}, r"pool='sum' is not allowed; allowed: None, 'avg' or 'max'"),
        ({"transition_b_filters": "half"}, r"transition_b_filters='half' is not allowed"),
        ({"transition_b_filters": 0}, r"transition_b_filters=0 gives 0 channels"),
    ],
)
def test_bad_partial_transition_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        partial_dense_stage("full", **kwargs)


def test_complement_that_leaves_nothing():
    # filters 16 with a 32-channel bypass.
    with pytest.raises(ValueError, match=r"transition_b_filters='complement' gives -16 channels"):
        build(
            lambda x: csp_stage(
                x, 16, 1, TWO_WAY, "s", conv_exp=False, transition_b_filters="complement"
            )
        )


def test_basic_blocks():
    model = build(lambda x: basic_block(x, "b"))
    assert model.output.shape == (None, 8, 8, 64) and "b.act2" in names(model)
    model = build(lambda x: partial_basic_block(x, 128, "p", strides=2))
    assert model.output.shape == (None, 4, 4, 128) and "p.shortcut" in names(model)
    model = build(lambda x: residual_stage(x, 128, 2, "r", strides=2, block_type="basic"))
    assert model.output.shape == (None, 4, 4, 128)
    assert "r.blocks.1.conv2.conv" in names(model)
    with pytest.raises(ValueError, match=r"block_type='dark' is not allowed in a residual stage"):
        build(lambda x: residual_stage(x, 128, 1, "r", block_type="dark"))
