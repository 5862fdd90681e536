"""The end of a run: the learning-curve plot, the JSON summary, TensorBoard scalars."""

import io
import json
import math

from keras_csp.train.checkpoint import atomic_write


def _finite(value):
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def plot_curves(runs, path, title=None):
    """Writes a PNG of loss and the main metric per epoch for one run or several.

    Args:
        runs: `{label: history}`; a history is the list of per-epoch dicts of a run
            (`epoch`, `loss`, `val_loss`, `accuracy`, `val_accuracy`, `val_mAP`, ...).
        path: the PNG file (written atomically).
    """
    # A bare Figure renders PNG without pyplot, so the caller's backend (a notebook's inline one,
    # say) is left alone.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), dpi=100)
    ax_loss, ax_metric = fig.subplots(1, 2)
    metric_label = "accuracy"
    for i, (label, history) in enumerate(runs.items()):
        colour = f"C{i}"
        epochs = [h["epoch"] for h in history]
        prefix = f"{label} " if len(runs) > 1 else ""
        for key, style, name in (("loss", "--", "train"), ("val_loss", "-", "validation")):
            ys = [h.get(key) for h in history]
            if any(_finite(y) for y in ys):
                ax_loss.plot(epochs, ys, style, color=colour, marker=".", label=f"{prefix}{name}")
        keys = (
            (("accuracy", "--", "train top-1"), ("val_accuracy", "-", "validation top-1"))
            if any("val_accuracy" in h or "accuracy" in h for h in history)
            else (("val_mAP", "-", "validation mAP"), ("val_mAP50", ":", "validation mAP50"))
        )
        if keys[0][0] == "val_mAP":
            metric_label = "COCO mAP"
        for key, style, name in keys:
            ys = [h.get(key) for h in history]
            if any(_finite(y) for y in ys):
                ax_metric.plot(epochs, ys, style, color=colour, marker=".", label=f"{prefix}{name}")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("loss")
    ax_metric.set_xlabel("epoch")
    ax_metric.set_ylabel(metric_label)
    ax_metric.set_title(metric_label)
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write(path, buffer.getvalue())
    return path


def write_json(path, data):
    atomic_write(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(value)


class TensorBoardLogs:
    """Scalars in `logs/train` and `logs/validation` (chief only; a no-op elsewhere)."""

    def __init__(self, log_dir, enabled):
        self.enabled = enabled
        if not enabled:
            return
        import tensorflow as tf

        self._tf = tf
        self._train = tf.summary.create_file_writer(f"{log_dir}/train")
        self._val = tf.summary.create_file_writer(f"{log_dir}/validation")

    def scalars(self, split, values, step):
        if not self.enabled:
            return
        writer = self._train if split == "train" else self._val
        with writer.as_default():
            for key, value in values.items():
                if _finite(value):
                    self._tf.summary.scalar(key, value, step=step)

    def flush(self):
        if self.enabled:
            self._train.flush()
            self._val.flush()

    def close(self):
        if self.enabled:
            self._train.close()
            self._val.close()
