"""Image facts and image files, without TensorFlow or Keras (numpy, and Pillow on first use).

The one place for what the ImageNet checkpoints, the data loaders, the export and the on-device
runtime (`keras_csp.lite`) must agree on: the normalization statistics, timm's crop fraction, the
image file types, how a file becomes an RGB array (`load_image`, `read_images`), how it is fitted
to a model's input (center crop, stretch, letterbox) and how an image folder is listed.

Untrusted files are looked at safely here too: `image_header` reads a size without decoding,
`not_regular` names devices, FIFOs and broken links (never opened), `safe_to_decode` tells
decoders without Pillow's decompression-bomb limit (TensorFlow's) which files to leave alone,
`unreadable_reason` says why a file is skipped, and `path_inside` keeps a file name read from an
annotation file inside its images folder.
"""

import os
import stat
import struct
from pathlib import Path

import numpy as np

# The ImageNet normalization of the checkpoints (`keras_csp.preprocessing.preprocess_input`); the
# data loaders use it too, so that a model trained here takes the inputs of weights="imagenet".
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# timm's evaluation crop for the CSPNet checkpoints (resize to size / 0.887, center crop).
DEFAULT_CROP_FRACTION = 0.887
# The files every reader takes: Pillow decodes them (lite, export, verification) and so does the
# TF pipeline's `tf.io.decode_image` (BMP, GIF as its first frame, JPEG, PNG).
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
RESIZE_MODES = ("none", "crop", "stretch")


def pil():
    """Pillow's `Image` module, imported on first use (the runtime installs it only to decode)."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "decoding image files needs Pillow: pip install pillow (or pass decoded arrays)"
        ) from None
    return Image


def check_resize(resize, argument="resize"):
    if resize not in RESIZE_MODES:
        raise ValueError(
            f"{argument}={resize!r} does not exist; allowed: {', '.join(RESIZE_MODES)}."
        )


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded (corrupt, truncated, not an image at all, no regular
    file, a decompression bomb); `.reason` says why in a few words.

    Where many files are read (`read_images`: evaluation, calibration, `keras-csp predict`) such
    files are skipped and counted with the reason, as training skips them; `load_image` on one
    file raises it.
    """

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason or message


def check_image_size(size, argument="size"):
    """`None`, an int (a square) or (height, width) -> `None` or (height, width) of ints >= 1."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    try:
        height, width = size
    except (TypeError, ValueError):
        height = width = None
    for value in (height, width):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(
                f"{argument}={size!r} is not allowed; allowed: None, an integer >= 1 (a square) or "
                "(height, width) of integers >= 1."
            )
    return int(height), int(width)


# ------------------------------------------------------------------------------------- decoding


def _to_rgb(img):
    """A decoded PIL image as RGB, the way training's decoder (`tf.io.decode_image(channels=3)`)
    sees it: grey replicated, alpha dropped, palettes looked up, 16-bit values scaled to 8 bits."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I"):  # 16/32-bit grey: PIL's own conversion clips at 255
        grey = np.asarray(img, dtype=np.float64) / 257.0
        grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
        return pil().fromarray(np.repeat(grey[..., None], 3, axis=-1), "RGB")
    if img.mode == "P":  # a palette with transparency converts through RGBA without a warning
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_image(path, size=None, resize="none", crop_fraction=DEFAULT_CROP_FRACTION):
    """An image file as a uint8 (height, width, 3) RGB array.

    `size` is (height, width) the model takes, or an int for a square. `resize="none"` requires
    the file to have that size already; "stretch" resizes to it; "crop" resizes so that the
    center `crop_fraction` of the image covers it and cuts the center out (timm's evaluation
    transform). Grey, grey+alpha, RGBA, palette and 16-bit files are converted to RGB as training
    converts them (alpha is dropped, not blended). A file that cannot be decoded, is no regular
    file (a device, a FIFO, a link to nothing) or has more pixels than Pillow's decompression-bomb
    limit raises `UnreadableImageError` (a ValueError).
    """
    check_resize(resize)
    size = check_image_size(size)
    path = Path(path)
    with _open(path) as opened:  # closing the file also discards the pixels: all happens inside
        try:
            opened.load()
            img = _to_rgb(opened)
        except _undecodable() as e:
            raise _unreadable(path, _reason(e)) from None
        if size is not None:
            img = _fit(img, size, resize, crop_fraction, path)
        return np.asarray(img, dtype=np.uint8).copy()


