"""Top-1 and top-5 accuracy of a classifier `.tflite` on a class-per-folder image set."""

from pathlib import Path

import numpy as np

from keras_csp.images import (
    DEFAULT_CROP_FRACTION,
    IMAGE_EXTENSIONS,
    check_resize,
    class_folders,
    describe_skipped,
    read_images,
)
from keras_csp.lite.model import LiteModel


def image_folder(folder, argument="data"):
    """`(files, labels, class_names)` of a folder with one subfolder per class.

    Classes are the sorted subfolder names, as `keras.utils.image_dataset_from_directory` orders
    them, so the label indices are those a Keras model trained from such a folder uses.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(
            f"{argument}={str(folder)!r} is not a folder; allowed: a folder with one subfolder of "
            "images per class."
        )
    class_names, found = class_folders(folder)
    files, labels = [], []
    for label, name in enumerate(class_names):
        files.extend(Path(p) for p in found[name])
        labels.extend([label] * len(found[name]))
    if not files:
        raise ValueError(
            f"{argument}={str(folder)!r} holds no images in class subfolders; allowed: a folder "
            f"with one subfolder per class holding {', '.join(IMAGE_EXTENSIONS)} files."
        )
    return files, np.array(labels), class_names


def evaluate(model, folder, resize="none", batch_size=32, crop_fraction=DEFAULT_CROP_FRACTION):
    """Top-1 and top-5 accuracy of a classifier `.tflite` (or LiteModel) on a class-per-folder set.

    Images go through the same decoding and resizing as `load_image`, and the model normalizes
    them itself, so this is the number `keras_csp.export.evaluate_keras` gives for the Keras model
    on the same folder. Returns `{"top1", "top5", "count", "classes", "skipped",
    "skipped_files"}`: files that cannot be decoded are skipped and listed, not counted.
    """
    check_resize(resize)
    model = model if isinstance(model, LiteModel) else LiteModel(model)
    if model.kind != "classifier":
        raise ValueError(
            f"model={str(model.path)!r} is a {model.kind} (outputs {model.output_names}); "
            "allowed: a classifier, whose output is 'probabilities'."
        )
    files, labels, class_names = image_folder(folder)
    return _accuracy(
        lambda x: model(x)["probabilities"], model.input_size, files, labels, class_names,
        resize, batch_size, crop_fraction,
    )


def _accuracy(predict, size, files, labels, class_names, resize, batch_size, crop_fraction):
    top1 = top5 = n = 0
    skipped = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        images, kept = read_images(chunk, size, resize, crop_fraction, skipped)
        if images is None:
            continue
        probs = np.asarray(predict(images))
        if probs.shape[-1] < len(class_names):
            raise ValueError(
                f"the folder has {len(class_names)} classes but the model predicts "
                f"{probs.shape[-1]}; allowed: a folder whose classes are the model's."
            )
        truth = labels[start : start + batch_size][kept]
        ranked = np.argsort(-probs, axis=-1, kind="stable")
        top1 += int(np.sum(ranked[:, 0] == truth))
        top5 += int(np.sum(np.any(ranked[:, :5] == truth[:, None], axis=-1)))
        n += len(kept)
    if n == 0:
        raise ValueError(
            f"none of the {len(files)} image(s) could be decoded ({describe_skipped(skipped)}); "
            f"allowed: a folder with readable {', '.join(IMAGE_EXTENSIONS)} files."
        )
    return {
        "top1": top1 / n, "top5": top5 / n, "count": n, "classes": len(class_names),
        "skipped": len(skipped), "skipped_files": [path for path, _ in skipped],
    }

