"""The model families of notebook 01 and the γ range its widgets allow."""

import numpy as np

from keras_csp.registry import CSP_FUSIONS

# Family shown in the notebook -> (CSP model, its non-CSP baseline), names of keras_csp.applications.
FAMILIES = {
    "ResNeXt": ("cspresnext50", "resnext50"),
    "Darknet": ("cspdarknet53", "darknet53"),
    "DenseNet": ("cspdensenet121", "densenet121"),
    "PeleeNet": ("csppeleenet", "peleenet"),
}
FUSIONS = CSP_FUSIONS  # the curves drawn; "none" (the plain twin) is the baseline
# The γ range the widgets allow: strictly inside (0, 1), as `build_model` requires.
GAMMA_MIN, GAMMA_MAX, GAMMA_STEP = 0.05, 0.95, 0.05
FUSION_COLORS = {"full": "tab:blue", "first": "tab:orange", "last": "tab:green", "none": "black"}


def check_family(family):
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not allowed; allowed: {', '.join(FAMILIES)}.")
    return family


def gamma_grid(step=GAMMA_STEP, low=GAMMA_MIN, high=GAMMA_MAX):
    """The γ values from `low` to `high` in steps of `step`, rounded to 4 places."""
    if not (0.0 < low <= high < 1.0) or not step > 0:
        raise ValueError(
            f"gamma_grid(step={step!r}, low={low!r}, high={high!r}); allowed: 0 < low <= high < 1 "
            "and step > 0."
        )
    count = int(np.floor((high - low) / step + 1e-9)) + 1
    return tuple(round(low + i * step, 4) for i in range(count))


def clamp_gamma(gamma):
    """γ snapped into the widgets' range and onto their step (what a slider would allow)."""
    gamma = min(max(float(gamma), GAMMA_MIN), GAMMA_MAX)
    return round(round(gamma / GAMMA_STEP) * GAMMA_STEP, 4)


def default_input_size(family):
    from keras_csp.models.config import get_config

    return get_config(FAMILIES[check_family(family)][0]).default_size
