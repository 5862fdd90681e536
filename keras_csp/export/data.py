"""Images for calibration and fine-tuning, from a folder, a tf.data pipeline or any iterable.

Every source is read as batches of float32 pixel values (0..255, NHWC), which is what the exported
models take (they normalize inside). A batch element may be an image array, an `(images, labels)`
pair, or a dict with "images" (and "labels"). Folders are read with `keras_csp.lite`'s decoder, so
export-time and device-time decoding are the same code.

Nothing unsound reaches the converter or the fine-tuning: arrays holding NaN or Inf, or values
outside 0..255 (16-bit or normalized images), are refused with an error naming the images (the
converter turns NaN calibration into a model that predicts one class, crashes the process on Inf,
and calibrates x257-scaled pixels into a model that outputs a constant), and images that all lie
within 0..1 get a warning (they look normalized). Image files that cannot be decoded are skipped
and reported, as training skips them; only a source with no usable image at all is refused.
"""

import warnings
from pathlib import Path

import numpy as np

from keras_csp import lite

SOURCES = "a folder of images, a tf.data.Dataset, or an iterable of image arrays"
# How many images `batches` reads before it judges whether they look normalized (all within
# 0..1): one black image is no sign, eight are.
NORMALIZED_SAMPLE = 8
# Values within this of 0..255 are pixels still: a float resize or blend of 0..255 images can
# land at 255.00002, and anything up to half a step rounds to a valid 8-bit value.
ROUNDING = 0.5


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


def out_of_range(images):
    """`(indices, lowest, highest)`: the images of a finite (n, h, w, 3) batch holding values
    outside 0..255, and the extreme values among them (one min/max pass when all are fine)."""
    if images.dtype == np.uint8 or not len(images):
        return [], None, None
    flat = images.reshape(len(images), -1)
    lows, highs = flat.min(1), flat.max(1)
    bad = np.flatnonzero((lows < -ROUNDING) | (highs > 255 + ROUNDING))
    if not len(bad):
        return [], None, None
    return [int(i) for i in bad], float(lows[bad].min()), float(highs[bad].max())


def _scope(read, complete):
    return f"of the {read} image(s) it yields" if complete else f"of the first {read} image(s) read"


def _named(bad):
    shown = ", ".join(str(i) for i in bad[:20]) + (", ..." if len(bad) > 20 else "")
    return f"image(s) {shown} (counted from 0 in the order it yields them)"


def nonfinite_error(argument, data, bad, read, complete):
    """The ValueError for the images `bad` (indices in the order `data` yields images)."""
    return ValueError(
        f"{argument}={describe(data)}: {len(bad)} {_scope(read, complete)} hold NaN or Inf "
        f"values: {_named(bad)}; allowed: finite pixel values 0..255."
    )


def range_error(argument, data, bad, read, complete, low, high):
    """The ValueError for the images `bad`, whose values reach `low` and `high`."""
    too_low, too_high = low < -ROUNDING, high > 255 + ROUNDING
    if too_low and too_high:
        extent = f"from {low:.6g} to {high:.6g}"
    else:
        extent = f"down to {low:.6g}" if too_low else f"up to {high:.6g}"
    # Negative values are what normalizing (preprocess_input, x / 127.5 - 1) leaves.
    hint = "; they look normalized (preprocess_input output?)" if too_low and not too_high else ""
    return ValueError(
        f"{argument}={describe(data)}: {len(bad)} {_scope(read, complete)} hold pixel values "
        f"outside 0..255 ({extent}): {_named(bad)}{hint}; allowed: raw pixel values 0..255 (the "
        "exported model normalizes inside: pass images before preprocess_input or any scaling)."
    )


