"""`keras-csp convert-timm CHECKPOINT OUT.weights.h5 --model NAME`.

Converts a timm checkpoint (e.g. the hub's model.safetensors) into a `.weights.h5` of this
package, which `weights=OUT.weights.h5` or `model.load_weights()` then read without timm. The
classifier size is taken from the checkpoint's `head.fc.weight`; a checkpoint without a classifier
gives a backbone-only file. The output is written to a temporary file in the same folder and
renamed into place, so an interrupted run never leaves a partial OUT behind.
"""

import os
import sys

from keras_csp import files
from keras_csp.weights.timm_convert import CLASSIFIER, apply_plan, plan_from_timm, read_checkpoint

COMMAND = "convert-timm"


def add_parser(subparsers):
    """Adds the `convert-timm` sub-command to an argparse subparsers object."""
    p = subparsers.add_parser(
        COMMAND,
        help="convert a timm checkpoint into a .weights.h5 file of this package",
        description=__doc__,
    )
    p.add_argument("checkpoint", help="timm checkpoint: .safetensors (.pth/.bin with torch)")
    p.add_argument("output", help="file to write; must end in .weights.h5")
    p.add_argument(
        "--model",
        required=True,
        help="architecture name, e.g. cspresnext50 (see `keras-csp models`)",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    return p


def convert(checkpoint, output, model_name, quiet=True):
    """Converts `checkpoint` for `model_name` and writes `output` atomically; returns the model."""
    from keras_csp.models.builder import build_network  # late: `keras-csp --help` needs no Keras

    output = os.fspath(output)
    if not output.endswith(".weights.h5"):
        raise ValueError(f"output {output!r} must end in .weights.h5 (Keras' weights format).")
    directory = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(directory):
        raise ValueError(f"the folder of output {output!r} does not exist.")
    state = read_checkpoint(checkpoint)
    head = state.get(f"{CLASSIFIER}.weight")
    include_top = head is not None and getattr(head, "ndim", 0) == 2
    classes = int(head.shape[0]) if include_top else 1000
    model = build_network(
        model_name, include_top=include_top, classes=classes, classifier_activation=None
    )
    plan = plan_from_timm(model, state, ignore_classifier=not include_top)
    apply_plan(model, plan, f"checkpoint {os.fspath(checkpoint)!r}")
    # Permissions as open() gives them, or those of the file replaced (mkstemp's were 0600).
    with files.atomic_file(output, suffix=".partial.weights.h5") as tmp:
        model.save_weights(str(tmp))
    if not quiet:
        top = f"classifier with {classes} classes" if include_top else "no classifier"
        print(
            f"wrote {output}: {len(plan.assign)} tensors of {os.fspath(checkpoint)} into "
            f"{model_name} ({model.count_params():,} values, {top})",
            file=sys.stdout,
        )
    return model


def run(args):
    """Runs the sub-command; problems raise ValueError (the CLI prints them and exits 2)."""
    convert(args.checkpoint, args.output, args.model, quiet=args.quiet)
    return 0
