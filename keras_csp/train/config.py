"""`TrainConfig`: every option of a training run, from YAML, flags or keyword arguments.

One flat dataclass is the single source of truth: its fields are the YAML keys, the Python keyword
arguments of `fit_classifier`/`fit_detector`, and the `keras-csp train` flags (`part_ratio` ->
`--part-ratio`, booleans as `--flag/--no-flag`). Later sources override earlier ones:
defaults < YAML file < flags / keyword arguments. A key that is not a field is an error that
lists the valid ones. This module imports neither TensorFlow nor Keras.
"""

import dataclasses
import difflib
import math
import os
import typing
from typing import Any, Dict, Optional, Tuple

from keras_csp import registry

TASKS = ("classification", "detection")
DATASETS = ("shapes", "folder", "coco", "yolo", "voc")
FUSIONS = registry.MODEL_FUSIONS
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("none", "float16", "bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")
AUGMENTS = ("classification", "detection", "none")
MIX_MODES = ("mixup", "cutmix", "mixup_or_cutmix", "none")
NECKS = tuple(registry.NECKS)
BOX_LOSSES = registry.BOX_LOSSES
SCALES = ("n", "s", "m")  # keras_csp.detection.scales.SCALES (Keras-free here, for --help)


def _f(default, help, choices=None, group="run"):
    return dataclasses.field(
        default=default, metadata={"help": help, "choices": choices, "group": group}
    )


