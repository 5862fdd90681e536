"""Detection benchmark: the paper's neck ablation, CSP vs its twin, and keras-cv's YOLOv8, each
trained from scratch under one fixed budget, then exported to TFLite and evaluated again (run by
hand, never in CI; `--quick` is the smoke test).

    # the table of benchmarks/README.md ("Detection"), about 45 minutes on 2 shared cores:
    .venv/bin/python -m benchmarks.detection --epochs 6 --size 128 --train 1000 --val 200
    # seconds: two tiny rows, no latency rounds (tests/test_benchmarks_smoke.py)
    .venv/bin/python -m benchmarks.detection --quick

Rows (`--rows` picks some): the Table 2 necks on CSPPeleeNet (`fpn`, `gfm`, `panet`, `efm-sam`,
`efm-spp`), the non-CSP twin `peleenet-efm-sam`, all with the package's defaults, the peer `yolov8-xs`
(keras-cv's `YOLOV8Detector` on an xs-sized `YOLOV8Backbone`, no pretraining) and `efm-sam-old`
(CSPPeleeNet + EFM(SAM) with `OLD_RECIPE`, the package's training defaults), `efm-sam-n` and
`efm-sam-m` (`CSPDetector(scale="n" | "m")`), and ultralytics' `yolov8n` and `yolo11n` (trained in
`.venv-yolo` by their own recipe, scored by the same COCO evaluation: `detection_ultralytics`,
`peer_predictions`, `ultralytics_peer`). Every row is trained once per `--seeds` seed (default
0,1) and reported as the mean ± half the range (`detection_seeds`). Every Keras row trains
through `keras_csp.train.fit_detector` on the same data, pipeline (augmentation preset), size,
batch and epochs, and is scored by the same metric code (`keras_csp.train.tasks.coco_map`:
keras-cv's BoxCOCOMetrics, pycocotools underneath) on the same validation images.

Per row, in its own process (no row inherits another's graphs or threads): training (mAP, mAP50,
training images/s), params and BFLOPs (2 per multiply-add) at the size used and at 416, `.tflite`
files at batch 1 (fp32, fp16, full-integer int8 calibrated on training images) and the mAP/mAP50
of each file run by `keras_csp.lite` on the validation images (`tflite_coco_map`). After all rows,
in one process, the fp32 and int8 files of every row are timed in turns (`benchmarks.paired`: 2
threads, XNNPACK), so their ratios come from the same minutes. Output in `--out`
(default `benchmarks/results/`): `detection.json` (everything), `detection.md` (the table) and
`detection.png` (mAP50 against BFLOPs and against TFLite latency).
"""

import argparse
import ast
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.detection_seeds import combine, first_seed, mean_and_spread, parse_seeds
from benchmarks.detection_ultralytics import (
    ULTRALYTICS_ROWS,
    check_environment,
    issue23_targets,
    run_peer_row,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]

# name -> (backbone, neck, attention, recipe)
ROWS = {
    "efm-sam": ("csppeleenet", "efm", "sam", "defaults"),
    "yolov8-xs": ("yolov8-xs", None, None, "yolov8"),
    "efm-sam-old": ("csppeleenet", "efm", "sam", "old"),
    "fpn": ("csppeleenet", "fpn", None, "defaults"),
    "gfm": ("csppeleenet", "gfm", None, "defaults"),
    "efm-spp": ("csppeleenet", "efm", "spp", "defaults"),
    "panet": ("csppeleenet", "panet", None, "defaults"),
    # EfficientDet's BiFPN (keras_csp/necks/bifpn.py, 2 repeats): not run yet.
    "bifpn": ("csppeleenet", "bifpn", None, "defaults"),
    "peleenet-efm-sam": ("peleenet", "efm", "sam", "defaults"),
    "efm-sam-slim": ("csppeleenet", "efm", "sam", "defaults"),
    "efm-sam-n": ("csppeleenet", "efm", "sam", "defaults"),
    "efm-sam-m": ("csppeleenet", "efm", "sam", "defaults"),
    "yolov8n": ("yolov8n", None, None, "ultralytics"),
    "yolo11n": ("yolo11n", None, None, "ultralytics"),
}
# Neck and head widths of rows that do not use CSPDetector's (96, 128, 256) / (112, 256, 448):
# `efm-sam-slim` is CSPPeleeNet + EFM(SAM) narrowed to just under YOLOv8-xs's BFLOPs at 128x128
# (0.340 vs 0.344), for a comparison at fewer BFLOPs.
# `efm-sam-n` and `efm-sam-m` are CSPDetector's named sizes (`scale="n"`: at most YOLOv8n's FLOPs).
ROW_WIDTHS = {"efm-sam-slim": {"neck_filters": (48, 64, 128), "head_filters": (48, 96, 128)},
              "efm-sam-n": {"scale": "n"}, "efm-sam-m": {"scale": "m"}}
