"""Box coding of the anchor-free head, and the clean-up of training boxes.

The head predicts, at every output position (an "anchor point" at the centre of its cell), the
distances from that point to the box's left, top, right and bottom edges, in units of the level's
stride, as a distribution over `bins` values 0..bins-1 (YOLOv8's distribution regression): the
distance is the softmax-weighted mean of the bins. Positions are ordered P3 row-major, then P4,
then P5, exactly as the head flattens them.
"""

import math

import numpy as np
from keras import ops

HEAD_STRIDES = (8, 16, 32)
NETWORK_STRIDE = max(HEAD_STRIDES)


def check_image_size(height, width, what="input_shape"):
    """Height and width (ints or None) must be positive multiples of the network stride 32."""
    for size in (height, width):
        if size is None:
            continue
        ok = isinstance(size, (int, np.integer)) and not isinstance(size, bool)
        if not ok or size < NETWORK_STRIDE or size % NETWORK_STRIDE:
            raise ValueError(
                f"{what}: height x width {height}x{width} is not allowed; allowed: multiples of "
                f"the network stride {NETWORK_STRIDE} (e.g. 320, 416, 512)."
            )


def anchor_points(height, width, strides=HEAD_STRIDES):
    """Pixel centres `(N, 2)` as (x, y) and strides `(N,)` of every head position, in head order."""
    centers, point_strides = [], []
    for s in strides:
        ys = (np.arange(math.ceil(height / s), dtype="float32") + 0.5) * s
        xs = (np.arange(math.ceil(width / s), dtype="float32") + 0.5) * s
        grid_x, grid_y = np.meshgrid(xs, ys)  # "xy" indexing: rows follow y, as the head's reshape
        centers.append(np.stack([grid_x.ravel(), grid_y.ravel()], axis=-1))
        point_strides.append(np.full(grid_x.size, s, dtype="float32"))
    return (
        ops.convert_to_tensor(np.concatenate(centers)),
        ops.convert_to_tensor(np.concatenate(point_strides)),
    )


def decode_distances(box_logits, bins):
    """`(B, N, 4 * bins)` logits -> `(B, N, 4)` expected (left, top, right, bottom) in strides."""
    shape = ops.shape(box_logits)
    logits = ops.reshape(ops.cast(box_logits, "float32"), (shape[0], shape[1], 4, bins))
    # The expectation as one matmul, not a product and a sum: full-integer TFLite then accumulates
    # it in int32, where an int8 product tensor (range 0..bins-1) cost pixels of box error.
    weights = ops.arange(bins, dtype="float32")[:, None]
    return ops.squeeze(ops.matmul(ops.softmax(logits, axis=-1), weights), axis=-1)


def distances_to_boxes(distances, centers, strides, max_distance=None):
    """(left, top, right, bottom) in strides around pixel centres -> xyxy pixel boxes.

    `max_distance` (pixels) caps each edge's distance: with the image's size it changes no box
    that is then clipped to the image, and it bounds the ranges that full-integer TFLite
    quantizes (P5's reach, up to `bins` x 32 pixels, would set the step of every level's boxes).
    """
    scaled = distances * strides[:, None]
    if max_distance is not None:
        scaled = ops.minimum(scaled, float(max_distance))
    return ops.concatenate([centers - scaled[..., :2], centers + scaled[..., 2:]], axis=-1)


def clip_boxes(boxes, height, width):
    """Clips xyxy pixel boxes to the image."""
    limits = ops.convert_to_tensor(np.array([width, height, width, height], dtype="float32"))
    return ops.minimum(ops.maximum(boxes, 0.0), limits)


def sanitize_boxes(boxes, classes, height, width, num_classes):
    """Makes padded xyxy pixel ground truth safe to assign and score.

    A row is a real box when its class is >= 0 (keras-cv pads with class -1 and box -1). Real boxes
    are clipped to the image; a real box that is then empty (negative or zero width or height,
    entirely outside the image), not finite, or whose class is >= `num_classes` is dropped (turned
    into padding). Boxes are never flipped: x2 < x1 is an error in the data, not a convention.

    Returns:
        `(boxes, classes, valid, num_clipped, num_dropped)`: cleaned boxes and float classes
        (padding rows are -1), the `(B, M)` boolean mask of boxes kept, and two int32 counts over
        the batch.
    """
    boxes = ops.cast(boxes, "float32")
    classes = ops.cast(classes, "float32")
    real = classes >= 0
    finite = ops.all(ops.isfinite(boxes), axis=-1)
    safe = ops.where(finite[..., None], boxes, 0.0)
    clipped = clip_boxes(safe, height, width)
    size_ok = ops.logical_and(
        clipped[..., 2] > clipped[..., 0], clipped[..., 3] > clipped[..., 1]
    )
    class_ok = ops.logical_and(classes == ops.floor(classes), classes < num_classes)
    valid = ops.logical_and(ops.logical_and(real, finite), ops.logical_and(size_ok, class_ok))
    changed = ops.any(ops.not_equal(clipped, safe), axis=-1)
    num_clipped = ops.sum(ops.cast(ops.logical_and(valid, changed), "int32"))
    num_dropped = ops.sum(ops.cast(ops.logical_and(real, ops.logical_not(valid)), "int32"))
    boxes = ops.where(valid[..., None], clipped, -1.0)
    classes = ops.where(valid, classes, -1.0)
    return boxes, classes, valid, num_clipped, num_dropped
