"""Notebook 03: a small `CSPDetector` trained on `synthetic_shapes`; held-out detection images."""

import dataclasses
import tempfile

from keras_csp.explore.classifier import HELD_OUT_SEED


def detector_backbone():
    """A small CSPDarknet (5 levels, stride 32) that gives CSPDetector the P3-P5 it needs."""
    from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig

    return ModelConfig(
        stem=StemConfig(filters=16, kernel_size=3, strides=2),
        stages=StagesConfig(filters=(24, 32, 64, 96), depth=(1, 1, 1, 1), strides=2,
                            block_type="dark", bottle_ratio=1.0, down_growth=True),
        default_size=64,
        reference="keras_csp.explore: a small CSPDarknet backbone for a CPU-sized detector",
    )


@dataclasses.dataclass
class DetectorRun:
    model: object = dataclasses.field(repr=False)
    summary: dict
    class_names: list
    image_size: int
    message: str


def train_detector(image_size=64, train_size=2048, val_size=64, epochs=12, batch_size=16,
                   learning_rate=4e-3, max_objects=2, seed=0, verbose=0):
    """A small `CSPDetector` (the backbone above, FPN neck, 32-wide head) trained with
    `keras_csp.train.fit_detector` on `synthetic_shapes` detection data; its `message` gives the
    validation mAP50 it reached, so a short run is labelled as what it is."""
    from keras_csp.data import synthetic_shapes
    from keras_csp.detection import CSPDetector
    from keras_csp.train.loop import fit_detector

    data = synthetic_shapes("detection", num_train=train_size, num_validation=val_size,
                            image_size=image_size, max_objects=max_objects, seed=seed)
    backbone = detector_backbone()

    def build(classes, size):
        return CSPDetector(backbone=backbone, num_classes=classes, neck="fpn", attention=None,
                           input_shape=(size, size, 3), neck_filters=32, head_filters=32)

    result = fit_detector(
        data=data, model=build, epochs=epochs, batch_size=batch_size, optimizer="adamw",
        learning_rate=learning_rate, warmup_epochs=min(1.0, epochs / 3), augment="none",
        seed=seed, output_dir=tempfile.mkdtemp(prefix="keras_csp_detector_"), save_model=False,
        verbose=verbose,
    )
    s = result.summary
    map50 = s.get("val_mAP50")
    quality = "n/a" if map50 is None else f"{map50:.3f}"
    message = (
        f"Trained a small CSPDetector ({s['params']:,} parameters) for {epochs} epoch(s) on "
        f"{train_size} synthetic_shapes detection images at {image_size}px in "
        f"{s['wall_time_seconds']:.0f} s: validation mAP50 {quality}."
    )
    if map50 is None or map50 < 0.1:
        message += " That is a barely trained detector: expect few or wrong boxes."
    return DetectorRun(result.model, s, list(data.class_names), image_size, message)


def held_out_detection_images(count, image_size, max_objects=2, seed=HELD_OUT_SEED):
    """`(images float32 0-255, [ground-truth boxes (K, 4) xyxy], [classes (K,)], class names)`."""
    from keras_csp.data import synthetic_shapes

    data = synthetic_shapes("detection", num_train=count, num_validation=0, image_size=image_size,
                            max_objects=max_objects, seed=seed)
    batch = next(iter(data.train.as_dataset(count, shuffle=False, drop_remainder=False)))
    images = batch["images"].numpy()
    boxes = batch["bounding_boxes"]["boxes"].numpy()
    classes = batch["bounding_boxes"]["classes"].numpy()
    keep = [c >= 0 for c in classes]
    return images, [b[k] for b, k in zip(boxes, keep)], [c[k] for c, k in zip(classes, keep)], \
        list(data.class_names)
