"""Detection necks of the paper's ablation (Table 2): EFM, GFM, FPN and PANet.

Each neck is a function `neck(features, filters, attention, activation, name)` that builds plain
Keras layers onto a dict of pyramid features `{"P{k}": tensor}` (the backbone contract) and returns
`{"P3": ..., "P4": ..., "P5": ...}` at strides 8, 16 and 32.
"""

from keras_csp.necks.common import OUTPUT_LEVELS, check_pyramid
from keras_csp.necks.efm import EFM, EFM_LEVELS
from keras_csp.necks.fpn import FPN, FPN_LEVELS, PANet
from keras_csp.necks.gfm import GFM, GFM_LEVELS

NECKS = {"efm": EFM, "fpn": FPN, "panet": PANet, "gfm": GFM}

# The backbone levels each neck reads.
NECK_LEVELS = {"efm": EFM_LEVELS, "fpn": FPN_LEVELS, "panet": FPN_LEVELS, "gfm": GFM_LEVELS}


def get_neck(name):
    """The neck function of a name (case-insensitive)."""
    key = str(name).lower()
    if key not in NECKS:
        allowed = ", ".join(repr(n) for n in NECKS)
        raise ValueError(f"neck={name!r} is not known; allowed: {allowed}.")
    return NECKS[key]


__all__ = ["EFM", "FPN", "GFM", "NECKS", "NECK_LEVELS", "OUTPUT_LEVELS", "PANet", "check_pyramid",
           "get_neck"]
