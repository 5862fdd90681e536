"""DenseNet, PeleeNet, ResNet-10 and their CSP variants (the paper's Tables 1 and 3).

Parameter counts and FLOPs come from the profiler, which builds at a fixed shape without running;
forward passes use small inputs.
"""

import numpy as np
import pytest

import keras_csp
from keras_csp import cli
from keras_csp.applications import EXTRA_APPLICATIONS
from keras_csp.models.config import get_config

# Trainable parameters with 1000 classes, and Keras `count_params()` (with BN statistics):
# torchvision/timm DenseNets, Robert-JunWang's PeleeNet, the authors' resnet10.cfg (conv weights,
# 2 per BN channel and the classifier: 5.24M in Table 3).
EXACT = {
    "densenet121": (7_978_856, 8_062_504),
    "densenet201": (20_013_928, 20_242_984),
    "peleenet": (2_802_248, 2_811_976),
    "resnet10": (5_244_968, 5_248_936),
}
# The CSP variants have no reference; these pin the documented layouts (γ=0.5, fusion "full").
PINNED = {
    "csppeleenet": 2_643_656,
    "cspdensenet121": 7_050_728,
    "cspdensenet201": 17_749_224,
    "cspresnet10": 4_129_448,
}
PAIRS = {"csppeleenet": "peleenet", "cspdensenet121": "densenet121",
         "cspdensenet201": "densenet201", "cspresnet10": "resnet10"}
# The paper's input sizes: 224 for the PeleeNet family, the cfg's 256 for ResNet-10.
SIZE = {name: (256 if "resnet10" in name else 224) for name in EXTRA_APPLICATIONS}

# Models at the paper's sizes and their profiles, built once for the whole module.
_MODELS = {}
_PROFILES = {}


def model(name, **kwargs):
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _MODELS:
        size = SIZE[name]
        _MODELS[key] = keras_csp.build_model(name, input_shape=(size, size, 3), **kwargs)
    return _MODELS[key]


def profile(name, **kwargs):
    key = (name, tuple(sorted(kwargs.items())))
    if key not in _PROFILES:
        _PROFILES[key] = keras_csp.profile(model(name, **kwargs))
    return _PROFILES[key]


def ratio(name, **kwargs):
    return profile(name, **kwargs).flops / profile(PAIRS[name]).flops


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_parameter_counts(name):
    assert profile(name).params == EXACT[name][0]
    assert model(name).count_params() == EXACT[name][1]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_csp_variant_parameter_counts(name):
    assert profile(name).params == PINNED[name]


def test_baseline_flops_match_the_paper():
    # PeleeNet: 508M multiply-adds at 224 (paper 1.017 BFLOPs); ResNet-10: 2.273 BFLOPs at 256.
    assert profile("peleenet").flops / 1e9 == pytest.approx(1.016, abs=0.002)
    assert profile("resnet10").flops / 1e9 == pytest.approx(2.273, abs=0.002)


# Table 1 (FLOPs / PeleeNet's at γ=0.5): CSPPeleeNet 0.888, fusion last 0.804, first 0.755.
@pytest.mark.parametrize("fusion,target", [("full", 0.87), ("last", 0.79), ("first", 0.74)])
def test_table1_flops_ratios(fusion, target):
    assert ratio("csppeleenet", part_ratio=0.5, fusion=fusion) == pytest.approx(target, abs=0.04)


def test_csppeleenet_defaults_are_the_table1_model():
    table1 = profile("csppeleenet", part_ratio=0.5, fusion="full")
    assert profile("csppeleenet").flops == table1.flops
    assert ratio("csppeleenet") == pytest.approx(0.87, abs=0.04)


def test_table1_ordering_across_all_nine_cells():
    cells = {
        (fusion, gamma): ratio("csppeleenet", part_ratio=gamma, fusion=fusion)
        for fusion in ("full", "last", "first")
        for gamma in (0.25, 0.5, 0.75)
    }
    for fusion in ("full", "last", "first"):
        assert cells[fusion, 0.25] > cells[fusion, 0.5] > cells[fusion, 0.75]
    for gamma in (0.25, 0.5, 0.75):
        assert cells["first", gamma] < cells["last", gamma] < cells["full", gamma] < 1.0


def test_table3_cspresnet10_flops_ratio():
    # 1.905 / 2.273 = 0.838.
    assert ratio("cspresnet10") == pytest.approx(0.84, abs=0.04)


@pytest.mark.parametrize("name,expected", [("cspdensenet121", 0.921), ("cspdensenet201", 0.914)])
def test_cspdensenet_flops_ratio(name, expected):
    # No paper number: these pin the documented layout.
    assert ratio(name) == pytest.approx(expected, abs=0.005)


