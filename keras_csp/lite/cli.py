"""`keras-csp predict | evaluate` and `python -m keras_csp.lite predict | evaluate`.

The commands of the TF-free runtime: they import only `keras_csp.lite` and `keras_csp.coco_eval`
(numpy, a TFLite runtime, Pillow, pycocotools), so they work on a device without TensorFlow.
`add_parser(subparsers)` adds them to an argparse parser and `run(args)` runs the chosen one;
`main(argv)` is the standalone entry.
"""

import argparse
import json
import os
import sys
from pathlib import Path

COMMANDS = ("predict", "evaluate")
_ACCELERATOR_HELP = (
    "cpu (default), gpu (LiteRT's GPU accelerator; needs a Vulkan device) or auto (the GPU when "
    "it starts, else the CPU)"
)


def add_parser(subparsers):
    """Adds `predict` and `evaluate` to `subparsers` (from `add_subparsers`)."""
    _add_predict(subparsers)
    _add_evaluate(subparsers)
    return subparsers


def _add_predict(subparsers):
    p = subparsers.add_parser(
        "predict",
        help="run a .tflite model on image files (top-5 classes or boxes); no TensorFlow needed",
    )
    p.add_argument("model", metavar="MODEL.tflite")
    p.add_argument("images", metavar="IMAGE", nargs="+",
                   help="image files or folders of images; unreadable files are skipped")
    p.add_argument("--top", type=int, default=5, help="classes to print (default 5)")
    p.add_argument("--labels", default=None, help="text file with one class name per line")
    p.add_argument("--draw", default=None, metavar="OUT.png",
                   help="detectors: draw the boxes of the (single) image into this PNG")
    p.add_argument("--score-threshold", type=float, default=0.25,
                   help="detectors: smallest score shown (default 0.25)")
    p.add_argument("--resize", default="none",
                   help="none (the image must have the model's size), crop or stretch")
    p.add_argument("--backend", default=None, help="litert, tflite-runtime or tensorflow")
    p.add_argument("--accelerator", default="cpu", help=_ACCELERATOR_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_evaluate(subparsers):
    v = subparsers.add_parser(
        "evaluate",
        help="top-1/top-5 of a .tflite classifier on a folder with one subfolder per class, or "
        "COCO mAP/mAP50 of a .tflite detector on a COCO JSON (--data val.json --images-dir val/), "
        "a YOLO data YAML (--data data.yaml) or a Pascal VOC root (--data VOC_ROOT)",
    )
    v.add_argument("model", metavar="MODEL.tflite")
    v.add_argument("--data", required=True,
                   help="classifiers: folder with one subfolder of images per class; detectors: a "
                   "COCO annotation JSON, a YOLO data YAML or a VOC root (Annotations/, "
                   "JPEGImages/, ImageSets/Main/)")
    v.add_argument("--data-format", default=None, choices=("coco", "yolo", "voc"),
                   help="detectors: the format of --data (default: from the path: .json COCO, "
                   ".yaml/.yml YOLO, a folder with Annotations/ VOC)")
    v.add_argument("--split", default=None,
                   help="detectors, YOLO and VOC: the split evaluated (default: val; YOLO: a key "
                   "of the YAML, VOC: ImageSets/Main/<split>.txt)")
    v.add_argument("--images-dir", default=None,
                   help="detectors, COCO: the folder of the JSON's images (default: the JSON's "
                   "folder)")
    v.add_argument("--labels", default=None,
                   help="detectors, VOC: text file with the class names in the model's order "
                   "(default: the sorted object names of ImageSets/Main/train.txt, as training "
                   "on VOC orders them)")
    v.add_argument("--score-threshold", type=float, default=None,
                   help="detectors: non-max suppression's smallest score (default 0.001, "
                   "COCO's protocol, as training's validation mAP)")
    v.add_argument("--iou-threshold", type=float, default=None,
                   help="detectors: non-max suppression's IoU (default 0.5)")
    v.add_argument("--clip-boxes", action="store_true",
                   help="detectors: clip ground-truth boxes sticking out of their image")
    v.add_argument("--resize", default="none", help="none, crop or stretch")
    v.add_argument("--batch-size", type=int, default=32)
    v.add_argument("--backend", default=None, help="litert, tflite-runtime or tensorflow")
    v.add_argument("--accelerator", default="cpu", help=_ACCELERATOR_HELP)
    v.add_argument("--json", action="store_true", help="print JSON")


def run(args):
    """Runs `args.command` (one of COMMANDS); raises ValueError on bad input."""
    return {"predict": _predict, "evaluate": _evaluate}[args.command](args)


def _labels(path):
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--labels={str(path)!r} does not exist; allowed: a text file.")
    return [line.strip() for line in path.read_text().splitlines()]


def _name(index, labels):
    return labels[index] if labels and 0 <= index < len(labels) else str(index)


def _lite_model(args):
    """The `LiteModel` of `args.model` on `--accelerator`; where the GPU runs, a line on stderr
    says whether it took the whole graph, and `auto`'s fallback to the CPU is one line too."""
    import warnings

    from keras_csp import lite

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = lite.LiteModel(args.model, backend=args.backend, accelerator=args.accelerator)
        except lite.GpuUnavailableError as e:  # the commands report bad input as ValueError
            raise ValueError(f"--accelerator=gpu: {e}") from None
    for warning in caught:
        if "accelerator='auto'" in str(warning.message):
            print(f"keras-csp: note: {warning.message}", file=sys.stderr)
        elif "no keras-csp checksum" in str(warning.message):
            print(f"keras-csp: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    if model.accelerator == "gpu":
        print(f"keras-csp: {_where(model)}", file=sys.stderr)
    return model


def _where(model):
    if model.accelerator != "gpu":
        return model.backend
    placement = model.gpu_placement
    return f"GPU accelerator ({placement.adapter}): {placement.summary()}"


def _predict(args):
    from keras_csp import lite

    if args.top < 1:
        raise ValueError(f"--top={args.top}; allowed: an integer >= 1.")
    lite.check_resize(args.resize, "--resize")
    lite.check_accelerator(args.accelerator, "--accelerator")
    labels = _labels(args.labels)
    paths = _image_paths(args.images)
    model = _lite_model(args)
    if args.draw is not None:
        if model.kind != "detector":
            raise ValueError(
                f"--draw={args.draw!r} draws boxes, but {args.model!r} is a {model.kind}; "
                "allowed: --draw with a detector model."
            )
        if len(paths) != 1:
            raise ValueError(
                f"--draw={args.draw!r} takes one image; got {len(paths)}: allowed: one IMAGE."
            )
    results = []
    skipped = []  # files that cannot be decoded: skipped and reported, as training does
    for path in paths:
        images, _ = lite.read_images([path], model.input_size, args.resize, skipped=skipped)
        if images is None:
            continue
        image = images[0]
        outputs = model(image)
        if model.kind == "classifier":
            top = lite.top_k(outputs["probabilities"][0], args.top)
            results.append(
                {"image": path, "top": [
                    {"class": i, "name": _name(i, labels), "probability": p} for i, p in top
                ]}
            )
        elif model.kind == "detector":
            boxes = lite.detections(outputs, 0, args.score_threshold)
            results.append(
                {"image": path, "boxes": [
                    {"box": [x1, y1, x2, y2], "score": s, "class": c, "name": _name(c, labels)}
                    for x1, y1, x2, y2, s, c in boxes
                ]}
            )
            if args.draw is not None:
                lite.draw_boxes(image, boxes, args.draw, labels)
        else:
            results.append(
                {"image": path, "outputs": {k: list(v.shape) for k, v in outputs.items()}}
            )
    if not results:
        raise ValueError(
            f"none of the {len(paths)} image(s) could be decoded "
            f"({lite.describe_skipped(skipped)}); allowed: {', '.join(lite.IMAGE_EXTENSIONS)} "
            "files."
        )
    unread = [{"image": path, "skipped": reason} for path, reason in skipped]
    if args.json:
        print(json.dumps(results + unread, indent=2))
        return results + unread
    if skipped:
        print(f"keras-csp: {lite.describe_skipped(skipped)}", file=sys.stderr)
    for r in results:
        print(r["image"])
        for rank, t in enumerate(r.get("top", []), 1):
            print(f"  {rank}. {t['name']:<24} {t['probability']:.4f}")
        if "boxes" in r:
            print(f"  {len(r['boxes'])} box(es) with score > {args.score_threshold}")
            for b in r["boxes"]:
                x1, y1, x2, y2 = b["box"]
                print(f"  {b['name']:<16} {b['score']:.3f}  x1 {x1:.1f} y1 {y1:.1f} "
                      f"x2 {x2:.1f} y2 {y2:.1f}")
        for name, shape in r.get("outputs", {}).items():
            print(f"  {name}: {shape}")
    if args.draw is not None:
        print(f"boxes drawn to {args.draw}")
    return results + unread


def _image_paths(images):
    """IMAGE arguments as file paths: a folder stands for the images in it (recursively)."""
    from keras_csp import lite

    paths = []
    for image in images:
        path = Path(image)
        if path.is_dir():
            found = lite.list_images(path)
            if not found:
                raise ValueError(
                    f"IMAGE={image!r} is a folder without images; allowed: image files "
                    f"({', '.join(lite.IMAGE_EXTENSIONS)}) or folders holding some."
                )
            paths.extend(str(p) for p in found)
        elif os.path.lexists(path):  # a device or a broken link too: skipped and counted
            paths.append(image)
        else:
            raise ValueError(
                f"IMAGE={image!r} does not exist; allowed: an image file or a folder of images."
            )
    return paths


def _print_skipped(result):
    """One stderr line naming the images an evaluation skipped as unreadable."""
    from keras_csp import lite

    if result.get("skipped"):
        skipped = [(path, "") for path in result["skipped_files"]]
        print(f"keras-csp: {lite.describe_skipped(skipped)}", file=sys.stderr)


def _evaluate(args):
    from keras_csp import lite

    lite.check_accelerator(args.accelerator, "--accelerator")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size={args.batch_size}; allowed: an integer >= 1.")
    data_format = args.data_format
    if data_format is None and (
        Path(args.data).suffix.lower() in (".json", ".yaml", ".yml")
        or (Path(args.data) / "Annotations").is_dir()
    ):
        from keras_csp.coco_eval import detection_format

        data_format = detection_format(args.data)
    if data_format is not None:
        return _evaluate_detector(args, data_format)
    if args.split is not None:
        raise ValueError(
            f"--split={args.split!r} chooses a split of a YOLO or VOC detection set; --data "
            f"{args.data!r} is a classification folder: allowed: no --split."
        )
    lite.check_resize(args.resize, "--resize")
    model = _lite_model(args)
    result = lite.evaluate(model, args.data, resize=args.resize, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.model}: top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f} on "
            f"{result['count']} images of {result['classes']} classes ({_where(model)})"
        )
        _print_skipped(result)
    return result


