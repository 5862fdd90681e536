"""The demo: CSP against its non-CSP twin, first on paper (profiles), then trained on a CPU.

`run()` prints the profile table of the paper's CSP models against their baselines (what
`keras-csp demo` printed before), then trains a small CSPDarknet (`cspdarknet_small`) and its
non-CSP twin (the same blocks in plain stages, `fusion="none"`) on `synthetic_shapes` with the same
data, schedule and seed, and prints them side by side: parameters, FLOPs, validation accuracy and
training images/s. Everything lands in `output_dir`:

    demo_summary.json, demo_learning_curves.png       the comparison
    cspdarknet_small.keras, cspdarknet_small_plain.keras   the trained models
    cspdarknet_small_{fp16,int8,qat}.tflite           the CSP model exported for devices
    demo/<model>/                                     each run's checkpoints, logs, plot, summary

The trained CSP model is then exported to TFLite (fp16, full-integer int8 calibrated on training
images, and int8 after quantization-aware fine-tuning), each file is run with `keras_csp.lite` on
the validation images, and its top-1 is printed next to the Keras model's.

The default took under 4 minutes on two (shared) CPU cores and reached 99.5% validation accuracy
with both models; `quick=True` trains a tiny model for a few steps (for tests). The demo replaces
its own earlier results in `output_dir`.
"""

import os
import time

from keras_csp.train import demo_recipe as recipe

PROFILE_PAIRS = (
    ("cspresnext50", "resnext50"),
    ("cspresnet50", "resnet50"),
    ("cspdarknet53", "darknet53"),
)

# The default: reaches >90% validation accuracy within the 10-minute CPU budget.
FULL = dict(
    model="cspdarknet_small",
    image_size=64,
    train_size=6000,
    val_size=1000,
    batch_size=64,
    epochs=6,
    learning_rate=0.1,
    warmup_epochs=1.0,
    augment=dict(
        augment="classification",
        aug_crop_area=(0.85, 1.0),
        aug_aspect_ratio=(0.9, 1.1),
        aug_randaugment_ops=0,
        aug_mix="none",
        aug_label_smoothing=0.05,
    ),
)
QUICK = dict(
    model="cspdarknet_tiny",
    image_size=32,
    train_size=128,
    val_size=64,
    batch_size=32,
    epochs=1,
    learning_rate=0.05,
    warmup_epochs=0.0,
    augment=dict(augment="none"),
)


def profile_table(size=256, pairs=PROFILE_PAIRS):
    """The paper's models against their baselines: per-model profiles and the summary table."""
    from keras_csp.profiler import profile

    lines = [f"CSP models against their baselines at {size}x{size} (FLOPs: 2 per multiply-add)", ""]
    rows = []
    for csp, base in pairs:
        p_csp, p_base = profile(csp, (size, size, 3)), profile(base, (size, size, 3))
        lines += [p_csp.table(), ""]
        rows.append((csp, base, p_csp, p_base))
    lines.append(f"{'model':<14} {'params':>12} {'GFLOPs':>8} {'act. MB':>8}   vs baseline")
    for csp, base, p_csp, p_base in rows:
        for name, p in ((base, p_base), (csp, p_csp)):
            ratio = "" if p is p_base else f"   FLOPs x{p.flops / p_base.flops:.2f}"
            lines.append(
                f"{name:<14} {p.params:>12,} {p.flops / 1e9:>8.3f} "
                f"{p.activation_bytes / 2**20:>8.1f}{ratio}"
            )
    return "\n".join(lines)


