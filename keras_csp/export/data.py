"""Images for calibration and fine-tuning, from a folder, a tf.data pipeline or any iterable.

Every source is read as batches of float32 pixel values (0..255, NHWC), which is what the exported
models take (they normalize inside). A batch element may be an image array, an `(images, labels)`
pair, or a dict with "images" (and "labels"). Folders are read with `keras_csp.lite`'s decoder, so
export-time and device-time decoding are the same code.
"""

from pathlib import Path

import numpy as np

from keras_csp import lite

SOURCES = "a folder of images, a tf.data.Dataset, or an iterable of image arrays"


def _split(element):
    if isinstance(element, dict):
        if "images" not in element:
            raise KeyError("images")
        return element["images"], element.get("labels")
    if isinstance(element, (tuple, list)) and len(element) == 2:
        return element[0], element[1]
    if isinstance(element, (tuple, list)) and len(element) == 1:
        return element[0], None
    return element, None


def describe(data):
    """A short description of a data source for error messages (no array dumps)."""
    if isinstance(data, (str, Path)):
        return repr(str(data))
    if hasattr(data, "as_numpy_iterator"):
        return "<tf.data.Dataset>"
    if isinstance(data, (list, tuple)):
        return f"<{type(data).__name__} of {len(data)} element(s)>"
    if isinstance(data, np.ndarray):
        return f"<array of shape {data.shape}>"
    return f"<{type(data).__name__}>"


def _check_batch(images, input_size, argument, data):
    images = np.asarray(images)
    shape = images.shape
    if images.ndim == 3 and shape[-1] == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or not np.issubdtype(images.dtype, np.number):
        raise ValueError(
            f"{argument}={describe(data)} yielded an element of shape {shape} and dtype "
            f"{images.dtype}; allowed: images of shape (height, width, 3) or (batch, height, "
            "width, 3) with pixel values 0..255."
        )
    if input_size is not None and tuple(images.shape[1:3]) != tuple(input_size):
        raise ValueError(
            f"{argument}={describe(data)} yielded {images.shape[2]}x{images.shape[1]} images; "
            f"the model takes {input_size[1]}x{input_size[0]}: allowed: images of that size "
            "(resize them in the pipeline, or pass a folder with resize='crop' or 'stretch')."
        )
    return images.astype("float32")


def _elements(data, argument):
    if isinstance(data, (str, Path)):
        folder = Path(data)
        if not folder.is_dir():
            raise ValueError(
                f"{argument}={str(data)!r} is not a folder; allowed: {SOURCES}."
            )
        return None, lite.list_images(folder)
    if hasattr(data, "as_numpy_iterator"):  # tf.data.Dataset
        return data.as_numpy_iterator(), None
    if isinstance(data, np.ndarray):
        return iter([data]), None
    try:
        return iter(data), None
    except TypeError:
        raise ValueError(
            f"{argument}={describe(data)} is not allowed; allowed: {SOURCES}."
        ) from None


def batches(data, input_size, argument, resize="none", batch_size=8):
    """Yields `(images, labels or None)` batches; images are float32 (n, h, w, 3)."""
    iterator, files = _elements(data, argument)
    if files is not None:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            images = [lite.load_image(p, size=input_size, resize=resize) for p in chunk]
            yield np.stack(images).astype("float32"), None
        return
    for element in iterator:
        try:
            images, labels = _split(element)
        except KeyError:
            raise ValueError(
                f"{argument}={describe(data)} yielded a dict without 'images'; allowed: {SOURCES}."
            ) from None
        images = _check_batch(images, input_size, argument, data)
        yield images, (None if labels is None else np.asarray(labels))


def samples(data, input_size, argument, limit, resize="none"):
    """Up to `limit` single images (1, h, w, 3) from `data`; an error if there are none."""
    result = []
    for images, _ in batches(data, input_size, argument, resize=resize):
        for image in images:
            result.append(image[None])
            if len(result) >= limit:
                return result
    if not result:
        raise ValueError(
            f"{argument}={describe(data)} yielded no images; allowed: {SOURCES} that yields at "
            "least one image."
        )
    return result
