"""What a run leaves: the `TrainResult` it returns, its summary (summary.json) and, on the chief,
learning_curves.png, model.keras and the closing lines of its output."""

import dataclasses
import os
import sys


@dataclasses.dataclass
class TrainResult:
    """What `fit_classifier` / `fit_detector` return."""

    model: object
    history: list
    summary: dict
    output_dir: str


def run_summary(cfg, task, data, model, model_name, history, wall, strategy, num_workers):
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
        "skipped_images": {
            "count": data.skipped.count,
            "files": data.skipped.sources[:100],
            "reasons": dict(data.skipped.reasons(100)),
        },
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


def closing_lines(summary, data):
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


def check_finite_model(model):
    """Refuses to write a model whose weights are not all finite (the last step's update can
    make them NaN although the loss it reported was finite)."""
    import keras

    from keras_csp.train.checkpoint import ALLOWED_AFTER_DIVERGING, NonFiniteError
    from keras_csp.train.checkpoint import non_finite_arrays

    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    bad = non_finite_arrays(weights)
    if bad:
        raise NonFiniteError(
            f"training stopped: {len(bad)} of the trained model's {len(weights)} weight arrays "
            f"(first: {model.weights[bad[0]].path}) are non-finite; no model.keras or summary was "
            f"written. {ALLOWED_AFTER_DIVERGING}"
        )


def write_outputs(cfg, summary, model, history, model_name, data, talk):
    """The chief's files in `cfg.output_dir`: the learning curves, the model (`save_model`) and
    summary.json (listing them); prints the closing lines when `talk`."""
    from keras_csp.train.checkpoint import atomic_save
    from keras_csp.train.report import plot_curves, write_json

    check_finite_model(model)
    out = cfg.output_dir
    files = {}
    if history:
        title = f"{model_name} ({cfg.task}, fusion={cfg.fusion})"
        plot_path = os.path.join(out, "learning_curves.png")
        files["plot"] = plot_curves({model_name: history}, plot_path, title)
    if cfg.save_model:
        path = os.path.join(out, "model.keras")
        atomic_save(path, model.save)
        files["model"] = path
    summary["files"] = files
    write_json(os.path.join(out, "summary.json"), summary)
    if talk:
        print(closing_lines(summary, data), flush=True)
