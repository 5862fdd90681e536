"""`keras-csp benchmark MODEL.keras --data ...`: every format of a model exported and measured.

`add_parser(subparsers)` adds the command and `run(args)` runs it (`keras_csp.bench.benchmark`);
importing this module imports no TensorFlow (`keras-csp --help` stays fast).
"""

COMMAND = "benchmark"


def add_parser(subparsers):
    b = subparsers.add_parser(
        COMMAND,
        help="export a model to every format (Keras, SavedModel, TFLite fp32/fp16/int8, QAT) "
        "and compare size, accuracy, latency and the GPU verdict",
        description="Per format: file size, accuracy on the validation data (as keras-csp "
        "evaluate measures it) and its difference to Keras, latency at batch 1 (median of rounds "
        "in turns) and LiteRT's GPU-engine verdict; a markdown table, JSON and a plot.",
    )
    b.add_argument("model", metavar="MODEL.keras", help="a trained classifier or detector")
    b.add_argument("--data", required=True,
                   help="classifiers: folder with one subfolder of images per class (split as "
                   "keras-csp train splits it); detectors: COCO JSON, YOLO data YAML or VOC root")
    b.add_argument("--images-dir", default=None,
                   help="detectors, COCO: the folder of the JSON's images (default: its folder)")
    b.add_argument("--data-format", default=None,
                   help="detectors: coco, yolo or voc (default: from the --data path)")
    b.add_argument("--split", default="val",
                   help="detectors, YOLO/VOC: the split measured (default val)")
    b.add_argument("--validation-split", type=float, default=0.1,
                   help="classifiers: fraction of each class measured, as keras-csp train holds "
                   "it out (default 0.1; 0: the whole folder)")
    b.add_argument("--seed", type=int, default=0,
                   help="classifiers: the split's seed (keras-csp train's --data-seed, default 0)")
    b.add_argument("--calibration-data", default=None,
                   help="int8 calibration images (default: the training split; a COCO JSON's "
                   "own images)")
    b.add_argument("--calibration-steps", type=int, default=100,
                   help="at most this many calibration images (default 100)")
    b.add_argument("--formats", default=None,
                   help="comma-separated: keras, savedmodel, tflite_fp32, tflite_fp16, "
                   "tflite_int8, tflite_qat (default: all but tflite_qat)")
    b.add_argument("--qat", action="store_true", help="add tflite_qat (needs tfmot)")
    b.add_argument("--qat-steps", type=int, default=None,
                   help="QAT fine-tuning steps (default: one pass over the calibration images)")
    b.add_argument("--threads", type=int, default=None,
                   help="CPU threads of every format (default: each runtime's own)")
    b.add_argument("--runs", type=int, default=20, help="timed rounds (default 20)")
    b.add_argument("--warmup", type=int, default=3, help="untimed calls per format (default 3)")
    b.add_argument("--resize", default="none",
                   help="classifiers: none (images have the model's size), crop or stretch")
    b.add_argument("-o", "--output", default=None,
                   help="output folder (default runs/benchmark/<model name>)")
    b.add_argument("--overwrite", action="store_true",
                   help="replace the files of an earlier benchmark in the output folder")
    b.add_argument("--json", default=None, metavar="FILE",
                   help="the results as JSON (default: benchmark.json in the output folder)")
    b.add_argument("--plot", default=None, metavar="FILE",
                   help="accuracy against latency, PNG (default: benchmark.png there)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return b


def run(args):
    """Runs the benchmark of `args`; raises ValueError on bad input."""
    from pathlib import Path

    if Path(args.model).suffix != ".keras" or not Path(args.model).is_file():
        raise ValueError(
            f"MODEL.keras={args.model!r} is not a .keras file; allowed: a trained model saved as "
            ".keras (keras-csp train writes one)."
        )
    try:
        from keras_csp.bench import benchmark
    except ImportError as e:
        raise ImportError(f"`keras-csp benchmark` needs TensorFlow and Keras ({e}).") from e
    return benchmark(
        args.model, args.data, images_dir=args.images_dir, data_format=args.data_format,
        split=args.split, formats=args.formats, qat=args.qat, output_dir=args.output,
        overwrite=args.overwrite, threads=args.threads, runs=args.runs, warmup=args.warmup,
        calibration_data=args.calibration_data, calibration_steps=args.calibration_steps,
        validation_split=args.validation_split, seed=args.seed, resize=args.resize,
        qat_steps=args.qat_steps, json_path=args.json, plot_path=args.plot,
        progress=not args.no_progress,
    )