QUICK_ROWS = ("efm-sam",)

# `keras-csp train --task detection`'s defaults before issue 16, written out (the other rows train
# with today's defaults: SGD 0.02 x batch/16, DFL 1.5, no mosaic): the
# classification recipe's SGD learning rate 0.1 x batch/256, 1 warm-up epoch, no DFL, keras-cv's
# assigner, mosaic and jitter (0.75, 1.3).
OLD_RECIPE = {
    "optimizer": "sgd",
    "learning_rate_per_256": 0.1,
    "weight_decay": 5e-4,
    "warmup_epochs": 1.0,
    "dfl_loss_weight": 0.0,
    "box_loss_weight": 7.5,
    "class_loss_weight": 0.5,
    "assigner_top_k": 10,
    "assigner_alpha": 0.5,
    "assigner_beta": 6.0,
    "aug_mosaic": True,
    "aug_jitter_scale": (0.75, 1.3),
}
# What the issue ran keras-cv's YOLOv8 with: SGD, cosine schedule peaking at 0.0125.
YOLOV8_RECIPE = {"optimizer": "sgd", "learning_rate": 0.0125}
# keras-cv's YOLOV8Detector defaults, used by its NMS (and so by our evaluation of its .tflite).
YOLOV8_NMS = {"confidence_threshold": 0.2, "iou_threshold": 0.7, "max_detections": 100}


# ------------------------------------------------------------------------------------ the peer


def yolov8_xs(num_classes, image_size, bounding_box_format="xyxy"):
    """keras-cv's YOLOV8Detector on an xs-sized backbone, random weights, for `fit_detector`."""
    import keras_cv

    class PeerYOLOV8(keras_cv.models.YOLOV8Detector):
        # keras-cv's compile needs both losses positionally; the trainer passes box_loss only.
        def compile(self, optimizer=None, box_loss="ciou",
                    classification_loss="binary_crossentropy", **kwargs):
            super().compile(box_loss=box_loss, classification_loss=classification_loss,
                            optimizer=optimizer, **kwargs)

    backbone = keras_cv.models.YOLOV8Backbone(
        stackwise_channels=[32, 64, 128, 256],
        stackwise_depth=[1, 2, 2, 1],
        include_rescaling=False,  # the trainer feeds images normalized as preprocess_input
        input_shape=(image_size, image_size, 3),
    )
    return PeerYOLOV8(
        num_classes=num_classes,
        bounding_box_format=bounding_box_format,
        backbone=backbone,
        fpn_depth=1,
    )


def yolov8_decode(outputs, images):
    """keras-cv YOLOv8's `decode_predictions` without its NMS: xyxy pixel boxes and scores per
    anchor, for the `.tflite` file (keras_csp.lite runs the suppression)."""
    from keras import ops
    from keras_cv.src.models.object_detection.yolo_v8 import yolo_v8_detector as yolo

    anchors, strides = yolo.get_anchors(image_shape=images.shape[1:])
    distances = yolo.decode_regression_to_boxes(outputs["boxes"])
    boxes = yolo.dist2bbox(distances, anchors) * ops.expand_dims(strides, -1)
    return {"boxes": boxes, "scores": ops.cast(outputs["classes"], "float32")}


# ------------------------------------------------------------------------- FLOPs and params


