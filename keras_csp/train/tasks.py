"""What differs between classification and detection inside the one training loop.

A task builds the model, computes one replica's loss (already scaled so that summing the replicas'
gradients gives the gradient of the global mean) with the sums it reports, evaluates, and gives
the model to save. Sums, not means, cross the replicas: they add up exactly across replicas and
workers, and across the steps of an epoch.
"""

import math

from keras_csp.coco_eval import COCO_SCORE_THRESHOLD


def _description(task, model_name):
    """What every task's summary says about the run."""
    return {
        "task": task.name,
        "model": model_name,
        "classes": task.data.num_classes,
        "input_size": task.image_size,
        "part_ratio": task.cfg.part_ratio,
        "fusion": task.cfg.fusion,
    }


class ClassificationTask:
    name = "classification"
    # Reported at each step / epoch: derived from the sums.
    train_metrics = ("loss", "accuracy")

    def __init__(self, cfg, data, image_size, label_smoothing, global_batch):
        self.cfg = cfg
        self.data = data
        self.image_size = image_size
        self.label_smoothing = label_smoothing
        self.global_batch = global_batch
        self.top_k = min(5, data.num_classes)

    def description(self, model_name):
        return _description(self, model_name)

    def build(self, model):
        from keras_csp.train.models import build_classifier

        if callable(model) and not isinstance(model, str) and not _is_config(model):
            return model(self.data.num_classes, self.image_size)
        return build_classifier(
            model, self.data.num_classes, self.image_size, self.cfg.part_ratio, self.cfg.fusion
        )

    def compile(self, model, optimizer):
        pass

    def _per_example(self, labels, logits):
        import keras

        return keras.losses.categorical_crossentropy(
            labels, logits, from_logits=True, label_smoothing=self.label_smoothing
        )

    def replica_loss(self, model, batch, replicas):
        import tensorflow as tf

        images, labels = batch[0], batch[1]
        logits = tf.cast(model(images, training=True), tf.float32)
        per_example = self._per_example(labels, logits)
        # Sum over this replica's examples / the global batch: the replicas' gradients add up to
        # the gradient of the global mean (keras.losses objects would divide by replicas again).
        loss = tf.reduce_sum(per_example) / self.global_batch
        if model.losses:
            loss += tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) / replicas
        hard = tf.argmax(labels, axis=-1)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=-1), hard), tf.float32))
        stats = {
            "loss_sum": tf.reduce_sum(per_example),
            "correct": correct,
            "count": tf.cast(tf.shape(per_example)[0], tf.float32),
        }
        return loss, stats

    def logs(self, sums):
        count = max(sums.get("count", 0.0), 1e-9)
        return {"loss": sums["loss_sum"] / count, "accuracy": sums["correct"] / count}

    # --- evaluation -------------------------------------------------------------------------------

    def replica_eval(self, model, batch):
        import tensorflow as tf

        images, labels, weights = batch
        logits = tf.cast(model(images, training=False), tf.float32)
        hard = tf.argmax(labels, axis=-1, output_type=tf.int32)
        per_example = self._per_example(labels, logits)
        top1 = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), hard), tf.float32)
        topk = tf.cast(tf.math.in_top_k(hard, logits, self.top_k), tf.float32)
        return {
            "loss_sum": tf.reduce_sum(per_example * weights),
            "top1": tf.reduce_sum(top1 * weights),
            "topk": tf.reduce_sum(topk * weights),
            "count": tf.reduce_sum(weights),
        }

    def eval_logs(self, sums):
        count = max(sums["count"], 1e-9)
        return {
            "val_loss": sums["loss_sum"] / count,
            "val_accuracy": sums["top1"] / count,
            "val_top5_accuracy": sums["topk"] / count,
        }

    main_metric = "val_accuracy"

    def final_model(self, model, model_spec):
        """A float32 copy with a softmax classifier, the package's usual output."""
        import keras

        if callable(model_spec) and not isinstance(model_spec, str) and not _is_config(model_spec):
            return model
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")
        try:
            from keras_csp.train.models import build_classifier

            final = build_classifier(
                model_spec,
                self.data.num_classes,
                self.image_size,
                self.cfg.part_ratio,
                self.cfg.fusion,
                activation="softmax",
            )
        finally:
            keras.config.set_dtype_policy(previous)
        final.set_weights([keras.ops.convert_to_numpy(w) for w in model.weights])
        return final


