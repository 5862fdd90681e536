"""The training loop: one custom step run by `strategy.run`, for every strategy and both tasks.

Why not `model.fit`: Keras 3's `fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras
#20585, "Attempt to convert a value (PerReplica...)"), while a step run by `strategy.run` works
under all three strategies. One loop for all of them also gives one behaviour to test: the same
data order, the same checkpoints and the same lossless resume everywhere.

Per run:
    strategy (first: before TF's first op) -> output_dir check -> data -> model + optimizer in the
    strategy's scope -> restore the latest checkpoint (resume) -> for each epoch: steps over one
    per-run tf.data stream (per-epoch permutation from the seed, sharded per worker, per-replica
    batches), a checkpoint every `save_every_steps` steps and at the epoch end, distributed
    evaluation, TensorBoard scalars -> plot, summary.json, model.keras (chief only).

Resume is exact: the data order of epoch e is a pure function of (seed, e), so a run resumed at
(epoch, step) skips exactly the examples the interrupted run had consumed. With augmentation,
keras-cv's random draws after the resume differ from the uninterrupted run's ("up to data order").
"""

import dataclasses
import itertools
import math
import os
import sys
import time

from keras_csp.train import checkpoint as ckpt
from keras_csp.train.config import TrainConfig, build_config, dump_yaml


@dataclasses.dataclass
class TrainResult:
    """What `fit_classifier` / `fit_detector` return."""

    model: object
    history: list
    summary: dict
    output_dir: str


# --- data ------------------------------------------------------------------------------------------


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


def _check_data(data, task, cfg):
    from keras_csp.data import ImageData

    if not isinstance(data, ImageData):
        raise ValueError(
            f"data={type(data).__name__} is not allowed; allowed: a keras_csp.data.ImageData "
            "(from synthetic_shapes, image_folder or coco_detection) or None (built from the options)."
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


# --- optimizer -------------------------------------------------------------------------------------


def make_optimizer(cfg, steps_per_epoch):
    import keras

    peak = cfg.resolved_learning_rate()
    total = max(1, steps_per_epoch * cfg.epochs)
    warmup = min(int(round(cfg.warmup_epochs * steps_per_epoch)), total - 1)
    alpha = 1.0 if cfg.schedule == "constant" else cfg.min_lr_ratio
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=max(1, total - warmup),
        alpha=alpha,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )
    common = dict(weight_decay=cfg.resolved_weight_decay() or None, global_clipnorm=cfg.clipnorm)
    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(schedule, momentum=cfg.momentum, nesterov=True, **common)
    else:
        optimizer = keras.optimizers.AdamW(schedule, **common)
    if common["weight_decay"]:
        # No decay on BN scales/offsets and biases (the usual ImageNet recipe).
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    if cfg.mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _current_lr(optimizer):
    import keras

    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


class _DtypePolicy:
    def __init__(self, precision):
        self.policy = {"none": None, "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[
            precision
        ]

    def __enter__(self):
        import keras

        self.previous = keras.config.dtype_policy()
        if self.policy:
            keras.config.set_dtype_policy(self.policy)

    def __exit__(self, *exc):
        import keras

        keras.config.set_dtype_policy(self.previous)


def _check_same_position(strategy, state):
    """Every worker must start from the same checkpoint (or all from scratch)."""
    import tensorflow as tf

    position = float(state["epoch"] * 1_000_000 + state["step"])

    @tf.function
    def gather(x):
        def both(v):
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce("SUM", tf.stack([v, v * v, tf.constant(1.0, tf.float64)]))

        return strategy.run(both, args=(x,))

    reduced = strategy.experimental_local_results(gather(tf.constant(position, tf.float64)))[0]
    total, squares, n = (float(v) for v in reduced)
    if abs(squares * n - total * total) > 1e-6 * max(1.0, total * total):
        raise ValueError(
            f"the workers start from different positions (this one: epoch {state['epoch']}, step "
            f"{state['step']}): the checkpoint in output_dir is not visible to every worker. "
            "Allowed: an output_dir on a file system that every worker shares (or the same "
            "checkpoint copied to each)."
        )


# --- the loop --------------------------------------------------------------------------------------


def _say(enabled, *args):
    if enabled:
        print(*args, flush=True)


