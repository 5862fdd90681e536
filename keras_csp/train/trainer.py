"""The `Trainer`: one training run as a sequence of steps, one custom step run by `strategy.run`
for every strategy and both tasks.

Why not `model.fit`: Keras 3's `fit` fails under `MultiWorkerMirroredStrategy` (keras-team/keras
#20585, "Attempt to convert a value (PerReplica...)"), while a step run by `strategy.run` works
under all three strategies. One loop for all of them also gives one behaviour to test: the same
data order, the same checkpoints and the same lossless resume everywhere.

Per run (`Trainer.train`):
    strategy (first: before TF's first op) -> output_dir check (and the checkpoint to resume from)
    -> data -> model + optimizer in the strategy's scope -> restore the latest checkpoint -> for
    each epoch: steps over one per-run tf.data stream, a checkpoint every `save_every_steps` steps
    and at the epoch end, distributed evaluation, TensorBoard scalars -> plot, summary.json,
    model.keras (chief only).

Resume is exact: the data order of epoch e is a pure function of (seed, e), so a run resumed at
(epoch, step) skips exactly the examples the interrupted run had consumed. With augmentation,
keras-cv's random draws after the resume differ from the uninterrupted run's ("up to data order").
"""

import math
import os
import sys
import time

from keras_csp.train import checkpoint as ckpt
from keras_csp.train.config import TrainConfig, build_config, dump_yaml


def _say(enabled, *args):
    if enabled:
        print(*args, flush=True)


def _quiet(text):
    pass


def _to_stderr(text):
    print(text, file=sys.stderr, flush=True)


def _add_to(sums, stats):
    for k, v in stats.items():
        sums[k] = sums.get(k, 0.0) + float(v)


def comparable_config(cfg):
    """`cfg` as a dict, with the learning rate and weight decay resolved (an explicit default is
    the same run as an unset one)."""
    values = cfg.to_dict()
    values["learning_rate"] = cfg.resolved_learning_rate()
    values["weight_decay"] = cfg.resolved_weight_decay()
    return values


def previous_config(state, out):
    """The options the checkpoint was trained with: its own record, else (checkpoints of versions
    that kept none) the run's config.yaml."""
    if isinstance(state.get("config"), dict):
        return state["config"]
    from keras_csp.train.config import load_yaml

    try:
        return comparable_config(build_config(load_yaml(os.path.join(out, "config.yaml"))))
    except (ValueError, OSError):
        return {}


def _model_name(model_spec):
    from keras_csp.models.config import ModelConfig
    from keras_csp.train.models import resolve_model_config

    if isinstance(model_spec, (str, ModelConfig)):
        return resolve_model_config(model_spec)[0]
    if callable(model_spec):
        return getattr(model_spec, "__name__", "custom")
    raise ValueError(
        f"model={model_spec!r} is not allowed; allowed: an architecture name, a ModelConfig "
        "or a function (classes, image_size) -> keras.Model."
    )


def _checked_augment(cfg, task_name):
    augment_name = cfg.resolved_augment()
    if augment_name in ("classification", "detection") and augment_name != task_name:
        raise ValueError(
            f"augment={augment_name!r} is the {augment_name} preset; allowed for {task_name}: "
            f"{task_name!r} or 'none'."
        )
    return augment_name


