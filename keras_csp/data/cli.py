"""`keras-csp data export-coco`: argparse handlers for keras_csp/cli.py (imports no TensorFlow)."""

COMMAND = "data"


def add_parser(subparsers):
    parser = subparsers.add_parser("data", help="data sets: write the synthetic shapes as COCO files")
    actions = parser.add_subparsers(dest="data_command", required=True)
    p = actions.add_parser(
        "export-coco",
        help="write synthetic_shapes detection data as COCO JSON + JPEG folders",
        description=(
            "Writes OUT/train.json, OUT/train/*.jpg and OUT/val.json, OUT/val/*.jpg, for "
            "`keras-csp train --data coco --data-path OUT/train.json --images-dir OUT/train "
            "--val-data-path OUT/val.json --val-images-dir OUT/val`."
        ),
    )
    p.add_argument("out_dir", help="folder to create (refused if not empty, unless --overwrite)")
    p.add_argument("--difficulty", default="hard", choices=("easy", "hard"), help="(default: hard)")
    p.add_argument("--num-train", type=int, default=1500, help="training images (default: 1500)")
    p.add_argument(
        "--num-validation", type=int, default=300, help="validation images (default: 300)"
    )
    p.add_argument("--image-size", type=int, default=None, help="square side (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="the data set's seed (default: 0)")
    p.add_argument(
        "--max-objects", type=int, default=None, help="at most this many objects per image"
    )
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default: 95)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")
    return parser


def run(args):
    import time

    from keras_csp.data.coco_export import export_coco

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
    written = export_coco(
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
            f"({info['boxes'] / max(info['images'], 1):.1f} per image): {info['annotations']}, "
            f"{info['images_dir']}/"
        )
    print(f"written in {seconds:.1f} s")
