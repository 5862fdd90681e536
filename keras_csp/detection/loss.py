"""The detector's loss terms, YOLOv8's: task-aligned labels, an IoU box loss, the class BCE and the
distribution focal loss, each weighted by the assigner's alignment scores over their sum."""

from keras import ops


def assigned_loss_terms(box_loss, label_encoder, box_logits, class_logits, pred_boxes, centers,
                        strides, gt_boxes, gt_classes, valid, bins, with_dfl):
    """`{"box", "class", "dfl"}` (dfl: None unless `with_dfl`) of one batch.

    Args:
        box_loss: a keras-cv IoU loss on xyxy pixel boxes, `reduction="sum"`.
        label_encoder: keras-cv's task-aligned assigner (`keras_cv.models.yolov8.LabelEncoder`).
        box_logits, class_logits: the head's raw outputs; `pred_boxes` their decoded xyxy boxes.
        centers, strides: of every position (`boxes.anchor_points`).
        gt_boxes, gt_classes, valid: the sanitized ground truth (`boxes.sanitize_boxes`).
        bins: bins of each edge distribution.
    """
    target_boxes, target_scores, _ = label_encoder(
        ops.sigmoid(class_logits),
        ops.stop_gradient(pred_boxes),
        centers,
        gt_classes,
        gt_boxes,
        valid[..., None],
    )
    # keras-cv's foreground mask marks every position; a position is foreground when the
    # assigner gave it a score. Background rows get a fixed dummy box on both sides: a zero
    # weight alone would still let NaN from the padded -1 targets into the sum.
    weights = ops.sum(target_scores, axis=-1)
    foreground = (weights > 0)[..., None]
    normalizer = ops.maximum(ops.sum(target_scores), 1.0)
    dummy = ops.convert_to_tensor([0.0, 0.0, 1.0, 1.0])
    terms = {
        "box": box_loss(
            ops.where(foreground, target_boxes, dummy),
            ops.where(foreground, pred_boxes, dummy),
            sample_weight=weights / normalizer,
        ),
        "class": ops.sum(
            ops.binary_crossentropy(target_scores, class_logits, from_logits=True)
        ) / normalizer,
        "dfl": None,
    }
    if with_dfl:
        terms["dfl"] = distribution_focal_loss(
            box_logits, target_boxes, centers, strides, foreground, weights, bins
        ) / normalizer
    return terms


def distribution_focal_loss(box_logits, target_boxes, centers, strides, foreground, weights, bins):
    """YOLOv8's distribution focal loss, summed over positions with the assigner's weights.

    Each edge distance of an assigned box, in strides, lies between two bins; the target puts
    weight 1 - d on the nearer-left bin and d on the next (a "two-hot" vector), and the loss is
    the cross-entropy of the edge's bin logits against it, averaged over the four edges. It
    gives the bins a direct signal from the first step, where the IoU loss alone moves their
    expectation only.
    """
    shape = ops.shape(box_logits)
    logits = ops.reshape(ops.cast(box_logits, "float32"), (shape[0], shape[1], 4, bins))
    edges = ops.concatenate(
        [centers - target_boxes[..., :2], target_boxes[..., 2:] - centers], axis=-1
    )
    edges = ops.where(foreground, edges / strides[:, None], 0.0)
    edges = ops.clip(edges, 0.0, bins - 1.01)
    positions = ops.arange(bins, dtype="float32")
    two_hot = ops.maximum(0.0, 1.0 - ops.abs(positions - edges[..., None]))
    cross_entropy = -ops.sum(two_hot * ops.log_softmax(logits, axis=-1), axis=-1)
    return ops.sum(ops.mean(cross_entropy, axis=-1) * weights)
