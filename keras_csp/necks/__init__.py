"""Detection necks, one file each, listed by `keras_csp.registry.NECKS`.

Each neck is a function `neck(features, filters, attention, activation, name, **options)` that
builds Keras layers onto a dict of pyramid features `{"P{k}": tensor}` (the backbone contract) and
returns `{"P3": ..., "P4": ..., "P5": ...}` at strides 8, 16 and 32. A neck is one file of this
package and one line of `keras_csp.registry.NECKS` (its module, levels and options); the tables
below are read from there.
"""

import functools
import importlib

from keras_csp.necks.common import OUTPUT_LEVELS, check_pyramid
# The paper's ablation (Table 2) by name, as before the registry; any neck: NECKS[name].
from keras_csp.necks.efm import EFM
from keras_csp.necks.fpn import FPN, PANet
from keras_csp.necks.gfm import GFM
from keras_csp.registry import NECKS as _SPECS
from keras_csp.registry import neck_options, neck_spec

# name -> neck function, and name -> the backbone levels it reads (views of the registry).
NECKS = {
    name: getattr(importlib.import_module(spec.module), spec.function)
    for name, spec in _SPECS.items()
}
NECK_LEVELS = {name: spec.levels for name, spec in _SPECS.items()}


def get_neck(name):
    """The neck function of a name (case-insensitive)."""
    neck_spec(name)  # the error lists the registered names
    return NECKS[str(name).lower()]


def build_neck(name, options=None):
    """`(function, name, options)`: the neck function of `name` with its options bound, its
    lower-case name and its full options (`options` checked by the registry's schema, completed
    with the defaults)."""
    key = str(name).lower()
    function, full = get_neck(name), neck_options(name, options)
    return functools.partial(function, **full), key, full


__all__ = ["EFM", "FPN", "GFM", "NECKS", "NECK_LEVELS", "OUTPUT_LEVELS", "PANet",
           "build_neck", "check_pyramid", "get_neck"]
