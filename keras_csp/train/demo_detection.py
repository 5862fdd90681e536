"""`keras-csp demo --task detection`: the paper's mobile detector trained on a CPU in a few minutes.

Trains CSPPeleeNet + EFM (SAM) (`CSPDetector`) with the package's detection recipe
(`keras_csp.train.fit_detector` defaults) on `synthetic_shapes("detection")`, drawn from a seed
(nothing to download), then:

    demo_detections.png                      its boxes on validation images (ground truth dashed)
    csp_detector_demo.keras                  the trained detector
    demo_detection/coco/val.json, val/       the validation images as a COCO set (what the
                                             mAP is measured on: `keras-csp evaluate` reads it)
    demo_detection/benchmark/                `keras_csp.benchmark` of the detector on them: the
                                             SavedModel and the fp32 / fp16 / int8 .tflite
                                             files, benchmark.md / .json / .png (size, mAP and
                                             its difference to Keras, latency, GPU verdict)
    demo_detection_summary.json              settings, mAP / mAP50 (training's), the benchmark
                                             rows, time
    demo_detection/run/                      the training run's checkpoints, logs, plot, summary

in `output_dir`, next to the classification demo's files; the demo ends with the benchmark's
table. `quick=True` trains a tiny detector on a few images for a test (and benchmarks Keras and
fp16 only).
"""

import os
import time

from keras_csp.train import demo_recipe as recipe

# Four CSP stages down to stride 32 (P2..P5, as EFM needs), small enough to train in seconds.
_QUICK_BACKBONE = dict(stem=16, filters=(16, 32, 48, 64))

FULL = dict(
    model="csppeleenet",
    image_size=128,
    difficulty="easy",
    train_size=1500,
    val_size=200,
    batch_size=16,
    # mAP50 reached 0.997 after 3 of 8 epochs (the easy set saturates); 4 epochs (the cosine
    # schedule compressed into them) keep the boxes at half the training time.
    epochs=4,
)
QUICK = dict(
    model=None,  # _QUICK_BACKBONE
    image_size=64,
    difficulty="easy",
    train_size=32,
    val_size=8,
    batch_size=16,
    epochs=1,
    augment="none",  # keras-cv's augmentation graph takes longer to build than 2 steps to run
)
NAME = "csp_detector_demo"
PICTURE = "demo_detections.png"
SUMMARY = "demo_detection_summary.json"
FOLDER = "demo_detection"
# Images in the picture, and the smallest score of a box drawn on it.
PICTURE_IMAGES = 8
PICTURE_SCORE = 0.3


def _quick_backbone():
    from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig

    return ModelConfig(
        stem=StemConfig(filters=_QUICK_BACKBONE["stem"], kernel_size=3, strides=2),
        stages=StagesConfig(filters=_QUICK_BACKBONE["filters"], depth=(1, 1, 1, 1), strides=2),
    )


def run(quick=False, output_dir="saved_models", verbose=None):
    """Runs the detection demo; returns its summary dict (see the module docstring)."""
    from keras_csp.data import write_coco
    from keras_csp.train.report import write_json

    start = time.time()
    settings, verbose = recipe.demo_settings(quick, FULL, QUICK, verbose)
    data = recipe.demo_data(settings, "detection")
    label = settings["model"] or "a tiny CSP backbone"
    print(
        f"Training CSPDetector ({label} + EFM (SAM)) on {data!r}, {settings['epochs']} epoch(s), "
        f"on {recipe.cpu_line()}.",
        flush=True,
    )
    folder = os.path.join(output_dir, FOLDER)
    model_path = os.path.join(output_dir, f"{NAME}.keras")
    result = train_detector(settings, data, os.path.join(folder, "run"), model_path, verbose)
    picture = draw_detections(result.model, data, os.path.join(output_dir, PICTURE))

    # The validation images as COCO files: the Keras model and its exports are measured on them
    # the same way (keras_csp.coco_eval), as `keras-csp evaluate` would.
    coco = write_coco(_validation_only(data), os.path.join(folder, "coco"), overwrite=True)["val"]
    print(f"\nBenchmarking {NAME} in every format (keras_csp.benchmark) ...", flush=True)
    bench = run_benchmark(result.model, coco, os.path.join(folder, "benchmark"), quick)
    wall = time.time() - start
    s = result.summary
    summary = {
        "model": label,
        "neck": "efm",
        "attention": "sam",
        "data": repr(data),
        "settings": dict(settings, model=label),
        "params": s.get("params"),
        "flops": s.get("flops"),
        "val_mAP": s.get("val_mAP"),
        "val_mAP50": s.get("val_mAP50"),
        "train_images_per_second": s.get("train_images_per_second"),
        "training_seconds": s.get("wall_time_seconds"),
        "benchmark": bench.rows,
        "wall_time_seconds": round(wall, 1),
        "files": {
            "model": model_path,
            "picture": picture,
            "tflite": [r["file"] for r in bench.rows if r["file"] and r["format"] != "keras"],
            "coco": coco["annotations"],
            "benchmark": bench.files,
        },
    }
    write_json(os.path.join(output_dir, SUMMARY), summary)
    _print_results(summary, bench.table, wall, output_dir)
    return summary


