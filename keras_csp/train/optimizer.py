"""The optimizer of a run: SGD (Nesterov) or AdamW on a cosine schedule with linear warmup, and the
mixed-precision policy it is built under. With `ema`, the optimizer keeps a moving average of the
weights (Keras' `use_ema`); `ema_weights` puts it into the model for validation, and
`keep_ema_weights` for good at the end of training (ultralytics validates and saves its EMA too).
"""

import contextlib


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
    common = dict(weight_decay=cfg.resolved_weight_decay() or None, global_clipnorm=cfg.clipnorm,
                  use_ema=cfg.ema, ema_momentum=cfg.ema_momentum)
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


def _averaging(optimizer):
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return inner if getattr(inner, "use_ema", False) and inner.built else None


def keep_ema_weights(optimizer, variables):
    """Writes the optimizer's moving averages into `variables` (the model's trainable ones);
    returns their values before, or None without EMA."""
    import keras

    inner = _averaging(optimizer)
    if inner is None:
        return None
    before = [keras.ops.convert_to_numpy(v) for v in variables]
    inner.finalize_variable_values(variables)
    return before


@contextlib.contextmanager
def ema_weights(optimizer, variables):
    """Inside the block `variables` hold the moving averages (with `ema`), after it their own
    values again."""
    before = keep_ema_weights(optimizer, variables)
    try:
        yield
    finally:
        if before is not None:
            for variable, value in zip(variables, before):
                variable.assign(value)


def current_learning_rate(optimizer):
    import keras

    inner = getattr(optimizer, "inner_optimizer", optimizer)
    lr = inner.learning_rate
    return float(keras.ops.convert_to_numpy(lr))


class DtypePolicy:
    """Inside the block Keras builds layers under the `mixed_precision` option's policy."""

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
