"""The data of a run: the `ImageData` the options name (checked against the task), its augmenter,
and the per-replica input pipelines that `strategy.run` steps read.

The data order of epoch e is a pure function of (seed, e), so a run resumed at (epoch, step)
skips exactly the examples the interrupted run had consumed.
"""

import itertools
import math


def load_data(cfg, task):
    """The `ImageData` that `cfg.data` names, at `cfg.input_size`."""
    from keras_csp import data as kdata

    if cfg.data == "shapes":
        return kdata.synthetic_shapes(
            task=task,
            num_train=cfg.train_size,
            num_validation=cfg.val_size,
            image_size=cfg.input_size,
            seed=cfg.data_seed,
            bounding_box_format=cfg.bounding_box_format,
            max_boxes=None if task == "classification" else min(cfg.max_boxes, 16),
            difficulty=cfg.shapes_difficulty,
        )
    if cfg.data == "folder":
        return kdata.image_folder(
            cfg.data_path,
            image_size=cfg.input_size or 224,
            validation_split=cfg.validation_split,
            seed=cfg.data_seed,
        )
    if cfg.data in ("yolo", "voc"):
        loader = kdata.yolo_detection if cfg.data == "yolo" else kdata.voc_detection
        return loader(
            cfg.data_path,
            image_size=cfg.input_size or 416,
            bounding_box_format=cfg.bounding_box_format,
            max_boxes=cfg.max_boxes,
        )
    return kdata.coco_detection(
        cfg.data_path,
        cfg.images_dir,
        image_size=cfg.input_size or 416,
        validation_annotations=cfg.val_data_path,
        validation_images_dir=cfg.val_images_dir,
        validation_split=cfg.validation_split,
        bounding_box_format=cfg.bounding_box_format,
        max_boxes=cfg.max_boxes,
        seed=cfg.data_seed,
        clip_boxes=cfg.clip_boxes,
    )


def check_data(data, task, cfg):
    """Refuses data that is not an `ImageData` of `task` at `cfg.input_size` with a validation
    split."""
    from keras_csp.data import ImageData

    if not isinstance(data, ImageData):
        raise ValueError(
            f"data={type(data).__name__} is not allowed; allowed: a keras_csp.data.ImageData "
            "(from synthetic_shapes, image_folder, coco_detection, yolo_detection or "
            "voc_detection) or None (built from the options)."
        )
    if data.task != task:
        raise ValueError(f"data is {data.task} data; this trainer needs {task} data.")
    if cfg.input_size is not None and cfg.input_size != data.image_size:
        raise ValueError(
            f"input_size={cfg.input_size} differs from the data's image size {data.image_size}; "
            "allowed: the data's size (or build the data at input_size)."
        )
    if task == "classification" and data.num_classes < 2:
        raise ValueError(f"the data has {data.num_classes} class; allowed: at least 2 classes.")
    if data.validation is None:
        raise ValueError(
            "the data has no validation split; allowed: data with validation images "
            "(val_size > 0, validation_split > 0 or a validation annotation file)."
        )


def steps_per_epoch(data, cfg):
    """Full batches in the training split, at most `cfg.steps_per_epoch` (when set)."""
    steps = data.train.size // cfg.batch_size
    if steps == 0:
        raise ValueError(
            f"the training split has {data.train.size} images, fewer than one batch of "
            f"batch_size={cfg.batch_size}; allowed: a batch size <= {data.train.size}."
        )
    if cfg.steps_per_epoch:
        steps = min(steps, cfg.steps_per_epoch)
    return steps


def make_augmenter(cfg, data, task_name, augment_name):
    """(the `augment` preset's augmenter with the `aug_*` overrides, or None; label smoothing)."""
    from keras_csp.data import augmenter

    overrides = cfg.augmentation_overrides()
    label_smoothing = overrides.pop("label_smoothing", None)
    if augment_name == "none" and label_smoothing is None:
        label_smoothing = 0.0
    augment = augmenter(
        augment_name,
        data.image_size,
        bounding_box_format=data.train.bounding_box_format if task_name == "detection" else None,
        max_boxes=data.train.max_boxes,
        seed=cfg.seed,
        **overrides,
    )
    if label_smoothing is None and augment is not None:
        label_smoothing = getattr(augment.options, "label_smoothing", 0.0)
    return augment, label_smoothing or 0.0


def _input_options():
    import tensorflow as tf

    return tf.distribute.InputOptions(experimental_fetch_to_device=True)


def _shard(ctx):
    """This input pipeline's (count, index) shard, or None when there is one pipeline."""
    return (ctx.num_input_pipelines, ctx.input_pipeline_id) if ctx.num_input_pipelines > 1 else None


def training_batches(strategy, data, cfg, per_replica, steps, first_epoch, first_step, augment):
    """An iterator over the distributed training batches from (first_epoch, first_step) on, one
    per-run stream over the remaining epochs (per-epoch permutation from the seed, sharded per
    worker, per-replica batches). With `close_mosaic` N and mosaic on, the last N epochs come
    from a second stream whose augmenter has no mosaic (built when the first one ends)."""
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync
    end = max(cfg.epochs, first_epoch + 1)
    closed = getattr(augment, "without_mosaic", None)
    switch = max(first_epoch, end - cfg.close_mosaic) if closed and cfg.close_mosaic else end

    def stream(epochs, skip, augment):
        def train_fn(ctx):
            local = replicas // ctx.num_input_pipelines
            return data.train.training_dataset(
                per_replica,
                steps * local,
                seed=cfg.seed,
                epochs=epochs,
                shard=_shard(ctx),
                skip_batches=skip * local,
                augment=augment,
                normalize=True,
            )

        return iter(strategy.distribute_datasets_from_function(train_fn, _input_options()))

    parts = []
    if switch > first_epoch:
        parts.append(lambda: stream((first_epoch, switch), first_step, augment))
    if end > switch:
        skip = first_step if switch == first_epoch else 0
        parts.append(lambda: stream((switch, end), skip, closed))
    batches = itertools.chain.from_iterable(part() for part in parts)
    # The first batch before the first write: data whose every image is unreadable (a folder
    # too large to verify up front, COCO files) is refused with nothing written.
    try:
        first_batch = next(batches)
    except (StopIteration, tf.errors.OutOfRangeError):
        raise ValueError(
            f"the training data yields no batch of batch_size={cfg.batch_size} ("
            f"{data.skipped.report(limit=3)}); nothing was written. Allowed: data with at "
            "least one batch of readable images."
        ) from None
    return itertools.chain([first_batch], batches)


def evaluation_batches(strategy, data, cfg, per_replica, task_name):
    """The validation batches: distributed over the replicas for classification; for detection
    one local dataset (the chief measures COCO mAP on it)."""
    if task_name != "classification":
        return data.validation.as_dataset(per_replica, shuffle=False, normalize=True)
    replicas = strategy.num_replicas_in_sync
    eval_steps = math.ceil(data.validation.size / cfg.batch_size)

    def eval_fn(ctx):
        local = replicas // ctx.num_input_pipelines
        return data.validation.evaluation_dataset(
            per_replica, eval_steps * local, shard=_shard(ctx), normalize=True
        )

    return strategy.distribute_datasets_from_function(eval_fn, _input_options())