class DetectionTask:
    name = "detection"
    train_metrics = ("loss",)
    main_metric = "val_mAP"

    def __init__(self, cfg, data, image_size, global_batch):
        self.cfg = cfg
        self.data = data
        self.image_size = image_size
        self.global_batch = global_batch

    def description(self, model_name):
        return {
            **_description(self, model_name),
            "neck": self.cfg.neck,
            "attention": self.cfg.attention,
        }

    def _kwargs(self):
        attention = None if self.cfg.attention in (None, "none") else self.cfg.attention
        return dict(
            num_classes=self.data.num_classes,
            neck=self.cfg.neck,
            attention=attention,
            input_shape=(self.image_size, self.image_size, 3),
            bounding_box_format=self.data.train.bounding_box_format,
            part_ratio=self.cfg.part_ratio,
            fusion=self.cfg.fusion,
            scale=self.cfg.scale,
            neck_filters=self.cfg.neck_filters,
            neck_options=self.cfg.neck_options,
            head_filters=self.cfg.head_filters,
        )

    def build(self, model):
        from keras_csp.detection import CSPDetector
        from keras_csp.train.models import resolve_model_config

        if callable(model) and not isinstance(model, str) and not _is_config(model):
            return model(self.data.num_classes, self.image_size)
        name, config = resolve_model_config(model)
        return CSPDetector(backbone=config if name in _small_names() or name == "custom" else name,
                           **self._kwargs())

    def compile(self, model, optimizer):
        options = {
            "box_loss_weight": self.cfg.box_loss_weight,
            "classification_loss_weight": self.cfg.class_loss_weight,
            "dfl_loss_weight": self.cfg.dfl_loss_weight,
            "assigner_top_k": self.cfg.assigner_top_k,
            "assigner_alpha": self.cfg.assigner_alpha,
            "assigner_beta": self.cfg.assigner_beta,
        }
        from keras_csp.detection import CSPDetector

        if not isinstance(model, CSPDetector):  # a custom detector: its own loss options
            options = {}
        given = {k: v for k, v in options.items() if v is not None}
        model.compile(optimizer=optimizer, box_loss=self.cfg.box_loss, **given)

    def replica_loss(self, model, batch, replicas):
        import tensorflow as tf

        images, boxes = batch["images"], batch["bounding_boxes"]
        outputs = model(images, training=True)
        loss = tf.cast(
            model.compute_loss(x=images, y=boxes, y_pred=outputs, training=True), tf.float32
        )
        # CSPDetector's loss is a mean over its own batch: divide so the replicas' gradients sum to
        # the mean over replicas.
        return loss / replicas, {"loss_sum": loss, "count": tf.constant(1.0)}

    def logs(self, sums):
        return {"loss": sums["loss_sum"] / max(sums.get("count", 0.0), 1e-9)}

    def evaluate(self, model, dataset):
        """COCO mAP and mAP50 of `model`'s predictions on `dataset` (see `evaluate_detections`)."""
        return evaluate_detections(model, dataset, self.data.train.bounding_box_format)

    def final_model(self, model, model_spec):
        import keras

        if keras.config.dtype_policy().name == "float32" and model.dtype_policy.name == "float32":
            return model
        from keras_csp.detection import CSPDetector

        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("float32")
        try:
            final = CSPDetector.from_config(model.get_config())
        finally:
            keras.config.set_dtype_policy(previous)
        final.set_weights([keras.ops.convert_to_numpy(w) for w in model.weights])
        return final


def evaluate_detections(model, dataset, bounding_box_format,
                        confidence_threshold=COCO_SCORE_THRESHOLD):
    """`{"val_mAP", "val_mAP50"}` of a keras-cv-style detector on keras-cv batches.

    The model's box decoding (`box_decoder`: `decode_boxes`, keras-cv's `decode_predictions`) runs
    with its own suppression, except for the confidence threshold: COCO's protocol keeps every box
    above `confidence_threshold` (0.001), so the metric ranks all of a model's boxes rather than
    counting only those above its deployment threshold
    (keras-cv's BoxCOCOMetrics also leaves images without any box out of the evaluation, which a
    high threshold turns into a reward for finding nothing). The model is left as it was.
    """
    import keras_cv
    import tensorflow as tf

    from keras_csp.export.serving import box_decoder

    decode = box_decoder(model)
    deployed = model.prediction_decoder
    model.prediction_decoder = keras_cv.layers.NonMaxSuppression(
        bounding_box_format=deployed.bounding_box_format,
        from_logits=deployed.from_logits,
        iou_threshold=deployed.iou_threshold,
        confidence_threshold=confidence_threshold,
        max_detections=deployed.max_detections,
    )
    try:

        @tf.function
        def predict(images):
            return decode(model(images, training=False), images)

        def pairs():
            for batch in dataset:
                yield batch["bounding_boxes"], predict(batch["images"])

        return coco_map(pairs(), bounding_box_format)
    finally:
        model.prediction_decoder = deployed


def coco_map(pairs, bounding_box_format):
    """`{"val_mAP", "val_mAP50"}` from `(y_true, y_pred)` batches via keras-cv's BoxCOCOMetrics.

    `y_true`: keras-cv box dicts (`boxes`, `classes`, padded with -1); `y_pred`: the same with
    `confidence`. BoxCOCOMetrics runs pycocotools' COCO evaluation underneath.
    """
    import keras_cv

    metric = keras_cv.metrics.BoxCOCOMetrics(
        bounding_box_format=bounding_box_format, evaluate_freq=10**9
    )
    for y_true, y_pred in pairs:
        metric.update_state(
            {"boxes": y_true["boxes"], "classes": y_true["classes"]},
            {k: y_pred[k] for k in ("boxes", "classes", "confidence")},
        )
    result = {k: float(v) for k, v in metric.result(force=True).items()}
    return {"val_mAP": _get(result, "MaP"), "val_mAP50": _get(result, "MaP@[IoU=50]")}


def _get(result, key):
    value = result.get(key)
    return None if value is None or not math.isfinite(value) else value


def _is_config(value):
    from keras_csp.models.config import ModelConfig

    return isinstance(value, ModelConfig)


def _small_names():
    from keras_csp.train.models import SMALL_MODELS

    return set(SMALL_MODELS)
