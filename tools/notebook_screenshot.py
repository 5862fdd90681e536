#!/usr/bin/env python3
"""Makes notebooks/screenshot_01.png (the picture in README.md) with the browser test's own code.

    python3.11 tools/notebook_screenshot.py            # full settings: every γ profiled (minutes)
    python3.11 tools/notebook_screenshot.py --quick    # CI's small settings

It runs tests/notebooks/test_browser.py in `.venv/` (make it with `python3.11 tools/dev.py setup`)
with KERAS_CSP_NOTEBOOK_SCREENSHOT set: the test opens notebook 01 in JupyterLab in Debian's
headless chromium, runs it, moves the γ slider, measures latency along γ, and saves the explorer
panel there. Standard library only.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the notebook's CI settings")
    parser.add_argument(
        "--output", default=str(ROOT / "notebooks" / "screenshot_01.png"), help="PNG to write"
    )
    args = parser.parse_args(argv)
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        sys.exit("no .venv/: run `python3.11 tools/dev.py setup` first.")
    env = dict(
        os.environ,
        KERAS_CSP_NOTEBOOK_SCREENSHOT=str(Path(args.output).resolve()),
        KERAS_CSP_NOTEBOOK_QUICK="1" if args.quick else "0",
        TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"),
    )
    test = "tests/notebooks/test_browser.py"
    code = subprocess.run([str(python), "-m", "pytest", "-q", "-rs", test], cwd=ROOT, env=env)
    if code.returncode == 0 and Path(args.output).exists():
        print(f"wrote {args.output}")
    return code.returncode


if __name__ == "__main__":
    sys.exit(main())