def train(task_name, cfg, data=None, model=None, callbacks=None):
    """Runs one training as `cfg` says; see `fit_classifier`."""
    if not isinstance(cfg, TrainConfig):
        raise ValueError("cfg must be a TrainConfig.")
    if cfg.task != task_name:
        cfg = cfg.replace(task=task_name)
    session_start = time.time()

    # Cheap checks first, before TensorFlow starts.
    from keras_csp.models.config import ModelConfig
    from keras_csp.train.models import resolve_model_config

    model_spec = model if model is not None else cfg.model
    if isinstance(model_spec, (str, ModelConfig)):
        model_name, _ = resolve_model_config(model_spec)
    elif callable(model_spec):
        model_name = getattr(model_spec, "__name__", "custom")
    else:
        raise ValueError(
            f"model={model_spec!r} is not allowed; allowed: an architecture name, a ModelConfig "
            "or a function (classes, image_size) -> keras.Model."
        )
    augment_name = cfg.resolved_augment()
    if augment_name in ("classification", "detection") and augment_name != task_name:
        raise ValueError(
            f"augment={augment_name!r} is the {augment_name} preset; allowed for {task_name}: "
            f"{task_name!r} or 'none'."
        )

    from keras_csp.train.distribute import check_batch_size, make_strategy, worker_role

    strategy = make_strategy(cfg.strategy, cfg.cpu_replicas)  # before any other TF op

    import keras
    import tensorflow as tf

    from keras_csp.train import tasks
    from keras_csp.train.report import TensorBoardLogs, plot_curves, write_json

    is_chief, worker_index, num_workers = worker_role(strategy)
    talk = is_chief and cfg.verbose > 0
    replicas = strategy.num_replicas_in_sync
    per_replica = check_batch_size(cfg.batch_size, strategy)
    out = cfg.output_dir
    resume_from = ckpt.prepare_output_dir(out, cfg.resume, cfg.overwrite, is_chief)
    run_config = _comparable(cfg)
    contents, changes = None, {}
    if resume_from:
        # Read, and checked against the options, before the data and the model are built.
        resume_from, contents = ckpt.read_latest_checkpoint(
            out, say=(lambda text: print(text, file=sys.stderr, flush=True)) if is_chief else _quiet
        )
        changes = ckpt.config_changes(_previous_config(contents[0], out), run_config)
        ckpt.check_config_changes(changes, cfg.allow_config_change, resume_from)

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()

    if data is None:
        data = load_data(cfg, task_name)
    _check_data(data, task_name, cfg)
    if data.validation is None:
        raise ValueError(
            "the data has no validation split; allowed: data with validation images "
            "(val_size > 0, validation_split > 0 or a validation annotation file)."
        )
    image_size = data.image_size
    steps_per_epoch = data.train.size // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"the training split has {data.train.size} images, fewer than one batch of "
            f"batch_size={cfg.batch_size}; allowed: a batch size <= {data.train.size}."
        )
    if cfg.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.steps_per_epoch)

    from keras_csp.data import augmenter

    overrides = cfg.augmentation_overrides()
    label_smoothing = overrides.pop("label_smoothing", None)
    if augment_name == "none" and label_smoothing is None:
        label_smoothing = 0.0
    augment = augmenter(
        augment_name,
        image_size,
        bounding_box_format=data.train.bounding_box_format if task_name == "detection" else None,
        max_boxes=data.train.max_boxes,
        seed=cfg.seed,
        **overrides,
    )
    if label_smoothing is None and augment is not None:
        label_smoothing = getattr(augment.options, "label_smoothing", 0.0)

    if task_name == "classification":
        task = tasks.ClassificationTask(cfg, data, image_size, label_smoothing or 0.0, cfg.batch_size)
    else:
        task = tasks.DetectionTask(cfg, data, image_size, cfg.batch_size)

    with _DtypePolicy(cfg.mixed_precision), strategy.scope():
        net = task.build(model_spec)
        optimizer = make_optimizer(cfg, steps_per_epoch)
        task.compile(net, optimizer)
        optimizer.build(net.trainable_variables)

    fp = ckpt.fingerprint(net, task.description(model_name))
    state = {
        "epoch": 0,
        "step": 0,
        "partial": {},
        "history": [],
        "wall_time": 0.0,
        "fingerprint": fp,
        "config": run_config,
    }
    if resume_from:
        state = ckpt.restore_checkpoint(resume_from, net, optimizer, fp, contents)
        state["config"] = run_config
        _say(talk, f"Resuming from {resume_from} (epoch {state['epoch'] + 1}, step {state['step']}).")
    if num_workers > 1:
        _check_same_position(strategy, state)
    prior_wall = state["wall_time"]

    # --- distributed datasets --------------------------------------------------------------------
    first_epoch, first_step = state["epoch"], state["step"]
    if first_step >= steps_per_epoch:
        first_epoch, first_step = first_epoch + 1, 0
    normalize = True

    def train_fn(ctx):
        local = replicas // ctx.num_input_pipelines
        shard = (ctx.num_input_pipelines, ctx.input_pipeline_id)
        return data.train.training_dataset(
            per_replica,
            steps_per_epoch * local,
            seed=cfg.seed,
            epochs=(first_epoch, max(cfg.epochs, first_epoch + 1)),
            shard=shard if ctx.num_input_pipelines > 1 else None,
            skip_batches=first_step * local,
            augment=augment,
            normalize=normalize,
        )

    eval_steps = math.ceil(data.validation.size / cfg.batch_size)

    def eval_fn(ctx):
        local = replicas // ctx.num_input_pipelines
        shard = (ctx.num_input_pipelines, ctx.input_pipeline_id)
        return data.validation.evaluation_dataset(
            per_replica,
            eval_steps * local,
            shard=shard if ctx.num_input_pipelines > 1 else None,
            normalize=normalize,
        )

    input_options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    train_iter = None
    if first_epoch < cfg.epochs:
        train_iter = iter(strategy.distribute_datasets_from_function(train_fn, input_options))
        # The first batch before the first write: data whose every image is unreadable (a folder
        # too large to verify up front, COCO files) is refused with nothing written.
        try:
            first_batch = next(train_iter)
        except (StopIteration, tf.errors.OutOfRangeError):
            raise ValueError(
                f"the training data yields no batch of batch_size={cfg.batch_size} ("
                f"{data.skipped.report(limit=3)}); nothing was written. Allowed: data with at "
                "least one batch of readable images."
            ) from None
        train_iter = itertools.chain([first_batch], train_iter)
    if is_chief:
        ckpt.begin_run(out, cfg.overwrite, say=lambda text: print(text, file=sys.stderr))
        if changes:
            position = {"epoch": state["epoch"], "step": state["step"]}
            ckpt.record_config_changes(out, changes, resume_from, position)
            _say(talk, f"Changed on resume (recorded in {ckpt.CHANGES_FILE}): {changes}")
        ckpt.atomic_write(os.path.join(out, "config.yaml"), dump_yaml(cfg))
    if task_name == "classification":
        eval_data = strategy.distribute_datasets_from_function(eval_fn, input_options)
    else:
        eval_data = data.validation.as_dataset(per_replica, shuffle=False, normalize=True)

    # --- steps -----------------------------------------------------------------------------------
    def replica_train(batch):
        with tf.GradientTape() as tape:
            loss, stats = task.replica_loss(net, batch, replicas)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, net.trainable_variables)
        optimizer.apply_gradients(zip(grads, net.trainable_variables))
        return stats

    replica_train = tf.function(replica_train, jit_compile=cfg.jit_compile, reduce_retracing=True)

    @tf.function
    def train_step(batch):
        stats = strategy.run(replica_train, args=(batch,))
        return {k: strategy.reduce("SUM", v, axis=None) for k, v in stats.items()}

    @tf.function
    def eval_step(batch):
        stats = strategy.run(lambda b: task.replica_eval(net, b), args=(batch,))
        return {k: strategy.reduce("SUM", v, axis=None) for k, v in stats.items()}

    # BatchNormalization's moving statistics are updated by each replica from its own batches, so
    # replicas (and workers) drift apart. Averaging them across replicas before every checkpoint
    # and evaluation keeps every worker's model identical, and the saved one representative.
    floats = ("float32", "float16", "bfloat16")
    stat_vars = [v for v in net.non_trainable_variables if v.dtype in floats]

    @tf.function
    def sync_statistics():
        def average():
            ctx = tf.distribute.get_replica_context()
            means = ctx.all_reduce("MEAN", [tf.identity(v.value) for v in stat_vars])
            for v, m in zip(stat_vars, means):
                v.assign(m)

        strategy.run(average)

    def sync():
        if replicas > 1 and stat_vars:
            sync_statistics()

    def evaluate():
        if task_name == "classification":
            sums = {}
            for batch in eval_data:
                for k, v in eval_step(batch).items():
                    sums[k] = sums.get(k, 0.0) + float(v)
            return task.eval_logs(sums)
        if not is_chief:
            return {}
        return task.evaluate(net, eval_data)

    # --- loop ------------------------------------------------------------------------------------
    tb = TensorBoardLogs(os.path.join(out, ckpt.LOG_DIR), is_chief)
    cb = keras.callbacks.CallbackList(callbacks or [], model=net, add_history=False, add_progbar=False)
    net.stop_training = False
    cb.on_train_begin()
    history = list(state["history"])
    traced = False
    for epoch in range(first_epoch, cfg.epochs):
        start_step = first_step if epoch == first_epoch else 0
        sums = dict(state["partial"]) if (epoch == first_epoch and start_step) else {}
        cb.on_epoch_begin(epoch)
        _say(talk and cfg.verbose == 1, f"Epoch {epoch + 1}/{cfg.epochs}")
        bar = keras.utils.Progbar(
            steps_per_epoch,
            verbose=1 if (talk and cfg.verbose == 1) else 0,
            stateful_metrics=list(task.train_metrics),
        )
        if start_step:
            bar.update(start_step)
        epoch_start = time.time()
        timed_images, timed_seconds, t_mark = 0, 0.0, None
        for step in range(start_step, steps_per_epoch):
            cb.on_train_batch_begin(step)
            stats = train_step(next(train_iter))
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            now = time.time()
            if traced and t_mark is not None:
                timed_images += cfg.batch_size
                timed_seconds += now - t_mark
            traced, t_mark = True, now
            logs = task.logs(sums)
            bar.update(step + 1, list(logs.items()))
            cb.on_train_batch_end(step, logs)
            global_step = epoch * steps_per_epoch + step + 1
            if (global_step % 10) == 0:
                tb.scalars("train", {"batch_loss": logs["loss"]}, global_step)
            if (
                cfg.save_every_steps
                and (step + 1) % cfg.save_every_steps == 0
                and step + 1 < steps_per_epoch
            ):
                sync()
                state.update(
                    epoch=epoch,
                    step=step + 1,
                    partial=sums,
                    history=history,
                    wall_time=prior_wall + time.time() - session_start,
                )
                if is_chief:
                    ckpt.save_checkpoint(out, net, optimizer, state, cfg.keep_checkpoints)
        train_seconds = time.time() - epoch_start
        logs = task.logs(sums)
        sync()
        val = evaluate()
        record = {
            "epoch": epoch + 1,
            **{k: float(v) for k, v in logs.items()},
            **val,
            "learning_rate": _current_lr(optimizer),
            "images_per_second": timed_images / timed_seconds if timed_seconds > 0 else None,
            "epoch_seconds": train_seconds,
        }
        history.append(record)
        bar_values = [(k, v) for k, v in val.items() if v is not None]
        if talk and cfg.verbose == 1 and bar_values:
            print("  " + "  ".join(f"{k}: {v:.4f}" for k, v in bar_values), flush=True)
        if talk and cfg.verbose == 2:
            shown = {k: v for k, v in record.items() if isinstance(v, float)}
            print(
                f"epoch {epoch + 1}/{cfg.epochs}: "
                + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()),
                flush=True,
            )
        epoch_keys = (*task.train_metrics, "learning_rate", "images_per_second")
        tb.scalars("train", {k: record.get(k) for k in epoch_keys}, epoch + 1)
        tb.scalars("validation", {k.replace("val_", ""): v for k, v in val.items()}, epoch + 1)
        tb.flush()
        state.update(
            epoch=epoch + 1,
            step=0,
            partial={},
            history=history,
            wall_time=prior_wall + time.time() - session_start,
        )
        if is_chief:
            ckpt.save_checkpoint(out, net, optimizer, state, cfg.keep_checkpoints)
        cb.on_epoch_end(epoch, {**logs, **{k: v for k, v in val.items() if v is not None}})
        if net.stop_training:
            break
    cb.on_train_end()
    tb.close()

    # --- the end ---------------------------------------------------------------------------------
    final = task.final_model(net, model_spec)
    wall = prior_wall + time.time() - session_start
    summary = _summary(cfg, task, data, final, model_name, history, wall, strategy, num_workers)
    if is_chief:
        files = {}
        if history:
            title = f"{model_name} ({task_name}, fusion={cfg.fusion})"
            plot_path = os.path.join(out, "learning_curves.png")
            files["plot"] = plot_curves({model_name: history}, plot_path, title)
        if cfg.save_model:
            path = os.path.join(out, "model.keras")
            ckpt.atomic_save(path, final.save)
            files["model"] = path
        summary["files"] = files
        write_json(os.path.join(out, "summary.json"), summary)
        _say(talk, _closing_lines(summary, data))
    return TrainResult(model=final, history=history, summary=summary, output_dir=out)


