"""Notebook 02: the same small model trained once per fusion, and the table that compares them."""

import dataclasses
import os
import tempfile

from keras_csp.registry import MODEL_FUSIONS

VARIANTS = MODEL_FUSIONS  # one run per fusion, "none" being the plain twin
VARIANT_LABELS = {"full": "CSP, fusion full", "first": "CSP, fusion first",
                  "last": "CSP, fusion last", "none": "no CSP (plain twin)"}


@dataclasses.dataclass
class VariantRun:
    fusion: str
    label: str
    history: list
    summary: dict
    profile: object  # keras_csp.profiler.Profile of the trained model
    model: object = dataclasses.field(repr=False, default=None)


def train_variants(
    model="cspdarknet_small",
    part_ratio=0.5,
    epochs=3,
    image_size=64,
    train_size=3000,
    val_size=500,
    batch_size=64,
    fusions=VARIANTS,
    learning_rate=0.1,
    seed=0,
    on_progress=None,
    output_dir=None,
    verbose=0,
):
    """Trains `model` once per fusion (`"none"`: the plain twin) on the same `synthetic_shapes`
    data, schedule and seed; returns `{fusion: VariantRun}`.

    `on_progress(run_index, step, steps_per_run, label)` is called after every training step.
    Runs write their checkpoints under `output_dir` (a temporary folder by default).
    """
    import keras

    from keras_csp.data import synthetic_shapes
    from keras_csp.profiler import profile
    from keras_csp.train.loop import fit_classifier

    for f in fusions:
        if f not in VARIANTS:
            raise ValueError(f"fusion={f!r} is not allowed; allowed: {', '.join(VARIANTS)}.")
    if not 0.0 < float(part_ratio) < 1.0:
        raise ValueError(f"part_ratio={part_ratio!r}; allowed: strictly between 0 and 1.")
    data = synthetic_shapes(
        num_train=train_size, num_validation=val_size, image_size=image_size, seed=seed
    )
    steps = epochs * (train_size // batch_size)
    root = output_dir or tempfile.mkdtemp(prefix="keras_csp_variants_")

    class _Progress(keras.callbacks.Callback):
        def __init__(self, index, label):
            super().__init__()
            self.index, self.label, self.done = index, label, 0

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1
            on_progress(self.index, self.done, steps, self.label)

    runs = {}
    for i, fusion in enumerate(fusions):
        label = VARIANT_LABELS[fusion]
        callbacks = [_Progress(i, label)] if on_progress is not None else None
        result = fit_classifier(
            data=data,
            model=model,
            part_ratio=part_ratio,
            fusion=fusion,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_epochs=min(1.0, epochs / 3),
            optimizer="sgd",
            augment="none",
            seed=seed,
            output_dir=os.path.join(root, fusion),
            overwrite=True,
            save_model=False,
            verbose=verbose,
            callbacks=callbacks,
        )
        runs[fusion] = VariantRun(
            fusion, label, result.history, result.summary, profile(result.model), result.model
        )
    return runs


def variants_table(runs):
    """Rows (dicts) comparing the trained variants: params, FLOPs, memory, accuracy, speed."""
    rows = []
    for fusion, run in runs.items():
        s = run.summary
        rows.append({
            "variant": run.label,
            "params": run.profile.params,
            "MFLOPs": round(run.profile.flops / 1e6, 2),
            "activation MiB": round(run.profile.activation_bytes / 2**20, 2),
            "val accuracy": round(float(s["val_accuracy"]), 4),
            "train images/s": round(s["train_images_per_second"] or 0.0, 1),
            "seconds": round(s["wall_time_seconds"], 1),
        })
    return rows