class Trainer:
    """One run of `task_name` ("classification" or "detection") as `cfg` says; `train()` runs it.

    The constructor makes the cheap checks (before TensorFlow starts); each later step sets the
    attributes the next ones read.
    """

    def __init__(self, task_name, cfg, data=None, model=None, callbacks=None):
        if not isinstance(cfg, TrainConfig):
            raise ValueError("cfg must be a TrainConfig.")
        if cfg.task != task_name:
            cfg = cfg.replace(task=task_name)
        self.session_start = time.time()
        self.task_name, self.cfg, self.data, self.callbacks = task_name, cfg, data, callbacks
        self.out = cfg.output_dir
        self.model_spec = model if model is not None else cfg.model
        self.model_name = _model_name(self.model_spec)
        self.augment_name = _checked_augment(cfg, task_name)

    def train(self):
        """Runs every step in order; returns the `TrainResult`."""
        self.setup_strategy()
        self.read_resume_point()
        self.setup_data()
        self.setup_model()
        self.restore()
        self.setup_training_input()
        self.begin_run_folder()
        self.setup_evaluation()
        self.fit()
        return self.finish()

    # --- setup -----------------------------------------------------------------------------------

    def setup_strategy(self):
        from keras_csp.train.distribute import check_batch_size, make_strategy, worker_role

        cfg = self.cfg
        self.strategy = make_strategy(cfg.strategy, cfg.cpu_replicas)  # before any other TF op
        self.is_chief, self.worker_index, self.num_workers = worker_role(self.strategy)
        self.talk = self.is_chief and cfg.verbose > 0
        self.per_replica = check_batch_size(cfg.batch_size, self.strategy)

    def read_resume_point(self):
        """Checks output_dir; on resume reads the latest checkpoint and checks the options that
        changed since, before the data and the model are built."""
        cfg = self.cfg
        self.resume_from = ckpt.prepare_output_dir(
            self.out, cfg.resume, cfg.overwrite, self.is_chief
        )
        self.run_config = comparable_config(cfg)
        self.contents, self.changes = None, {}
        if self.resume_from:
            say = _to_stderr if self.is_chief else _quiet
            self.resume_from, self.contents = ckpt.read_latest_checkpoint(self.out, say=say)
            previous = previous_config(self.contents[0], self.out)
            self.changes = ckpt.config_changes(previous, self.run_config)
            ckpt.check_config_changes(self.changes, cfg.allow_config_change, self.resume_from)

    def setup_data(self):
        """Seeds, the data (checked), its augmenter and the task built on them."""
        import keras
        import tensorflow as tf

        from keras_csp.train import inputs, tasks

        cfg = self.cfg
        keras.utils.set_random_seed(cfg.seed)
        if cfg.deterministic:
            tf.config.experimental.enable_op_determinism()
        if self.data is None:
            self.data = inputs.load_data(cfg, self.task_name)
        inputs.check_data(self.data, self.task_name, cfg)
        self.steps_per_epoch = inputs.steps_per_epoch(self.data, cfg)
        self.augment, label_smoothing = inputs.make_augmenter(
            cfg, self.data, self.task_name, self.augment_name
        )
        size = self.data.image_size
        if self.task_name == "classification":
            self.task = tasks.ClassificationTask(
                cfg, self.data, size, label_smoothing, cfg.batch_size
            )
        else:
            self.task = tasks.DetectionTask(cfg, self.data, size, cfg.batch_size)

    def setup_model(self):
        """The model, its optimizer and the compiled steps, in the strategy's scope."""
        from keras_csp.train.optimizer import DtypePolicy, make_optimizer
        from keras_csp.train.steps import DistributedSteps

        cfg = self.cfg
        with DtypePolicy(cfg.mixed_precision), self.strategy.scope():
            self.net = self.task.build(self.model_spec)
            self.optimizer = make_optimizer(cfg, self.steps_per_epoch)
            self.task.compile(self.net, self.optimizer)
            self.optimizer.build(self.net.trainable_variables)
        self.steps = DistributedSteps(
            self.strategy, self.task, self.net, self.optimizer, cfg.jit_compile
        )

    def restore(self):
        """The starting state: the checkpoint's on resume (weights and optimizer restored), else
        epoch 0; every worker must start from the same one."""
        from keras_csp.train.distribute import check_same_position

        fp = ckpt.fingerprint(self.net, self.task.description(self.model_name))
        self.state = {"epoch": 0, "step": 0, "partial": {}, "history": [], "wall_time": 0.0,
                      "fingerprint": fp, "config": self.run_config}
        if self.resume_from:
            self.state = ckpt.restore_checkpoint(
                self.resume_from, self.net, self.optimizer, fp, self.contents
            )
            self.state["config"] = self.run_config
            position = f"epoch {self.state['epoch'] + 1}, step {self.state['step']}"
            _say(self.talk, f"Resuming from {self.resume_from} ({position}).")
        if self.num_workers > 1:
            check_same_position(self.strategy, self.state)
        self.prior_wall = self.state["wall_time"]
        self.history = list(self.state["history"])
        self.first_epoch, self.first_step = self.state["epoch"], self.state["step"]
        if self.first_step >= self.steps_per_epoch:
            self.first_epoch, self.first_step = self.first_epoch + 1, 0

    def setup_training_input(self):
        from keras_csp.train.inputs import training_batches

        self.train_batches = None
        if self.first_epoch < self.cfg.epochs:
            self.train_batches = training_batches(
                self.strategy, self.data, self.cfg, self.per_replica, self.steps_per_epoch,
                self.first_epoch, self.first_step, self.augment,
            )

    def begin_run_folder(self):
        """The chief marks output_dir as a run, records the options changed on resume and writes
        config.yaml."""
        if not self.is_chief:
            return
        ckpt.begin_run(self.out, self.cfg.overwrite, say=lambda text: print(text, file=sys.stderr))
        if self.changes:
            position = {"epoch": self.state["epoch"], "step": self.state["step"]}
            ckpt.record_config_changes(self.out, self.changes, self.resume_from, position)
            _say(self.talk, f"Changed on resume (recorded in {ckpt.CHANGES_FILE}): {self.changes}")
        ckpt.atomic_write(os.path.join(self.out, "config.yaml"), dump_yaml(self.cfg))

    def setup_evaluation(self):
        from keras_csp.train.inputs import evaluation_batches

        self.eval_data = evaluation_batches(
            self.strategy, self.data, self.cfg, self.per_replica, self.task_name
        )

    # --- the epochs ------------------------------------------------------------------------------

    def fit(self):
        """The epochs from the starting state to `epochs` (or until a callback stops training)."""
        import keras

        from keras_csp.train.report import TensorBoardLogs

        self.tensorboard = TensorBoardLogs(os.path.join(self.out, ckpt.LOG_DIR), self.is_chief)
        self.callback_list = keras.callbacks.CallbackList(
            self.callbacks or [], model=self.net, add_history=False, add_progbar=False
        )
        self.net.stop_training = False
        self.callback_list.on_train_begin()
        self.traced = False  # the first step (tracing) is left out of the speed
        try:
            for epoch in range(self.first_epoch, self.cfg.epochs):
                start_step = self.first_step if epoch == self.first_epoch else 0
                resumed = epoch == self.first_epoch and start_step
                sums = dict(self.state["partial"]) if resumed else {}
                self.callback_list.on_epoch_begin(epoch)
                epoch_start = time.time()
                speed = self.run_epoch(epoch, start_step, sums)
                self.end_epoch(epoch, sums, time.time() - epoch_start, speed)
                if self.net.stop_training:
                    break
        finally:  # also when a non-finite loss stops the run: the event files stay complete
            self.tensorboard.close()
        self.callback_list.on_train_end()

    def run_epoch(self, epoch, start_step, sums):
        """The training steps of `epoch` from `start_step`, adding their statistics to `sums`;
        returns the training images/s (None when no step after the first was timed)."""
        import keras

        cfg, steps = self.cfg, self.steps_per_epoch
        with_bar = self.talk and cfg.verbose == 1
        _say(with_bar, f"Epoch {epoch + 1}/{cfg.epochs}")
        bar = keras.utils.Progbar(
            steps, verbose=1 if with_bar else 0, stateful_metrics=list(self.task.train_metrics)
        )
        if start_step:
            bar.update(start_step)
        timed_images, timed_seconds, t_mark = 0, 0.0, None
        for step in range(start_step, steps):
            self.callback_list.on_train_batch_begin(step)
            _add_to(sums, self.steps.train_step(next(self.train_batches)))
            now = time.time()
            if self.traced and t_mark is not None:
                timed_images += cfg.batch_size
                timed_seconds += now - t_mark
            self.traced, t_mark = True, now
            logs = self.task.logs(sums)
            if not math.isfinite(logs["loss"]):  # a Python float already: no extra sync
                self.stop_diverged(epoch, step, logs["loss"])
            bar.update(step + 1, list(logs.items()))
            self.callback_list.on_train_batch_end(step, logs)
            global_step = epoch * steps + step + 1
            if (global_step % 10) == 0:
                self.tensorboard.scalars("train", {"batch_loss": logs["loss"]}, global_step)
            if cfg.save_every_steps and (step + 1) % cfg.save_every_steps == 0 and step + 1 < steps:
                self.steps.sync()
                self.save_checkpoint(epoch, step + 1, sums)
        return timed_images / timed_seconds if timed_seconds > 0 else None

    def stop_diverged(self, epoch, step, loss):
        """Ends the run at the step whose loss is not finite, before anything of it is written:
        every later checkpoint and the model would hold NaN weights."""
        raise ckpt.NonFiniteError(
            f"training stopped: the loss became {loss} {self.where(epoch, step + 1)}; nothing "
            f"after that step was written: {ckpt.kept_checkpoint(self.out)}, and no model.keras. "
            + ckpt.ALLOWED_AFTER_DIVERGING
        )

    def where(self, epoch, step):
        """'at epoch E/N, step S/M (learning_rate L)' of 0-based `epoch`, 1-based `step`."""
        return (
            f"at epoch {epoch + 1}/{self.cfg.epochs}, step {step}/{self.steps_per_epoch} "
            f"(learning_rate {self.cfg.resolved_learning_rate():g})"
        )

    def end_epoch(self, epoch, sums, train_seconds, speed):
        """Validation, the epoch's record (history, output, TensorBoard), its checkpoint, and the
        callbacks' `on_epoch_end`."""
        from keras_csp.train.optimizer import current_learning_rate

        logs = self.task.logs(sums)
        self.steps.sync()
        val = self.evaluate()
        record = {
            "epoch": epoch + 1,
            **{k: float(v) for k, v in logs.items()},
            **val,
            "learning_rate": current_learning_rate(self.optimizer),
            "images_per_second": speed,
            "epoch_seconds": train_seconds,
        }
        self.history.append(record)
        self.report_epoch(epoch, record, val)
        self.save_checkpoint(epoch + 1, 0, {})
        self.callback_list.on_epoch_end(
            epoch, {**logs, **{k: v for k, v in val.items() if v is not None}}
        )

    def evaluate(self):
        """The validation logs: summed over the replicas' batches for classification, COCO mAP
        measured by the chief for detection (other workers: {}); with `ema`, of the average."""
        from keras_csp.train.optimizer import ema_weights

        with ema_weights(self.optimizer, self.net.trainable_variables):
            return self._evaluate()

    def _evaluate(self):
        if self.task_name == "classification":
            sums = {}
            for batch in self.eval_data:
                _add_to(sums, self.steps.eval_step(batch))
            return self.task.eval_logs(sums)
        if not self.is_chief:
            return {}
        return self.task.evaluate(self.net, self.eval_data)

    def report_epoch(self, epoch, record, val):
        """The epoch's line (verbose 1: validation under the bar; 2: one line) and TensorBoard."""
        cfg = self.cfg
        bar_values = [(k, v) for k, v in val.items() if v is not None]
        if self.talk and cfg.verbose == 1 and bar_values:
            print("  " + "  ".join(f"{k}: {v:.4f}" for k, v in bar_values), flush=True)
        if self.talk and cfg.verbose == 2:
            shown = {k: v for k, v in record.items() if isinstance(v, float)}
            print(
                f"epoch {epoch + 1}/{cfg.epochs}: "
                + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()),
                flush=True,
            )
        epoch_keys = (*self.task.train_metrics, "learning_rate", "images_per_second")
        self.tensorboard.scalars("train", {k: record.get(k) for k in epoch_keys}, epoch + 1)
        validation = {k.replace("val_", ""): v for k, v in val.items()}
        self.tensorboard.scalars("validation", validation, epoch + 1)
        self.tensorboard.flush()

    def save_checkpoint(self, epoch, step, partial):
        """The state at (epoch, step), `partial` holding the epoch's sums so far; the chief writes
        it (callers average the replicas' statistics first)."""
        self.state.update(
            epoch=epoch,
            step=step,
            partial=partial,
            history=self.history,
            wall_time=self.prior_wall + time.time() - self.session_start,
        )
        # The last step done: (epoch, step) names the next one.
        where = self.where(epoch - 1, self.steps_per_epoch) if step == 0 else self.where(epoch, step)
        if self.is_chief:
            keep = self.cfg.keep_checkpoints
            ckpt.save_checkpoint(self.out, self.net, self.optimizer, self.state, keep, where)
        else:
            ckpt.check_finite_weights(self.out, self.net, self.optimizer, where)

    # --- the end ---------------------------------------------------------------------------------

    def finish(self):
        """The final model, the summary and (chief) the run's files; returns the `TrainResult`."""
        from keras_csp.train import results
        from keras_csp.train.optimizer import keep_ema_weights

        keep_ema_weights(self.optimizer, self.net.trainable_variables)  # with `ema`: the average
        final = self.task.final_model(self.net, self.model_spec)
        wall = self.prior_wall + time.time() - self.session_start
        summary = results.run_summary(
            self.cfg, self.task, self.data, final, self.model_name, self.history, wall,
            self.strategy, self.num_workers,
        )
        if self.is_chief:
            results.write_outputs(
                self.cfg, summary, final, self.history, self.model_name, self.data, self.talk
            )
        return results.TrainResult(
            model=final, history=self.history, summary=summary, output_dir=self.out
        )
