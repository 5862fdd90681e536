"""`keras-csp export`.

`add_parser(subparsers)` adds the command to an argparse parser and `run(args)` runs it;
`main(argv)` is a standalone entry (`python -m keras_csp.export.cli export ...`). Importing this
module imports no TensorFlow (`keras-csp --help`); `export` imports it when it runs. The TF-free
commands, `predict` and `evaluate`, are `keras_csp/lite/cli.py`'s.
"""

import errno
import os
import sys
from pathlib import Path

from keras_csp import registry

COMMANDS = ("export",)
_FORMATS = ("savedmodel", "tflite")


def add_parser(subparsers):
    """Adds `export` to `subparsers` (from `add_subparsers`)."""
    _add_export(subparsers)
    return subparsers


def _add_export(subparsers):
    e = subparsers.add_parser(
        "export",
        help="write a SavedModel or a .tflite file (fp16, int8, QAT, pruning) with a report",
        description="Export a model for deployment; prints size, ops and the GPU-delegate verdict.",
    )
    e.add_argument("model", metavar="MODEL_OR_FILE",
                   help="architecture name (see `keras-csp models`) or a .keras file")
    e.add_argument("--format", default="tflite", help="savedmodel or tflite (default)")
    e.add_argument("-o", "--output", default=None,
                   help="output file (.tflite) or folder (SavedModel); default from the model name")
    e.add_argument("--quantize", default="none",
                   help="tflite only: none, fp16, dynamic, int8 or qat (default none)")
    e.add_argument("--batch", default=None, metavar="N|dynamic", help="tflite only: the "
                   "file's batch size: 1 (default, phones), N, or dynamic (any batch size)")
    e.add_argument("--io", default="float",
                   help="int8/qat only: float (default), int8 or uint8 model inputs and outputs")
    e.add_argument("--data", default=None,
                   help="folder of images: calibration for int8, fine-tuning for qat and --prune")
    e.add_argument("--calibration-steps", type=int, default=100,
                   help="at most this many calibration images (default 100)")
    e.add_argument("--prune", type=float, default=None,
                   help="magnitude-prune conv/dense kernels to this sparsity (0..1) with tfmot")
    e.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs (qat, --prune)")
    e.add_argument("--steps", type=int, default=None, help="fine-tuning steps per epoch")
    e.add_argument("--learning-rate", type=float, default=1e-5, help="fine-tuning learning rate")
    e.add_argument("--batch-size", type=int, default=8, help="fine-tuning batch size")
    e.add_argument("--input-size", type=int, default=None,
                   help="square input size (default: the model's own, or the architecture's)")
    e.add_argument("--weights", default=None, help="weights for an architecture name")
    e.add_argument("--classes", type=int, default=1000, help="classes for an architecture name")
    e.add_argument("--resize", default="none",
                   help="fit --data images to the input: none (must match), crop or stretch")
    for entry in (p for p in registry.EXPORT_PASSES.values() if p.switch):  # --no-widen-groups
        e.add_argument(entry.flag, dest=entry.switch, default=entry.default,
                       action="store_false" if entry.default else "store_true",
                       help=f"tflite only: {'do not ' if entry.default else ''}{entry.help}")
    e.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args):
    """Runs `args.command` (one of COMMANDS); raises ValueError on bad input."""
    return {"export": _export}[args.command](args)


# ------------------------------------------------------------------------------------ export


MAX_INPUT_SIZE = 4096  # as `keras-csp train`'s bound


def _export(args):
    if args.format not in _FORMATS:
        raise ValueError(
            f"--format={args.format!r} does not exist; allowed: {', '.join(_FORMATS)}."
        )
    if args.input_size is not None and not 1 <= args.input_size <= MAX_INPUT_SIZE:
        # 100000 crashed the process (or filled the memory) while building and converting.
        raise ValueError(
            f"--input-size={args.input_size} is not allowed; allowed: an integer from 1 to "
            f"{MAX_INPUT_SIZE}, or no --input-size for the model's own size."
        )
    if args.format == "savedmodel" and (args.quantize or "none") != "none":
        raise ValueError(
            f"--quantize={args.quantize!r} applies to --format tflite; allowed with savedmodel: "
            "none."
        )
    try:
        from keras_csp.export import convert
    except ImportError as e:
        raise ImportError(
            f"`keras-csp export` needs TensorFlow and Keras ({e}); install keras-csp with its "
            "dependencies. On a device without them, `predict` and `evaluate` work."
        ) from e

    if args.format == "tflite":  # check the choices before building or loading anything
        convert.check_choice(args.quantize, convert.QUANTIZE_MODES, "quantize")
        convert.check_choice(args.io, convert.IO_TYPES, "io")
    batch = convert.batch_option(args.format, args.batch, "--batch")
    model, stem = convert.load_or_build(
        args.model, args.input_size, args.weights, args.classes, "MODEL_OR_FILE"
    )
    if args.format == "savedmodel":
        output = args.output or f"{stem}_savedmodel"
        report = _writing(output, convert.saved_model)(
            model, output, input_size=args.input_size, verbose=not args.json
        )
    else:
        suffix = "" if args.quantize == "none" else f"_{args.quantize}"
        output = args.output or f"{stem}{suffix}.tflite"
        report = _writing(output, convert.tflite)(
            model,
            output,
            quantize=args.quantize,
            input_size=args.input_size,
            batch=batch,
            io=args.io,
            representative_data=args.data if args.quantize in ("int8", "qat") else None,
            calibration_steps=args.calibration_steps,
            train_data=args.data if (args.quantize == "qat" or args.prune is not None) else None,
            epochs=args.epochs,
            steps=args.steps,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            prune=args.prune,
            resize=args.resize,
            verbose=not args.json,
            **{switch: getattr(args, switch) for switch in registry.export_switches()},
        )
    if args.json:
        print(report.to_json())
    return report


# What the OS says when an export cannot be written (TensorFlow's SavedModel writer reports them
# as an OpError ending "; <reason> [Op:SaveV2]", not as an OSError).
_WRITE_ERRORS = tuple(
    os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO,
                                   errno.EFBIG, errno.EACCES)
)


def _writing(output, export):
    """`export` (convert.saved_model or convert.tflite) with a failed write of `output` (a full
    disk, a quota, an I/O error) said in one line: the write is atomic, so what `output` held
    before is still there and no temporary file is left."""

    def run(*args, **kwargs):
        try:
            return export(*args, **kwargs)
        except OSError as e:
            reason, where = e.strerror or str(e), e.filename
        except Exception as e:  # noqa: BLE001 - only TensorFlow's write errors are translated
            reason = next((r for r in _WRITE_ERRORS if f"; {r} [Op:" in str(e)), None)
            if reason is None or type(e).__module__.split(".")[0] != "tensorflow":
                raise
            where = (str(e).split(f"; {reason}")[0].split() or [None])[-1]  # the file it wrote
        folder = os.path.abspath(Path(output).parent) + os.sep
        if where and not os.path.abspath(str(where)).startswith(folder):
            reason = f"{reason} (writing {str(where)!r})"  # a full /tmp, say, not the output's disk
        raise ValueError(
            f"--output={str(output)!r} could not be written: {reason}; what it held before is "
            "kept and nothing else is left: allowed: an output on a disk with room for the export."
        ) from None

    return run


def main(argv=None):
    from keras_csp.lite.cli import standalone

    return standalone(add_parser, run, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    sys.exit(main())
