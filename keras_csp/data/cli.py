"""`keras-csp data export-coco | export-yolo | export-voc`: argparse handlers for keras_csp/cli.py
(imports no TensorFlow until a command runs)."""

COMMAND = "data"

# format -> (help, description: what the folder holds and how to train on it)
_EXPORTS = {
    "coco": (
        "write synthetic_shapes detection data as COCO JSON + JPEG folders",
        "Writes OUT/train.json, OUT/train/*.jpg and OUT/val.json, OUT/val/*.jpg, for "
        "`keras-csp train --data coco --data-path OUT/train.json --images-dir OUT/train "
        "--val-data-path OUT/val.json --val-images-dir OUT/val`.",
    ),
    "yolo": (
        "write synthetic_shapes detection data in ultralytics' YOLO layout",
        "Writes OUT/data.yaml, OUT/images/{train,val}/*.jpg and OUT/labels/{train,val}/*.txt, "
        "for `keras-csp train --data yolo --data-path OUT/data.yaml` (and ultralytics).",
    ),
    "voc": (
        "write synthetic_shapes detection data as a Pascal VOC root",
        "Writes OUT/Annotations/*.xml, OUT/JPEGImages/*.jpg and "
        "OUT/ImageSets/Main/{train,val,trainval}.txt, for `keras-csp train --data voc "
        "--data-path OUT`.",
    ),
}


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "data", help="data sets: write the synthetic shapes as COCO, YOLO or VOC files"
    )
    actions = parser.add_subparsers(dest="data_command", required=True)
    for name, (summary, description) in _EXPORTS.items():
        p = actions.add_parser(f"export-{name}", help=summary, description=description)
        p.add_argument("out_dir",
                       help="folder to create (refused if not empty, unless --overwrite)")
        p.add_argument("--difficulty", default="hard", choices=("easy", "hard"),
                       help="(default: hard)")
        p.add_argument("--num-train", type=int, default=1500,
                       help="training images (default: 1500)")
        p.add_argument("--num-validation", type=int, default=300,
                       help="validation images (default: 300)")
        p.add_argument("--image-size", type=int, default=None, help="square side (default: 128)")
        p.add_argument("--seed", type=int, default=0, help="the data set's seed (default: 0)")
        p.add_argument("--max-objects", type=int, default=None,
                       help="at most this many objects per image")
        p.add_argument("--quality", type=int, default=95, help="JPEG quality (default: 95)")
        p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    return parser


def _where(info):
    """Where a split went, in the words of its format."""
    if "annotations" in info:
        return f"{info['annotations']}, {info['images_dir']}/"
    if "labels_dir" in info:
        return f"{info['data']}: {info['images_dir']}/, {info['labels_dir']}/"
    return f"{info['image_set']}"


def run(args):
    import time

    from keras_csp import data

    export = {
        "export-coco": data.export_coco,
        "export-yolo": data.export_yolo,
        "export-voc": data.export_voc,
    }[args.data_command]
    options = {
        "num_train": args.num_train,
        "num_validation": args.num_validation,
        "seed": args.seed,
    }
    if args.image_size is not None:
        options["image_size"] = args.image_size
    if args.max_objects is not None:
        options["max_objects"] = args.max_objects
    start = time.perf_counter()
    written = export(
        args.out_dir,
        difficulty=args.difficulty,
        quality=args.quality,
        overwrite=args.overwrite,
        **options,
    )
    seconds = time.perf_counter() - start
    for name, info in written.items():
        print(
            f"{name}: {info['images']} images, {info['boxes']} boxes "
            f"({info['boxes'] / max(info['images'], 1):.1f} per image): {_where(info)}"
        )
    print(f"written in {seconds:.1f} s")
