"""Augmentation presets built from keras-cv layers, applied to batches inside tf.data.

Two named presets, each a frozen dataclass of options (override any of them by keyword, from the
Python API or, as `--aug-<option>` flags, from `keras-csp train`):

`"classification"` (`ClassificationAugmentation`), the ImageNet recipe of timm / keras-cv:
    random resized crop (area `crop_area`, aspect `aspect_ratio`) -> horizontal flip -> RandAugment
    (`randaugment_ops` ops of magnitude `randaugment_magnitude`) -> MixUp or CutMix (`mix`) per batch;
    the trainer adds `label_smoothing` to the cross-entropy.

`"detection"` (`DetectionAugmentation`), box-aware, after keras-cv's YOLOv8 examples:
    HSV jitter (`hsv`, off by default: ultralytics' gains `HSV_GAINS`) -> horizontal flip ->
    jittered resize (scale `jitter_scale`) -> mosaic of four images (`mosaic`, off by default;
    the trainer's `close_mosaic` turns it off for the last epochs); boxes follow every step, and
    batches are padded back to the data's `max_boxes`. Mosaic halves every object and shows the model scenes unlike the validation
    images: in short runs from scratch it cost CSPPeleeNet + EFM(SAM) a third of its mAP50 (0.065
    without vs 0.043 with, 800 images x 6 epochs at 128x128; benchmarks/README.md, "Detection");
    YOLOv8 too turns it off for its last epochs. Turn it on for long runs.

`"none"` applies nothing. The layers receive tensors (inside `Dataset.map`), never numpy arrays.
"""

import contextlib
import dataclasses
import logging
from typing import Tuple

MIX_MODES = ("mixup", "cutmix", "mixup_or_cutmix", "none")
# ultralytics' hsv_h, hsv_s, hsv_v: per image, the hue turns by up to 1.5% of the circle and the
# saturation and value are scaled by up to +-70% and +-40% (uniform draws, clipped to the range).
HSV_GAINS = (0.015, 0.7, 0.4)


@dataclasses.dataclass(frozen=True)
class ClassificationAugmentation:
    """The `"classification"` preset (see the module docstring)."""

    crop_area: Tuple[float, float] = (0.25, 1.0)
    aspect_ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    randaugment_ops: int = 2
    randaugment_magnitude: float = 0.3
    mix: str = "mixup_or_cutmix"
    mixup_alpha: float = 0.2
    cutmix_alpha: float = 1.0
    label_smoothing: float = 0.1

    def __post_init__(self):
        a, b = self.crop_area
        if not 0.0 < a <= b <= 1.0:
            raise ValueError(f"crop_area={self.crop_area!r}; allowed: 0 < min <= max <= 1.")
        a, b = self.aspect_ratio
        if not 0.0 < a <= b:
            raise ValueError(f"aspect_ratio={self.aspect_ratio!r}; allowed: 0 < min <= max.")
        if self.randaugment_ops < 0:
            raise ValueError(f"randaugment_ops={self.randaugment_ops!r}; allowed: an integer >= 0.")
        if not 0.0 <= self.randaugment_magnitude <= 1.0:
            raise ValueError(
                f"randaugment_magnitude={self.randaugment_magnitude!r}; allowed: 0 to 1."
            )
        if self.mix not in MIX_MODES:
            raise ValueError(f"mix={self.mix!r} is not allowed; allowed: {', '.join(MIX_MODES)}.")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing={self.label_smoothing!r}; allowed: 0 <= value < 1.")
        if self.mixup_alpha <= 0 or self.cutmix_alpha <= 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be > 0.")


@dataclasses.dataclass(frozen=True)
class DetectionAugmentation:
    """The `"detection"` preset (see the module docstring)."""

    flip: bool = True
    jitter_scale: Tuple[float, float] = (0.75, 1.3)
    mosaic: bool = False
    hsv: bool = False

    def __post_init__(self):
        a, b = self.jitter_scale
        if not 0.0 < a <= b:
            raise ValueError(f"jitter_scale={self.jitter_scale!r}; allowed: 0 < min <= max.")


AUGMENTATION_PRESETS = {
    "classification": ClassificationAugmentation,
    "detection": DetectionAugmentation,
    "none": None,
}
PRESET_TASK = {"classification": "classification", "detection": "detection"}


def _check_preset(preset, task=None):
    if preset not in AUGMENTATION_PRESETS:
        raise ValueError(
            f"augment={preset!r} is not a preset; allowed: {', '.join(AUGMENTATION_PRESETS)}."
        )
    if task is not None and preset in PRESET_TASK and PRESET_TASK[preset] != task:
        allowed = [p for p in AUGMENTATION_PRESETS if PRESET_TASK.get(p, task) == task]
        raise ValueError(
            f"augment={preset!r} is the {PRESET_TASK[preset]} preset; allowed for {task}: "
            f"{', '.join(allowed)}."
        )


def augmentation_options(preset, **overrides):
    """The preset's options with `overrides` applied (None for `"none"`).

    An option that the preset does not have is a `ValueError` that lists the ones it has.
    """
    _check_preset(preset)
    cls = AUGMENTATION_PRESETS[preset]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if cls is None:
        if overrides:
            raise ValueError(
                f"augment='none' takes no options; got {', '.join(sorted(overrides))}."
            )
        return None
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"augmentation option(s) {', '.join(unknown)} do not exist for augment={preset!r}; "
            f"allowed: {', '.join(sorted(fields))}."
        )
    for key, value in list(overrides.items()):
        if isinstance(value, list):
            overrides[key] = tuple(value)
    return cls(**overrides)