def _undecodable():
    """What Pillow raises for a file it cannot decode: its decoders raise many types, and a
    decompression bomb is an `Image.DecompressionBombError` (no OSError)."""
    Image = pil()
    return (OSError, SyntaxError, ValueError, IndexError, EOFError, struct.error,
            Image.DecompressionBombError)


def _open(path):
    """Pillow's image of `path`, opened lazily (the header is read), after the checks that every
    reader makes: an existing regular file, within the decompression-bomb limit."""
    if path.is_dir():
        raise ValueError(f"image={str(path)!r} is a folder; allowed: an image file.")
    if not os.path.lexists(path):
        raise ValueError(f"image={str(path)!r} does not exist; allowed: an image file.")
    special = not_regular(path)
    if special:
        raise _unreadable(path, special)
    try:
        return pil().open(path)
    except _undecodable() as e:
        raise _unreadable(path, _reason(e)) from None


def not_regular(path):
    """Why `path` is no regular file (after following links) in a few words, or None.

    Devices, FIFOs and sockets are never opened: reading `/dev/zero` never ends and opening a
    FIFO waits for a writer. A missing path gives None (the caller says "does not exist").
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a link to a missing file" if os.path.islink(path) else None
    except OSError:
        return None  # e.g. no permission: opening it says why
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"))
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return f"not a regular file but {kind}"


def _reason(error):
    """A decoding error in a few words, without the path (the message names it already)."""
    Image = pil()
    if isinstance(error, Image.UnidentifiedImageError):
        return "UnidentifiedImageError: not an image file Pillow can identify"
    return f"{type(error).__name__}: {error}"


def _unreadable(path, reason):
    return UnreadableImageError(
        f"image={str(path)!r} is not an image file that can be decoded ({reason}); allowed: "
        f"{', '.join(IMAGE_EXTENSIONS)} files of at most {_pixel_limit_text()}.",
        reason,
    )


def _pixel_limit_text():
    limit = pil().MAX_IMAGE_PIXELS
    return "any size" if limit is None else f"{2 * limit:,} pixels"


def image_header(path):
    """`(width, height)` of the image file `path`, read from its header: no pixel is decoded.

    The safe first look at an untrusted file: raises `UnreadableImageError` for a path that is no
    regular file (never opened), a header Pillow cannot read, and an image of more pixels than
    Pillow's decompression-bomb limit (`2 * PIL.Image.MAX_IMAGE_PIXELS`, 178,956,970 unless
    changed): decoding a 30000x30000 PNG of a few KB would take 2.7 GB. A missing path or a
    folder is a plain ValueError.
    """
    with _open(Path(path)) as opened:
        return opened.size


def safe_to_decode(path):
    """False for a file that no decoder may be given: no regular file, or a decompression bomb.

    For decoders without Pillow's limit: TensorFlow's `decode_image` allocates a 20000x20000 PNG
    of a few KB (1.2 GB) before it decodes a row, and reads `/dev/zero` forever. Only the header
    is read; a header Pillow cannot read gives True (the decoder's own error skips the file).
    """
    path = os.fsdecode(path)
    if not_regular(path):
        return False
    Image = pil()
    try:
        with Image.open(path):
            return True
    except Image.DecompressionBombError:
        return False
    except Exception:  # missing, unidentified, truncated header: for the decoder to report
        return True


def unreadable_reason(path):
    """Why the image file `path` cannot be decoded, in a few words, or None when it decodes."""
    try:
        with _open(Path(path)) as opened:
            opened.load()
    except UnreadableImageError as e:
        return e.reason
    except _undecodable() as e:
        return _reason(e)
    return None


def read_images(paths, size, resize="none", crop_fraction=DEFAULT_CROP_FRACTION, skipped=None):
    """`(images, kept)`: the files of `paths` that decode, as one uint8 (n, h, w, 3) array, and
    their indices in `paths`.

    The one image reader of evaluation, calibration and `keras-csp predict`: a file that cannot
    be decoded is skipped and appended to `skipped` (a list, if given) as `(path, reason)`; any
    other problem (a wrong size with resize="none", a missing file) is raised. `images` is None
    when no file decodes.
    """
    images, kept = [], []
    for index, path in enumerate(paths):
        try:
            images.append(load_image(path, size, resize, crop_fraction))
        except UnreadableImageError as e:
            if skipped is not None:
                skipped.append((str(path), e.reason))
            continue
        kept.append(index)
    return (np.stack(images) if images else None), kept


def decodes(path):
    """True if Pillow decodes the whole file (a truncated JPEG or PNG fails only when decoded)."""
    return unreadable_reason(path) is None


def describe_skipped(skipped, limit=5):
    """'2 unreadable image(s) skipped: a.png (why), b.png (why)' for `read_images`' list of
    `(path, reason)` (or '')."""
    if not skipped:
        return ""
    named = [f"{path} ({reason})" if reason else str(path) for path, reason in skipped]
    shown = ", ".join(named[:limit]) + (", ..." if len(named) > limit else "")
    return f"{len(named)} unreadable image(s) skipped: {shown}"


# ------------------------------------------------------------------------ fitting to an input


def _fit(img, size, resize, crop_fraction, path):
    """A PIL image at `size` (height, width): as it is, stretched, or center-cropped."""
    h, w = size
    if img.size == (w, h):
        return img
    if resize == "none":
        raise ValueError(
            f"image={str(path)!r} is {img.size[0]}x{img.size[1]}; the model takes {w}x{h}: "
            "allowed: an image of that size, or resize='crop' or 'stretch'."
        )
    Image = pil()
    if resize == "stretch":
        return img.resize((w, h), Image.BILINEAR)
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction={crop_fraction!r}; allowed: 0 < crop_fraction <= 1.")
    scale = max(h / crop_fraction / img.size[1], w / crop_fraction / img.size[0])
    new_w = max(w, int(round(img.size[0] * scale)))
    new_h = max(h, int(round(img.size[1] * scale)))
    img = img.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - w) // 2, (new_h - h) // 2
    return img.crop((left, top, left + w, top + h))


def letterbox(image, size):
    """`(uint8 (height, width, 3), scale)`: `coco_detection`'s letterbox, with Pillow.

    The longer side is resized to fit (antialiased bilinear, as `tf.image.resize(antialias=True)`)
    and the bottom/right padded with zeros (`keras_csp.data.core.letterbox` is the TF twin).
    """
    height, width = size
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    new_h = min(max(int(round(h * scale)), 1), height)
    new_w = min(max(int(round(w * scale)), 1), width)
    if (new_h, new_w) != (h, w):
        Image = pil()
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    out = np.zeros((height, width, 3), np.uint8)
    out[:new_h, :new_w] = image
    return out, scale


# -------------------------------------------------------------------------------------- folders


def _visible(name):
    # Hidden entries are tool litter (.ipynb_checkpoints, macOS "._x.jpg" resource forks), never
    # images or classes.
    return not name.startswith(".")


def path_inside(folder, name):
    """`os.path.join(folder, name)`, or None when `name` is absolute or its `..` lead out of
    `folder` (a file name read from an annotation file must not open `../../etc/passwd`).

    Decided on the names alone (as `os.path.normpath` does), not by following links: a link
    inside the folder is the user's own and may lead anywhere.
    """
    if not isinstance(name, str) or not name or "\0" in name or os.path.isabs(name):
        return None
    joined = os.path.join(folder, name)
    base, full = os.path.abspath(folder), os.path.abspath(joined)  # lexical: no link is followed
    return joined if os.path.commonpath([base, full]) == base else None


def image_paths(folder):
    """The image files under `folder` (recursively, hidden entries left out) as strings, each
    folder's files sorted before its sorted subfolders."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        found.extend(
            os.path.join(dirpath, f)
            for f in sorted(filenames)
            if f.lower().endswith(IMAGE_EXTENSIONS) and _visible(f)
        )
    return found


def list_images(folder):
    """Image files under `folder` (recursively) as `Path`s, in `image_paths`' order."""
    return [Path(p) for p in image_paths(folder)]


def class_folders(root):
    """`(class names, {class name: [image paths]})` of a folder with one subfolder per class.

    Classes are the sorted subfolder names, as `keras.utils.image_dataset_from_directory` orders
    them, so the label indices are those a Keras model trained from such a folder uses. `root`
    must be a folder (the callers say so in their own words).
    """
    classes = sorted(
        d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and _visible(d)
    )
    return classes, {name: image_paths(os.path.join(root, name)) for name in classes}
