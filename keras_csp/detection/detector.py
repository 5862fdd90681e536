"""`CSPDetector`: any backbone of this package + a neck of the paper's ablation + a YOLO-style head.

The model is one flat functional graph of plain layers named by part (`backbone.*`, `neck.*`,
`head.*`), so `keras_csp.profile` reports each part. Training and decoding go through keras-cv:
box formats and conversion (`keras_cv.bounding_box`), the task-aligned label assigner
(`keras_cv.models.yolov8.LabelEncoder`), the CIoU/GIoU box losses (`keras_cv.losses`) and
`keras_cv.layers.NonMaxSuppression`.
"""

import warnings

import keras
import keras_cv
from keras import ops

from keras_csp.detection.arguments import (
    check_arguments,
    check_input_shape,
    check_num_classes,
)
from keras_csp.detection.backbone import (
    backbone_features,
    check_levels,
    config_to_dict,
    resolve_backbone,
)
from keras_csp.detection.boxes import (
    anchor_points,
    check_image_size,
    clip_boxes,
    decode_distances,
    distances_to_boxes,
    sanitize_boxes,
)
from keras_csp.detection.head import yolo_head
from keras_csp.detection.loss import assigned_loss_terms
from keras_csp.detection.scales import resolve_scale, scale_backbone
from keras_csp.necks import build_neck
from keras_csp.registry import BOX_LOSSES

# The loss and the assigner, as `compile` takes them: box and class weights and the assigner's
# top-k, alpha and beta are keras-cv's and YOLOv8's, and so is DFL's 1.5: on the hard shapes set
# (800 images x 6 epochs at 128x128) it took CSPPeleeNet + EFM(SAM)'s mAP50 from 0.043 to 0.093
# (benchmarks/README.md, "Detection": the recipe runs).
LOSS_DEFAULTS = {
    "box_loss_weight": 7.5,
    "classification_loss_weight": 0.5,
    "dfl_loss_weight": 1.5,
    "assigner_top_k": 10,
    "assigner_alpha": 0.5,
    "assigner_beta": 6.0,
}


class _Once:
    """A flag that Keras' attribute tracking leaves alone."""

    def __init__(self):
        self.done = False