@dataclasses.dataclass
class TrainConfig:
    # --- task and model ---
    task: str = _f("classification", "what to train", TASKS, "model")
    model: str = _f(
        "cspresnext50",
        "architecture name (`keras-csp models`, or a small one of keras_csp.train.SMALL_MODELS); "
        "for detection, the backbone",
        None,
        "model",
    )
    part_ratio: float = _f(0.5, "γ of every CSP stage, strictly between 0 and 1", None, "model")
    fusion: str = _f("full", "CSP fusion; 'none' gives the plain (non-CSP) twin", FUSIONS, "model")
    input_size: Optional[int] = _f(
        None, "square input size (default: the data's: 64 shapes, 224 folder, 416 coco)", None, "model"
    )
    neck: str = _f("efm", "detection: the neck of CSPDetector", NECKS, "model")
    neck_options: Optional[Dict[str, Any]] = _f(None, registry.neck_options_help(), None, "model")
    scale: Optional[str] = _f(
        None, "detection: CSPDetector's named size (backbone, neck and head widths)", SCALES,
        "model",
    )
    neck_filters: Optional[Tuple[int, int, int]] = _f(
        None, "detection: the neck's P3,P4,P5 widths (default: the scale's)", None, "model"
    )
    head_filters: Optional[Tuple[int, int, int]] = _f(
        None, "detection: the head's P3,P4,P5 widths (default: the scale's)", None, "model"
    )
    attention: Optional[str] = _f("sam", f"detection: {registry.attention_text()}", None, "model")
    box_loss: str = _f("ciou", "detection: box loss", BOX_LOSSES, "model")
    box_loss_weight: Optional[float] = _f(
        None, "detection: weight of the box loss (default: CSPDetector's)", None, "model"
    )
    class_loss_weight: Optional[float] = _f(
        None, "detection: weight of the class loss (default: CSPDetector's)", None, "model"
    )
    dfl_loss_weight: Optional[float] = _f(
        None, "detection: weight of the distribution focal loss (default: CSPDetector's)", None,
        "model",
    )
    assigner_top_k: Optional[int] = _f(
        None, "detection: positions the assigner gives each box (default: CSPDetector's)", None,
        "model",
    )
    assigner_alpha: Optional[float] = _f(
        None, "detection: the assigner's class-score exponent (default: CSPDetector's)", None,
        "model",
    )
    assigner_beta: Optional[float] = _f(
        None, "detection: the assigner's IoU exponent (default: CSPDetector's)", None, "model"
    )
    # --- data ---
    data: str = _f("shapes", "data source", DATASETS, "data")
    data_path: Optional[str] = _f(None, "folder: the class-per-folder root; coco: the training "
                                  "annotation JSON; yolo: the data YAML; voc: the VOC root", None,
                                  "data")
    images_dir: Optional[str] = _f(None, "coco: the folder of the training images", None, "data")
    val_data_path: Optional[str] = _f(None, "coco: a validation annotation JSON", None, "data")
    val_images_dir: Optional[str] = _f(None, "coco: the folder of the validation images", None, "data")
    validation_split: float = _f(
        0.1, "folder/coco without a validation file: fraction held out", None, "data"
    )
    train_size: int = _f(6000, "shapes: training images", None, "data")
    val_size: int = _f(1000, "shapes: validation images", None, "data")
    data_seed: int = _f(0, "seed of the synthetic images and of the validation split", None, "data")
    bounding_box_format: str = _f("xyxy", "detection: keras-cv box format of the data", None, "data")
    max_boxes: int = _f(100, "detection: boxes per image after padding", None, "data")
    clip_boxes: bool = _f(
        False,
        "coco: clip boxes that stick out of their image by more than 1 pixel (and say how many) "
        "instead of refusing the file",
        None,
        "data",
    )
    shapes_difficulty: str = _f(
        "easy",
        "shapes, detection: 'hard' draws crowded, occluding shapes of many sizes on photographs",
        ("easy", "hard"),
        "data",
    )
    # --- augmentation ---
    augment: Optional[str] = _f(
        None, "augmentation preset (default: the task's preset)", AUGMENTS, "augmentation"
    )
    aug_crop_area: Optional[Tuple[float, float]] = _f(
        None, "classification: random resized crop area range", None, "augmentation"
    )
    aug_aspect_ratio: Optional[Tuple[float, float]] = _f(
        None, "classification: random resized crop aspect range", None, "augmentation"
    )
    aug_flip: Optional[bool] = _f(None, "horizontal flips", None, "augmentation")
    aug_randaugment_ops: Optional[int] = _f(
        None, "classification: RandAugment ops per image (0: off)", None, "augmentation"
    )
    aug_randaugment_magnitude: Optional[float] = _f(
        None, "classification: RandAugment magnitude (0-1)", None, "augmentation"
    )
    aug_mix: Optional[str] = _f(None, "classification: batch mixing", MIX_MODES, "augmentation")
    aug_mixup_alpha: Optional[float] = _f(None, "classification: MixUp alpha", None, "augmentation")
    aug_cutmix_alpha: Optional[float] = _f(None, "classification: CutMix alpha", None, "augmentation")
    aug_label_smoothing: Optional[float] = _f(
        None, "classification: label smoothing of the loss", None, "augmentation"
    )
    aug_jitter_scale: Optional[Tuple[float, float]] = _f(
        None, "detection: jittered resize scale range", None, "augmentation"
    )
    aug_mosaic: Optional[bool] = _f(None, "detection: mosaic", None, "augmentation")
    aug_hsv: Optional[bool] = _f(None, "detection: HSV jitter, ultralytics' gains", None,
                                 "augmentation")
    close_mosaic: int = _f(0, "detection: last N epochs without mosaic", None, "augmentation")
    # --- optimization ---
    epochs: int = _f(10, "epochs to train (resume continues up to this)", None, "optimization")
    batch_size: int = _f(64, "global batch size (divisible by the replicas)", None, "optimization")
    steps_per_epoch: Optional[int] = _f(
        None, "cap on steps per epoch (default: train images // batch size)", None, "optimization"
    )
    optimizer: str = _f("sgd", "optimizer", OPTIMIZERS, "optimization")
    learning_rate: Optional[float] = _f(
        None,
        "peak learning rate (default: SGD 0.1 * batch/256, detection 0.02 * batch/16; AdamW "
        "1e-3 * batch/256)",
        None,
        "optimization",
    )
    momentum: float = _f(0.9, "SGD momentum (Nesterov)", None, "optimization")
    weight_decay: Optional[float] = _f(
        None,
        "decoupled weight decay, not on BN/bias (default: 5e-4 SGD, 0.05 AdamW)",
        None,
        "optimization",
    )
    schedule: str = _f("cosine", "learning-rate schedule after warm-up", SCHEDULES, "optimization")
    warmup_epochs: float = _f(1.0, "linear warm-up from 0, in epochs", None, "optimization")
    min_lr_ratio: float = _f(0.0, "cosine: final / peak learning rate", None, "optimization")
    clipnorm: Optional[float] = _f(None, "global gradient-norm clipping", None, "optimization")
    ema: bool = _f(False, "validate and save a moving average of the weights (Keras' use_ema)",
                   None, "optimization")
    ema_momentum: float = _f(0.99, "--ema: the average's momentum", None, "optimization")
    # --- runtime ---
    mixed_precision: str = _f("none", "mixed precision policy", PRECISIONS, "runtime")
    jit_compile: bool = _f(False, "compile the training step with XLA", None, "runtime")
    strategy: str = _f("default", "tf.distribute strategy", STRATEGIES, "runtime")
    cpu_replicas: int = _f(
        0,
        "split the CPU into this many logical devices, one replica each (MirroredStrategy "
        "without GPUs); must be set before TensorFlow starts",
        None,
        "runtime",
    )
    seed: int = _f(0, "seed of initialization, data order and augmentation", None, "runtime")
    deterministic: bool = _f(False, "deterministic TF ops (slower; exact resumes)", None, "runtime")
    # --- output ---
    output_dir: str = _f(
        "runs/train", "where checkpoints, logs, plot, summary and model go", None, "output"
    )
    resume: bool = _f(
        False, "continue from output_dir's latest checkpoint if there is one", None, "output"
    )
    overwrite: bool = _f(False, "replace an earlier run's files in output_dir", None, "output")
    allow_config_change: bool = _f(
        False,
        "with resume: continue although data, seed, batch size or optimizer options differ from "
        "the run's (each change is recorded in config_changes.json)",
        None,
        "output",
    )
    save_every_steps: int = _f(
        0, "also checkpoint every N steps inside an epoch (0: at epoch ends only)", None, "output"
    )
    keep_checkpoints: int = _f(2, "checkpoints kept (oldest deleted)", None, "output")
    verbose: int = _f(1, "0 silent, 1 progress bar, 2 one line per epoch", None, "output")
    save_model: bool = _f(True, "write the trained model as model.keras", None, "output")

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------------------------------

    def validate(self):
        _check_finite(self)
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise ValueError(
                    f"{f.name}={value!r} is not allowed; allowed: {', '.join(map(repr, choices))}."
                )
        _positive("epochs", self.epochs)
        _positive("batch_size", self.batch_size)
        _positive("train_size", self.train_size)
        _positive("max_boxes", self.max_boxes)
        _positive("keep_checkpoints", self.keep_checkpoints)
        _non_negative("val_size", self.val_size)
        _non_negative("save_every_steps", self.save_every_steps)
        _non_negative("cpu_replicas", self.cpu_replicas)
        _check_detector_options(self)
        if self.steps_per_epoch is not None:
            _positive("steps_per_epoch", self.steps_per_epoch)
        if self.input_size is not None:
            _check_input_size(self.input_size)
        if not 0.0 < self.part_ratio < 1.0:
            raise ValueError(
                f"part_ratio={self.part_ratio!r} is not allowed; allowed: strictly between 0 and 1."
            )
        if not 0.0 <= self.validation_split < 1.0:
            raise ValueError(
                f"validation_split={self.validation_split!r} is not allowed; allowed: 0 <= x < 1."
            )
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate!r}; allowed: a number > 0.")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError(f"weight_decay={self.weight_decay!r}; allowed: a number >= 0.")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum={self.momentum!r} is not allowed; allowed: 0 <= x < 1.")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs={self.warmup_epochs!r}; allowed: a number >= 0.")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio={self.min_lr_ratio!r}; allowed: 0 to 1.")
        if self.verbose not in (0, 1, 2):
            raise ValueError(f"verbose={self.verbose!r} is not allowed; allowed: 0, 1 or 2.")
        if self.resume and self.overwrite:
            raise ValueError(
                "resume=True and overwrite=True contradict each other; allowed: one of them."
            )
        if self.attention != "none" and self.attention not in registry.ATTENTIONS:
            allowed = registry.attention_text()
            raise ValueError(f"attention={self.attention!r} is not allowed; allowed: {allowed}.")
        if self.data in ("folder", "coco", "yolo", "voc") and not self.data_path:
            raise ValueError(
                f"data={self.data!r} needs data_path (--data-path): "
                + {"folder": "the class-per-folder root.", "coco": "the annotation JSON.",
                   "yolo": "the data YAML.", "voc": "the VOC root folder."}[self.data]
            )
        if self.data == "coco" and not self.images_dir:
            raise ValueError("data='coco' needs images_dir (--images-dir): the images' folder.")
        if self.data in ("coco", "yolo", "voc") and self.task != "detection":
            raise ValueError(f"data={self.data!r} is detection data; allowed: task='detection'.")
        if self.data in ("yolo", "voc") and (self.images_dir or self.val_data_path
                                             or self.val_images_dir):
            raise ValueError(
                f"data={self.data!r} finds its images and validation split in data_path; allowed: "
                "no images_dir, val_data_path or val_images_dir (they are for coco)."
            )
        if self.data == "folder" and self.task != "classification":
            raise ValueError(
                "data='folder' is classification data; allowed with task='classification'."
            )

    # --- derived values -----------------------------------------------------------------------

    def resolved_learning_rate(self):
        if self.learning_rate is not None:
            return float(self.learning_rate)
        if self.optimizer == "sgd" and self.task == "detection":
            # 0.02 at batch 16 (YOLOv8's examples: 0.0125): on the hard shapes set the
            # classification rule's 0.00625 reached mAP50 0.037, 0.0125 0.043 and 0.025 0.056
            # (benchmarks/README.md, "Detection": the recipe runs).
            return 0.02 * self.batch_size / 16.0
        base = 0.1 if self.optimizer == "sgd" else 1e-3
        return base * self.batch_size / 256.0

    def resolved_weight_decay(self):
        if self.weight_decay is not None:
            return float(self.weight_decay)
        return 5e-4 if self.optimizer == "sgd" else 0.05

    def resolved_augment(self):
        return self.augment or self.task

    def augmentation_overrides(self):
        """The `aug_*` options that were set, keyed by the preset's option names."""
        return {
            f.name[len("aug_") :]: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name.startswith("aug_") and getattr(self, f.name) is not None
        }

    def to_dict(self):
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def replace(self, **changes):
        return build_config(self.to_dict(), changes)


