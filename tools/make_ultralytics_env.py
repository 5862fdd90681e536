#!/usr/bin/env python3
"""Create `.venv-yolo/`: ultralytics (YOLOv8n, YOLO11n) on PyTorch, for the detection benchmark's
peer rows (standard library only; not part of `.ci/run` or `tools/dev.py test`).

    python3.11 tools/make_ultralytics_env.py          # prints the environment's Python last

torch and torchvision are pinned to the versions of `.venv-ref` (tools/reference-requirements.txt),
which pip takes from this machine's local wheel store instead of downloading a CUDA build; every
other package comes from PyPI. The environment runs on the CPU (ultralytics' `device="cpu"`).
It is (re)created only when its requirement list changes. The benchmark runs
`benchmarks/ultralytics_peer.py` in it; keras_csp is not installed there (that script needs
neither TensorFlow nor Keras), the repository root is on its path through a `.pth` file.
"""

import hashlib
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = ROOT / ".venv-yolo"
REFERENCE = ROOT / "tools" / "reference-requirements.txt"
# The ultralytics release the peer rows were written against (8.4: YOLOv8 and YOLO11 yamls).
ULTRALYTICS = "ultralytics==8.4.190"


def requirements():
    """torch/torchvision as `.venv-ref` pins them, then ultralytics."""
    pins = []
    for line in REFERENCE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(("torch==", "torchvision==")):
            pins.append(line)
    if len(pins) != 2:
        raise SystemExit(f"{REFERENCE}: expected torch== and torchvision== pins, found {pins}.")
    return pins + [ULTRALYTICS]


def python():
    return ENV / "bin" / "python"


def ensure():
    """Creates (or reuses) `.venv-yolo` and returns its Python executable."""
    wanted = requirements()
    stamp = ENV / ".installed"
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest and python().exists():
        return python()
    if not python().exists():
        print(f"creating {ENV.name}/", flush=True)
        venv.create(ENV, with_pip=True)
    command = [str(python()), "-m", "pip", "install", "--disable-pip-version-check", *wanted]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    site = subprocess.run(
        [str(python()), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    (Path(site) / "keras_csp_repo.pth").write_text(str(ROOT) + "\n")
    stamp.write_text(digest)
    return python()


if __name__ == "__main__":
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"needs Python 3.11 (the local torch wheels are cp311); this is {sys.version}.")
    try:
        print(ensure())
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode)