@contextlib.contextmanager
def quiet_tensorflow():
    """Silences TF's Python warnings while keras-cv layers are traced (vectorized-map chatter)."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def augmenter(
    preset, image_size, bounding_box_format=None, max_boxes=None, seed=None, **overrides
):
    """A function `batch -> batch` that applies the named preset with keras-cv layers.

    Args:
        preset: `"classification"`, `"detection"` or `"none"` (returns None).
        image_size: the batches' square image size (the crop/resize target).
        bounding_box_format: detection: the keras-cv format of the batches' boxes.
        max_boxes: detection: boxes per image after augmentation (padded with -1).
        seed: seed of the keras-cv layers.
        **overrides: options of the preset's dataclass.

    Classification batches are `(images, one_hot_labels)`; detection batches are keras-cv dicts.
    Use it as `dataset.map(augmenter(...))` or pass it as `augment=` to `Split.as_dataset`.
    """
    options = augmentation_options(preset, **overrides)
    if options is None:
        return None
    size = (int(image_size), int(image_size))
    if isinstance(options, ClassificationAugmentation):
        return _classification_augmenter(options, size, seed)
    if bounding_box_format is None or max_boxes is None:
        raise ValueError("augment='detection' needs bounding_box_format and max_boxes.")
    return _detection_augmenter(options, size, bounding_box_format, max_boxes, seed)


def _classification_augmenter(options, size, seed):
    """`(images, one_hot_labels, ...) -> same`: crop, flip, RandAugment, then MixUp/CutMix."""
    import keras_cv

    layers = [
        keras_cv.layers.RandomCropAndResize(
            size, options.crop_area, options.aspect_ratio, seed=seed
        )
    ]
    if options.flip:
        layers.append(keras_cv.layers.RandomFlip("horizontal", seed=seed))
    if options.randaugment_ops:
        layers.append(
            keras_cv.layers.RandAugment(
                value_range=(0, 255),
                augmentations_per_image=options.randaugment_ops,
                magnitude=options.randaugment_magnitude,
                seed=seed,
            )
        )
    mixers = {
        "mixup": lambda: keras_cv.layers.MixUp(alpha=options.mixup_alpha, seed=seed),
        "cutmix": lambda: keras_cv.layers.CutMix(alpha=options.cutmix_alpha, seed=seed),
    }
    if options.mix == "none":
        mixer = None
    elif options.mix == "mixup_or_cutmix":
        mixer = keras_cv.layers.RandomChoice(
            [mixers["mixup"](), mixers["cutmix"]()], batchwise=True, seed=seed
        )
    else:
        mixer = mixers[options.mix]()

    def classify(images, labels, *rest):
        for layer in layers:
            images = layer(images)
        if mixer is not None:
            mixed = mixer({"images": images, "labels": labels})
            images, labels = mixed["images"], mixed["labels"]
        return (images, labels, *rest)

    classify.options = options
    return classify


def hsv_jitter(images, gains=HSV_GAINS, seed=None):
    """`images` (batch, height, width, 3), 0-255 RGB, with a random hue turn and saturation and
    value scale per image (`gains` as `HSV_GAINS`); boxes do not move."""
    import tensorflow as tf

    dtype = images.dtype
    draws = tf.random.uniform(
        tf.stack([tf.shape(images)[0], 1, 1, 3]), -1.0, 1.0, seed=seed
    ) * tf.constant(gains, tf.float32)
    hsv = tf.image.rgb_to_hsv(tf.clip_by_value(tf.cast(images, tf.float32) / 255.0, 0.0, 1.0))
    hue = tf.math.floormod(hsv[..., 0] + draws[..., 0], 1.0)
    saturation = tf.clip_by_value(hsv[..., 1] * (1.0 + draws[..., 1]), 0.0, 1.0)
    value = tf.clip_by_value(hsv[..., 2] * (1.0 + draws[..., 2]), 0.0, 1.0)
    rgb = tf.image.hsv_to_rgb(tf.stack([hue, saturation, value], axis=-1)) * 255.0
    return tf.cast(rgb, dtype)


def _detection_augmenter(options, size, fmt, max_boxes, seed):
    """keras-cv batch dict -> same, boxes dense: HSV, flip, jittered resize, then mosaic.

    With mosaic on, the function's `without_mosaic` is the same augmenter without it (what the
    trainer's `close_mosaic` epochs use)."""
    import keras_cv

    layers = []
    if options.hsv:
        layers.append(lambda batch: {**batch, "images": hsv_jitter(batch["images"], seed=seed)})
    if options.flip:
        layers.append(keras_cv.layers.RandomFlip("horizontal", bounding_box_format=fmt, seed=seed))
    layers.append(
        keras_cv.layers.JitteredResize(
            size, options.jitter_scale, bounding_box_format=fmt, seed=seed
        )
    )
    if options.mosaic:
        layers.append(keras_cv.layers.Mosaic(bounding_box_format=fmt, seed=seed))

    def detect(batch):
        batch = {"images": batch["images"], "bounding_boxes": batch["bounding_boxes"]}
        for layer in layers:
            batch = layer(batch)
        boxes = keras_cv.bounding_box.to_dense(batch["bounding_boxes"], max_boxes=max_boxes)
        return {
            "images": batch["images"],
            "bounding_boxes": {"boxes": boxes["boxes"], "classes": boxes["classes"]},
        }

    detect.options = options
    if options.mosaic:
        detect.without_mosaic = _detection_augmenter(
            dataclasses.replace(options, mosaic=False), size, fmt, max_boxes, seed
        )
    return detect
