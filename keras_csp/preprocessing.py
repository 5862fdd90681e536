"""Input preprocessing and label decoding for the ImageNet weights (timm's evaluation recipe).

The checkpoints behind `weights="imagenet"` were trained and evaluated by timm on RGB images
normalized with the ImageNet mean and standard deviation, at 256x256 after resizing the shorter side
to 256 / 0.887 = 288 pixels and center-cropping:

    image = center_crop(PIL.Image.open(path).convert("RGB"))  # 256x256x3, values 0-255
    x = preprocess_input(image[None])  # (1, 256, 256, 3), normalized
    preds = keras_csp.CSPDarknet53(weights="imagenet").predict(x)
    decode_predictions(preds, top=5)  # [[("n02123045", "tabby", 0.71), ...]]

`decode_predictions` works offline: the 1000 class names ship with the package
(`keras_csp/assets/imagenet_class_index.json`, written by `tools/make_imagenet_classes.py`).
"""

import functools
import json
import math
from importlib import resources

import numpy as np

from keras_csp.images import DEFAULT_CROP_FRACTION, IMAGENET_MEAN, IMAGENET_STD  # noqa: F401

# timm's pretrained cfg of all four checkpoints: input 256x256, crop_pct 0.887.
DEFAULT_SIZE = 256
CROP_PCT = DEFAULT_CROP_FRACTION
# What the input's values range over -> the divisor that brings them to 0-1.
SCALES = {"0-255": 255.0, "0-1": 1.0}
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
CLASS_INDEX_FILE = "imagenet_class_index.json"


def _check_scale(scale):
    if scale not in SCALES:
        raise ValueError(
            f"scale={scale!r} is not allowed; allowed: '0-255' (pixel values, e.g. uint8 images or "
            "keras.utils.load_img) or '0-1' (images already divided by 255)."
        )
    return SCALES[scale]


def preprocess_input(x, scale="0-255", data_format=None):
    """Normalizes RGB images the way the ImageNet checkpoints expect: (x / range - mean) / std.

    Args:
        x: images, a numpy array or a backend tensor, RGB, with the channel axis last (or first
            with `data_format="channels_first"`): `(..., H, W, 3)`.
        scale: the range of the input values. `"0-255"` (default): pixel values such as uint8
            images, `keras.utils.load_img` or `center_crop` output. `"0-1"`: images already
            divided by 255 (e.g. `tf.image.convert_image_dtype` output).
        data_format: `"channels_last"` (default, Keras' setting) or `"channels_first"`.

    Returns:
        float32 values with per-channel mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)
        removed: a numpy array for numpy input, a tensor for tensor input.
    """
    import keras

    divisor = _check_scale(scale)
    data_format = data_format or keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            f"data_format={data_format!r}; allowed: 'channels_last' or 'channels_first'."
        )
    axis = -1 if data_format == "channels_last" else -3
    shape = tuple(x.shape)
    if len(shape) < 3 or shape[axis] != 3:
        raise ValueError(
            f"preprocess_input expects RGB images with 3 channels on axis {axis} "
            f"({data_format}); got shape {shape}."
        )
    bshape = (3,) if axis == -1 else (3, 1, 1)
    mean = np.reshape(np.array(IMAGENET_MEAN, np.float32) * divisor, bshape)
    std = np.reshape(np.array(IMAGENET_STD, np.float32) * divisor, bshape)
    if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        return ((np.asarray(x, np.float32) - mean) / std).astype(np.float32)
    x = keras.ops.cast(x, "float32")
    return (x - keras.ops.convert_to_tensor(mean)) / keras.ops.convert_to_tensor(std)


@functools.lru_cache(maxsize=1)
def imagenet_class_index():
    """{index: (wordnet id, class name)} of the 1000 ImageNet-1k classes, from the package."""
    text = resources.files("keras_csp").joinpath("assets", CLASS_INDEX_FILE).read_text("utf-8")
    raw = json.loads(text)
    return {int(k): (v[0], v[1]) for k, v in raw.items()}


