"""What every loader shares: `ImageData`, `Split`, the count of skipped images, decoding.

A `Split` is a finite list of examples addressed by index, plus a tf.data transformation that turns a
dataset of indices into decoded examples. Everything else (shuffling, sharding between workers,
batching, augmentation, normalization, prefetch) is done here, the same way for every loader:

    indices (shuffled per epoch from the seed, sharded) -> parallel decode -> skip corrupt images
        -> batch (boxes padded to a dense `max_boxes`) -> augment -> normalize -> prefetch

Images come out as float32 in 0-255 (keras-cv's convention, `value_range=(0, 255)`); labels as
one-hot float32 for classification, and keras-cv's dense box dict `{"boxes": (B, max_boxes, 4),
"classes": (B, max_boxes)}` padded with -1 for detection.

Corrupt or unreadable images never stop a run: each is replaced by a "not ok" marker at decode time,
recorded once in the data set's `SkipLog`, and dropped (or, in padded evaluation batches, given
weight 0).
"""

import dataclasses
import threading
from typing import Callable, List, Optional

import numpy as np

# The ImageNet normalization and the image file types are the package's (keras_csp.images), so a
# model trained here takes the inputs of one loaded with weights="imagenet", and `decode_image`
# (tf.io.decode_image: BMP, GIF, JPEG, PNG) reads every file type the other readers take.
from keras_csp.images import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD  # noqa: F401
from keras_csp.images import describe_skipped, safe_to_decode, unreadable_reason

TASKS = ("classification", "detection")


def check_task(task):
    if task not in TASKS:
        raise ValueError(f"task={task!r} is not allowed; allowed: {', '.join(TASKS)}.")


class SkipLog:
    """The images that could not be read, each counted once however often it was tried, with
    the reason (given, or asked of Pillow when first reported: the TF decoder does not say)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sources = {}

    def record(self, source, reason=None):
        if isinstance(source, bytes):
            source = source.decode("utf-8", "replace")
        with self._lock:
            if reason or str(source) not in self._sources:
                self._sources[str(source)] = reason

    def reasons(self, limit=None):
        """`[(source, reason)]` of the first `limit` sources (all by default), sorted."""
        sources = self.sources[:limit]
        with self._lock:
            missing = [s for s in sources if not self._sources[s]]
        found = {s: unreadable_reason(s) or "TensorFlow cannot decode it" for s in missing}
        with self._lock:
            for source, reason in found.items():
                self._sources[source] = self._sources[source] or reason
            return [(s, self._sources[s]) for s in sources]

    @property
    def count(self):
        with self._lock:
            return len(self._sources)

    @property
    def sources(self):
        with self._lock:
            return sorted(self._sources)

    def report(self, limit=10):
        sources = self.sources  # reasons found for those shown only: Pillow decodes to say why
        shown = self.reasons(limit) + [(s, None) for s in sources[limit:]]
        return describe_skipped(shown, limit) or "no unreadable images"

    def _record_tensor(self, source):
        self.record(source)
        return np.int64(1)


def normalize_images(images):
    """(images / 255 - mean) / std with the ImageNet statistics, as `preprocess_input` does."""
    import tensorflow as tf

    mean = tf.constant([m * 255.0 for m in IMAGENET_MEAN], tf.float32)
    std = tf.constant([s * 255.0 for s in IMAGENET_STD], tf.float32)
    return (tf.cast(images, tf.float32) - mean) / std


def decode_image(path):
    """uint8 HxWx3 image from a BMP, GIF (its first frame), JPEG or PNG file (grayscale and
    RGBA become RGB).

    A file that is no regular file or a decompression bomb (`keras_csp.images.safe_to_decode`,
    from its header) fails before it is read: TF's decoder would read `/dev/zero` forever and
    allocate all of a 20000x20000 PNG of a few KB (1.2 GB).
    """
    import tensorflow as tf

    safe = tf.numpy_function(safe_to_decode, [path], tf.bool, stateful=False)
    with tf.control_dependencies([tf.debugging.Assert(safe, [path])]):
        data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_and_crop(image, size):
    """Resizes the shorter side to `size` and center-crops a `size` x `size` square (float32)."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = float(size) / tf.reduce_min(shape)
    new = tf.maximum(tf.cast(tf.math.ceil(shape * scale), tf.int32), size)
    image = tf.image.resize(tf.cast(image, tf.float32), new, antialias=True)
    top = (new[0] - size) // 2
    left = (new[1] - size) // 2
    image = image[top : top + size, left : left + size]
    return tf.ensure_shape(image, [size, size, 3])


