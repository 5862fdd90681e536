"""The names of every kind of thing the package has, and their options: one place, no Keras.

`keras-csp --help`, `TrainConfig`'s checks, `CSPDetector`, the docstrings' lists and the README's
lists read these tables (tests/test_registry.py checks that no other copy exists). This module
imports the standard library only, so the CLI's help never loads TensorFlow or Keras.

Adding a neck is one line in `NECKS` (plus its file in `keras_csp/necks/`, ARCHITECTURE.md); an
export pass is one line in `EXPORT_PASSES` (plus its function in `keras_csp/export/passes.py`).
"""

import dataclasses
import math
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a registered thing: its default, its type (int, float, bool or str), a
    strict lower bound for numbers (`above`) and a one-line help."""

    default: object
    type: type
    help: str
    above: Optional[float] = None

    def describe(self, key):
        bound = "" if self.above is None else f" > {self.above:g}"
        return f"{key} ({self.type.__name__}{bound}, default {self.default!r})"


@dataclasses.dataclass(frozen=True)
class Neck:
    """A neck: the module that defines it, its function's name, the backbone levels it reads,
    a one-line description and its own options (passed to the function as keyword arguments)."""

    module: str
    function: str
    levels: tuple
    description: str
    options: dict = dataclasses.field(default_factory=dict)


# name -> Neck. Every neck is called as `function(features, filters, attention, activation, name,
# **options)` and returns {"P3", "P4", "P5"} (keras_csp/necks/__init__.py).
NECKS = {
    "efm": Neck("keras_csp.necks.efm", "EFM", (2, 3, 4, 5),
                "the paper's Exact Fusion Model (each output from levels s-1, s, s+1)"),
    "gfm": Neck("keras_csp.necks.gfm", "GFM", (3, 4, 5),
                "the paper's Global Fusion Model (every scale fused into one map)"),
    "fpn": Neck("keras_csp.necks.fpn", "FPN", (3, 4, 5), "Feature Pyramid Network (top-down)"),
    "panet": Neck("keras_csp.necks.fpn", "PANet", (3, 4, 5),
                  "PANet: FPN + a bottom-up path (YOLOv4's neck)"),
    "bifpn": Neck("keras_csp.necks.bifpn", "BiFPN", (3, 4, 5),
                  "EfficientDet's BiFPN: repeated weighted bidirectional fusion",
                  {"repeats": Option(2, int, "BiFPN layers stacked", above=0),
                   "epsilon": Option(1e-4, float, "of the fast normalized fusion", above=0)}),
}

# Attention of a detector's neck: none, spatial attention on each output, or SPP on P5.
ATTENTIONS = (None, "sam", "spp")

# Box losses of CSPDetector.compile (keras-cv's CIoU and GIoU).
BOX_LOSSES = ("ciou", "giou")

# Where a CSP stage's two parts are fused (the paper's Fig. 3)...
CSP_FUSIONS = ("full", "first", "last")
# ...and what a model takes: a CSP fusion, or "none" for the plain (non-CSP) twin.
MODEL_FUSIONS = CSP_FUSIONS + ("none",)

# The architectures of keras_csp.models.config.ARCHITECTURES (tests/test_registry.py checks they
# are the same): `keras-csp models`, `profile` and `train --model` know them.
MODEL_FAMILIES = (
    "cspresnet50", "cspresnext50", "cspdarknet53", "darknet53", "resnet50", "resnext50",
    "resnet10", "cspresnet10", "densenet121", "densenet201", "cspdensenet121", "cspdensenet201",
    "peleenet", "csppeleenet", "cspdarknet_small", "cspdarknet_tiny",
)


@dataclasses.dataclass(frozen=True)
class ExportPass:
    """A rewrite of the TFLite export's deploy model: its function is the same name's in
    `keras_csp/export/passes.py`'s `FUNCTIONS`; it runs when `when(plan)` holds (`plan.switches`:
    every switch's value, `plan.options`: the export's `QuantizationOptions`). A pass with a
    `switch` is turned on or off by `export.tflite(..., switch=bool)` and by the CLI's `flag`."""

    when: object  # (plan) -> bool
    switch: Optional[str] = None
    default: bool = True
    help: str = ""  # what the pass does, said where its switch is documented (tflite, --help)

    @property
    def flag(self):
        """`keras-csp export`'s flag: `--no-SWITCH` for a pass on by default, else `--SWITCH`."""
        if self.switch is None:
            return None
        dashed = self.switch.replace("_", "-")
        return f"--no-{dashed}" if self.default else f"--{dashed}"


def _on(switch):
    return lambda plan: plan.switches[switch]