def conv_flops(model):
    """(params, FLOPs) of a built model, nested models included: 2 per multiply-add of its
    convolutions and dense layers (`keras_csp.profiler`'s rule, for models it cannot read)."""
    import keras

    from keras_csp.profiler import layer_flops

    flops = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                              keras.layers.Dense)):
            shapes = lambda t: [tuple(x.shape) for x in (t if isinstance(t, list) else [t])]
            flops += layer_flops(layer, shapes(layer.input), shapes(layer.output))
    params = sum(int(w.numpy().size) for w in model.trainable_weights)
    return params, flops


def quick_backbone():
    """`--quick`: a four-stage toy backbone (P2..P5) in place of CSPPeleeNet, to trace in seconds."""
    from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig

    return ModelConfig(
        stem=StemConfig(filters=8, kernel_size=3, strides=2),
        stages=StagesConfig(filters=(8, 16, 16, 24), depth=(1, 1, 1, 1), strides=2),
        default_size=64,
    )


def build(row, num_classes, size, fmt="xyxy", quick=False):
    """The row's untrained model at `size` x `size`."""
    backbone, neck, attention, _ = ROWS[row]
    if backbone == "yolov8-xs":
        return yolov8_xs(num_classes, size, fmt)
    from keras_csp.detection import CSPDetector

    widths = ROW_WIDTHS.get(row, {})
    if quick:
        widths = dict(backbone=quick_backbone(), neck_filters=8, head_filters=8)
    return CSPDetector(**{"backbone": backbone, **widths}, num_classes=num_classes, neck=neck,
                       attention=attention, input_shape=(size, size, 3),
                       bounding_box_format=fmt)


# ------------------------------------------------------------------------------------- data


def data_options(args):
    options = dict(num_train=args.train, num_validation=args.val, image_size=args.size,
                   seed=args.data_seed, difficulty=args.difficulty)
    if args.max_objects:
        options["max_objects"] = args.max_objects
    if args.min_area:
        options["area_range"] = (args.min_area, 0.2)
    return options


def write_data(args):
    """The data set as COCO JSON + JPEGs in the work folder (drawn once, not once per row and
    epoch), plus `val_monitor.json`: the first `--monitor` validation images, which the trainer
    scores after every epoch (the table's numbers come from the whole validation set)."""
    from keras_csp.data import export_coco

    root = Path(args.workdir) / "data"
    stamp = root / "options.json"
    options = data_options(args)
    as_json = json.loads(json.dumps(options))  # tuples as lists, as the stamp gives them back
    if not (stamp.is_file() and json.loads(stamp.read_text()) == as_json):
        export_coco(str(root), overwrite=True, **options)
        val = json.loads((root / "val.json").read_text())
        keep = {im["id"] for im in val["images"][: args.monitor]}
        monitor = {**val, "images": [im for im in val["images"] if im["id"] in keep],
                   "annotations": [a for a in val["annotations"] if a["image_id"] in keep]}
        (root / "val_monitor.json").write_text(json.dumps(monitor))
        stamp.write_text(json.dumps(options))
    return root


def load_data(args, monitor=False):
    """The COCO files of `write_data` as an `ImageData` (validation: all, or the monitor set)."""
    from keras_csp.data import coco_detection

    root = Path(args.workdir) / "data"
    return coco_detection(
        str(root / "train.json"), str(root / "train"), image_size=args.size,
        validation_annotations=str(root / ("val_monitor.json" if monitor else "val.json")),
        validation_images_dir=str(root / "val"), max_boxes=args.max_boxes,
    )


def keras_coco_map(model, split, confidence_threshold):
    """`{"val_mAP", "val_mAP50"}` of a trained Keras detector on a whole split: training's own
    validation (`keras_csp.train.tasks.evaluate_detections`: the model's suppression at COCO's
    score threshold, keras-cv's BoxCOCOMetrics)."""
    from keras_csp.train.tasks import evaluate_detections

    return evaluate_detections(
        model, split.as_dataset(16, shuffle=False, normalize=True), split.bounding_box_format,
        confidence_threshold=confidence_threshold,
    )


def representative_images(split, count):
    """`count` training images, 0-255 float32, for int8 calibration."""
    images = []
    for batch in split.as_dataset(16, shuffle=False, normalize=False):
        images.extend(batch["images"].numpy())
        if len(images) >= count:
            break
    return [x[None] for x in images[:count]]


