"""What a benchmark measures on: the validation images, and the training images int8 calibrates on.

- Classifiers: `data` is a folder with one subfolder of images per class, split as `keras-csp
  train` splits it (`validation_split` of each class, seeded by `seed`, unreadable files left
  out): accuracy is measured on the validation files, calibration reads the training files.
  `validation_split=0` measures the whole folder, as `keras-csp evaluate --data FOLDER` does.
- Detectors: `data` is a COCO annotation JSON (with `images_dir`), a YOLO data YAML or a VOC root,
  read by `keras_csp.coco_eval.read_detection_set`: mAP is measured on its validation split
  (`split`, default "val"; a COCO JSON is its own split), calibration reads the training split
  (YOLO's `train`, VOC's `train` image set); a COCO JSON holds one split, so its calibration
  images are `calibration_data` (a COCO JSON of training images, or a folder of images) or, when
  not given, its own images (said in the notes).

Calibration images are fitted to the model's input as the measured images are (letterboxed for
detectors, `resize` for classifiers) and at most `calibration_steps` of them are read.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np

from keras_csp import coco_eval, images, lite


@dataclasses.dataclass
class BenchData:
    """The data of one benchmark (see the module docstring)."""

    task: str  # "classification" or "detection"
    description: str
    # classification: (files, labels, class_names) of the validation split
    files: tuple = None
    # detection: the DetectionSet of the validation split
    detection_set: object = None
    calibration_paths: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    calibration_note: str = ""  # where the int8 calibration images come from

    def calibration(self, size, resize="none", count=100):
        """uint8 (n, height, width, 3) training images for int8 calibration (at most `count`)."""
        chosen = list(self.calibration_paths[:count])
        if self.task == "detection":
            loaded = []
            for path in chosen:
                try:
                    loaded.append(images.letterbox(images.load_image(path), size)[0])
                except images.UnreadableImageError:
                    continue
            batch = np.stack(loaded) if loaded else None
        else:
            batch, _ = images.read_images(chosen, size, resize)
        if batch is None:
            raise ValueError(
                f"none of the {len(chosen)} calibration image(s) of {self.description} could be "
                "decoded; allowed: readable training images."
            )
        return batch


def detection_data(data, images_dir=None, split="val", data_format=None, calibration_data=None):
    """`BenchData` of a COCO / YOLO / VOC set; refuses bad data (one line) before any export."""
    data_format = coco_eval.detection_format(data, data_format)
    validation = coco_eval.read_detection_set(data, images_dir, split, data_format)
    if calibration_data is not None:
        calibration = _calibration_paths(calibration_data)
        note = f"int8 calibrated on {calibration_data}"
    elif data_format == "coco":
        calibration = [record[0] for record in validation.records]
        note = ("int8 calibrated on the validation images (a COCO JSON holds one split; "
                "calibration_data= / --calibration-data names training images)")
    else:
        train = coco_eval.read_detection_set(data, None, "train", data_format)
        calibration = [record[0] for record in train.records]
        note = f"int8 calibrated on the {data_format.upper()} set's train split"
    return BenchData(
        task="detection",
        description=f"{data_format.upper()} {validation.source}"
        + ("" if data_format == "coco" else f" ({split})"),
        detection_set=validation,
        calibration_paths=calibration,
        calibration_note=note,
    )


def _calibration_paths(source):
    """Image paths of `calibration_data`: a detection set's images, or a folder's."""
    path = Path(source)
    if path.suffix.lower() in (".json", ".yaml", ".yml") or (path / "Annotations").is_dir():
        train = coco_eval.read_detection_set(path, None, "train")  # a COCO JSON is its split
        return [record[0] for record in train.records]
    if not path.is_dir():
        raise ValueError(
            f"calibration_data={str(source)!r} is neither a folder nor a detection set; allowed: "
            "a folder of images, a COCO JSON, a YOLO data YAML or a VOC root."
        )
    found = images.list_images(path)
    if not found:
        raise ValueError(
            f"calibration_data={str(source)!r} holds no images; allowed: a folder of "
            f"{', '.join(images.IMAGE_EXTENSIONS)} files."
        )
    return [str(p) for p in found]


def classification_data(folder, validation_split=0.1, seed=0, calibration_data=None):
    """`BenchData` of a class-per-folder set, split as training splits it."""
    from keras_csp.data.folder import split_files

    class_names, train, validation = split_files(folder, validation_split, seed)
    notes = []
    if not validation:  # validation_split=0: the whole folder, as `keras-csp evaluate` measures
        validation = train
        notes.append("accuracy on the whole folder (validation_split=0)")
    else:
        notes.append(
            f"accuracy on the validation split ({len(validation)} images: validation_split="
            f"{validation_split}, seed {seed}, as keras-csp train splits the folder)"
        )
    if calibration_data is not None:
        calibration = _calibration_paths(calibration_data)
        note = f"int8 calibrated on {calibration_data}"
    else:
        calibration = [path for path, _ in train]
        note = f"int8 calibrated on the training split ({len(train)} images)"
    files = (
        [Path(path) for path, _ in validation],
        np.array([label for _, label in validation]),
        class_names,
    )
    return BenchData(
        task="classification",
        description=f"folder {os.fspath(folder)!r}",
        files=files,
        calibration_paths=calibration,
        notes=notes,
        calibration_note=note,
    )


def evaluate(data, predict, size, resize="none", batch_size=16):
    """Top-1/top-5 or mAP/mAP50 of `predict` (uint8 images -> outputs) on the validation data,
    through `keras-csp evaluate`'s code: `keras_csp.lite`'s accuracy loop for classifiers,
    `keras_csp.coco_eval.evaluate_detector` for detectors."""
    if data.task == "detection":
        return coco_eval.evaluate_detector(
            predict, data.detection_set, input_size=size, batch_size=batch_size
        )
    files, labels, class_names = data.files
    return lite._accuracy(
        lambda x: predict(x)["probabilities"], size, files, labels, class_names, resize,
        batch_size, lite.DEFAULT_CROP_FRACTION,
    )
