#!/usr/bin/env python3
"""Create the "device" environments that test keras_csp.lite without TensorFlow (stdlib only).

    python3.11 tools/device_venvs.py tflite    # .venv-device-tflite/: numpy<2 + tflite-runtime 2.14
    python3.11 tools/device_venvs.py litert    # .venv-device-litert/: ai-edge-litert
    python3.11 tools/device_venvs.py all

Each environment holds what a phone-class or embedded Python has: an interpreter runtime, numpy,
and Pillow to decode PNG/JPEG files. Neither TensorFlow nor Keras is installed. keras_csp itself is
not installed into them: a `.pth` file puts the repository root on `sys.path` (the same as
`PYTHONPATH=.` or `pip install --no-deps -e .`, without a build step), so the environments always
run the working tree's code.

An environment is (re)created only when its requirement list below changes; the last line printed
for each environment is its Python executable, which the tests read.
"""

import hashlib
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# tflite-runtime 2.14 is the last release; its wheels are built against numpy 1.x.
ENVIRONMENTS = {
    "tflite": (
        ".venv-device-tflite", ["numpy==1.26.4", "tflite-runtime==2.14.0", "pillow>=10,<14"]
    ),
    "litert": (".venv-device-litert", ["ai-edge-litert==2.3.0", "pillow>=10,<14"]),
}


def _python(env):
    return env / "bin" / "python"


def _site_packages(python):
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def ensure(name, quiet=False):
    """Creates (or reuses) the named device environment and returns its Python executable."""
    if name not in ENVIRONMENTS:
        raise ValueError(
            f"environment={name!r} does not exist; allowed: {', '.join(ENVIRONMENTS)} or 'all'."
        )
    folder, requirements = ENVIRONMENTS[name]
    env = ROOT / folder
    python = _python(env)
    stamp = env / ".installed"
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and python.exists():
        return python
    if env.exists():
        shutil.rmtree(env)
    if not quiet:
        print(f"creating {folder}/ with {' '.join(requirements)}", flush=True)
    venv.create(env, with_pip=True, clear=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + requirements, check=True)
    (_site_packages(python) / "keras_csp_repo.pth").write_text(f"{ROOT}\n")
    stamp.write_text(digest)
    return python


def main(argv):
    names = argv or ["all"]
    if names == ["all"]:
        names = list(ENVIRONMENTS)
    for name in names:
        print(ensure(name), flush=True)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except ValueError as e:
        sys.exit(f"device_venvs: error: {e}")
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode)