# ------------------------------------------------------------------- evaluation of .tflite files


def tflite_coco_map(path, data_root, score_threshold, iou_threshold, max_detections,
                    num_threads=2):
    """COCO `{"val_mAP", "val_mAP50", "images"}` of a detector `.tflite` on the validation files.

    `keras_csp.coco_eval.evaluate_detector` (what `keras-csp evaluate det.tflite --data val.json`
    runs: `keras_csp.lite.LiteModel` on the JPEGs, `keras_csp.lite.detections` for keras-cv's NMS
    with the given thresholds, and keras-cv's BoxCOCOMetrics rewritten on pycocotools, tested to
    give training's numbers) on `val.json` and `val/` of the work folder. The file runs through a
    function so that the peer's file, whose outputs have no signature names, is read too.
    """
    from keras_csp import coco_eval, lite

    model = lite.LiteModel(path, num_threads=num_threads)
    result = coco_eval.evaluate_detector(
        lambda images: _named_outputs(model(images)), str(data_root / "val.json"),
        str(data_root / "val"), score_threshold=score_threshold, iou_threshold=iou_threshold,
        max_detections=max_detections, input_size=model.input_size,
    )
    return {"val_mAP": result["mAP"], "val_mAP50": result["mAP50"], "images": result["count"]}


def _named_outputs(outputs):
    """`{"boxes", "scores"}` of a detector file; a file without signature names (the peer's,
    converted without keras_csp.export) is read by shape: the (1, A, 4) output is the boxes."""
    if "boxes" in outputs:
        return outputs
    boxes = [k for k, v in outputs.items() if v.shape[-1] == 4]
    scores = [k for k in outputs if k not in boxes]
    if len(boxes) != 1 or len(scores) != 1:
        raise ValueError(f"outputs {sorted(outputs)} are not one boxes and one scores tensor")
    return {"boxes": outputs[boxes[0]], "scores": outputs[scores[0]]}


def peer_tflite(model, path, quantize, samples=None):
    """The peer's `.tflite`: keras_csp.export's serving model and freezing, converted directly.

    `keras_csp.export.tflite` converts the keras-cv model too, but TF 2.21's converter leaves the
    file without its signature (the export then fails reading it back), and its XNNPACK-specific
    int8 rewrites target keras_csp's graphs; plain conversion keeps the peer as keras-cv built it.
    """
    from keras_csp.export.convert import configure, freeze, to_tflite
    from keras_csp.export.serving import build_serving

    serving = build_serving(model, None, yolov8_decode, require_static=True, nms=False)
    holder = freeze(serving.deploy, serving.input_size, serving.named_outputs, 1)
    content = to_tflite(holder, configure(quantize, "float", samples))
    Path(path).write_bytes(content)
    return len(content)


# ---------------------------------------------------------------------------------- one row


def recipe_options(recipe, batch_size):
    if recipe == "old":
        options = dict(OLD_RECIPE)
        options["learning_rate"] = options.pop("learning_rate_per_256") * batch_size / 256
        return options
    if recipe == "yolov8":
        return dict(YOLOV8_RECIPE)
    return {}  # the package's defaults