# name -> ExportPass, in the order the passes run. The order matters: the GPU equivalents come
# first, so every later pass (and the fine-tuning's teacher) sees the layers that are exported; the
# groups are widened and the int8 scales separated on Keras layers, before fine-tuning turns the
# model into its tf_keras twin.
EXPORT_PASSES = {
    "GPU equivalents": ExportPass(
        _on("gpu_substitutes"), "gpu_substitutes", True,
        "replace layers the GPU delegate cannot run by equivalents (reported)"),
    "GPU equivalents (reported only)": ExportPass(
        lambda plan: not plan.switches["gpu_substitutes"]),
    # Block-diagonal kernels stay exact only while nothing trains their zeros.
    "widen groups": ExportPass(
        lambda plan: plan.switches["widen_groups"] and not plan.options.fine_tunes,
        "widen_groups", True,
        "give grouped convolutions with few channels per group block-diagonal groups of 16+ "
        "channels, which XNNPACK runs faster (same outputs; not with qat or prune, which train "
        "the weights)"),
    "cascade max pools": ExportPass(
        _on("cascade_pools"), "cascade_pools", True,
        "compute stride-1 max pools of size 9, 13, ... (SPP) as chains of 5x5 pools shared by "
        "the pools of one input (SPPF; same outputs, fewer comparisons)"),
    # QAT learns its ranges with the plain graph; only calibrated int8 needs the extra steps.
    "separate concatenation scales": ExportPass(lambda plan: plan.options.quantize == "int8"),
    "fine-tune (prune, QAT)": ExportPass(lambda plan: plan.options.fine_tunes),
}


def names(table):
    """`'a', 'b' or 'c'`: a table's names as the docs and errors write them."""
    quoted = [repr(n) for n in table]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def neck_spec(name):
    """The registry entry of a neck name (case-insensitive)."""
    key = str(name).lower()
    if key not in NECKS:
        raise ValueError(f"neck={name!r} is not known; allowed: {names(NECKS)}.")
    return NECKS[key]


def _option_value(neck, key, value, option):
    """`value` checked against `option`; strings (from `--neck-option KEY=VALUE`) are parsed."""
    kind = option.type
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        try:
            value = {"true": True, "false": False}[text] if kind is bool else kind(text)
        except (KeyError, ValueError):
            pass  # left a string: refused below
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    ok = ok and (kind is not float or math.isfinite(value))
    if ok and option.above is not None:
        ok = value > option.above
    if not ok:
        raise ValueError(
            f"neck_options={{{key!r}: {value!r}}} is not allowed for neck={neck!r}; allowed: "
            f"{option.describe(key)}."
        )
    return value


def neck_options(name, options=None):
    """The neck's full options: `options` (a dict, or None) checked against its schema and
    completed with the defaults. An unknown key or a wrong value is a one-line error."""
    spec, neck = neck_spec(name), str(name).lower()
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise ValueError(
            f"neck_options={options!r} is not allowed; allowed: a dict of the neck's options."
        )
    allowed = ", ".join(o.describe(k) for k, o in spec.options.items()) or "none (no options)"
    for key in options:
        if key not in spec.options:
            raise ValueError(
                f"neck_options={{{key!r}: {options[key]!r}}} is not allowed for neck={neck!r}: "
                f"unknown key {key!r}; allowed keys: {allowed}."
            )
    return {
        key: _option_value(neck, key, options[key], option) if key in options else option.default
        for key, option in spec.options.items()
    }


def given_neck_options(name, options):
    """The keys of `options` only, typed and checked by the neck's schema (what a training
    config keeps: the neck's defaults stay the neck's); None stays None."""
    if options is None:
        return None
    full = neck_options(name, options)
    return {key: full[key] for key in options}


def options_mapping(name, value):
    """An options field (`neck_options`) from a YAML mapping or from the repeated flag's
    `KEY=VALUE` strings (`--neck-option repeats=3`), as a dict; values are typed later by the
    schema."""
    flag = "--" + name[:-1].replace("_", "-")
    if isinstance(value, (list, tuple)):
        pairs = [str(text).partition("=") for text in value]
        for text, (key, sep, _) in zip(value, pairs):
            if not sep or not key.strip():
                raise ValueError(
                    f"{flag}={text!r} is not allowed; allowed: KEY=VALUE, e.g. repeats=3."
                )
        value = {key.strip(): v.strip() for key, _, v in pairs}
    if not isinstance(value, dict):
        raise ValueError(
            f"{name}={value!r} is not allowed; allowed: a mapping KEY: VALUE ({flag} KEY=VALUE)."
        )
    return {str(k): v for k, v in value.items()}


def neck_options_help():
    """`keras-csp train --neck-option`'s help: every neck's options."""
    described = "; ".join(
        f"{n}: " + ", ".join(o.describe(k) for k, o in spec.options.items())
        for n, spec in NECKS.items() if spec.options
    )
    return f"detection: an option of the neck, KEY=VALUE (repeatable; YAML: a mapping); {described}"


def attention_text():
    """`'sam', 'spp' or 'none'`: the attention kinds as a flag or YAML key takes them."""
    return names([a for a in ATTENTIONS if a] + ["none"])


def export_switches(given=None):
    """Every export pass switch's value: `given` (keyword -> bool) checked and completed with the
    defaults. An unknown name or a value that is not a bool is a one-line error."""
    defaults = {p.switch: p.default for p in EXPORT_PASSES.values() if p.switch}
    given = given or {}
    for key, value in given.items():
        if key not in defaults or not isinstance(value, bool):
            what = "neither an argument nor a switch" if key not in defaults else "not a bool"
            raise ValueError(
                f"{key}={value!r} is not allowed ({what}); allowed as the export passes' "
                f"switches: {', '.join(f'{k}=True|False' for k in defaults)}."
            )
    return {**defaults, **given}
