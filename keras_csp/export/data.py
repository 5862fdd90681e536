"""Images for calibration and fine-tuning, from a folder, a tf.data pipeline or any iterable.

Every source is read as batches of float32 pixel values (0..255, NHWC), which is what the exported
models take (they normalize inside). A batch element may be an image array, an `(images, labels)`
pair, or a dict with "images" (and "labels"). Folders are read with `keras_csp.lite`'s decoder, so
export-time and device-time decoding are the same code.

Nothing unsound reaches the converter or the fine-tuning: arrays holding NaN or Inf are refused
with an error naming the images (the converter turns NaN calibration into a model that predicts
one class, and crashes the process on Inf), while image files that cannot be decoded are skipped
and reported, as training skips them; only a source with no usable image at all is refused.
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


def nonfinite(images):
    """Indices of the images in a (n, h, w, 3) batch that hold a NaN or an Inf."""
    if not np.issubdtype(images.dtype, np.floating):
        return []
    return [int(i) for i in np.flatnonzero(~np.isfinite(images).reshape(len(images), -1).all(1))]


def nonfinite_error(argument, data, bad, read, complete):
    """The ValueError for the images `bad` (indices in the order `data` yields images)."""
    shown = ", ".join(str(i) for i in bad[:20]) + (", ..." if len(bad) > 20 else "")
    if complete:
        scope = f"of the {read} image(s) it yields"
    else:
        scope = f"of the first {read} image(s) read"
    return ValueError(
        f"{argument}={describe(data)}: {len(bad)} {scope} hold NaN or Inf values: image(s) "
        f"{shown} (counted from 0 in the order it yields them); allowed: finite pixel values "
        "0..255."
    )


def batches(data, input_size, argument, resize="none", batch_size=8, skipped=None,
            check_finite=True):
    """Yields `(images, labels or None)` batches; images are float32 (n, h, w, 3).

    Folder images that cannot be decoded are left out and appended to `skipped` (a list, if
    given) as `(path, reason)`. With `check_finite`, a batch holding NaN or Inf raises a ValueError
    naming those images.
    """
    iterator, files = _elements(data, argument)
    if files is not None:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            images, _ = lite.read_images(chunk, input_size, resize, skipped=skipped)
            if images is not None:
                yield images.astype("float32"), None
        return
    read = 0
    for element in iterator:
        try:
            images, labels = _split(element)
        except KeyError:
            raise ValueError(
                f"{argument}={describe(data)} yielded a dict without 'images'; allowed: {SOURCES}."
            ) from None
        images = _check_batch(images, input_size, argument, data)
        bad = nonfinite(images) if check_finite else []
        if bad:
            raise nonfinite_error(argument, data, [read + i for i in bad], read + len(images),
                                  complete=False)
        read += len(images)
        yield images, (None if labels is None else np.asarray(labels))


def samples(data, input_size, argument, limit, resize="none", skipped=None):
    """Up to `limit` single images (1, h, w, 3) from `data`; an error if there are none.

    Unreadable files are skipped (and appended to `skipped`); images with NaN or Inf are refused,
    all of them named, once the `limit` images are read.
    """
    skipped = [] if skipped is None else skipped
    result, bad = [], []
    for images, _ in batches(data, input_size, argument, resize=resize, skipped=skipped,
                             check_finite=False):
        for index in nonfinite(images):
            if len(result) + index < limit:
                bad.append(len(result) + index)
        result.extend(image[None] for image in images[: limit - len(result)])
        if len(result) >= limit:
            break
    if bad:
        raise nonfinite_error(argument, data, bad, len(result), complete=len(result) < limit)
    if not result:
        unreadable = f" ({lite.describe_skipped(skipped)})" if skipped else ""
        raise ValueError(
            f"{argument}={describe(data)} yielded no images{unreadable}; allowed: {SOURCES} that "
            "yields at least one readable image."
        )
    return result
