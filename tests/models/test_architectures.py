"""Parameter counts against the references, output shapes, and pyramid outputs."""

import numpy as np
import pytest

import keras_csp
from keras_csp.applications import APPLICATIONS

# Trainable parameters with 1000 classes (timm `sum(p.numel())`), and Keras `count_params()`,
# which also counts the BN moving statistics (`../shared/reference/architectures.md` §3.3, §10).
EXACT = {
    "cspresnet50": (21_616_168, 21_656_488),
    "cspresnext50": (20_569_896, 20_627_368),
    "cspdarknet53": (27_642_184, 27_677_512),
    "darknet53": (41_609_928, 41_645_640),
}
# The authors' Darknet cfgs (trainable-equivalent counts); the issue asks for 0.5%.
DARKNET_BASELINES = {"resnet50": 22_780_456, "resnext50": 22_252_328}

# timm's per-stage breakdown for one model, to pin the stage layout (stem, s0..s3, head).
CSPRESNEXT50_STAGES = [9_536, 214_016, 933_376, 4_920_320, 12_443_648, 2_049_000]


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_parameter_counts(name):
    model = APPLICATIONS[name]()
    assert trainable(model) == EXACT[name][0]
    assert model.count_params() == EXACT[name][1]


@pytest.mark.parametrize("name", sorted(DARKNET_BASELINES))
def test_darknet_baseline_parameter_counts(name):
    count = trainable(APPLICATIONS[name]())
    assert abs(count - DARKNET_BASELINES[name]) / DARKNET_BASELINES[name] < 0.005


def test_cspresnext50_per_stage_parameters_match_timm():
    p = keras_csp.profile("cspresnext50")
    assert [s.params for s in p.stages] == CSPRESNEXT50_STAGES


# Stage strides: ResNe(X)t-style stems reach stride 4 before stage 0; Darknets stay at stride 1.
LEVELS = {
    "cspresnet50": {"P2": 128, "P3": 256, "P4": 512, "P5": 1024},
    "cspresnext50": {"P2": 256, "P3": 512, "P4": 1024, "P5": 2048},
    "cspdarknet53": {"P1": 64, "P2": 128, "P3": 256, "P4": 512, "P5": 1024},
    "darknet53": {"P1": 64, "P2": 128, "P3": 256, "P4": 512, "P5": 1024},
    "resnet50": {"P2": 256, "P3": 512, "P4": 1024, "P5": 2048},
    "resnext50": {"P2": 256, "P3": 512, "P4": 1024, "P5": 2048},
}


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
@pytest.mark.parametrize("size", [(64, 64), (97, 75)])
def test_output_shapes(name, size):
    h, w = size
    x = np.random.default_rng(0).uniform(size=(2, h, w, 3)).astype("float32")
    classifier = APPLICATIONS[name](input_shape=(h, w, 3), classes=7)
    probs = classifier(x, training=False).numpy()
    assert probs.shape == (2, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)

    backbone = APPLICATIONS[name](include_top=False, input_shape=(h, w, 3))
    features = backbone(x, training=False)
    assert sorted(features) == sorted(LEVELS[name])
    for level, channels in LEVELS[name].items():
        stride = 2 ** int(level[1:])
        assert tuple(features[level].shape) == (2, -(-h // stride), -(-w // stride), channels)

    pooled = APPLICATIONS[name](include_top=False, pooling="max", input_shape=(h, w, 3))
    assert tuple(pooled(x).shape) == (2, LEVELS[name]["P5"])


def test_any_input_size_by_default_and_logits_head():
    model = keras_csp.CSPDarknet53(classes=3, classifier_activation=None)
    assert model.input_shape == (None, None, None, 3)
    out = model(np.ones((1, 40, 72, 3), "float32")).numpy()
    assert out.shape == (1, 3) and not np.allclose(out.sum(), 1.0)


def test_input_tensor():
    import keras

    inputs = keras.Input((64, 64, 3), name="my_images")
    model = keras_csp.CSPResNet50(include_top=False, input_tensor=inputs)
    assert model.inputs[0] is inputs
    assert model.output["P5"].shape == (None, 2, 2, 1024)


@pytest.mark.parametrize("fusion", ["first", "last", "none"])
def test_fusion_variants_of_a_reference_model(fusion):
    ref = keras_csp.profile("cspresnext50", (64, 64, 3))
    variant = keras_csp.profile("cspresnext50", (64, 64, 3), fusion=fusion)
    if fusion == "none":
        assert variant.flops > ref.flops
    else:
        assert variant.flops < ref.flops