def comparison_table(rows):
    """Side-by-side table of the trained models (rows: dicts from `run`)."""
    header = (
        f"{'model':<30} {'params':>10} {'MFLOPs':>8} {'val top-1':>9} {'images/s':>9} {'time s':>7}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        speed = f"{r['images_per_second']:.0f}" if r["images_per_second"] else "-"
        lines.append(
            f"{r['label']:<30} {r['params']:>10,} {r['flops'] / 1e6:>8.1f} "
            f"{r['val_accuracy']:>9.4f} {speed:>9} {r['wall_time_seconds']:>7.0f}"
        )
    return "\n".join(lines)


def run(quick=False, output_dir="saved_models", profile_size=256, verbose=None):
    """Runs the demo; returns `{"rows": [...], "wall_time_seconds": ..., "files": {...}}`.

    Args:
        quick: a tiny version that takes seconds (for tests): tiny model, 128 images, one epoch,
            profile table at 64x64 of one pair.
        output_dir: where the models, plot and summary go (see the module docstring).
        profile_size: input size of the profile table.
        verbose: progress output of the training runs (default: progress bar, 0 when quick).
    """
    from keras_csp.train.report import plot_curves, write_json

    start = time.time()
    settings, verbose = recipe.demo_settings(quick, FULL, QUICK, verbose)
    if quick:
        print(profile_table(64, PROFILE_PAIRS[-1:]), "\n", flush=True)
    else:
        print(profile_table(profile_size), "\n", flush=True)
    data = recipe.demo_data(settings)
    print(
        f"Training {settings['model']} (CSP) and its non-CSP twin on {data!r}, "
        f"{settings['epochs']} epoch(s) each, on {recipe.cpu_line()}.",
        flush=True,
    )
    rows, histories, csp_model = train_pair(settings, data, output_dir, verbose)
    csp_name = rows[0]["model"]
    plot = plot_curves(
        histories,
        os.path.join(output_dir, "demo_learning_curves.png"),
        title="synthetic shapes: CSP vs plain stages",
    )
    print(f"\nExporting {csp_name} to TFLite and running it with keras_csp.lite ...", flush=True)
    exports = export_and_compare(csp_model, data, output_dir, csp_name, quick=quick)
    wall = time.time() - start
    summary = {
        "rows": rows,
        "tflite": exports,
        "data": repr(data),
        "settings": {k: v for k, v in settings.items()},
        "wall_time_seconds": round(wall, 1),
        "files": {
            "plot": plot,
            "models": [r["model_file"] for r in rows],
            "tflite": [r["file"] for r in exports[1:]],
        },
    }
    write_json(os.path.join(output_dir, "demo_summary.json"), summary)
    _print_results(summary, settings, csp_name, wall, output_dir)
    return summary


def train_pair(settings, data, output_dir, verbose):
    """Trains the CSP model and its plain twin (`fusion="none"`) with the same data, schedule and
    seed; returns (their table rows, their histories by name, the trained CSP model)."""
    from keras_csp.train.loop import fit_classifier

    rows, histories = [], {}
    for label, fusion in (("(CSP)", "full"), ("(plain twin)", "none")):
        name = settings["model"] + ("" if fusion == "full" else "_plain")
        model_path = os.path.join(output_dir, f"{name}.keras")
        result = recipe.train_and_save(
            fit_classifier,
            data,
            settings["model"],
            settings,
            os.path.join(output_dir, "demo", name),
            model_path,
            verbose,
            fusion=fusion,
            learning_rate=settings["learning_rate"],
            warmup_epochs=settings["warmup_epochs"],
            optimizer="sgd",
            **settings["augment"],
        )
        s = result.summary
        rows.append(
            {
                "label": f"{settings['model']} {label}",
                "model": name,
                "fusion": fusion,
                "params": s["params"],
                "flops": s["flops"],
                "val_accuracy": s["val_accuracy"],
                "val_top5_accuracy": s["val_top5_accuracy"],
                "images_per_second": s["train_images_per_second"],
                "wall_time_seconds": s["wall_time_seconds"],
                "model_file": model_path,
            }
        )
        histories[name] = result.history
        if fusion == "full":
            csp_model = result.model
    return rows, histories, csp_model


def _print_results(summary, settings, csp_name, wall, output_dir):
    print()
    print(comparison_table(summary["rows"]))
    print(f"\n{csp_name} on the validation images, Keras vs its TFLite exports:")
    print(export_table(summary["tflite"]))
    files = summary["files"]
    print(
        f"\nFLOPs at {settings['image_size']}x{settings['image_size']} (2 per multiply-add); "
        "images/s: training steps, after the first. Total demo time "
        f"{wall:.0f} s.\nWrote {files['plot']}, {', '.join(files['models'])}, "
        f"{', '.join(files['tflite'])} and "
        f"{os.path.join(output_dir, 'demo_summary.json')}."
    )


def export_and_compare(model, data, output_dir, name, quick=False):
    """Exports `model` to TFLite (fp16, int8, QAT int8) and compares each file's validation top-1,
    run with `keras_csp.lite`, with the Keras model's on the same raw images.

    Returns rows `{"format", "file", "size_bytes", "top1", "top1_drop", "agreement",
    "max_prob_diff"}`; `agreement` is the fraction of images whose top-1 class equals the Keras
    model's (what quantization changed, whatever the labels say).
    """
    import numpy as np

    from keras_csp import export, lite
    from keras_csp.data.core import normalize_images

    images, labels = [], []
    for x, y in data.validation.as_dataset(64, shuffle=False):
        images.append(x.numpy())
        labels.append(np.argmax(y.numpy(), axis=-1))
    images, labels = np.concatenate(images), np.concatenate(labels)
    calibration = next(iter(data.train.as_dataset(64, shuffle=False)))[0].numpy()
    train_ds = data.train.as_dataset(32, shuffle=True).take(4 if quick else 60)

    keras_probs = np.asarray(model.predict(normalize_images(images), verbose=0))
    keras_top1 = float(np.mean(np.argmax(keras_probs, -1) == labels))
    rows = [{"format": "keras", "file": None, "size_bytes": None, "top1": keras_top1,
             "top1_drop": 0.0, "agreement": 1.0, "max_prob_diff": 0.0}]
    modes = {
        "fp16": dict(quantize="fp16"),
        "int8": dict(quantize="int8", representative_data=list(calibration)),
        "qat": dict(quantize="qat", train_data=train_ds, epochs=1, learning_rate=1e-4,
                    representative_data=list(calibration)),
    }
    for fmt, kwargs in modes.items():
        path = os.path.join(output_dir, f"{name}_{fmt}.tflite")
        export.tflite(model, path, verbose=False, **kwargs)
        probs = next(iter(lite.LiteModel(path, num_threads=2)(images).values()))
        top1 = float(np.mean(np.argmax(probs, -1) == labels))
        rows.append({"format": fmt, "file": path, "size_bytes": os.path.getsize(path),
                     "top1": top1, "top1_drop": keras_top1 - top1,
                     "agreement": float(np.mean(np.argmax(probs, -1) == np.argmax(keras_probs, -1))),
                     "max_prob_diff": float(np.max(np.abs(probs - keras_probs)))})
    return rows


def export_table(rows):
    lines = [
        f"{'format':<8} {'size KB':>9} {'val top-1':>9} {'drop (pts)':>10} {'agree':>7} "
        f"{'max |dp|':>9}"
    ]
    for r in rows:
        size = recipe.size_in_kb(r["size_bytes"])
        lines.append(
            f"{r['format']:<8} {size:>9} {r['top1']:>9.4f} {100 * r['top1_drop']:>10.2f} "
            f"{100 * r['agreement']:>6.1f}% {r['max_prob_diff']:>9.4f}"
        )
    return "\n".join(lines)


def clean(output_dir="saved_models"):
    """Removes what `run` wrote (not the folder's other files)."""
    names = ["demo", "demo_summary.json", "demo_learning_curves.png"]
    for model in (FULL["model"], QUICK["model"]):
        names += [f"{model}.keras", f"{model}_plain.keras"]
        names += [f"{model}_{fmt}.tflite" for fmt in ("fp16", "int8", "qat")]
    recipe.remove_outputs(output_dir, names)
