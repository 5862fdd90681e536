"""The checks of `CSPDetector`'s arguments: each error names the argument, its value and what is
allowed."""

from keras_csp.detection.boxes import check_image_size
from keras_csp.layers.attention import check_attention
from keras_csp.layers.conv import ACTIVATIONS
from keras_csp.necks.common import level_widths

BOX_FORMATS = (
    "xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy", "rel_yxyx", "rel_xywh",
)


def check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} is not allowed; allowed: an integer >= 1.")


def check_unit_interval(value, what):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not 0.0 <= value <= 1.0:
        raise ValueError(f"{what}={value!r} is not allowed; allowed: a number in [0, 1].")


def check_input_shape(input_shape):
    if input_shape is None:
        return (None, None, 3)
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[-1] is None or shape[-1] < 1:
        raise ValueError(
            f"input_shape={input_shape!r} is not allowed; allowed: (height, width, channels) with "
            "a positive channel count."
        )
    check_image_size(shape[0], shape[1], what=f"input_shape={input_shape!r}")
    return shape


def check_arguments(attention, bounding_box_format, activation, box_bins, confidence_threshold,
                     iou_threshold, max_detections, neck_filters, head_filters):
    """The detector's other arguments (the neck is checked by `get_neck`, the backbone and input
    shape by their own functions)."""
    check_attention(attention)
    if bounding_box_format not in BOX_FORMATS:
        raise ValueError(
            f"bounding_box_format={bounding_box_format!r} is not allowed; allowed: "
            f"{', '.join(repr(f) for f in BOX_FORMATS)}."
        )
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation={activation!r} is not allowed; allowed: {', '.join(ACTIVATIONS)}."
        )
    if isinstance(box_bins, bool) or not isinstance(box_bins, int) or box_bins < 2:
        raise ValueError(f"box_bins={box_bins!r} is not allowed; allowed: an integer >= 2.")
    check_unit_interval(confidence_threshold, "confidence_threshold")
    check_unit_interval(iou_threshold, "iou_threshold")
    if isinstance(max_detections, bool) or not isinstance(max_detections, int) or (
        max_detections < 1
    ):
        raise ValueError(
            f"max_detections={max_detections!r} is not allowed; allowed: an integer >= 1."
        )
    level_widths(neck_filters, "CSPDetector", "neck_filters")
    level_widths(head_filters, "CSPDetector", "head_filters")
