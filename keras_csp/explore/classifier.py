"""Notebook 03: a trained `synthetic_shapes` classifier (loaded or trained now), held-out images."""

import dataclasses
import tempfile
from pathlib import Path

import numpy as np


# synthetic_shapes draws image i of a data set from (seed, i); images of this seed were not used to
# train any model of the notebooks or of the demo (which use seed 0), so they are held out.
HELD_OUT_SEED = 7919
# Looked for, in this order, in the model folder of notebook 03 (notebook 02 saves the first;
# `keras-csp demo` writes the others).
TRAINED_MODEL_FILES = ("notebook02_model.keras", "cspdarknet_small.keras", "cspdarknet_tiny.keras")


@dataclasses.dataclass
class LoadedModel:
    model: object = dataclasses.field(repr=False)
    path: str  # the file it came from; None when it was trained just now
    trained_now: bool
    message: str

    @property
    def image_size(self):
        return int(self.model.input_shape[1])


def held_out_images(count, image_size, seed=HELD_OUT_SEED):
    """`(images float32 0-255 (N, S, S, 3), labels (N,), class names)` from `synthetic_shapes`."""
    from keras_csp.data import synthetic_shapes

    data = synthetic_shapes(num_train=count, num_validation=0, image_size=image_size, seed=seed)
    images, labels = [], []
    for x, y in data.train.as_dataset(min(count, 64), shuffle=False, drop_remainder=False):
        images.append(x.numpy())
        labels.append(np.argmax(y.numpy(), axis=-1))
    return np.concatenate(images), np.concatenate(labels), list(data.class_names)


def load_or_train(model_dir, quick=False, names=TRAINED_MODEL_FILES, seed=0, verbose=0):
    """A trained `synthetic_shapes` classifier from `model_dir`, or a quick one trained now.

    The first of `names` that exists and loads as a 6-class classifier is used. Without one, a
    small CSPDarknet is trained on the spot (`quick`: a tiny one for a few seconds, which is barely
    better than chance) and `message` says so.
    """
    from keras_csp.data import SHAPES
    from keras_csp.applications.saving import load_model

    folder = Path(model_dir) if model_dir else None
    problems = []
    if folder is not None and folder.is_dir():
        for name in names:
            path = folder / name
            if not path.is_file():
                continue
            try:
                model = load_model(str(path))
            except Exception as e:  # a corrupt or incompatible file: say so, try the next
                problems.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                continue
            if tuple(model.output_shape) != (None, len(SHAPES)):
                problems.append(f"{name}: outputs {model.output_shape}, not {len(SHAPES)} shapes")
                continue
            return LoadedModel(model, str(path), False, f"Loaded the trained model {path}.")
    where = f"{folder}" if folder is not None else "(no folder given)"
    looked = ", ".join(names)
    why = "does not exist" if folder is None or not folder.is_dir() else f"has none of {looked}"
    if problems:
        why += " that loads (" + "; ".join(problems) + ")"
    settings = (
        dict(model="cspdarknet_tiny", image_size=32, train_size=256, val_size=64, epochs=2)
        if quick
        else dict(model="cspdarknet_small", image_size=64, train_size=2000, val_size=400, epochs=3)
    )
    from keras_csp.data import synthetic_shapes
    from keras_csp.train.loop import fit_classifier

    data = synthetic_shapes(
        num_train=settings["train_size"], num_validation=settings["val_size"],
        image_size=settings["image_size"], seed=seed,
    )
    result = fit_classifier(
        data=data, model=settings["model"], epochs=settings["epochs"], batch_size=32,
        learning_rate=0.05, warmup_epochs=0.0 if quick else 1.0, optimizer="sgd",
        augment="none", seed=seed, output_dir=tempfile.mkdtemp(prefix="keras_csp_quick_"),
        save_model=False, verbose=verbose,
    )
    message = (
        f"No trained model: {where} {why}. Trained a quick {settings['model']} now instead "
        f"({settings['train_size']} synthetic_shapes images at {settings['image_size']}px, "
        f"{settings['epochs']} epochs, {result.summary['wall_time_seconds']:.0f} s; validation "
        f"accuracy {result.summary['val_accuracy']:.2f}). Run notebook 02 or `keras-csp demo` for "
        "a better one."
    )
    return LoadedModel(result.model, None, True, message)