@keras.saving.register_keras_serializable(package="keras_csp")
class CSPDetector(keras.Model):
    """A one-stage detector on a CSP backbone: the paper's EFM (SAM) + CSPPeleeNet and its ablation.

    Head: anchor-free, YOLOv3-shaped (a 3x3 conv, then 1x1 box and class convs at P3, P4, P5) with
    YOLOv8's box coding: each position predicts its distances to the four box edges as
    distributions over `box_bins` stride units, and independent sigmoid class scores. Labels come
    from keras-cv's task-aligned assigner (`keras_cv.models.yolov8.LabelEncoder`); the loss is a
    keras-cv box loss (CIoU by default, or GIoU) plus binary cross-entropy on the class logits, both
    weighted by the assigner's alignment scores; `predict` decodes the boxes and runs
    `keras_cv.layers.NonMaxSuppression`.

    Calling the model returns the raw head outputs `{"boxes": (B, N, 4 * box_bins), "classes":
    (B, N, num_classes)}` (logits); `predict` returns keras-cv's dict `{"boxes", "classes",
    "confidence", "num_detections"}` with up to `max_detections` boxes per image in
    `bounding_box_format`, padded with -1.

    Training data: `fit(images, {"boxes": (B, M, 4), "classes": (B, M)})` or keras-cv's
    `{"images": ..., "bounding_boxes": {...}}` dicts; pad with class -1 (boxes may be ragged).
    Boxes that stick out of the image are clipped; boxes that are empty after clipping (negative
    or zero size, entirely outside), not finite, or of a class >= `num_classes` are dropped. Both
    are counted in the metrics `clipped_boxes` and `dropped_boxes` and warned about once.

    Args:
        backbone: an architecture name of this package (`"cspdarknet53"`, `"csppeleenet"`, ...;
            see `keras_csp.models.MODEL_CONFIGS`), a `keras_csp.models.ModelConfig`, or a built
            backbone, as keras-cv's detectors take one: a builder's model with
            `include_top=False` (`keras_csp.CSPDarknet53(include_top=False, weights="imagenet")`,
            or one built with another `part_ratio` or `fusion`), whose layers and weights are
            copied in (`part_ratio`, `fusion` and `backbone_weights` then do not apply). It must give pyramid levels up to P5
            (stride 32), and P2 for the EFM neck.
        num_classes: number of object classes (>= 1), without a background class.
        neck: a name of `keras_csp.registry.NECKS`, e.g. `"efm"` (the paper's Exact Fusion Model);
            `neck_options`: that neck's own options there, e.g. `{"repeats": 3}` for `"bifpn"`.
        attention: `None`, `"sam"` (spatial attention on each neck output) or `"spp"` (spatial
            pyramid pooling on P5).
        input_shape: `(height, width, channels)`, by default the paper's 416x416 RGB; height and
            width must be multiples of 32, or `None` for any such size (checked per batch; a
            train function then serves one size, so build a model per training size).
        bounding_box_format: keras-cv format of the boxes given and returned (e.g. `"xyxy"`,
            `"xywh"`, `"rel_xyxy"`).
        neck_filters, head_filters: widths of the neck's P3, P4, P5 (one int or three) and of the
            head's 3x3 convs; default: the scale's, else (96, 128, 256) and (112, 256, 448).
        scale: `None`, `"n"`, `"s"` or `"m"` (`keras_csp.detection.scales`): the backbone's width
            and depth multipliers and the neck's and head's widths (filters given by hand win).
        part_ratio, fusion: the backbone's CSP split ratio γ and fusion (see
            `keras_csp.build_model`).
        activation: activation of the neck and head (the backbone keeps its own).
        box_bins: bins of each edge-distance distribution (reach: `box_bins - 1` strides).
        confidence_threshold, iou_threshold, max_detections: of the non-max suppression that
            `predict` runs.
        backbone_weights: weights of the backbone classifier to start from (as `weights` of
            `keras_csp.build_model`). Not part of the saved config: a `.keras` file holds all
            weights.
        name: model name.
    """

    def __init__(
        self,
        backbone="cspdarknet53",
        num_classes=80,
        neck="efm",
        attention="sam",
        input_shape=(416, 416, 3),
        bounding_box_format="xyxy",
        neck_filters=None,
        head_filters=None,
        part_ratio=0.5,
        fusion="full",
        activation="leaky_relu",
        box_bins=16,
        confidence_threshold=0.2,
        iou_threshold=0.5,
        max_detections=100,
        backbone_weights=None,
        name="csp_detector",
        scale=None,
        neck_options=None,
        **kwargs,
    ):
        check_num_classes(num_classes)
        preset, neck_filters, head_filters = resolve_scale(scale, neck_filters, head_filters)
        neck_fn, neck, neck_options = build_neck(neck, neck_options)
        check_arguments(
            attention, bounding_box_format, activation, box_bins,
            confidence_threshold, iou_threshold, max_detections, neck_filters, head_filters,
        )
        backbone, serialized = resolve_backbone(backbone, backbone_weights)
        shape = check_input_shape(input_shape)

        images = keras.Input(shape=shape, name="images")
        built = scale_backbone(backbone, preset, backbone_weights) if preset else backbone
        features = backbone_features(images, built, shape, part_ratio, fusion, backbone_weights)
        check_levels(features, backbone, neck)
        fused = neck_fn(
            features, filters=neck_filters, attention=attention, activation=activation, name="neck"
        )
        outputs = yolo_head(fused, num_classes, head_filters, box_bins, activation, name="head")
        super().__init__(inputs=images, outputs=outputs, name=name, **kwargs)

        # A built backbone is kept as its serialized config: as an attribute, the model itself
        # would be tracked and its weights saved a second time beside the detector's copies.
        object.__setattr__(
            self,
            "backbone_spec",
            (serialized or keras.saving.serialize_keras_object(backbone))
            if isinstance(backbone, keras.Model)
            else backbone,
        )
        self.num_classes = num_classes
        self.scale = None if scale is None else scale.lower()
        self.neck, self.neck_options = neck, neck_options
        self.attention = attention
        self.bounding_box_format = bounding_box_format
        self.neck_filters = neck_filters
        self.head_filters = head_filters
        self.part_ratio = part_ratio
        self.fusion = fusion
        self.activation = activation
        self.box_bins = box_bins
        self.confidence_threshold = confidence_threshold
        self.iou_threshold = iou_threshold
        self.max_detections = max_detections
        self._init_training_state()

    def _init_training_state(self):
        """The assigner, the suppression, the loss settings and the metric trackers."""
        # Raw attributes: keras-cv layers without weights, kept out of Keras' layer tracking so the
        # saved weights hold the graph's layers only.
        self._set_label_encoder(
            LOSS_DEFAULTS["assigner_top_k"],
            LOSS_DEFAULTS["assigner_alpha"],
            LOSS_DEFAULTS["assigner_beta"],
        )
        object.__setattr__(
            self,
            "_prediction_decoder",
            keras_cv.layers.NonMaxSuppression(
                bounding_box_format=self.bounding_box_format,
                from_logits=True,
                iou_threshold=self.iou_threshold,
                confidence_threshold=self.confidence_threshold,
                max_detections=self.max_detections,
            ),
        )
        object.__setattr__(self, "_bad_box_warning", _Once())
        self._box_loss_tracker = keras.metrics.Mean(name="box_loss")
        self._class_loss_tracker = keras.metrics.Mean(name="class_loss")
        self._clipped_tracker = keras.metrics.Sum(name="clipped_boxes")
        self._dropped_tracker = keras.metrics.Sum(name="dropped_boxes")
        self.box_loss = None
        self._box_loss_spec = "ciou"
        self.box_loss_weight = LOSS_DEFAULTS["box_loss_weight"]
        self.classification_loss_weight = LOSS_DEFAULTS["classification_loss_weight"]
        self.dfl_loss_weight = LOSS_DEFAULTS["dfl_loss_weight"]
        # keras-cv's padded NMS and the host callback of the bad-box warning do not compile with XLA.
        self.jit_compile = False

    # ---------------------------------------------------------------- configuration and saving

    def get_config(self):
        backbone = self.backbone_spec
        return {
            "backbone": (
                backbone if isinstance(backbone, (str, dict)) else config_to_dict(backbone)
            ),
            "num_classes": self.num_classes,
            "scale": self.scale,
            "neck": self.neck,
            "neck_options": dict(self.neck_options),
            "attention": self.attention,
            "input_shape": list(self.input_shape[1:]),
            "bounding_box_format": self.bounding_box_format,
            "neck_filters": self.neck_filters,
            "head_filters": self.head_filters,
            "part_ratio": self.part_ratio,
            "fusion": self.fusion,
            "activation": self.activation,
            "box_bins": self.box_bins,
            "confidence_threshold": self.confidence_threshold,
            "iou_threshold": self.iou_threshold,
            "max_detections": self.max_detections,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("neck_filters", "head_filters"):
            if isinstance(config.get(key), list):
                config[key] = tuple(config[key])
        return cls(**config)

    def compile(
        self,
        optimizer="adam",
        box_loss="ciou",
        box_loss_weight=LOSS_DEFAULTS["box_loss_weight"],
        classification_loss_weight=LOSS_DEFAULTS["classification_loss_weight"],
        dfl_loss_weight=LOSS_DEFAULTS["dfl_loss_weight"],
        assigner_top_k=LOSS_DEFAULTS["assigner_top_k"],
        assigner_alpha=LOSS_DEFAULTS["assigner_alpha"],
        assigner_beta=LOSS_DEFAULTS["assigner_beta"],
        jit_compile=False,
        loss=None,
        **kwargs,
    ):
        """Configures training.

        Args:
            optimizer: a Keras optimizer or its name.
            box_loss: `"ciou"` (keras-cv's `CIoULoss`, as YOLOv4/v8), `"giou"` (`GIoULoss`, the
                paper's EFM (GIoU) row) or a `keras.losses.Loss` taking xyxy pixel boxes with
                `reduction="sum"`.
            box_loss_weight, classification_loss_weight, dfl_loss_weight: weights of the box,
                class and distribution focal loss (DFL: cross-entropy of each edge's bins against
                the two bins around the assigned box's edge, as YOLOv8) terms; 0 drops a term.
            assigner_top_k, assigner_alpha, assigner_beta: of the task-aligned assigner: positions
                per box, and the exponents of class score and IoU in its alignment metric.
            jit_compile: XLA; off by default: keras-cv's padded NMS and the host callback that
                warns about bad boxes do not compile.
            loss: must stay `None`; the detector computes its own loss.
            **kwargs: other arguments of `keras.Model.compile` (`metrics` are not supported).
        """
        if loss is not None:
            raise ValueError(
                f"loss={loss!r} is not allowed; CSPDetector computes its loss itself; choose it "
                "with box_loss='ciou' | 'giou' | a keras.losses.Loss."
            )
        if kwargs.get("metrics") or kwargs.get("weighted_metrics"):
            raise ValueError("metrics are not supported by CSPDetector.compile; allowed: None.")
        self.box_loss = self._resolve_box_loss(box_loss)
        self._box_loss_spec = box_loss
        for what, value in (
            ("box_loss_weight", box_loss_weight),
            ("classification_loss_weight", classification_loss_weight),
            ("dfl_loss_weight", dfl_loss_weight),
            ("assigner_alpha", assigner_alpha),
            ("assigner_beta", assigner_beta),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{what}={value!r} is not allowed; allowed: a number >= 0.")
        if isinstance(assigner_top_k, bool) or not isinstance(assigner_top_k, int) or (
            assigner_top_k < 1
        ):
            raise ValueError(
                f"assigner_top_k={assigner_top_k!r} is not allowed; allowed: an integer >= 1."
            )
        self.box_loss_weight = float(box_loss_weight)
        self.classification_loss_weight = float(classification_loss_weight)
        self.dfl_loss_weight = float(dfl_loss_weight)
        self._set_label_encoder(assigner_top_k, float(assigner_alpha), float(assigner_beta))
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)
        # Without a distribution strategy the TF trainer builds the optimizer inside the first
        # trace of the train step, which makes tf.function trace it twice; build it here instead.
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def _set_label_encoder(self, top_k, alpha, beta):
        settings = {"assigner_top_k": top_k, "assigner_alpha": alpha, "assigner_beta": beta}
        object.__setattr__(self, "assigner_settings", settings)
        object.__setattr__(
            self,
            "_label_encoder",
            keras_cv.models.yolov8.LabelEncoder(
                num_classes=self.num_classes,
                max_anchor_matches=top_k,
                alpha=alpha,
                beta=beta,
            ),
        )

    @staticmethod
    def _resolve_box_loss(box_loss):
        if isinstance(box_loss, keras.losses.Loss):
            return box_loss
        if box_loss in BOX_LOSSES:  # keras_csp/registry.py
            loss = {"ciou": keras_cv.losses.CIoULoss, "giou": keras_cv.losses.GIoULoss}[box_loss]
            return loss(bounding_box_format="xyxy", reduction="sum")
        allowed = ", ".join(repr(n) for n in BOX_LOSSES)
        raise ValueError(
            f"box_loss={box_loss!r} is not allowed; allowed: {allowed} or a keras.losses.Loss."
        )

    def get_compile_config(self):
        config = super().get_compile_config()
        if not self.compiled or config is None:
            return None
        spec = self._box_loss_spec
        if isinstance(spec, keras.losses.Loss):
            spec = keras.saving.serialize_keras_object(spec)
        config = {k: v for k, v in config.items() if k not in ("loss", "loss_weights", "metrics",
                                                               "weighted_metrics")}
        return {
            **config,
            "box_loss": spec,
            "box_loss_weight": self.box_loss_weight,
            "classification_loss_weight": self.classification_loss_weight,
            "dfl_loss_weight": self.dfl_loss_weight,
            **self.assigner_settings,
        }

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))

    def call(self, inputs, training=None, mask=None, **kwargs):
        shape = getattr(inputs, "shape", None)
        if shape is not None and len(shape) == 4:
            check_image_size(shape[1], shape[2], what=f"images of shape {tuple(shape)}")
        return super().call(inputs, training=training, mask=mask, **kwargs)

    # ---------------------------------------------------------------------------------- training

    @staticmethod
    def _unpack(data):
        """keras-cv's `{"images", "bounding_boxes"}` dicts -> `(images, boxes)`."""
        if isinstance(data, dict) and "images" in data:
            return (data["images"], data.get("bounding_boxes"))
        return data

    def train_step(self, data):
        return super().train_step(self._unpack(data))

    def test_step(self, data):
        return super().test_step(self._unpack(data))

    def _image_size(self, images):
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            raise ValueError(
                f"images of shape {tuple(images.shape)} have no static height and width; build the "
                "detector with a fixed input_shape, or feed batches of a fixed size."
            )
        check_image_size(height, width, what=f"images of shape {tuple(images.shape)}")
        return int(height), int(width)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if self.box_loss is None:
            raise ValueError("CSPDetector needs compile() before it can train or evaluate.")
        if y is None:
            raise ValueError(
                "CSPDetector needs boxes to train: fit(images, {'boxes': ..., 'classes': ...})."
            )
        height, width = self._image_size(x)
        centers, strides = anchor_points(height, width)
        box_logits, class_logits = y_pred["boxes"], y_pred["classes"]
        distances = decode_distances(box_logits, self.box_bins)
        pred_boxes = distances_to_boxes(distances, centers, strides)

        gt = y
        if any(type(v).__name__ == "RaggedTensor" for v in (y["boxes"], y["classes"])):
            gt = keras_cv.bounding_box.to_dense(y)
        gt_boxes = keras_cv.bounding_box.convert_format(
            ops.cast(gt["boxes"], "float32"),
            source=self.bounding_box_format,
            target="xyxy",
            images=x,
        )
        gt_boxes, gt_classes, valid, num_clipped, num_dropped = sanitize_boxes(
            gt_boxes, gt["classes"], height, width, self.num_classes
        )
        self._report_bad_boxes(num_clipped, num_dropped)

        terms = assigned_loss_terms(
            self.box_loss, self._label_encoder, box_logits, class_logits, pred_boxes, centers,
            strides, gt_boxes, gt_classes, valid, self.box_bins, bool(self.dfl_loss_weight),
        )
        self._box_loss_tracker.update_state(terms["box"])
        self._class_loss_tracker.update_state(terms["class"])
        total = self.box_loss_weight * terms["box"] + self.classification_loss_weight * terms["class"]
        if terms["dfl"] is not None:
            total = total + self.dfl_loss_weight * terms["dfl"]
        if self.losses:
            total = total + ops.sum(self.losses)
        return total

    def _report_bad_boxes(self, num_clipped, num_dropped):
        self._clipped_tracker.update_state(num_clipped)
        self._dropped_tracker.update_state(num_dropped)
        state = self._bad_box_warning

        def warn_once(clipped, dropped):
            clipped, dropped = int(clipped), int(dropped)
            if (clipped or dropped) and not state.done:
                state.done = True
                warnings.warn(
                    f"CSPDetector: a training batch had {clipped} box(es) outside the image "
                    f"(clipped) and {dropped} empty, non-finite or out-of-range box(es) (dropped). "
                    "Such boxes are counted in the metrics 'clipped_boxes' and 'dropped_boxes'; "
                    "this warning is shown once.",
                    stacklevel=2,
                )
            return 0

        import tensorflow as tf  # the host callback of the TF backend, which keras-cv needs anyway

        if tf.executing_eagerly():
            warn_once(num_clipped, num_dropped)
        else:
            tf.py_function(warn_once, [num_clipped, num_dropped], Tout=tf.int32)

    # -------------------------------------------------------------------------------- inference

    @property
    def prediction_decoder(self):
        """The `keras_cv.layers.NonMaxSuppression` that `predict` runs."""
        return self._prediction_decoder

    @prediction_decoder.setter
    def prediction_decoder(self, decoder):
        """Replaces the suppression `predict` runs (e.g. a low confidence threshold for COCO
        evaluation), as keras-cv's detectors allow; its box format must be the model's."""
        fmt = getattr(decoder, "bounding_box_format", None)
        if fmt != self.bounding_box_format:
            raise ValueError(
                f"prediction_decoder with bounding_box_format={fmt!r} is not allowed; allowed: "
                f"a decoder in the detector's format {self.bounding_box_format!r}."
            )
        object.__setattr__(self, "_prediction_decoder", decoder)
        self.make_predict_function(force=True)

    def decode_boxes(self, predictions, images):
        """Raw head outputs -> keras-cv's `{"boxes", "classes", "confidence", "num_detections"}`."""
        images = ops.convert_to_tensor(images)
        height, width = self._image_size(images)
        centers, strides = anchor_points(height, width)
        distances = decode_distances(ops.convert_to_tensor(predictions["boxes"]), self.box_bins)
        boxes = clip_boxes(distances_to_boxes(distances, centers, strides), height, width)
        boxes = keras_cv.bounding_box.convert_format(
            boxes, source="xyxy", target=self.bounding_box_format, images=images
        )
        return self._prediction_decoder(
            boxes, ops.convert_to_tensor(predictions["classes"]), images=images
        )

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(self._unpack(data))
        return self.decode_boxes(self(x, training=False), x)
