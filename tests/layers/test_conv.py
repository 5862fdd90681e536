import keras
import numpy as np
import pytest

from keras_csp.layers import EdgePadMaxPooling2D, conv_bn_act
from keras_csp.layers.conv import BN_EPSILON


def torch_style_conv(x, kernel, stride, pad):
    """Reference: symmetric zero padding then a 'valid' strided conv (PyTorch semantics)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    k = kernel.shape[0]
    out_h = (x.shape[1] - k) // stride + 1
    out_w = (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[-1]), np.float64)
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
            out[:, i, j] = np.einsum("bhwc,hwco->bo", patch, kernel)
    return out


@pytest.mark.parametrize("size,kernel,stride", [(8, 3, 2), (9, 3, 2), (11, 7, 2), (8, 3, 1)])
def test_strided_conv_matches_pytorch_symmetric_padding(size, kernel, stride):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, size, size, 4)).astype("float32")
    inputs = keras.Input((size, size, 4))
    model = keras.Model(inputs, conv_bn_act(inputs, 5, kernel, stride, activation=None, name="c"))
    w = rng.normal(size=(kernel, kernel, 4, 5)).astype("float32")
    model.get_layer("c.conv").set_weights([w])
    pad = ((stride - 1) + (kernel - 1)) // 2
    expected = torch_style_conv(x, w, stride, pad) / np.sqrt(1 + BN_EPSILON)
    got = model(x, training=False).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)

    if stride == 2 and size % 2 == 0:
        # Keras' own "same" pads bottom/right only, which is why conv_bn_act does not use it.
        same = keras.layers.Conv2D(5, kernel, stride, padding="same", use_bias=False)
        same.build((1, size, size, 4))
        same.set_weights([w])
        assert np.abs(same(x).numpy() - expected * np.sqrt(1 + BN_EPSILON)).max() > 1e-2


def test_conv_unit_layer_names_and_activation():
    inputs = keras.Input((8, 8, 3))
    out = conv_bn_act(inputs, 4, 3, 2, name="stem.conv1")
    model = keras.Model(inputs, out)
    names = [layer.name for layer in model.layers[1:]]
    assert names == ["stem.conv1.pad", "stem.conv1.conv", "stem.conv1.bn", "stem.conv1.act"]
    assert model.get_layer("stem.conv1.act").negative_slope == pytest.approx(0.01)
    assert model.get_layer("stem.conv1.bn").epsilon == pytest.approx(1e-5)
    assert model.get_layer("stem.conv1.conv").use_bias is False


def test_groups_must_divide_channels():
    inputs = keras.Input((8, 8, 64))
    with pytest.raises(ValueError, match=r"groups=32 does not divide the 48 output channels"):
        conv_bn_act(inputs, 48, 3, groups=32, name="bad")
    with pytest.raises(ValueError, match=r"groups=3 does not divide the 64 input channels"):
        conv_bn_act(inputs, 48, 3, groups=3, name="bad")


def test_unknown_activation():
    inputs = keras.Input((8, 8, 3))
    with pytest.raises(ValueError, match=r"activation='gelu2' is not supported; allowed"):
        conv_bn_act(inputs, 4, activation="gelu2", name="c")


@pytest.mark.parametrize("size", [8, 9, 13])
def test_edge_pad_max_pool_equals_minus_inf_padding(size):
    rng = np.random.default_rng(1)
    # Negative values everywhere: zero padding would win at the borders, -inf padding must not.
    x = -np.abs(rng.normal(size=(2, size, size, 3))).astype("float32") - 1.0
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
    out = (size + 2 - 3) // 2 + 1
    expected = np.array(
        [
            [padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(1, 2)) for j in range(out)]
            for i in range(out)
        ]
    ).transpose(2, 0, 1, 3)
    got = EdgePadMaxPooling2D(3, 2, 1)(x).numpy()
    np.testing.assert_array_equal(got, expected)
    assert np.isfinite(got).all()


def test_edge_pad_max_pool_rejects_padding_as_wide_as_the_window():
    with pytest.raises(ValueError, match=r"padding=3 is not allowed with pool_size=3"):
        EdgePadMaxPooling2D(3, 2, 3)
