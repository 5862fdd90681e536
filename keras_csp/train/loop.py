"""`fit_classifier`, `fit_detector` and `train`: the entry points of a training run.

A run is a `keras_csp.train.trainer.Trainer` (one custom step run by `strategy.run`, for every
strategy and both tasks): strategy -> output_dir check -> data (`inputs`) -> model and optimizer
(`optimizer`, `steps`) -> resume -> epochs with checkpoints -> summary.json, learning_curves.png
and model.keras (`results`).
"""

import os

from keras_csp.train.config import TrainConfig, build_config
from keras_csp.train.results import TrainResult

__all__ = ["TrainResult", "fit_classifier", "fit_detector", "train"]


def train(task_name, cfg, data=None, model=None, callbacks=None):
    """Runs one training as `cfg` says; see `fit_classifier`."""
    from keras_csp.train.trainer import Trainer

    return Trainer(task_name, cfg, data=data, model=model, callbacks=callbacks).train()


def _config_from(config, options, task, model=None):
    options = {**options, "task": task}  # before the checks: detector options need the task
    if isinstance(model, str):
        options = {**options, "model": model}
    elif model is not None:
        # A ModelConfig or a builder function: config.yaml says so (it cannot be written as YAML).
        options = {**options, "model": "custom"}
    if config is None:
        cfg = build_config(options)
    elif isinstance(config, TrainConfig):
        cfg = build_config(config.to_dict(), options)
    elif isinstance(config, (str, os.PathLike)):
        from keras_csp.train.config import load_yaml

        cfg = build_config(load_yaml(os.fspath(config)), options)
    elif isinstance(config, dict):
        cfg = build_config(config, options)
    else:
        raise ValueError(
            f"config={config!r} is not allowed; allowed: None, a TrainConfig, a dict or a YAML path."
        )
    if cfg.task != task:
        cfg = cfg.replace(task=task)
    return cfg


def fit_classifier(data=None, model=None, config=None, callbacks=None, **options):
    """Trains a CSP (or baseline) classifier; returns a `TrainResult`.

    Args:
        data: a `keras_csp.data.ImageData` (classification), or the `data` option
            (`"shapes"` | `"folder"` with `data_path`), or None for the `data` option's default.
        model: an architecture name, a `keras_csp.models.ModelConfig`, or a function
            `(classes, image_size) -> keras.Model` returning logits; default: the `model` option.
        config: a `TrainConfig`, a dict of options or the path of a YAML file.
        callbacks: Keras callbacks (`on_epoch_end`, `on_train_batch_end`, ... are called).
        **options: any `TrainConfig` field (they override `config`): `epochs`, `batch_size`,
            `optimizer`, `learning_rate`, `mixed_precision`, `strategy`, `output_dir`, `resume`, ...

    Returns:
        `TrainResult(model, history, summary, output_dir)`; `model` is the trained float32 model
        with a softmax classifier (its inputs: images normalized like `preprocess_input`).
    """
    if isinstance(data, str):  # the `data` option ("shapes", "folder", "coco")
        options, data = {**options, "data": data}, None
    cfg = _config_from(config, options, "classification", model)
    model = None if isinstance(model, str) else model
    return train("classification", cfg, data=data, model=model, callbacks=callbacks)


def fit_detector(data=None, model=None, config=None, callbacks=None, **options):
    """Trains a `keras_csp.CSPDetector` on keras-cv box data; returns a `TrainResult`.

    As `fit_classifier`; `model` names the backbone (or is a function `(classes, image_size) ->
    detector`); `neck`, `attention`, `box_loss` pick the detector's parts. Validation reports COCO
    mAP and mAP50 (keras-cv's `BoxCOCOMetrics`, pycocotools underneath).
    """
    if isinstance(data, str):  # the `data` option ("shapes", "folder", "coco")
        options, data = {**options, "data": data}, None
    cfg = _config_from(config, options, "detection", model)
    model = None if isinstance(model, str) else model
    return train("detection", cfg, data=data, model=model, callbacks=callbacks)
