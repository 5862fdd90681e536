"""The paper's FLOPs table, reproduced by the analytic profiler at 256x256."""

import json

import pytest

import keras_csp
from keras_csp.cli import main

SIZE = (256, 256, 3)


@pytest.fixture(scope="module")
def gflops():
    names = ["cspresnext50", "resnext50", "cspdarknet53", "darknet53", "cspresnet50", "resnet50"]
    return {n: keras_csp.profile(n, SIZE).flops / 1e9 for n in names}


@pytest.mark.parametrize(
    "csp,base,ratio,tol",
    [("cspresnext50", "resnext50", 0.78, 0.02), ("cspdarknet53", "darknet53", 0.70, 0.02),
     ("cspresnet50", "resnet50", 0.90, 0.03)],
)
def test_flops_ratios_match_the_paper(gflops, csp, base, ratio, tol):
    assert gflops[csp] / gflops[base] == pytest.approx(ratio, abs=tol)


# Darknet BFLOPs at 256x256 (architectures.md §6: csresnext50, resnext50, csdarknet53, darknet53,
# csresnet50, resnet50).
@pytest.mark.parametrize(
    "name,darknet",
    [("cspresnext50", 7.93), ("resnext50", 10.11), ("cspdarknet53", 13.07), ("darknet53", 18.57),
     ("cspresnet50", 8.97), ("resnet50", 10.0)],
)
def test_absolute_bflops_within_3_percent_of_darknet(gflops, name, darknet):
    assert gflops[name] == pytest.approx(darknet, rel=0.03)


def test_profile_counts_conv_flops_and_memory_by_hand():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="stem.conv")(inputs)
    x = keras.layers.Conv2D(8, 1, groups=2, name="stages.0.conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="head.pool")(x)
    x = keras.layers.Dense(5, name="head.fc")(x)
    p = keras_csp.profile(keras.Model(inputs, x))
    assert [s.name for s in p.stages] == ["stem", "stages.0", "head"]
    assert p.stage("stem").flops == 2 * 8 * 8 * 4 * (3 * 3 * 3)
    assert p.stage("stages.0").flops == 2 * 8 * 8 * 8 * (4 // 2)
    assert p.stage("head").flops == 2 * 8 * 5
    assert p.stage("stages.0").params == 1 * 1 * 2 * 8 + 8
    assert p.stage("stem").activation_bytes == 8 * 8 * 4 * 4
    assert p.activation_bytes == 4 * (8 * 8 * 4 + 8 * 8 * 8 + 8 + 5)


def test_profile_of_a_model_with_free_input_size_needs_a_shape():
    model = keras_csp.CSPDarknet53(include_top=False)
    with pytest.raises(ValueError, match=r"pass a concrete \(height, width, channels\)"):
        keras_csp.profile(model)
    assert keras_csp.profile(model, (64, 64, 3)).flops == keras_csp.profile(
        "cspdarknet53", (64, 64, 3), include_top=False
    ).flops


def test_cli_profile_table_and_json(capsys):
    assert main(["profile", "cspresnext50", "--part-ratio", "0.25", "--fusion", "last",
                 "--input-size", "64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = keras_csp.profile("cspresnext50", (64, 64, 3), part_ratio=0.25, fusion="last")
    assert report["flops"] == expected.flops and report["params"] == expected.params
    assert main(["profile", "darknet53", "--input-size", "64"]) == 0
    out = capsys.readouterr().out
    assert "stages.4" in out and "41,609,928" in out


def test_cli_rejects_bad_arguments(capsys):
    assert main(["profile", "cspresnext50", "--fusion", "middle"]) == 2
    assert "fusion='middle' does not exist" in capsys.readouterr().err
    assert main(["profile", "darknet53", "--part-ratio", "0.3"]) == 2
    assert "has no CSP stages" in capsys.readouterr().err
    assert main(["profile", "vgg16"]) == 2
    assert "model='vgg16' is not a known architecture" in capsys.readouterr().err
    for model in ("cspresnext50", "csp_detector"):  # 0 profiled at the default size
        assert main(["profile", model, "--input-size", "0"]) == 2
        err = capsys.readouterr().err
        assert "--input-size=0 is not allowed; allowed: an integer >= 1" in err


def test_torchvision_style_names_are_grouped_by_stage_number():
    from keras_csp.profiler import stage_of

    assert stage_of("features.denseblock2.denselayer1.conv1") == "features.2"
    assert stage_of("features.transition2_pool") == "features.2"
    assert stage_of("features.csp3.conv_transition.conv") == "features.3"
    assert stage_of("features.conv0") == "features.0"
    assert stage_of("features.stemblock.stem1.conv") == "features.stemblock"
    assert stage_of("stages.10.blocks.0.conv1.conv") == "stages.10"
    assert stage_of("classifier") == "classifier"
    p = keras_csp.profile("peleenet", (224, 224, 3))
    assert [s.name for s in p.stages][:5] == [
        "features.stemblock", "features.1", "features.2", "features.3", "features.4"
    ]