def _check_detector_options(cfg):
    """The detector's sizes and the recipe switches of issue 23 (EMA, closing mosaic)."""
    for name in ("scale", "neck_filters", "head_filters", "neck_options"):
        if getattr(cfg, name) is not None and cfg.task != "detection":
            value = getattr(cfg, name)
            raise ValueError(f"{name}={value!r} is a detector option; allowed: task='detection'.")
    cfg.neck_options = registry.given_neck_options(cfg.neck, cfg.neck_options)
    _non_negative("close_mosaic", cfg.close_mosaic)
    if not 0.0 <= cfg.ema_momentum < 1.0:
        raise ValueError(f"ema_momentum={cfg.ema_momentum!r} is not allowed; allowed: 0 <= x < 1.")


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: an integer >= 1.")


def _non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: an integer >= 0.")


# Input sizes a run may ask for: below 32 the paper's backbones have no P5; above 4096 one batch
# of images alone is gigabytes, and `--input-size 100000` used to sit silent for minutes.
INPUT_SIZE_RANGE = (32, 4096)


def _check_input_size(value):
    low, high = INPUT_SIZE_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(
            f"input_size={value!r} is not allowed; allowed: an integer from {low} to {high}."
        )


def _check_finite(cfg):
    """Every float option (and float pair) must be finite: an `inf` learning rate or a `nan`
    momentum trained to rc 0 and wrote a model of NaN weights. Checked by value, so options
    added later are covered without being listed."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        items = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in items):
            raise ValueError(
                f"{f.name}={value!r} is not allowed; allowed: finite numbers (no nan or inf)."
            )


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def field_kind(name):
    """('bool' | 'int' | 'float' | 'str' | 'pair' | 'widths'), from the field's annotation."""
    hint = typing.get_type_hints(TrainConfig)[name]
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Union:
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) in (tuple, Tuple):
        return "widths" if typing.get_args(hint) == (int, int, int) else "pair"
    kinds = {bool: "bool", int: "int", float: "float", str: "str", dict: "options"}
    return kinds[typing.get_origin(hint) or hint]