def _evaluate_detector(args, data_format):
    from keras_csp import coco_eval

    if data_format == "coco" and args.split is not None:
        raise ValueError(
            f"--split={args.split!r} chooses a split of a YOLO or VOC set; a COCO file is one "
            "split: allowed: no --split (pass the split's JSON as --data)."
        )
    if data_format != "coco" and args.images_dir is not None:
        raise ValueError(
            f"--images-dir={args.images_dir!r} is for COCO files; a {data_format.upper()} set "
            "finds its images itself: allowed: no --images-dir."
        )
    if data_format != "voc" and args.labels is not None:
        raise ValueError(
            f"--labels={args.labels!r} orders a VOC set's classes; a {data_format.upper()} set "
            "numbers its classes itself: allowed: no --labels."
        )
    # Read (and check) the data before the model: bad data is refused without loading anything.
    data = coco_eval.read_detection_set(
        args.data, args.images_dir, args.split or "val", data_format, clip_boxes=args.clip_boxes,
        class_names=[n for n in _labels(args.labels) if n] if args.labels else None,
    )
    model = _lite_model(args)
    if model.kind != "detector":
        raise ValueError(
            f"--data={args.data!r} is a {data_format.upper()} detection set, for detectors; "
            f"{args.model!r} is a {model.kind}: allowed: a folder with one subfolder per class "
            "for a classifier."
        )
    options = {"batch_size": args.batch_size}
    if args.score_threshold is not None:
        options["score_threshold"] = args.score_threshold
    if args.iou_threshold is not None:
        options["iou_threshold"] = args.iou_threshold
    result = coco_eval.evaluate_detector(model, data, **options)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.model}: COCO mAP {result['mAP']:.4f}, mAP50 {result['mAP50']:.4f} on "
            f"{result['count']} images ({result['boxes']} boxes"
            + (f", {result['ignored']} ignored as difficult" if result["ignored"] else "")
            + f", {result['classes']} classes; {_where(model)})"
        )
        _print_skipped(result)
    return result


def standalone(add_commands, run_command, description, argv=None):
    """A package's commands as their own command line (`keras_csp.export.cli`'s too): bad input
    (ValueError) or a missing runtime (ImportError) is one line on stderr and exit status 2."""
    parser = argparse.ArgumentParser(prog="keras-csp", description=description)
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        run_command(args)
    except (ValueError, ImportError) as e:
        print(f"keras-csp: error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv=None):
    return standalone(add_parser, run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
