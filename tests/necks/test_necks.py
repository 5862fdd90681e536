"""The detection necks: output shapes, Maxout/SAM/SPP, `.keras` round trips and bad pyramids."""

import keras
import numpy as np
import pytest

from keras_csp.layers.attention import Maxout, spatial_attention, spatial_pyramid_pooling
from keras_csp.necks import EFM, FPN, GFM, NECKS, PANet, get_neck

# A pyramid as a 64x64 input would give it: P2..P5 at strides 4..32, PeleeNet-like widths.
SIZES = {2: 16, 3: 8, 4: 4, 5: 2}
CHANNELS = {2: 8, 3: 16, 4: 24, 5: 32}


def pyramid_inputs(sizes=SIZES, channels=CHANNELS):
    return {f"P{k}": keras.Input((sizes[k], sizes[k], channels[k]), name=f"P{k}") for k in sizes}


def pyramid_arrays(batch=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        f"P{k}": rng.normal(size=(batch, SIZES[k], SIZES[k], CHANNELS[k])).astype("float32")
        for k in SIZES
    }


@pytest.mark.parametrize("neck", sorted(NECKS))
@pytest.mark.parametrize("attention", [None, "sam", "spp"])
def test_each_neck_returns_p3_p4_p5_of_the_requested_widths(neck, attention):
    outputs = NECKS[neck](pyramid_inputs(), filters=(8, 12, 20), attention=attention)
    assert sorted(outputs) == ["P3", "P4", "P5"]
    assert tuple(outputs["P3"].shape) == (None, 8, 8, 8)
    assert tuple(outputs["P4"].shape) == (None, 4, 4, 12)
    assert tuple(outputs["P5"].shape) == (None, 2, 2, 20)


def test_necks_name_their_layers_under_the_prefix_and_accept_free_sizes():
    inputs = pyramid_inputs(sizes={k: None for k in SIZES})
    outputs = EFM(inputs, filters=8, attention="sam", name="neck")
    model = keras.Model(inputs, outputs)
    assert all(layer.name.startswith(("P", "neck.")) for layer in model.layers)
    names = {layer.name for layer in model.layers}
    # EFM: level s fuses s-1, s, s+1; P5 has no level above it.
    assert {"neck.p3.from_p2.conv", "neck.p3.from_p3.conv", "neck.p3.from_p4.conv"} <= names
    assert "neck.p5.from_p6.conv" not in names and "neck.p5.maxout" in names
    out = model(pyramid_arrays())
    assert out["P3"].shape == (2, 8, 8, 8)


def test_maxout_is_the_elementwise_max_over_channel_groups():
    x = np.arange(2 * 3 * 6, dtype="float32").reshape(1, 2, 3, 6)
    x[..., 1] = 100.0
    y = np.asarray(Maxout(2)(x))
    # Channels (0, 2, 4) form unit 0 and (1, 3, 5) unit 1.
    expected = np.maximum(np.maximum(x[..., 0], x[..., 2]), x[..., 4])
    np.testing.assert_array_equal(y[..., 0], expected)
    np.testing.assert_array_equal(y[..., 1], np.full((1, 2, 3), 100.0))
    a, b = np.random.default_rng(0).normal(size=(2, 1, 4, 4, 5)).astype("float32")
    fused = Maxout(5)(np.concatenate([a, b], -1))
    np.testing.assert_array_equal(np.asarray(fused), np.maximum(a, b))


@pytest.mark.parametrize("num_units", [0, -2, 2.0, True])
def test_maxout_rejects_bad_num_units(num_units):
    with pytest.raises(ValueError, match=rf"num_units={num_units!r} is not allowed; allowed: an"):
        Maxout(num_units)


def test_maxout_needs_a_multiple_of_num_units():
    with pytest.raises(ValueError, match=r"num_units=4 got 6 input channels; allowed: a multiple"):
        Maxout(4, name="m")(keras.Input((2, 2, 6)))


def test_sam_and_spp_shapes():
    x = keras.Input((8, 8, 6))
    assert tuple(spatial_attention(x, "sam").shape) == (None, 8, 8, 6)
    assert tuple(spatial_pyramid_pooling(x, "spp").shape) == (None, 8, 8, 24)
    with pytest.raises(ValueError, match=r"pool_sizes=\(5, 8\) is not allowed; allowed: odd"):
        spatial_pyramid_pooling(x, "spp2", pool_sizes=(5, 8))


@pytest.mark.parametrize("neck,attention", [("efm", "sam"), ("efm", "spp"), ("gfm", None),
                                            ("panet", "sam")])
def test_neck_keras_round_trip_in_safe_mode(neck, attention, tmp_path):
    inputs = pyramid_inputs()
    model = keras.Model(inputs, NECKS[neck](inputs, filters=8, attention=attention))
    path = tmp_path / "neck.keras"
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    x = pyramid_arrays()
    for key in ("P3", "P4", "P5"):
        np.testing.assert_array_equal(np.asarray(model(x)[key]), np.asarray(restored(x)[key]))


def test_missing_levels():
    features = pyramid_inputs()
    del features["P2"]
    with pytest.raises(ValueError, match=r"missing level\(s\) \['P2'\] for EFM; it needs"):
        EFM(features)
    # FPN, PANet and GFM read P3..P5 only, so P2 may be absent for them.
    assert sorted(FPN(features, filters=4)) == ["P3", "P4", "P5"]
    del features["P5"]
    with pytest.raises(ValueError, match=r"missing level\(s\) \['P5'\] for GFM"):
        GFM(features)


def test_mismatched_strides():
    sizes = {**SIZES, 4: 3}
    with pytest.raises(ValueError, match=r"features\['P3'\] is 8x8 and features\['P4'\] is 3x3: "
                                         r"mismatched strides for PANet"):
        PANet(pyramid_inputs(sizes=sizes))


def test_not_a_pyramid_dict():
    with pytest.raises(ValueError, match=r"features=list is not allowed for FPN; allowed: a dict"):
        FPN(list(pyramid_inputs().values()))
    with pytest.raises(ValueError, match=r"features has keys \['C3'\]; allowed: 'P\{k\}'"):
        FPN({**pyramid_inputs(), "C3": keras.Input((8, 8, 4))})


def test_unknown_neck_attention_and_bad_filters():
    with pytest.raises(ValueError, match=r"neck='yolo' is not known; allowed: 'efm', 'gfm'"):
        get_neck("yolo")
    with pytest.raises(ValueError, match=r"attention='cbam' is not allowed; allowed: None, 'sam'"):
        EFM(pyramid_inputs(), attention="cbam")
    with pytest.raises(ValueError, match=r"filters=\(8, 8\) is not allowed for GFM; allowed: a"):
        GFM(pyramid_inputs(), filters=(8, 8))
