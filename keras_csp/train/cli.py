"""`keras-csp train` and `keras-csp demo`: argparse handlers for keras_csp/cli.py.

Wiring (in `keras_csp/cli.py`): `add_parser(sub)` and `add_demo_parser(sub)` in `_build_parser`,
and `"train": run, "demo": run_demo` in `main`'s dispatch. Every `TrainConfig` field is a flag
(`part_ratio` -> `--part-ratio`, booleans as `--resume / --no-resume`); flags override the
`--config` YAML file, which overrides the defaults. Importing this module does not import
TensorFlow, so `keras-csp --help` stays fast.
"""

import argparse

from keras_csp.train.config import FIELDS, build_config, field_kind, load_yaml

_GROUP_TITLES = {
    "model": "model",
    "data": "data",
    "augmentation": "augmentation (the preset's options; unset: the preset's defaults)",
    "optimization": "optimization",
    "runtime": "runtime and distribution",
    "output": "output, checkpoints and resume",
}


def _add_field(group, name, field):
    flag = "--" + name.replace("_", "-")
    meta = field.metadata
    default = field.default
    shown = "" if default is None else f" (default: {default})"
    kwargs = {"dest": name, "default": argparse.SUPPRESS, "help": meta["help"] + shown}
    kind = field_kind(name)
    if kind == "bool":
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        return
    if kind == "pair":
        group.add_argument(flag, nargs=2, type=float, metavar=("MIN", "MAX"), **kwargs)
        return
    if kind == "widths":  # "A,B,C", checked by TrainConfig (its error names the option)
        group.add_argument(flag, metavar="A,B,C", **kwargs)
        return
    if kind == "options":  # --neck-option KEY=VALUE, repeatable; typed by the neck's schema
        group.add_argument(flag[:-1], action="append", metavar="KEY=VALUE", **kwargs)
        return
    kwargs["type"] = {"int": int, "float": float, "str": str}[kind]
    if meta.get("choices"):
        kwargs["choices"] = list(meta["choices"])
    group.add_argument(flag, **kwargs)


def add_parser(subparsers):
    """Adds `train` to the `keras-csp` subcommands; returns its parser."""
    parser = subparsers.add_parser(
        "train",
        help="train a classifier or detector (YAML config and/or flags)",
        description=(
            "Train a CSP classifier or detector. Options come from --config FILE.yaml (keys are "
            "the flag names with underscores) and from flags, which win. Distributed: "
            "--strategy mirrored (local GPUs, or --cpu-replicas N) or multiworker (TF_CONFIG)."
        ),
    )
    parser.add_argument("--config", default=None, help="YAML file of options")
    groups = {}
    for name, field in FIELDS.items():
        group_name = field.metadata.get("group", "run")
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(_GROUP_TITLES.get(group_name, group_name))
        _add_field(groups[group_name], name, field)
    return parser


def config_from_args(args):
    """The `TrainConfig` of parsed `train` arguments."""
    given = {k: v for k, v in vars(args).items() if k in FIELDS}
    if "attention" in given and given["attention"] == "none":
        given["attention"] = None
    base = load_yaml(args.config) if getattr(args, "config", None) else None
    return build_config(base, given)


def run(args):
    """Handler of `keras-csp train`; raises ValueError on bad input (cli.main prints it)."""
    cfg = config_from_args(args)
    from keras_csp.train.loop import train

    train(cfg.task, cfg)
    return 0


def add_demo_parser(subparsers):
    """Adds `demo` (training on synthetic shapes + the profile table); returns its parser."""
    parser = subparsers.add_parser(
        "demo",
        help="train a small CSP classifier and its non-CSP twin on synthetic shapes (CPU)",
        description=(
            "Prints the profiles of the paper's CSP models against their baselines, then trains "
            "a small CSP classifier and its non-CSP twin on synthetic shapes and compares them."
        ),
    )
    parser.add_argument(
        "--task",
        default="classification",
        choices=("classification", "detection"),
        help="classification (default) or detection: CSPPeleeNet + EFM (SAM) on synthetic shapes, "
        "with a picture of its boxes and its COCO mAP in Keras and TFLite",
    )
    parser.add_argument("--quick", action="store_true", help="a few-second version (for tests)")
    parser.add_argument("--output-dir", default="saved_models", help="where the results go")
    parser.add_argument(
        "--input-size", type=int, default=256, help="input size of the profile table"
    )
    return parser


def run_demo(args):
    if args.task == "detection":
        from keras_csp.train import demo_detection

        demo_detection.run(quick=args.quick, output_dir=args.output_dir)
        return 0
    from keras_csp.train import demo

    demo.run(quick=args.quick, output_dir=args.output_dir, profile_size=args.input_size)
    return 0