def decode_predictions(preds, top=5):
    """The `top` classes of each prediction, like `keras.applications.*.decode_predictions`.

    Args:
        preds: `(batch, 1000)` scores (probabilities or logits), numpy array or tensor.
        top: how many classes per image (1-1000).

    Returns:
        One list per image of `(wordnet_id, class_name, score)` tuples, highest score first.
        No download is needed.
    """
    preds = np.asarray(preds)
    index = imagenet_class_index()
    if preds.ndim != 2 or preds.shape[1] != len(index):
        raise ValueError(
            f"decode_predictions expects a batch of {len(index)} ImageNet scores, shape "
            f"(batch, {len(index)}); got shape {preds.shape}."
        )
    valid = isinstance(top, (int, np.integer)) and not isinstance(top, bool)
    if not valid or not 1 <= top <= len(index):
        raise ValueError(f"top={top!r}; allowed: an integer from 1 to {len(index)}.")
    results = []
    for row in preds:
        order = np.argsort(-row, kind="stable")[:top]
        results.append([(index[int(i)][0], index[int(i)][1], float(row[i])) for i in order])
    return results


def resize_size(size=DEFAULT_SIZE, crop_pct=CROP_PCT):
    """The shorter-side length timm resizes to before cropping: floor(size / crop_pct)."""
    return int(math.floor(size / crop_pct))


def _resized_hw(height, width, short):
    # torchvision's Resize(int): the shorter side becomes `short`, the longer side is scaled and
    # truncated.
    if height <= width:
        return short, int(short * width / height)
    return int(short * height / width), short


def center_crop(image, size=DEFAULT_SIZE, crop_pct=CROP_PCT, interpolation="bilinear"):
    """timm's evaluation resize and crop: shorter side to floor(size / crop_pct), then the center.

    For the default 256 and 0.887 the shorter side becomes 288 and the central 256x256 is kept.
    Normalization is not applied; pass the result to `preprocess_input`.

    Args:
        image: one RGB image: a PIL image (resized with PIL, exactly as timm's transform does) or
            an array `(H, W, 3)` with values 0-255 (resized with
            `keras.ops.image.resize(..., antialias=True)`: bilinear equals PIL's result up to
            PIL's rounding to uint8; bicubic is close but not identical).
        size: output height and width.
        crop_pct: fraction of the resized image the crop covers.
        interpolation: "bilinear" (cspresnet50/cspresnext50/cspdarknet53 checkpoints),
            "bicubic" (darknet53) or "nearest".

    Returns:
        float32 numpy array `(size, size, 3)`, values 0-255.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"interpolation={interpolation!r}; allowed: {', '.join(INTERPOLATIONS)}."
        )
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct={crop_pct!r}; allowed: 0 < crop_pct <= 1.")
    short = resize_size(size, crop_pct)
    if hasattr(image, "resize") and hasattr(image, "size") and not isinstance(image, np.ndarray):
        from PIL import Image  # only reached with a PIL image, so PIL is installed.

        width, height = image.size
        new_h, new_w = _resized_hw(height, width, short)
        filters = {
            "bilinear": Image.BILINEAR,
            "bicubic": Image.BICUBIC,
            "nearest": Image.NEAREST,
        }
        if image.mode != "RGB":
            image = image.convert("RGB")
        resized = np.asarray(image.resize((new_w, new_h), filters[interpolation]), np.float32)
    else:
        import keras

        array = np.asarray(image)
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(
                f"center_crop expects one RGB image (H, W, 3); got shape {array.shape}."
            )
        height, width = array.shape[:2]
        new_h, new_w = _resized_hw(height, width, short)
        if (new_h, new_w) == (height, width):
            resized = array.astype(np.float32)
        else:
            resized = keras.ops.image.resize(
                array.astype(np.float32), (new_h, new_w), interpolation=interpolation,
                antialias=interpolation != "nearest",
            )
            resized = np.clip(np.asarray(keras.ops.convert_to_numpy(resized)), 0, 255)
    if new_h < size or new_w < size:
        raise ValueError(
            f"the resized image ({new_h}x{new_w}) is smaller than the crop {size}x{size}."
        )
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return np.ascontiguousarray(resized[top : top + size, left : left + size], dtype=np.float32)
