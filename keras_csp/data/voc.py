"""`voc_detection`: Pascal VOC roots (`Annotations/*.xml`, `JPEGImages/`, `ImageSets/Main/`) to
keras-cv bounding-box batches, the same `ImageData` as `coco_detection`'s.

The image sets and every annotation file are read and checked up front, before any training, by
`keras_csp.lite.voc.read_voc` (TF-free: `keras-csp evaluate --data VOC_ROOT` reads them the same
way); `keras_csp.data.detection` letterboxes the images and their boxes. `difficult` objects are
left out of training (and ignored by the mAP), as VOC's protocol does.
"""

from keras_csp.data.detection import (
    check_detection_arguments,
    check_no_empty_training,
    detection_data,
)
from keras_csp.lite.voc import read_voc


def voc_detection(
    voc_root,
    image_size=416,
    bounding_box_format="xyxy",
    max_boxes=100,
    train_set="train",
    val_set="val",
    classes=None,
):
    """A Pascal VOC detection data set as an `ImageData` of keras-cv box dicts.

        data = keras_csp.data.voc_detection("VOCdevkit/VOC2012", image_size=416)

    Args:
        voc_root: the folder holding `Annotations/`, `JPEGImages/` and `ImageSets/Main/`.
        image_size: images are letterboxed to this square size; boxes follow.
        bounding_box_format: keras-cv format of the labels (`"xyxy"`, `"xywh"`, `"rel_xyxy"`, ...).
        max_boxes: boxes per image after padding; extra boxes are dropped.
        train_set, val_set: the image sets (`ImageSets/Main/<set>.txt`; `"trainval"`, ...) of the
            two splits; `val_set=None`: no validation. The classes are the sorted object names of
            `train_set`; a name of `val_set` outside them is an error.
        classes: the class names in class order instead (VOC's 20 in their usual order, or
            another data set's order); an object named otherwise is an error.

    Returns:
        `ImageData` whose splits yield `{"images", "bounding_boxes": {"boxes", "classes"}}`.
    """
    check_detection_arguments(image_size, bounding_box_format)
    categories, records = read_voc(voc_root, train_set, classes, train_set=train_set)
    check_no_empty_training(records, f"{voc_root} ({train_set!r})")
    val_records = (
        read_voc(voc_root, val_set, categories, train_set=train_set)[1] if val_set is not None
        else []
    )
    return detection_data(
        categories, records, val_records, image_size, bounding_box_format, max_boxes,
        f"voc_detection({str(voc_root)!r})",
    )