def run_row(row, args):
    """Trains, profiles, exports and evaluates one row; returns its JSON record."""
    import keras

    from keras_csp import export
    from keras_csp.train import fit_detector

    work = Path(args.workdir)
    record = {"row": row, "backbone": ROWS[row][0], "neck": ROWS[row][1],
              "attention": ROWS[row][2], "recipe": ROWS[row][3], "notes": [], "errors": {},
              "seed": args.seed}
    if row in ULTRALYTICS_ROWS:
        return run_peer_row(row, args, record)
    data = load_data(args, monitor=True)
    num_classes = data.num_classes
    fmt = data.train.bounding_box_format
    is_peer = ROWS[row][0] == "yolov8-xs"
    options = recipe_options(ROWS[row][3], args.batch)
    if not is_peer:
        options.update(args.overrides)
    record["options"] = options

    def model_fn(classes, size):
        return build(row, classes, size, fmt, quick=args.quick)

    started = time.time()
    result = fit_detector(
        data=data,
        model=model_fn,
        neck=ROWS[row][1] or "efm",
        attention=ROWS[row][2] or "none",
        epochs=args.epochs,
        batch_size=args.batch,
        input_size=args.size,
        output_dir=str(work / row / f"seed{args.seed}" / "run"),
        overwrite=True,
        save_model=False,
        verbose=2,
        seed=args.seed,
        **options,
    )
    model = result.model
    record.update(
        history=[{k: h.get(k) for k in ("epoch", "loss", "val_mAP", "val_mAP50")}
                 for h in result.history],
        train_images_per_second=result.summary.get("train_images_per_second"),
        train_seconds=round(time.time() - started, 1),
    )
    full = load_data(args).validation
    scores = keras_coco_map(model, full, args.eval_confidence)
    record.update(keras_mAP=scores["val_mAP"], keras_mAP50=scores["val_mAP50"],
                  val_images=full.size)
    record["params"], flops = conv_flops(model)
    record["bflops"] = flops / 1e9
    big = build(row, num_classes, 416, fmt, quick=args.quick)
    record["bflops_416"] = conv_flops(big)[1] / 1e9
    del big

    nms = YOLOV8_NMS if is_peer else {
        "confidence_threshold": model.confidence_threshold,
        "iou_threshold": model.iou_threshold,
        "max_detections": model.max_detections,
    }
    nms = {**nms, "confidence_threshold": args.eval_confidence}
    record["nms"] = nms
    calibration = representative_images(data.train, args.calibration)
    record["tflite"] = {}
    for mode in args.modes:
        quantize = {"fp32": "none"}.get(mode, mode)
        path = work / f"{row}_{mode}.tflite"
        try:
            samples = calibration if quantize == "int8" else None
            if is_peer:
                size = peer_tflite(model, str(path), quantize, samples)
            else:
                kwargs = {"representative_data": samples} if samples else {}
                size = export.tflite(model, str(path), quantize, batch=1, verbose=False,
                                     **kwargs).size_bytes
            entry = {"path": str(path), "size_bytes": size}
            if mode in args.evaluate:
                entry.update(tflite_coco_map(
                    str(path), work / "data", nms["confidence_threshold"],
                    nms["iou_threshold"], nms["max_detections"]))
            record["tflite"][mode] = entry
        except Exception as e:  # a row still reports what worked
            record["errors"][f"tflite-{mode}"] = f"{type(e).__name__}: {str(e)[:300]}"
    keras.backend.clear_session()
    return record


# ------------------------------------------------------------------------------------ latency


def latencies(records, args):
    """Median ms at batch 1 of every row's fp32 and int8 file, timed in turns."""
    from benchmarks import paired

    paths = [r["tflite"][m]["path"] for r in records for m in ("fp32", "int8")
             if m in r.get("tflite", {})]
    if not paths or args.rounds == 0:
        return {}
    callables = paired.tflite_callables(paths, args.threads)
    times = paired.measure(callables, args.rounds, args.runs, args.warmup)
    rows, _ = paired.summarize(callables, times)
    return {label: {"ms": row["ms"], "min_ms": row["min_ms"]} for label, row in rows.items()}


