"""preprocess_input, decode_predictions and timm's evaluation crop."""

import json
import os

import keras
import numpy as np
import pytest

from keras_csp import preprocessing as pp


def test_constants():
    assert pp.DEFAULT_SIZE == 256 and pp.CROP_PCT == 0.887
    assert pp.IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert pp.IMAGENET_STD == (0.229, 0.224, 0.225)
    assert pp.resize_size() == 288


def test_preprocess_input_scales():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2, 5, 7, 3)).astype(np.uint8)
    expected = (pixels / 255.0 - np.array(pp.IMAGENET_MEAN)) / np.array(pp.IMAGENET_STD)
    out = pp.preprocess_input(pixels)
    assert out.dtype == np.float32 and out.shape == pixels.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pp.preprocess_input(pixels / 255.0, scale="0-1"), expected, atol=1e-5)
    # Tensors stay tensors.
    tensor = pp.preprocess_input(keras.ops.convert_to_tensor(pixels))
    assert not isinstance(tensor, np.ndarray)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor), expected, atol=1e-5)
    # channels_first
    first = pp.preprocess_input(np.moveaxis(pixels, -1, 1), data_format="channels_first")
    np.testing.assert_allclose(np.moveaxis(first, 1, -1), expected, atol=1e-5)


def test_preprocess_input_errors():
    with pytest.raises(ValueError, match=r"scale='0-2' is not allowed; allowed: '0-255'.*'0-1'"):
        pp.preprocess_input(np.zeros((1, 4, 4, 3)), scale="0-2")
    with pytest.raises(ValueError, match=r"expects RGB images with 3 channels"):
        pp.preprocess_input(np.zeros((1, 4, 4, 1)))


def test_class_index_file_and_decode_predictions():
    index = pp.imagenet_class_index()
    assert len(index) == 1000
    assert index[0] == ("n01440764", "tench")
    assert index[999] == ("n15075141", "toilet_tissue")
    assert len({wnid for wnid, _ in index.values()}) == 1000
    path = os.path.join(os.path.dirname(pp.__file__), "assets", "imagenet_class_index.json")
    with open(path, encoding="utf-8") as f:
        raw = json.load(f)
    assert raw["1"] == ["n01443537", "goldfish"]  # Keras' format: {"i": [wnid, name]}

    preds = np.zeros((2, 1000), np.float32)
    preds[0, [3, 1, 999]] = [0.5, 0.9, 0.7]
    preds[1, 0] = 2.0
    decoded = pp.decode_predictions(preds, top=3)
    assert [d[:2] for d in decoded[0]] == [
        ("n01443537", "goldfish"), ("n15075141", "toilet_tissue"), ("n01491361", "tiger_shark")
    ]
    assert decoded[0][0][2] == pytest.approx(0.9)
    assert decoded[1][0][:2] == ("n01440764", "tench")
    assert len(pp.decode_predictions(preds)[1]) == 5
    with pytest.raises(ValueError, match=r"shape \(batch, 1000\); got shape \(1000,\)"):
        pp.decode_predictions(preds[0])
    with pytest.raises(ValueError, match=r"top=0; allowed: an integer from 1 to 1000"):
        pp.decode_predictions(preds, top=0)


def test_center_crop_geometry_matches_timm():
    # Shorter side already 288 (= floor(256 / 0.887)): the resize keeps the image and the crop
    # is torchvision's CenterCrop, offsets round((288 - 256) / 2) = 16 and round((400 - 256) / 2).
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (288, 400, 3)).astype(np.uint8)
    out = pp.center_crop(image)
    assert out.shape == (256, 256, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, image[16:272, 72:328])
    # Portrait, other sizes.
    tall = rng.integers(0, 256, (500, 300, 3)).astype(np.float32)
    assert pp.center_crop(tall, size=224, crop_pct=0.875).shape == (224, 224, 3)
    assert pp.center_crop(tall, interpolation="bicubic").max() <= 255.0


def test_center_crop_with_pil_is_timms_transform():
    image_module = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(1)
    array = rng.integers(0, 256, (288, 400, 3)).astype(np.uint8)
    out = pp.center_crop(image_module.fromarray(array))
    np.testing.assert_array_equal(out, array[16:272, 72:328])
    # A real resize: shorter side 400 -> 288 (PIL bilinear, as torchvision does on PIL images).
    big = image_module.fromarray(rng.integers(0, 256, (400, 600, 3)).astype(np.uint8))
    expected = np.asarray(big.resize((432, 288), image_module.BILINEAR), np.float32)[16:272, 88:344]
    np.testing.assert_array_equal(pp.center_crop(big), expected)
    # Arrays go through keras.ops.image.resize(antialias=True): bilinear is PIL's result up to
    # PIL's rounding to uint8; bicubic is close (the kernels differ at the highest frequencies,
    # and this image is pure noise).
    diff = np.abs(pp.center_crop(big) - pp.center_crop(np.asarray(big)))
    assert diff.max() < 1.5
    diff = np.abs(
        pp.center_crop(big, interpolation="bicubic")
        - pp.center_crop(np.asarray(big), interpolation="bicubic")
    )
    assert diff.mean() < 1.5


def test_center_crop_errors():
    with pytest.raises(ValueError, match=r"interpolation='area'; allowed: bilinear, bicubic, nearest"):
        pp.center_crop(np.zeros((300, 300, 3)), interpolation="area")
    with pytest.raises(ValueError, match=r"expects one RGB image"):
        pp.center_crop(np.zeros((1, 300, 300, 3)))
