"""Object detection with CSP backbones: `CSPDetector` (paper Sec. 4.4, Table 2 and Table 4)."""

from keras_csp.detection.boxes import anchor_points, decode_distances, sanitize_boxes
from keras_csp.detection.arguments import BOX_FORMATS
from keras_csp.detection.detector import CSPDetector
from keras_csp.detection.head import yolo_head


def profile_detector(
    backbone="csppeleenet", neck="efm", attention="sam", num_classes=80, input_size=416, **kwargs
):
    """`keras_csp.profile` of a `CSPDetector` built at `input_size` x `input_size`.

    Parts: `backbone`, `neck`, `head`. `kwargs` go to `CSPDetector` (e.g. `neck_filters`).
    """
    from keras_csp.profiler import profile

    model = CSPDetector(
        backbone=backbone,
        num_classes=num_classes,
        neck=neck,
        attention=attention,
        input_shape=(input_size, input_size, 3),
        **kwargs,
    )
    return profile(model)


__all__ = [
    "BOX_FORMATS",
    "CSPDetector",
    "anchor_points",
    "decode_distances",
    "profile_detector",
    "sanitize_boxes",
    "yolo_head",
]