def letterbox(image, size):
    """Resizes the longer side to `size` and pads bottom/right to a square; returns (image, scale)."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = float(size) / tf.reduce_max(shape)
    new = tf.minimum(tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1), size)
    image = tf.image.resize(tf.cast(image, tf.float32), new, antialias=True)
    image = tf.image.pad_to_bounding_box(image, 0, 0, size, size)
    return tf.ensure_shape(image, [size, size, 3]), scale


def safe_load(index_ds, decode, source, blank):
    """Maps indices to `(example, ok, source)`; a decode error gives `(blank(), False, source)`.

    `decode(index) -> example` may fail at run time (a corrupt file); the error is caught per
    element by running it in a one-element dataset with `ignore_errors` and falling back to the
    blank example. `source(index)` names the file for the report. Output order is input order.
    """
    import tensorflow as tf

    def one(index):
        good = (
            tf.data.Dataset.from_tensors(index)
            .map(lambda i: (decode(i), tf.constant(True)))
            .ignore_errors()
        )
        bad = tf.data.Dataset.from_tensors(index).map(lambda i: (blank(), tf.constant(False)))
        return good.concatenate(bad).take(1).map(lambda ex, ok: (ex, ok, source(index)))

    return index_ds.interleave(
        one,
        cycle_length=16,
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def _weight_from_ok(example, ok):
    import tensorflow as tf

    return example, tf.cast(ok, tf.float32)


def _is_ok(example, ok):
    return ok


def _drop_ok(example, ok):
    return example


@dataclasses.dataclass
class Split:
    """One split (train or validation) of an `ImageData`.

    `load(index_dataset, blank)` maps a dataset of int64 indices in `[0, size)` to
    `(example, ok, source)`; `blank()` is the stand-in example for an unreadable image.
    Use `as_dataset(batch_size)` for a ready tf.data pipeline.
    """

    name: str
    size: int
    load: Callable
    task: str
    image_size: int
    num_classes: int
    bounding_box_format: str = "xyxy"
    source_format: str = "xyxy"
    max_boxes: int = 100
    skip_log: Optional[SkipLog] = None

    def __post_init__(self):
        check_task(self.task)
        if self.skip_log is None:
            self.skip_log = SkipLog()

    # --- pieces -----------------------------------------------------------------------------------

    def _blank(self):
        import tensorflow as tf

        image = tf.zeros([self.image_size, self.image_size, 3], tf.float32)
        if self.task == "classification":
            return image, tf.constant(0, tf.int32)
        return {
            "images": image,
            "bounding_boxes": {
                "boxes": tf.zeros([0, 4], tf.float32),
                "classes": tf.zeros([0], tf.float32),
            },
        }

    def indices(self, shuffle, seed=0, epoch=0, shard=None):
        """The epoch's example order: a stateless permutation of `(seed, epoch)`, then a shard."""
        import tensorflow as tf

        order = tf.range(self.size, dtype=tf.int64)
        if shuffle:
            key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
            order = tf.random.experimental.stateless_shuffle(order, seed=key)
        if shard is not None:
            count, index = shard
            order = order[index::count]
        return order

    def _decoded(self, index_ds, keep_corrupt):
        """Decoded examples; corrupt ones recorded, then dropped or kept with weight 0."""
        import tensorflow as tf

        log = self.skip_log

        def note(example, ok, source):
            recorded = tf.cond(
                ok,
                lambda: tf.constant(0, tf.int64),
                lambda: tf.numpy_function(log._record_tensor, [source], tf.int64, stateful=True),
            )
            with tf.control_dependencies([recorded]):
                ok = tf.identity(ok)
            return self._format(example), ok

        ds = self.load(index_ds, self._blank)
        ds = ds.map(note, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if keep_corrupt:
            return ds.map(_weight_from_ok)
        return ds.filter(_is_ok).map(_drop_ok)

    def _format(self, example):
        """Detection: boxes to the requested format, at most `max_boxes` of them."""
        if self.task == "classification":
            return example
        import keras_cv

        boxes = example["bounding_boxes"]["boxes"][: self.max_boxes]
        classes = example["bounding_boxes"]["classes"][: self.max_boxes]
        if self.bounding_box_format != self.source_format:
            boxes = keras_cv.bounding_box.convert_format(
                boxes,
                source=self.source_format,
                target=self.bounding_box_format,
                images=example["images"],
            )
        return {"images": example["images"], "bounding_boxes": {"boxes": boxes, "classes": classes}}

    def _batch(self, ds, batch_size, drop_remainder, weighted):
        import tensorflow as tf

        if self.task == "classification":
            ds = ds.batch(batch_size, drop_remainder=drop_remainder)
            if weighted:
                return ds.map(
                    lambda example, w: (example[0], tf.one_hot(example[1], self.num_classes), w)
                )
            return ds.map(lambda images, labels: (images, tf.one_hot(labels, self.num_classes)))
        size, m = self.image_size, self.max_boxes
        shapes = {"images": [size, size, 3], "bounding_boxes": {"boxes": [m, 4], "classes": [m]}}
        pads = {
            "images": tf.constant(0.0),
            "bounding_boxes": {"boxes": tf.constant(-1.0), "classes": tf.constant(-1.0)},
        }
        if weighted:
            shapes, pads = (shapes, []), (pads, tf.constant(0.0))
        return ds.padded_batch(batch_size, shapes, pads, drop_remainder=drop_remainder)

    def _finish(self, ds, augment, normalize):
        import tensorflow as tf

        if augment is not None:
            from keras_csp.data.augment import quiet_tensorflow

            with quiet_tensorflow():
                ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if normalize:
            if self.task == "classification":
                ds = ds.map(lambda images, *rest: (normalize_images(images), *rest))
            else:
                ds = ds.map(lambda batch: {**batch, "images": normalize_images(batch["images"])})
        return ds

    # --- public -----------------------------------------------------------------------------------

    def as_dataset(
        self,
        batch_size,
        shuffle=None,
        seed=0,
        augment=None,
        normalize=False,
        drop_remainder=None,
    ):
        """A batched, prefetched tf.data pipeline over this split.

        Args:
            batch_size: examples per batch.
            shuffle: reshuffle every iteration (default: True for the train split).
            seed: shuffle seed.
            augment: optional function batch -> batch (see `keras_csp.data.augmenter`).
            normalize: apply the ImageNet normalization the models expect (default False: images
                stay in 0-255).
            drop_remainder: drop the last partial batch (default: same as `shuffle`).

        Yields:
            classification: `(images (B, S, S, 3) float32 0-255, one-hot labels (B, classes))`;
            detection: `{"images": ..., "bounding_boxes": {"boxes": (B, max_boxes, 4),
            "classes": (B, max_boxes)}}`, padded with -1.
        """
        import tensorflow as tf

        if shuffle is None:
            shuffle = self.name == "train"
        if drop_remainder is None:
            drop_remainder = bool(shuffle)
        ds = tf.data.Dataset.range(self.size)
        if shuffle:
            ds = ds.shuffle(self.size, seed=seed, reshuffle_each_iteration=True)
        ds = self._decoded(ds, keep_corrupt=False)
        ds = self._batch(ds, batch_size, drop_remainder, weighted=False)
        return self._finish(ds, augment, normalize).prefetch(tf.data.AUTOTUNE)

    def training_dataset(
        self,
        batch_size,
        batches,
        *,
        seed,
        epochs,
        shard=None,
        skip_batches=0,
        augment=None,
        normalize=True,
    ):
        """The training stream of a run: `batches` batches for each epoch in `range(*epochs)`.

        Epoch e's order is a stateless permutation of `(seed, e)`, so any worker, and any resumed
        run, sees exactly the same order. The first epoch starts after `skip_batches` batches
        (resuming mid-epoch) and has that many fewer. Corrupt images are made up for by wrapping
        around the epoch's order, so the count of batches never falls short and workers stay in
        step.
        """
        import tensorflow as tf

        first, last = (int(e) for e in epochs)
        skip_batches = int(skip_batches)
        if not 0 <= skip_batches < batches:
            raise ValueError(f"skip_batches={skip_batches} must be in [0, {batches}).")

        def one_epoch(epoch):
            resumed = tf.equal(epoch, first)
            zero = tf.constant(0, tf.int64)
            skip = tf.where(resumed, tf.constant(skip_batches * batch_size, tf.int64), zero)
            count = tf.constant(batches, tf.int64) - tf.where(
                resumed, tf.constant(skip_batches, tf.int64), zero
            )
            order = self.indices(True, seed, epoch, shard)
            head = tf.data.Dataset.from_tensor_slices(order).skip(skip)
            wrap = tf.data.Dataset.from_tensor_slices(order).repeat(2)
            ds = self._decoded(head.concatenate(wrap), keep_corrupt=False)
            return self._batch(ds, batch_size, True, weighted=False).take(count)

        ds = tf.data.Dataset.range(first, last).flat_map(one_epoch)
        return self._finish(ds, augment, normalize).prefetch(tf.data.AUTOTUNE)

    def evaluation_dataset(self, batch_size, batches, *, shard=None, normalize=True):
        """Exactly `batches` batches in file order, padded with weight-0 blanks.

        Each element is `(images, labels, weights)`; corrupt images and the padding have weight 0,
        so metrics are exact and every replica and worker runs the same number of steps.
        """
        import tensorflow as tf

        order = self.indices(False, shard=shard)
        ds = self._decoded(tf.data.Dataset.from_tensor_slices(order), keep_corrupt=True)
        pad = tf.data.Dataset.from_tensors((self._blank(), tf.constant(0.0))).repeat()
        ds = self._batch(ds.concatenate(pad), batch_size, True, weighted=True).take(batches)
        return self._finish(ds, None, normalize).prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass
class ImageData:
    """A labelled image data set: `train` and `validation` splits, class names, skipped images."""

    task: str
    class_names: List[str]
    train: Split
    validation: Optional[Split] = None
    description: str = ""
    skipped: SkipLog = dataclasses.field(default_factory=SkipLog)
    # COCO category id of each class (detection from COCO files), for exporting predictions.
    category_ids: Optional[List[int]] = None
    # Boxes clipped to their image on loading (coco_detection(clip_boxes=True)).
    clipped_boxes: int = 0

    def __post_init__(self):
        check_task(self.task)
        for split in (self.train, self.validation):
            if split is not None:
                split.skip_log = self.skipped

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def image_size(self):
        return self.train.image_size

    def as_datasets(self, batch_size, augment=None, normalize=False, seed=0):
        """`(train, validation)` tf.data pipelines (validation is None without that split)."""
        train = self.train.as_dataset(batch_size, seed=seed, augment=augment, normalize=normalize)
        validation = (
            self.validation.as_dataset(batch_size, normalize=normalize)
            if self.validation is not None
            else None
        )
        return train, validation

    def __repr__(self):
        val = self.validation.size if self.validation is not None else 0
        return (
            f"ImageData({self.description or self.task}: {self.train.size} train / {val} "
            f"validation images, {self.num_classes} classes, {self.image_size}px)"
        )