# How an error names each kind of value ("a int value" read badly).
_KIND_TEXT = {
    "bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
    "pair": "a pair [min, max]", "widths": "three positive integers A,B,C",
    "options": "a mapping KEY: VALUE (flags: KEY=VALUE)",
}


def parse_widths(value, name):
    """`"A,B,C"` or a list of three positive integers -> `(A, B, C)`; else a ValueError."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        ok = isinstance(items, (list, tuple)) and len(items) == 3 and not any(
            isinstance(v, (bool, float)) for v in items
        )
        widths = tuple(int(v) for v in items) if ok else ()
    except (TypeError, ValueError):
        widths = ()
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {_KIND_TEXT['widths']}.")
    return widths


def _coerce(name, value):
    """Converts YAML/keyword values to the field's type; wrong types are a ValueError."""
    if value is None:
        return None
    kind = field_kind(name)
    bad = ValueError(f"{name}={value!r} is not allowed; allowed: {_KIND_TEXT[kind]}.")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise bad
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if kind == "widths":
        return parse_widths(value, name)
    if kind == "options":
        return registry.options_mapping(name, value)
    if kind == "pair":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(f"{name}={value!r} is not allowed; allowed: a pair [min, max].")
        return tuple(float(v) for v in value)
    if not isinstance(value, str):
        raise bad
    return value


def check_keys(keys, where):
    unknown = [k for k in keys if k not in FIELDS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(
            f"{where}: unknown option(s) {', '.join(hints)}; allowed: {', '.join(FIELDS)}."
        )


def load_yaml(path):
    """The options of a YAML file as a dict (keys checked against `TrainConfig`)."""
    import yaml

    if not os.path.isfile(path):
        raise ValueError(f"config={path!r}: no such file; allowed: a YAML file of TrainConfig keys.")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"config={path!r} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config={path!r} must hold a mapping of option: value.")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    check_keys(data, f"config={path!r}")
    return data


def build_config(*sources):
    """A `TrainConfig` from dicts of options, later ones overriding earlier ones."""
    merged = {}
    for source in sources:
        if not source:
            continue
        check_keys(source, "TrainConfig")
        merged.update(source)
    kwargs = {k: _coerce(k, v) for k, v in merged.items()}
    return TrainConfig(**kwargs)


def load_config(path=None, **overrides):
    """`TrainConfig` from an optional YAML file and keyword overrides (which win)."""
    return build_config(load_yaml(path) if path else None, overrides)


def dump_yaml(config):
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)
