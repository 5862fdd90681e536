"""The detection head: YOLO-style, anchor-free, one prediction per position and level.

Per output level (P3, P4, P5): a 3x3 conv-BN-act, then two 1x1 convs, one for the box (4 x `bins`
logits of the edge-distance distributions, see `boxes.py`) and one for the class logits. This is
YOLOv3's head shape (3x3 then 1x1 at each scale) with YOLOv8's anchor-free box coding, so that
keras-cv's task-aligned assigner (`keras_cv.models.yolov8.LabelEncoder`) can label it. The paper's
EFM used YOLOv3's three anchors per position instead (3 x (5 + classes) outputs).
"""

import math

import keras

from keras_csp.layers.conv import conv_bn_act
from keras_csp.necks.common import OUTPUT_LEVELS, level_widths

# Class logits start at sigmoid(bias) = 0.01 (RetinaNet's prior): with thousands of positions per
# image and a handful of boxes, an unbiased start floods the classification loss with negatives.
CLASS_PRIOR = 0.01


def yolo_head(features, num_classes, filters, bins, activation="leaky_relu", name="head"):
    """Builds the head on `{"P3", "P4", "P5"}` neck outputs.

    Returns:
        `{"boxes": (B, N, 4 * bins), "classes": (B, N, num_classes)}`, raw logits in float32, where
        N runs over P3, P4, P5 positions row by row.
    """
    widths = level_widths(filters, "the head")
    prior = -math.log((1 - CLASS_PRIOR) / CLASS_PRIOR)
    boxes, classes = [], []
    for s in OUTPUT_LEVELS:
        prefix = f"{name}.p{s}"
        x = conv_bn_act(
            features[f"P{s}"], widths[s], 3, activation=activation, name=f"{prefix}.conv"
        )
        box = keras.layers.Conv2D(4 * bins, 1, name=f"{prefix}.box")(x)
        cls = keras.layers.Conv2D(
            num_classes,
            1,
            bias_initializer=keras.initializers.Constant(prior),
            name=f"{prefix}.class",
        )(x)
        boxes.append(keras.layers.Reshape((-1, 4 * bins), name=f"{prefix}.box_flat")(box))
        classes.append(keras.layers.Reshape((-1, num_classes), name=f"{prefix}.class_flat")(cls))

    def joined(tensors, what):
        return keras.layers.Concatenate(axis=1, dtype="float32", name=f"{name}.{what}")(tensors)

    return {"boxes": joined(boxes, "boxes"), "classes": joined(classes, "classes")}