def test_fusion_none_gives_the_baseline():
    assert profile("csppeleenet", fusion="none").params == EXACT["peleenet"][0]
    assert profile("csppeleenet", fusion="none").flops == profile("peleenet").flops


LEVELS = {
    "resnet10": {"P2": 64, "P3": 128, "P4": 256, "P5": 512},
    "cspresnet10": {"P2": 64, "P3": 128, "P4": 256, "P5": 512},
    "densenet121": {"P2": 128, "P3": 256, "P4": 512, "P5": 1024},
    "cspdensenet121": {"P2": 128, "P3": 256, "P4": 512, "P5": 1024},
    "densenet201": {"P2": 128, "P3": 256, "P4": 896, "P5": 1920},
    "cspdensenet201": {"P2": 128, "P3": 256, "P4": 896, "P5": 1920},
    "peleenet": {"P2": 128, "P3": 256, "P4": 512, "P5": 704},
    "csppeleenet": {"P2": 128, "P3": 256, "P4": 512, "P5": 704},
}


def level_sizes(name, size):
    """ResNet-10 rounds up at every stride; the dense families' 2x2 average pools round down."""
    if "resnet10" in name:
        return {k: -(-size // 2 ** k) for k in (2, 3, 4, 5)}
    sizes = {2: -(-size // 4)}
    for k in (3, 4, 5):
        sizes[k] = sizes[k - 1] // 2
    return sizes


# DenseNet-201's levels differ from 121's only in width (P4 896, P5 1920); not rebuilt here.
@pytest.mark.parametrize("name", sorted(n for n in EXTRA_APPLICATIONS if "201" not in n))
def test_pyramid_levels(name):
    backbone = EXTRA_APPLICATIONS[name](include_top=False, input_shape=(97, 75, 3))
    assert sorted(backbone.output) == ["P2", "P3", "P4", "P5"]
    rows, cols = level_sizes(name, 97), level_sizes(name, 75)
    for level, channels in LEVELS[name].items():
        k = int(level[1:])
        assert tuple(backbone.output[level].shape) == (None, rows[k], cols[k], channels), level


# Forward passes at two sizes (one model with a free input size) for models cheap to run on CPU.
@pytest.mark.parametrize("name", ["csppeleenet", "cspresnet10", "cspdensenet121"])
def test_forward_shapes_at_two_sizes(name):
    classifier = EXTRA_APPLICATIONS[name](classes=7)
    backbone = EXTRA_APPLICATIONS[name](include_top=False)
    assert classifier.input_shape == backbone.input_shape == (None, None, None, 3)
    for h, w in [(64, 64), (97, 75)]:
        x = np.random.default_rng(0).uniform(size=(2, h, w, 3)).astype("float32")
        probs = classifier(x, training=False).numpy()
        assert probs.shape == (2, 7)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        features = backbone(x, training=False)
        rows, cols = level_sizes(name, h), level_sizes(name, w)
        for level, channels in LEVELS[name].items():
            k = int(level[1:])
            assert tuple(features[level].shape) == (2, rows[k], cols[k], channels), level


def test_global_pooling_outputs():
    pooled = keras_csp.CSPPeleeNet(include_top=False, pooling="avg", input_shape=(64, 64, 3))
    assert pooled.output.shape == (None, 704)
    pooled = keras_csp.DenseNet121(include_top=False, pooling="max", input_shape=(64, 64, 3))
    assert pooled.output.shape == (None, 1024)
    assert pooled.layers[-1].name == "global_pool" and pooled.layers[-2].name == "features.relu5"


def test_reference_layer_names():
    dense = {layer.name for layer in model("densenet121").layers}
    assert {
        "features.conv0", "features.norm0", "features.pool0",
        "features.denseblock4.denselayer16.conv2", "features.transition3.conv",
        "features.transition3.pool", "features.norm5", "classifier",
    } <= dense
    pelee = {layer.name for layer in model("peleenet").layers}
    assert {
        "features.stemblock.stem1.conv", "features.stemblock.stem3.norm",
        "features.denseblock3.denselayer8.branch2c.conv", "features.transition4.conv",
        "features.transition3_pool", "classifier",
    } <= pelee
    csp = {layer.name for layer in model("csppeleenet").layers}
    # Stage 1 is PeleeNet's; stages 2-4 are partial dense blocks with partial transitions.
    assert {
        "features.transition1.conv", "features.csp2.split",
        "features.denseblock2.denselayer1.branch1a.conv", "features.csp2.conv_transition_b.conv",
        "features.csp2.pool", "features.csp4.conv_transition.norm",
    } <= csp
    assert "features.transition2.conv" not in csp and "features.csp4.pool" not in csp
    # The last stage always fuses first: no partial transition where nothing pools.
    assert "features.csp4.conv_transition_b.conv" not in csp
    dense = {layer.name for layer in model("cspdensenet121", fusion="last").layers}
    assert {
        "features.denseblock1.denselayer6.conv2", "features.transition1.pool",
        "features.csp3.conv_transition_b.norm", "features.denseblock4.denselayer16.conv2",
        "features.norm5",
    } <= dense
    dropped = ("features.csp3.conv_transition.", "features.csp4.conv_transition")
    assert not any(n.startswith(dropped) for n in dense)


def test_keras_round_trip_in_safe_mode(tmp_path):
    x = np.random.default_rng(1).uniform(size=(1, 64, 64, 3)).astype("float32")
    for name in ("csppeleenet", "cspresnet10"):
        net = EXTRA_APPLICATIONS[name](include_top=False, input_shape=(64, 64, 3), fusion="last")
        path = tmp_path / f"{name}.keras"
        net.save(path)
        loaded = keras_csp.load_model(path, safe_mode=True)
        expected, got = net(x, training=False), loaded(x, training=False)
        assert sorted(got) == ["P2", "P3", "P4", "P5"]
        for level in expected:
            np.testing.assert_allclose(
                got[level].numpy(), expected[level].numpy(), rtol=1e-5, atol=1e-5
            )


def test_one_training_step():
    net = keras_csp.CSPPeleeNet(input_shape=(64, 64, 3), classes=4, part_ratio=0.25, fusion="first")
    # Eager: one step does not pay for tracing a graph.
    net.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", run_eagerly=True)
    before = [w.numpy().copy() for w in net.trainable_weights]
    rng = np.random.default_rng(2)
    loss = net.train_on_batch(rng.uniform(size=(2, 64, 64, 3)).astype("float32"), np.array([0, 3]))
    assert np.isfinite(loss)
    assert all(not np.allclose(b, w.numpy()) for b, w in zip(before, net.trainable_weights))


def test_cli_profiles_the_new_names(capsys):
    assert cli.main(["profile", "cspPeleeNet", "--part-ratio", "0.5", "--fusion", "last",
                     "--input-size", "224", "--json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "csppeleenet" and out["input_shape"] == [224, 224, 3]
    assert out["flops"] == profile("csppeleenet", part_ratio=0.5, fusion="last").flops
    assert get_config("CSPPeleeNet") is get_config("csppeleenet")
    assert get_config("cspPeleeNet").is_csp and not get_config("PeleeNet").is_csp
    assert get_config("CSPResNet10").is_csp and get_config("cspdensenet201").is_csp


@pytest.mark.parametrize(
    "build,match",
    [
        # Stage 2 of CSPPeleeNet splits 128 channels: γ=0.999 leaves none to the dense path.
        (
            lambda: keras_csp.CSPPeleeNet(part_ratio=0.999),
            r"part_ratio=0.999 leaves 128 bypass and 0 block",
        ),
        # ... and γ=0.95 leaves 6, too few for PeleeNet's bottleneck rule.
        (
            lambda: keras_csp.CSPPeleeNet(part_ratio=0.95),
            r"part_ratio=0.95 leaves 6 of the 128 channels of 'features.csp2'.*"
            r"allowed: a smaller part_ratio",
        ),
        # CSPDenseNet's first split (stage 2) has 128 channels.
        (
            lambda: keras_csp.CSPDenseNet121(part_ratio=0.001),
            r"part_ratio=0.001 leaves 0 bypass and 128 block",
        ),
        (
            lambda: keras_csp.CSPResNet10(part_ratio=1.0),
            r"part_ratio=1.0 is not allowed; allowed: a number",
        ),
        (
            lambda: keras_csp.CSPPeleeNet(fusion="partial"),
            r"fusion='partial' does not exist; allowed: 'full', 'first', 'last', 'none'",
        ),
        (lambda: keras_csp.PeleeNet(input_shape=(24, 64, 3)), r"input_shape=\(24, 64, 3\) is"),
        (lambda: keras_csp.DenseNet121(include_top=False, pooling="sum"), r"pooling='sum' is not"),
        (lambda: keras_csp.ResNet10(classes=0), r"classes=0 is not allowed"),
        (lambda: get_config("csppeleenet_v2"), r"model='csppeleenet_v2' is not a known"),
    ],
)
def test_bad_input(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_cli_rejects_csp_options_for_plain_models(capsys):
    assert cli.main(["profile", "PeleeNet", "--part-ratio", "0.5"]) == 2
    assert "no CSP stages" in capsys.readouterr().err
