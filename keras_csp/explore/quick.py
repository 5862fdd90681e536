"""The notebooks' quick mode (CI): small settings when `KERAS_CSP_NOTEBOOK_QUICK=1`."""

import os


QUICK_ENV = "KERAS_CSP_NOTEBOOK_QUICK"


def quick_mode():
    """True when `KERAS_CSP_NOTEBOOK_QUICK=1` (CI): the notebooks use their small settings."""
    return os.environ.get(QUICK_ENV, "0").strip().lower() in ("1", "true", "yes")