def _quiet(text):
    pass


def _comparable(cfg):
    """`cfg` as a dict, with the learning rate and weight decay resolved (an explicit default is
    the same run as an unset one)."""
    values = cfg.to_dict()
    values["learning_rate"] = cfg.resolved_learning_rate()
    values["weight_decay"] = cfg.resolved_weight_decay()
    return values


def _previous_config(state, out):
    """The options the checkpoint was trained with: its own record, else (checkpoints of versions
    that kept none) the run's config.yaml."""
    if isinstance(state.get("config"), dict):
        return state["config"]
    from keras_csp.train.config import load_yaml

    try:
        return _comparable(build_config(load_yaml(os.path.join(out, "config.yaml"))))
    except (ValueError, OSError):
        return {}


def _summary(cfg, task, data, model, model_name, history, wall, strategy, num_workers):
    from keras_csp.profiler import profile

    try:
        prof = profile(model)
        params, flops = prof.params, prof.flops
    except Exception as e:  # a custom model the profiler cannot read
        params, flops = model.count_params(), None
        print(f"note: FLOPs not computed ({e})", file=sys.stderr)
    last = history[-1] if history else {}
    key = task.main_metric
    values = [h.get(key) for h in history if h.get(key) is not None]
    speeds = [h["images_per_second"] for h in history if h.get("images_per_second")]
    summary = {
        "task": task.name,
        "model": model_name,
        "part_ratio": cfg.part_ratio,
        "fusion": cfg.fusion,
        "input_size": data.image_size,
        "classes": data.class_names,
        "data": repr(data),
        "params": params,
        "flops": flops,
        "epochs": len(history),
        "wall_time_seconds": round(wall, 2),
        "train_images_per_second": (sorted(speeds)[len(speeds) // 2] if speeds else None),
        "strategy": cfg.strategy,
        "replicas": strategy.num_replicas_in_sync,
        "workers": num_workers,
        "mixed_precision": cfg.mixed_precision,
        "skipped_images": {"count": data.skipped.count, "files": data.skipped.sources[:100]},
        "clipped_boxes": data.clipped_boxes,
        "inputs": "RGB 0-255 normalized as keras_csp.preprocessing.preprocess_input",
        "history": history,
        "config": cfg.to_dict(),
    }
    if task.name == "classification":
        summary.update(
            val_accuracy=last.get("val_accuracy"),
            val_top5_accuracy=last.get("val_top5_accuracy"),
            best_val_accuracy=max(values) if values else None,
        )
    else:
        summary.update(
            val_mAP=last.get("val_mAP"),
            val_mAP50=last.get("val_mAP50"),
            best_val_mAP=max(values) if values else None,
        )
    return summary


def _closing_lines(summary, data):
    metric = (
        f"val top-1 {summary['val_accuracy']:.4f}, top-5 {summary['val_top5_accuracy']:.4f}"
        if summary["task"] == "classification" and summary.get("val_accuracy") is not None
        else f"val mAP {summary.get('val_mAP')}, mAP50 {summary.get('val_mAP50')}"
    )
    speed = summary.get("train_images_per_second")
    lines = [
        f"Done: {summary['model']}: {metric}; {summary['params']:,} params; "
        f"{summary['wall_time_seconds']:.0f} s"
        + (f"; {speed:.0f} images/s" if speed else ""),
        f"Data: {data.skipped.report()}"
        + (f"; {data.clipped_boxes} box(es) clipped to their image." if data.clipped_boxes else "."),
        f"Wrote {', '.join(summary.get('files', {}).values()) or 'nothing'} and summary.json in "
        f"{summary['config']['output_dir']}.",
    ]
    return "\n".join(lines)


# --- public API ------------------------------------------------------------------------------------


def _config_from(config, options, task, model=None):
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
