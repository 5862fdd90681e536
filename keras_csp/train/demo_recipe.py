"""What the two demos (`demo`, `demo_detection`) share: the recipe of a small model trained on
the CPU on `synthetic_shapes` drawn from seed 0 and saved as a `.keras` file next to the demo's
other outputs, and the removal of what a demo wrote."""

import os
import shutil


def demo_settings(quick, full, quick_settings, verbose):
    """(the demo's settings, its progress output): the quick version is silent unless `verbose`
    says otherwise, the full one shows the progress bar."""
    settings = quick_settings if quick else full
    return settings, ((0 if quick else 1) if verbose is None else verbose)


def demo_data(settings, task="classification"):
    """The demo's `synthetic_shapes` (drawn from seed 0) at the settings' sizes."""
    from keras_csp.data import synthetic_shapes

    difficulty = {"difficulty": settings["difficulty"]} if "difficulty" in settings else {}
    return synthetic_shapes(
        task,
        num_train=settings["train_size"],
        num_validation=settings["val_size"],
        image_size=settings["image_size"],
        seed=0,
        **difficulty,
    )


def cpu_line():
    return f"the CPU ({os.cpu_count() or 0} cores)"


def train_and_save(fit, data, model, settings, run_dir, model_path, verbose, **options):
    """`fit` (`fit_classifier` or `fit_detector`) of `model` on `data` for the settings' epochs
    and batch size from seed 0, in a replaced `run_dir`; the trained model is saved at
    `model_path`. Returns the `TrainResult`."""
    from keras_csp.train.checkpoint import atomic_save

    os.makedirs(os.path.dirname(model_path) or ".", exist_ok=True)
    result = fit(
        data=data,
        model=model,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        seed=0,
        output_dir=run_dir,
        overwrite=True,
        verbose=verbose,
        **options,
    )
    atomic_save(model_path, result.model.save)
    return result


def size_in_kb(size_bytes):
    """A table cell: the file size in KB, "-" for no file."""
    return f"{size_bytes / 1024:.0f}" if size_bytes else "-"


def remove_outputs(output_dir, names):
    """Removes the files and folders `names` in `output_dir` that exist."""
    for name in names:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.unlink(path)