def train_detector(settings, data, run_dir, model_path, verbose):
    """`fit_detector` of the settings' backbone (the tiny one when quick) + EFM (SAM), with the
    package's detection recipe; the trained detector is saved at `model_path`."""
    from keras_csp.train.loop import fit_detector

    return recipe.train_and_save(
        fit_detector,
        data,
        settings["model"] or _quick_backbone(),
        settings,
        run_dir,
        model_path,
        verbose,
        neck="efm",
        attention="sam",
        **({"augment": settings["augment"]} if "augment" in settings else {}),
    )


def _print_results(summary, table, wall, output_dir):
    files = summary["files"]
    print(
        f"\n{NAME}: val mAP {_fmt(summary['val_mAP'])}, mAP50 {_fmt(summary['val_mAP50'])} "
        f"(training's validation); {summary['params']:,} params"
    )
    print(table)
    print(
        f"Total demo time {wall:.0f} s. Wrote {files['picture']}, {files['model']}, "
        f"{', '.join(files['tflite'])}, {files['benchmark']['table']} and "
        f"{os.path.join(output_dir, SUMMARY)}."
    )


def _fmt(value):
    return "-" if value is None else f"{value:.4f}"


def _validation_only(data):
    """`data` with its validation split as the only split (for `write_coco`)."""
    import dataclasses

    return dataclasses.replace(data, train=data.validation, validation=None)


# What the demo benchmarks (quick: what a test can afford), timed in this many rounds.
FORMATS = ("keras", "savedmodel", "tflite_fp32", "tflite_fp16", "tflite_int8")
QUICK_FORMATS = ("keras", "tflite_fp16")


def run_benchmark(detector, coco, folder, quick=False):
    """`keras_csp.benchmark` of the detector on the validation COCO set (`write_coco`'s "val"
    entry); int8 calibrates on those images (the demo writes no training set)."""
    from keras_csp.bench import benchmark

    return benchmark(
        detector, coco["annotations"], images_dir=coco["images_dir"],
        formats=QUICK_FORMATS if quick else FORMATS, output_dir=folder, overwrite=True,
        runs=3 if quick else 20, warmup=1 if quick else 3, name=NAME, progress=not quick,
        verbose=False,
    )


def draw_detections(detector, data, path, count=PICTURE_IMAGES, score=PICTURE_SCORE):
    """A PNG grid of validation images with the detector's boxes (solid, class and score) and the
    ground truth (thin, dashed); written atomically. Returns the path."""
    import numpy as np
    from PIL import Image, ImageDraw

    from keras_csp.data.core import normalize_images
    from keras_csp.train.checkpoint import atomic_save

    batch = next(iter(data.validation.as_dataset(count, shuffle=False)))
    images = batch["images"].numpy()
    predicted = detector.predict(normalize_images(images), verbose=0)
    scale = max(1, 256 // images.shape[1])
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
               (145, 30, 180)]
    tiles = []
    for i, image in enumerate(images):
        size = image.shape[1] * scale
        tile = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).resize(
            (size, size), Image.NEAREST
        )
        pen = ImageDraw.Draw(tile)
        for box, cls in zip(batch["bounding_boxes"]["boxes"][i].numpy(),
                            batch["bounding_boxes"]["classes"][i].numpy()):
            if cls >= 0:
                _dashed(pen, [v * scale for v in box], (255, 255, 255))
        for k in range(int(predicted["num_detections"][i])):
            confidence = float(predicted["confidence"][i][k])
            if confidence < score:
                continue
            cls = int(predicted["classes"][i][k])
            x1, y1, x2, y2 = (float(v) * scale for v in predicted["boxes"][i][k])
            color = palette[cls % len(palette)]
            pen.rectangle([x1, y1, x2, y2], outline=color, width=2)
            pen.text((x1 + 2, y1 + 1), f"{data.class_names[cls]} {confidence:.2f}", fill=color)
        tiles.append(np.asarray(tile))
    columns = min(4, len(tiles))
    rows = [tiles[r : r + columns] for r in range(0, len(tiles), columns)]
    rows[-1] += [np.zeros_like(tiles[0])] * (columns - len(rows[-1]))
    grid = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    atomic_save(path, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))
    return path


def _dashed(pen, box, color, dash=4):
    x1, y1, x2, y2 = box
    for a, b, horizontal, at in ((x1, x2, True, y1), (x1, x2, True, y2), (y1, y2, False, x1),
                                 (y1, y2, False, x2)):
        position = a
        while position < b:
            end = min(position + dash, b)
            line = [position, at, end, at] if horizontal else [at, position, at, end]
            pen.line(line, fill=color, width=1)
            position += 2 * dash


def clean(output_dir="saved_models"):
    """Removes what `run` wrote (not the folder's other files)."""
    recipe.remove_outputs(
        output_dir,
        (FOLDER, SUMMARY, PICTURE, f"{NAME}.keras"),
    )
