"""A run whose loss becomes non-finite stops there, naming the epoch and step: it used to go on to
rc 0, print "Done" and write a model.keras of NaN weights. The last finite checkpoint is kept,
nothing non-finite is written (no checkpoint, no model.keras, no summary), the same under
MirroredStrategy; a checkpoint of NaN weights is never resumed from."""

import os
import re
import shutil

import keras
import numpy as np
import pytest

from keras_csp.train import fit_classifier
from keras_csp.train.checkpoint import list_checkpoints, read_checkpoint

from train_helpers import TINY_RUN, run

TINY = dict(
    model="cspdarknet_tiny", input_size=32, train_size=64, val_size=16, batch_size=16, verbose=0,
    learning_rate=0.05, warmup_epochs=0.0, augment="none",
)
FIRST = "ckpt-0001-000000.npz"  # the checkpoint of the finite first epoch


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """One finite epoch of four steps: checkpoint (1, 0) and model.keras."""
    out = tmp_path_factory.mktemp("base") / "run"
    fit_classifier(epochs=1, output_dir=str(out), **TINY)
    assert [(e, s) for e, s, _ in list_checkpoints(str(out))] == [(1, 0)]
    return out


def _copy(base_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    os.unlink(out / "model.keras")  # so that a model.keras found later was written by the test
    os.unlink(out / "summary.json")
    return out


def _all_finite(path):
    _, model, opt = read_checkpoint(str(path))
    return all(np.isfinite(a).all() for a in model + opt if a.dtype.kind == "f")


def _check_nothing_non_finite_was_written(out, first_bytes):
    assert not (out / "model.keras").exists() and not (out / "summary.json").exists()
    assert (out / "checkpoints" / FIRST).read_bytes() == first_bytes
    for _, _, path in list_checkpoints(str(out)):
        assert _all_finite(path), path


DIVERGED = (
    # The loss is checked at every step (it is fetched for the progress bar anyway); weights
    # that the last step of an epoch made NaN (its loss was computed before) at the checkpoint.
    r"^training stopped: the (loss became (nan|inf|-inf)|weights became non-finite) at epoch "
    r"(\d+)/4, step (\d+)/4 \(learning_rate 1e\+06\)(;| \().*the last finite checkpoint "
    r"checkpoints/ckpt-\d{4}-\d{6}\.npz is kept.*no model\.keras.*allowed: .*smaller learning_rate"
)


def test_a_diverging_run_stops_at_the_step(base_run, tmp_path):
    out = _copy(base_run, tmp_path)
    first = (out / "checkpoints" / FIRST).read_bytes()
    with pytest.raises(ValueError) as e:
        fit_classifier(
            epochs=4, output_dir=str(out), resume=True, allow_config_change=True,
            **{**TINY, "learning_rate": 1e6},
        )
    text = str(e.value)
    found = re.search(DIVERGED, text, re.IGNORECASE)
    assert found and "\n" not in text, text
    assert int(found.group(3)) >= 2  # epoch 1 was the finite one
    _check_nothing_non_finite_was_written(out, first)


class PoisonAt(keras.callbacks.Callback):
    """Sets one weight to NaN after a given step: the next step's loss is NaN."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at, self.epoch = (epoch, step), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, step, logs=None):
        if (self.epoch, step + 1) == self.at:
            kernel = self.model.get_layer("stem.conv1.conv").kernel
            kernel.assign(np.full(kernel.shape, np.nan, kernel.dtype))


def test_the_loss_is_checked_at_every_step(base_run, tmp_path):
    out = _copy(base_run, tmp_path)
    first = (out / "checkpoints" / FIRST).read_bytes()
    with pytest.raises(ValueError, match=(
        r"^training stopped: the loss became nan at epoch 2/3, step 3/4 \(learning_rate 0\.05\); "
        r"nothing after that step was written: the last finite checkpoint "
        r"checkpoints/ckpt-0001-000000\.npz is kept, and no model\.keras\."
    )):
        fit_classifier(epochs=3, output_dir=str(out), resume=True, callbacks=[PoisonAt(1, 2)],
                       **TINY)
    _check_nothing_non_finite_was_written(out, first)


def test_the_same_stop_under_mirrored_strategy_from_the_cli(base_run, tmp_path):
    out = _copy(base_run, tmp_path)
    first = (out / "checkpoints" / FIRST).read_bytes()
    rc, text = run([
        *TINY_RUN, "--train-size", "64", "--val-size", "16", "--batch-size", "16", "--epochs", "4", "--verbose", "2",
        "--strategy", "mirrored", "--cpu-replicas", "2", "--output-dir", str(out), "--resume",
        "--allow-config-change", "--learning-rate", "1e6",
    ])
    assert rc == 2, text
    error = [line for line in text.splitlines() if line.startswith("keras-csp: error: ")]
    assert error and re.search(DIVERGED, error[0][len("keras-csp: error: "):], re.I), text
    assert "Done" not in text
    _check_nothing_non_finite_was_written(out, first)


def _poison(path):
    """Rewrites a checkpoint with its model weights set to NaN (what an older version wrote)."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    for key, value in arrays.items():
        if key.startswith("model/") and value.dtype.kind == "f":
            arrays[key] = np.full_like(value, np.nan)
    np.savez(path, **arrays)


def test_a_checkpoint_of_nan_weights_is_not_resumed_from(base_run, tmp_path):
    out = _copy(base_run, tmp_path)
    ckpt = out / "checkpoints" / FIRST
    _poison(ckpt)
    poisoned = ckpt.read_bytes()
    with pytest.raises(ValueError) as e:
        fit_classifier(epochs=2, output_dir=str(out), resume=True, **TINY)
    text = str(e.value)
    assert "\n" not in text
    assert f"checkpoint {str(ckpt)!r} holds non-finite model weights" in text
    assert ckpt.read_bytes() == poisoned and not (out / "model.keras").exists()
    assert [(e, s) for e, s, _ in list_checkpoints(str(out))] == [(1, 0)]


def test_an_older_finite_checkpoint_is_resumed_from_instead(base_run, tmp_path, capsys):
    out = _copy(base_run, tmp_path)
    newer = out / "checkpoints" / "ckpt-0001-000002.npz"
    shutil.copy(out / "checkpoints" / FIRST, newer)
    _poison(newer)
    result = fit_classifier(epochs=2, output_dir=str(out), resume=True, save_model=False, **TINY)
    assert "holds non-finite model weights" in capsys.readouterr().err
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["loss"])


def test_a_model_of_non_finite_weights_is_not_written(tmp_path):
    # The last line of defence before model.keras (the checkpoint check comes first in a run).
    from keras_csp.train.results import check_finite_model

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])
    check_finite_model(model)
    model.get_layer("head").bias.assign([0.0, np.inf])
    with pytest.raises(ValueError, match=r"1 of the trained model's 2 weight arrays \(first: "
                                         r"\S*head/bias\) are non-finite; no model.keras"):
        check_finite_model(model)