# ------------------------------------------------------------------------------------ report


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(result):
    rows = result["rows"]
    reference = next((r for r in rows if r["row"] == "efm-sam"), None)
    ref_ms = {}
    if reference:
        for mode in ("fp32", "int8"):
            ref_ms[mode] = reference.get("latency", {}).get(mode)
    lines = [
        "| row | backbone | neck | recipe | mAP (± half-range) | mAP50 | params | BFLOPs "
        f"({result['args']['size']}) | BFLOPs (416) | train img/s | TFLite fp32 ms (x efm-sam) "
        "| TFLite int8 ms (x efm-sam) | mAP50 fp16 .tflite | mAP50 int8 .tflite |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lat = r.get("latency", {})

        def ms(mode):
            if lat.get(mode) is None:
                return "-"
            ratio = f" ({lat[mode] / ref_ms[mode]:.2f})" if ref_ms.get(mode) else ""
            return f"{lat[mode]:.2f}{ratio}"

        tfl = r.get("tflite", {})
        neck = r["neck"] or ("ultralytics" if r["row"] in ULTRALYTICS_ROWS else "YOLOv8 PAN")
        if r["attention"]:
            neck = f"{neck.upper()}({r['attention'].upper()})"
        elif r["neck"]:
            neck = neck.upper()
        lines.append(
            f"| {r['row']} | {r['backbone']} | {neck} | {r['recipe']} | "
            f"{mean_and_spread(r, 'keras_mAP')} | {mean_and_spread(r, 'keras_mAP50')} | "
            f"{r.get('params', 0):,} | {_fmt(r.get('bflops'), '.3f')} | "
            f"{_fmt(r.get('bflops_416'), '.2f')} | {_fmt(r.get('train_images_per_second'), '.1f')} | "
            f"{ms('fp32')} | {ms('int8')} | "
            f"{_fmt(tfl.get('fp16', {}).get('val_mAP50'), '.3f')} | "
            f"{_fmt(tfl.get('int8', {}).get('val_mAP50'), '.3f')} |"
        )
    return "\n".join(lines)


def targets(result):
    """(what, verdict, numbers) of the issue's targets."""
    rows = {r["row"]: r for r in result["rows"]}
    out = []
    ours, peer, old = rows.get("efm-sam"), rows.get("yolov8-xs"), rows.get("efm-sam-old")

    def m50(r):
        return (r or {}).get("keras_mAP50")

    for label, row in (("CSPPeleeNet+EFM(SAM)", ours), ("CSPPeleeNet+EFM(SAM) slim",
                                                        rows.get("efm-sam-slim"))):
        if row and peer and m50(row) is not None and m50(peer) is not None:
            out.append(_peer_target(label, row, peer, m50))
    if ours and old and m50(ours) is not None and m50(old):
        ratio = m50(ours) / m50(old)
        out.append(("CSPPeleeNet+EFM(SAM) mAP50 >= 1.5x today's (old) defaults",
                    "met" if ratio >= 1.5 else "missed",
                    f"{m50(ours):.3f} / {m50(old):.3f} = {ratio:.2f}x"))
    out.extend(issue23_targets(rows, lambda r: (r or {}).get("keras_mAP")))
    for r in result["rows"]:
        keras50 = first_seed(r, "keras_mAP50")  # the .tflite files are the first seed's
        for mode, limit in (("fp16", 0.005), ("int8", 0.03)):
            got = r.get("tflite", {}).get(mode, {}).get("val_mAP50")
            if keras50 is None or got is None:
                continue
            drop = keras50 - got
            out.append((f"{r['row']} {mode} .tflite mAP50 within {limit * 100:.1f} points",
                        "met" if drop <= limit else "missed",
                        f"{got:.3f} vs Keras {keras50:.3f} ({-drop * 100:+.1f} points)"))
    necks = [rows.get(k) for k in ("efm-sam", "fpn", "gfm")]
    if all(n and m50(n) is not None for n in necks):
        per = {n["row"]: m50(n) / n["bflops"] for n in necks}
        out.append(("EFM(SAM) beats FPN and GFM in mAP50 per BFLOP",
                    "yes" if per["efm-sam"] > max(per["fpn"], per["gfm"]) else "no",
                    ", ".join(f"{k} {v:.3f}" for k, v in per.items())))
    return out


def _peer_target(label, ours, peer, m50):
    """The issue's first target for one of our rows: mAP50 >= the peer's at fewer BFLOPs or
    lower int8 latency."""
    mine, theirs = ours.get("latency", {}).get("int8"), peer.get("latency", {}).get("int8")
    cheaper = ours["bflops"] < peer["bflops"] or (mine or 1e9) < (theirs or 0)
    met = m50(ours) >= m50(peer) and cheaper
    return (f"{label} mAP50 >= YOLOv8-xs at fewer BFLOPs or lower latency",
            "met" if met else "missed",
            f"mAP50 {m50(ours):.3f} vs {m50(peer):.3f}; BFLOPs {ours['bflops']:.3f} vs "
            f"{peer['bflops']:.3f}; int8 ms {mine} vs {theirs}")


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.5))
    panels = fig.subplots(1, 2)
    for ax, key, label in ((panels[0], "bflops", f"BFLOPs at {result['args']['size']}x"
                            f"{result['args']['size']}"),
                           (panels[1], "int8", "TFLite int8 latency, batch 1, 2 threads (ms)")):
        for r in result["rows"]:
            x = r.get(key) if key == "bflops" else r.get("latency", {}).get(key)
            y = r.get("keras_mAP50")
            if x is None or y is None:
                continue
            peer = r["row"] == "yolov8-xs" or r["row"] in ULTRALYTICS_ROWS
            ax.scatter([x], [y], color="tab:red" if peer else "tab:blue")
            ax.annotate(r["row"], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("val mAP50 (Keras)")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Detection, {result['args']['epochs']} epochs on {result['args']['train']} "
                 f"images, {result['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# -------------------------------------------------------------------------------------- main


def parse(argv=None):
    from keras_csp.coco_eval import COCO_SCORE_THRESHOLD  # TF-free, so --help stays quick

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=None, help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--train", type=int, default=1000, help="training images")
    parser.add_argument("--val", type=int, default=200, help="validation images")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--difficulty", default="hard", help="synthetic_shapes difficulty")
    parser.add_argument("--max-objects", type=int, default=None,
                        help="synthetic_shapes max_objects (default: the difficulty's)")
    parser.add_argument("--min-area", type=float, default=None,
                        help="smallest object area / image area (default: the difficulty's)")
    parser.add_argument("--max-boxes", type=int, default=16, help="boxes per image after padding")
    parser.add_argument("--monitor", type=int, default=32,
                        help="validation images scored after every epoch")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seeds", default="0,1",
                        help="training seeds; every row is trained once per seed and reported as "
                        "the mean ± half the range (only the first seed's .tflite files are made)")
    parser.add_argument("--seed", type=int, default=None, help=argparse.SUPPRESS)  # child: one
    parser.add_argument("--calibration", type=int, default=64, help="int8 calibration images")
    parser.add_argument("--export", default="fp32,fp16,int8",
                        help=".tflite files written (empty: none, for recipe searches)")
    parser.add_argument("--evaluate", default="fp16,int8", help=".tflite files evaluated")
    parser.add_argument("--rounds", type=int, default=10, help="latency rounds (0: none)")
    parser.add_argument("--runs", type=int, default=5, help="calls per file per round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    parser.add_argument("--workdir", default=None, help="default: OUT/detection_work")
    parser.add_argument("--quick", action="store_true", help="smoke test: seconds, tiny rows")
    parser.add_argument("--eval-confidence", type=float, default=COCO_SCORE_THRESHOLD,
                        help="NMS confidence threshold of every mAP (COCO protocol: 0.001)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training option of the CSP rows (fit_detector keyword, "
                        "Python literal value), e.g. --set learning_rate=0.0125")
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)  # child process: one row
    args = parser.parse_args(argv)
    args.overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set {item!r}: allowed: KEY=VALUE")
        try:
            args.overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            args.overrides[key] = value
    args.modes = [m for m in args.export.split(",") if m]
    try:
        args.seeds = parse_seeds("0" if args.quick and args.seeds == "0,1" else args.seeds)
    except ValueError as e:
        parser.error(str(e))
    if args.seed is None:
        args.seed = args.seeds[0]
    elif args.seed != args.seeds[0]:
        args.modes = []  # only the first seed's files are exported, scored and timed
    if args.quick:
        args.epochs, args.size, args.train, args.val, args.batch = 1, 64, 16, 8, 8
        args.calibration, args.rounds, args.runs, args.warmup, args.monitor = 4, 1, 1, 0, 4
        args.rows = args.rows or ",".join(QUICK_ROWS)
        args.evaluate, args.modes = "int8", ["fp32", "int8"]
    args.rows = args.rows.split(",") if args.rows else list(ROWS)
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        parser.error(f"--rows: {', '.join(unknown)} do not exist; allowed: {', '.join(ROWS)}")
    for name in ("epochs", "size", "train", "val", "batch", "calibration"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.size % 32:
        parser.error(f"--size {args.size}: allowed: a multiple of 32")
    args.evaluate = [m for m in args.evaluate.split(",") if m]
    args.workdir = args.workdir or str(Path(args.out) / "detection_work")
    return args


def run_child(row, seed, args, child_args):
    """One row and seed in its own process (no row inherits another's graphs or threads);
    returns its record, or one with the process's error."""
    out, work = Path(args.out), Path(args.workdir)
    target = work / f"{row}-seed{seed}.json"
    target.unlink(missing_ok=True)
    command = [sys.executable, "-m", "benchmarks.detection", *child_args, "--row", row,
               "--seed", str(seed), "--workdir", str(work), "--out", str(out)]
    log = work / f"{row}-seed{seed}.log"
    with open(log, "w") as f:
        proc = subprocess.run(command, cwd=Path.cwd(), stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode or not target.is_file():
        tail = log.read_text(errors="replace")[-2000:]
        print(f"  failed (see {log}): {tail[-800:]}", flush=True)
        return {"row": row, "backbone": ROWS[row][0], "neck": ROWS[row][1], "seed": seed,
                "attention": ROWS[row][2], "recipe": ROWS[row][3], "notes": [],
                "errors": {"process": tail}}
    record = json.loads(target.read_text())
    print(f"  seed {seed}: mAP50 {record.get('keras_mAP50')} (mAP {record.get('keras_mAP')}), "
          f"{record.get('train_seconds')} s; tflite "
          f"{ {m: e.get('val_mAP50') for m, e in record.get('tflite', {}).items()} }; "
          f"errors {record.get('errors')}", flush=True)
    return record


def main(argv=None):
    args = parse(argv)
    out, work = Path(args.out), Path(args.workdir)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    if args.row:  # child: one row and seed, its record as JSON
        record = run_row(args.row, args)
        target = work / f"{args.row}-seed{args.seed}.json"
        target.write_text(json.dumps(record, indent=1, default=str))
        return record
    started = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] data: {data_options(args)}; seeds {args.seeds}",
          flush=True)
    if any(r in ULTRALYTICS_ROWS for r in args.rows):
        print(check_environment(), flush=True)
    write_data(args)
    records = []
    child_args = list(argv if argv is not None else sys.argv[1:])
    for row in args.rows:
        print(f"[{time.strftime('%H:%M:%S')}] row {row}", flush=True)
        per_seed = []
        for seed in args.seeds:
            if args.quick:  # in this process: the smoke test saves a TensorFlow start
                args.seed, modes = seed, args.modes
                args.modes = modes if seed == args.seeds[0] else []  # as a child would
                per_seed.append(run_row(row, args))
                args.modes = modes
            else:
                per_seed.append(run_child(row, seed, args, child_args))
        records.append(combine(per_seed))
        write_outputs(records, args, argv, started, final=False)
    timed = latencies(records, args)
    for r in records:
        r["latency"] = {m: timed.get(f"{r['row']}_{m}", {}).get("ms") for m in ("fp32", "int8")}
    result = write_outputs(records, args, argv, started, final=True)
    print(result["markdown"])
    return result


def write_outputs(records, args, argv, started, final):
    """detection.json, .md and .png in `--out`; after each row (no latency yet) and at the end."""
    out = Path(args.out)
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks.detection " + " ".join(
            argv if argv is not None else sys.argv[1:]),
        "complete": final,
        "args": {k: v for k, v in vars(args).items() if k != "row"},
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor(),
                    "load_average_end": os.getloadavg()},
        "wall_seconds": round(time.time() - started, 1),
        "rows": records,
    }
    result["targets"] = targets(result)
    verdicts = "\n".join(f"- {what}: **{verdict}** ({numbers})"
                         for what, verdict, numbers in result["targets"])
    result["markdown"] = (
        f"{result['date']}, `{result['command']}`, {result['wall_seconds']:.0f} s"
        f"{'' if final else ' (partial: rows so far, no latency yet)'}\n\n{table(result)}\n\n"
        f"{verdicts}\n"
    )
    (out / "detection.json").write_text(json.dumps(result, indent=1, default=str))
    (out / "detection.md").write_text(result["markdown"])
    try:
        plot(result, out / "detection.png")
    except Exception as e:
        print(f"plot not written: {e}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