class PixelRange:
    """The largest value of the images read so far, to warn once when they all lie within 0..1:
    the exported model takes raw pixels, and calibrating or fine-tuning on images scaled to 0..1
    gives a badly calibrated model without any error."""

    def __init__(self, argument, data):
        self.argument, self.data = argument, data
        self.count, self.highest, self.judged = 0, -np.inf, False

    def add(self, images):
        if self.judged or not len(images):
            return
        self.count += len(images)
        self.highest = max(self.highest, float(images.max()))
        if self.count >= NORMALIZED_SAMPLE:
            self.judge()

    def judge(self):
        """Warns (once) if every image read holds values within 0..1 only."""
        if self.judged or not self.count:
            return
        self.judged = True
        if self.highest <= 1.0:
            warnings.warn(
                f"{self.argument}={describe(self.data)}: all {self.count} image(s) read hold "
                f"values within 0..1 (largest {self.highest:.3g}); they look normalized, but the "
                "exported model takes raw pixel values 0..255 (it normalizes inside): pass images "
                "before any scaling, or the model is calibrated for the wrong range.",
                UserWarning, stacklevel=2,
            )


def batches(data, input_size, argument, resize="none", batch_size=8, skipped=None,
            check_finite=True):
    """Yields `(images, labels or None)` batches; images are float32 (n, h, w, 3).

    Folder images that cannot be decoded are left out and appended to `skipped` (a list, if
    given) as `(path, reason)`. With `check_finite`, a batch holding NaN, Inf or values outside
    0..255 raises a ValueError naming those images, and images that all lie within 0..1 get a
    warning (judged on the first NORMALIZED_SAMPLE images, or on all if there are fewer).
    """
    iterator, files = _elements(data, argument)
    if files is not None:  # decoded 8-bit pixels: nothing to check
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            images, _ = lite.read_images(chunk, input_size, resize, skipped=skipped)
            if images is not None:
                yield images.astype("float32"), None
        return
    read, pixel_range = 0, PixelRange(argument, data)
    for element in iterator:
        try:
            images, labels = _split(element)
        except KeyError:
            raise ValueError(
                f"{argument}={describe(data)} yielded a dict without 'images'; allowed: {SOURCES}."
            ) from None
        images = _check_batch(images, input_size, argument, data)
        if check_finite:
            _refuse_bad_values(argument, data, images, read)
            pixel_range.add(images)
        read += len(images)
        yield images, (None if labels is None else np.asarray(labels))
    pixel_range.judge()


def _refuse_bad_values(argument, data, images, read):
    """Raises for the images of a batch (the first is image `read`) holding NaN, Inf or values
    outside 0..255."""
    bad = nonfinite(images)
    if bad:
        raise nonfinite_error(argument, data, [read + i for i in bad], read + len(images),
                              complete=False)
    bad, low, high = out_of_range(images)
    if bad:
        raise range_error(argument, data, [read + i for i in bad], read + len(images),
                          complete=False, low=low, high=high)


def samples(data, input_size, argument, limit, resize="none", skipped=None):
    """Up to `limit` single images (1, h, w, 3) from `data`; an error if there are none.

    Unreadable files are skipped (and appended to `skipped`); images with NaN, Inf or values
    outside 0..255 are refused, all of them named, once the `limit` images are read; images that
    all lie within 0..1 get a warning.
    """
    skipped = [] if skipped is None else skipped
    result = []
    for images, _ in batches(data, input_size, argument, resize=resize, skipped=skipped,
                             check_finite=False):
        result.extend(image[None] for image in images[: limit - len(result)])
        if len(result) >= limit:
            break
    if not result:
        unreadable = f" ({lite.describe_skipped(skipped)})" if skipped else ""
        raise ValueError(
            f"{argument}={describe(data)} yielded no images{unreadable}; allowed: {SOURCES} that "
            "yields at least one readable image."
        )
    complete = len(result) < limit
    bad = [i for i, image in enumerate(result) if nonfinite(image)]
    if bad:
        raise nonfinite_error(argument, data, bad, len(result), complete)
    ranges = [out_of_range(image) for image in result]
    bad = [i for i, (indices, _, _) in enumerate(ranges) if indices]
    if bad:
        low = min(ranges[i][1] for i in bad)
        high = max(ranges[i][2] for i in bad)
        raise range_error(argument, data, bad, len(result), complete, low, high)
    if not isinstance(data, (str, Path)):  # folders hold decoded 8-bit pixels
        pixel_range = PixelRange(argument, data)
        for image in result:
            pixel_range.add(image)
        pixel_range.judge()
    return result
