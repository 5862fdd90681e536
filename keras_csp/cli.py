"""The `keras-csp` command line: profile, models, demo, train, convert-timm, export, predict,
evaluate, benchmark."""

import argparse
import json
import os
import sys

from keras_csp import registry

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) is noise on a command line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_csp.export import cli as export_cli  # imports no TensorFlow

from keras_csp.lite import cli as lite_cli  # imports no TensorFlow

from keras_csp.train import cli as train_cli  # imports no TensorFlow

from keras_csp.data import cli as data_cli  # imports no TensorFlow

from keras_csp.bench import cli as bench_cli  # imports no TensorFlow

try:
    from keras_csp.weights import cli as weights_cli
except ImportError:  # a device with only a TFLite runtime has no h5py: no convert-timm there
    weights_cli = None


def _build_parser():
    parser = argparse.ArgumentParser(prog="keras-csp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profile", help="per-stage params, FLOPs and activation memory of a model")
    p.add_argument("model", help="architecture name, e.g. cspresnext50 (see `keras-csp models`)")
    p.add_argument("--part-ratio", type=float, default=None, help="γ of every CSP stage (0..1)")
    p.add_argument("--fusion", default=None, help=", ".join(registry.MODEL_FUSIONS))
    p.add_argument("--input-size", type=int, default=None, help="square input size (default 256)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--backbone", default="csppeleenet", help="csp_detector: the backbone's name")
    p.add_argument("--neck", default="efm", help="csp_detector: " + ", ".join(registry.NECKS))
    p.add_argument("--attention", default="sam", help="csp_detector: "
                   + ", ".join(a for a in registry.ATTENTIONS if a) + " or none")
    p.add_argument("--num-classes", type=int, default=80, help="csp_detector: object classes")
    p.add_argument("--scale", default=None, help="csp_detector: n, s or m (a named size)")
    p.add_argument("--neck-filters", default=None, metavar="A,B,C",
                   help="csp_detector: the neck's P3,P4,P5 widths")
    p.add_argument("--head-filters", default=None, metavar="A,B,C",
                   help="csp_detector: the head's P3,P4,P5 widths")

    sub.add_parser("models", help="list the architectures")

    train_cli.add_demo_parser(sub)
    train_cli.add_parser(sub)
    data_cli.add_parser(sub)

    if weights_cli is not None:
        weights_cli.add_parser(sub)
    export_cli.add_parser(sub)
    lite_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    return parser


def _profile(args):
    from keras_csp.models.config import get_config
    from keras_csp.profiler import profile

    if args.input_size is not None and args.input_size < 1:  # 0 used to mean "the default"
        raise ValueError(
            f"--input-size={args.input_size} is not allowed; allowed: an integer >= 1, or no "
            "--input-size for the model's default size."
        )
    if args.model.lower() == "csp_detector":
        return _profile_detector(args)
    config = get_config(args.model)
    kwargs = {}
    if args.part_ratio is not None or args.fusion is not None:
        if not config.is_csp:
            raise ValueError(
                f"--part-ratio/--fusion apply to CSP models; {args.model!r} has no CSP stages."
            )
        if args.part_ratio is not None:
            kwargs["part_ratio"] = args.part_ratio
        if args.fusion is not None:
            kwargs["fusion"] = args.fusion
    size = config.default_size if args.input_size is None else args.input_size
    result = profile(args.model, (size, size, 3), **kwargs)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())


def _profile_detector(args):
    from keras_csp.detection import profile_detector

    from keras_csp.train.config import parse_widths

    kwargs = {
        k: v for k, v in (("part_ratio", args.part_ratio), ("fusion", args.fusion),
                          ("scale", args.scale)) if v is not None
    }
    for key in ("neck_filters", "head_filters"):
        if getattr(args, key) is not None:
            kwargs[key] = parse_widths(getattr(args, key), "--" + key.replace("_", "-"))
    attention = None if args.attention.lower() == "none" else args.attention
    result = profile_detector(
        args.backbone, args.neck, attention, args.num_classes,
        416 if args.input_size is None else args.input_size, **kwargs
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())


def _models(args):
    from keras_csp.models.config import ARCHITECTURES

    for name, config in ARCHITECTURES.items():
        print(f"{name:<16} {config.reference}")


def main(argv=None):
    args = _build_parser().parse_args(argv)
    try:
        if args.command in export_cli.COMMANDS:
            export_cli.run(args)
        elif args.command in lite_cli.COMMANDS:
            lite_cli.run(args)
        else:
            commands = {
                "profile": _profile,
                "models": _models,
                "demo": train_cli.run_demo,
                "train": train_cli.run,
                data_cli.COMMAND: data_cli.run,
                bench_cli.COMMAND: bench_cli.run,
            }
            if weights_cli is not None:
                commands[weights_cli.COMMAND] = weights_cli.run
            commands[args.command](args)
    except (ValueError, ImportError) as e:  # ImportError: a missing runtime, Pillow or TF
        print(f"keras-csp: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
