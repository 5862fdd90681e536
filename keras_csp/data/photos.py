"""Real photographs for backgrounds: the pictures scikit-image ships inside its wheel (`skimage.data`).

They are part of the installed package, so the benchmark data set built on them needs no download
and is the same on every machine with the same scikit-image and Pillow.
"""

import functools

import numpy as np

# Photographs (and scans) of real scenes, textures and microscopy, all stored in the wheel itself.
# Left out: synthetic pictures (checkerboard, colorwheel, logo), binary masks (horse) and the 102 px
# microaneurysms crop; `skimage.data` fetches a few others over the network, which we never do.
PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)

# Every photograph is resized to this shorter side (portraits turned 90 degrees) and center-cropped to at most PHOTO_MAX_SIDE on
# its longer side, so all of them fit in one (N, 256, 384, 3) uint8 stack (5 MB) that tf.data can
# crop from with one op.
PHOTO_SIDE = 256
PHOTO_MAX_SIDE = 384


@functools.lru_cache(maxsize=1)
def background_photos():
    """`(stack uint8 (N, 256, 384, 3) zero-padded, sizes int32 (N, 2) as (height, width))`."""
    try:
        import skimage.data
    except ImportError as e:  # an install requirement; only a hand-made environment lacks it
        raise ImportError(
            "the hard detection data set needs scikit-image (`pip install scikit-image`) for its "
            f"background photographs: {e}"
        ) from None
    from PIL import Image

    stack = np.zeros((len(PHOTOS), PHOTO_SIDE, PHOTO_MAX_SIDE, 3), np.uint8)
    sizes = np.zeros((len(PHOTOS), 2), np.int32)
    for k, name in enumerate(PHOTOS):
        array = np.asarray(getattr(skimage.data, name)())
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=-1)
        array = array[..., :3].astype(np.uint8)
        if array.shape[0] > array.shape[1]:  # portrait (cell): turned, to fit the landscape stack
            array = np.ascontiguousarray(np.rot90(array))
        h, w = array.shape[:2]
        scale = PHOTO_SIDE / min(h, w)
        new_h, new_w = max(PHOTO_SIDE, round(h * scale)), max(PHOTO_SIDE, round(w * scale))
        image = np.asarray(Image.fromarray(array).resize((new_w, new_h), Image.LANCZOS))
        top = (new_h - min(new_h, PHOTO_MAX_SIDE)) // 2
        left = (new_w - min(new_w, PHOTO_MAX_SIDE)) // 2
        image = image[top : top + PHOTO_MAX_SIDE, left : left + PHOTO_MAX_SIDE]
        stack[k, : image.shape[0], : image.shape[1]] = image
        sizes[k] = image.shape[:2]
    return stack, sizes
