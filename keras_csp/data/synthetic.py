"""`synthetic_shapes`: the package's offline data sets of drawn shapes, from `(seed, index)`.

The drawers live apart: `shapes.ShapeDrawer` (one shape, or shapes in grid cells) and
`scenes.SceneDrawer` (the hard detection scenes on photographs); this module checks the options,
picks the drawer and wraps it in the package's `ImageData` splits.
"""

from keras_csp.data.core import ImageData, Split, check_task
from keras_csp.data.scenes import SceneDrawer
from keras_csp.data.shapes import (
    BOUNDING_BOX_FORMATS,
    DIFFICULTIES,
    ShapeDrawer,
    check_classes,
    check_int,
    check_range,
)


def synthetic_shapes(
    task="classification",
    num_train=6000,
    num_validation=1000,
    image_size=None,
    classes=None,
    seed=0,
    area_range=None,
    noise=(0.0, 0.08),
    distractors=2,
    max_objects=None,
    bounding_box_format="xyxy",
    max_boxes=None,
    difficulty="easy",
):
    """A labelled data set of drawn shapes, generated from `seed` with no download.

    Args:
        task: `"classification"` (one shape per image, label = its class) or `"detection"` (1 to
            `max_objects` shapes per image in distinct grid cells, with their tight boxes).
        difficulty: detection only: `"easy"` (the grid cells above) or `"hard"`: shapes of
            widely varying size that overlap and occlude each other, on crops of real
            photographs, with clutter (see `keras_csp.data.scenes`).
        num_train, num_validation: number of examples in each split. The validation examples use
            indices after the training ones, so the splits never share an image.
        image_size: side of the square images (default 64 for classification, 128 for detection).
        classes: names out of `SHAPES` (default: all six), in label order.
        seed: the data set's seed; the same seed gives the same images everywhere.
        area_range: shape area as a fraction of the image (classification, default (0.05, 0.16);
            hard detection, drawn log-uniformly, default (0.004, 0.2)) or of its grid cell
            (easy detection, default (0.12, 0.3)).
        noise: (min, max) standard deviation of the Gaussian pixel noise, on a 0-1 scale.
        distractors: at most this many thin random lines per image.
        max_objects: detection only: at most this many shapes per image (default 4 easy, 16
            hard; hard drops the ones hidden by others, so images hold fewer).
        bounding_box_format: detection only: a keras-cv box format for the labels.
        max_boxes: detection only: batches are padded to this many boxes (default `max_objects`).

    Returns:
        A `keras_csp.data.ImageData` with `.train`, `.validation` (each `.as_dataset(batch_size)`
        gives a prefetched tf.data pipeline) and `.class_names`.
    """
    options = _checked_options(
        task, num_train, num_validation, image_size, classes, seed, area_range, noise,
        distractors, max_objects, bounding_box_format, max_boxes, difficulty,
    )
    names, image_size, hard = options["names"], options["image_size"], options["hard"]
    drawer_args = (image_size, names, options["seed"], options["area_range"], options["noise"],
                   options["distractors"], options["max_objects"])
    drawer = SceneDrawer(*drawer_args) if hard else ShapeDrawer(*drawer_args, task)
    common = dict(
        task=task,
        image_size=image_size,
        num_classes=len(names),
        bounding_box_format=bounding_box_format,
        source_format="xyxy",
        max_boxes=options["max_boxes"],
    )
    num_train, num_validation = options["num_train"], options["num_validation"]
    train = Split("train", num_train, _loader(drawer, task, image_size, hard, 0), **common)
    validation = (
        Split("validation", num_validation, _loader(drawer, task, image_size, hard, num_train),
              **common)
        if num_validation
        else None
    )
    return ImageData(
        task=task,
        class_names=list(names),
        train=train,
        validation=validation,
        description=f"synthetic_shapes(seed={options['seed']}, {num_train}+{num_validation} "
        "images" + (", hard)" if hard else ")"),
    )


def _checked_options(task, num_train, num_validation, image_size, classes, seed, area_range,
                     noise, distractors, max_objects, bounding_box_format, max_boxes, difficulty):
    """The arguments of `synthetic_shapes`, checked, with the task's and difficulty's defaults."""
    check_task(task)
    if difficulty not in DIFFICULTIES:
        raise ValueError(
            f"difficulty={difficulty!r} is not allowed; allowed: {', '.join(DIFFICULTIES)}."
        )
    hard = difficulty == "hard"
    if hard and task != "detection":
        raise ValueError(
            f"difficulty='hard' is not allowed with task={task!r}; allowed: task='detection'."
        )
    default_size = 64 if task == "classification" else 128
    if area_range is None:
        area_range = (0.05, 0.16) if task == "classification" else (0.12, 0.3)
        area_range = (0.004, 0.2) if hard else area_range
    if max_objects is None:
        max_objects = 16 if hard else 4
    max_objects = check_int("max_objects", max_objects, 1, 16)
    if bounding_box_format not in BOUNDING_BOX_FORMATS:
        raise ValueError(
            f"bounding_box_format={bounding_box_format!r} is not allowed; allowed: "
            f"{', '.join(BOUNDING_BOX_FORMATS)}."
        )
    return {
        "hard": hard,
        "num_train": check_int("num_train", num_train, 1),
        "num_validation": check_int("num_validation", num_validation, 0),
        "seed": check_int("seed", seed, 0, 2**40),
        "image_size": check_int(
            "image_size", default_size if image_size is None else image_size, 16
        ),
        "names": check_classes(classes),
        "area_range": check_range(
            "area_range", area_range, *((0.001, 0.5) if hard else (0.005, 0.3))
        ),
        "noise": check_range("noise", noise, 0.0, 0.5),
        "distractors": check_int("distractors", distractors, 0, 16),
        "max_objects": max_objects,
        "max_boxes": check_int("max_boxes", max_objects if max_boxes is None else max_boxes, 1),
    }


def _loader(drawer, task, image_size, hard, offset):
    """The `Split` loader: indices -> examples drawn at `index + offset`."""

    def load(index_ds, blank):
        import tensorflow as tf

        if hard:
            drawer.bind()

        def draw(index):
            out = drawer(index + offset)
            image = tf.ensure_shape(out[0], [image_size, image_size, 3])
            if task == "classification":
                example = (image, tf.cast(out[1], tf.int32))
            else:
                example = {
                    "images": image,
                    "bounding_boxes": {"boxes": out[1], "classes": out[2]},
                }
            source = tf.strings.join(["shapes#", tf.strings.as_string(index + offset)])
            return example, tf.constant(True), source

        return index_ds.map(draw, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    return load
