#!/usr/bin/env python3
"""Set up and run keras-csp with nothing but Python 3.11 (standard library only).

    python3.11 tools/dev.py demo           # the main job
    python3.11 tools/dev.py test [ARGS]    # the test suite (ARGS go to pytest)
    python3.11 tools/dev.py notebooks      # JupyterLab on notebooks/ (ARGS go to `jupyter lab`)
    python3.11 tools/dev.py setup          # environments only

`.venv/` holds the package and its dependencies, with the `test` and `notebooks` extras.
`.venv-ref/` holds the PyTorch/timm reference that parity tests compare against; it lives apart
because timm needs torch and torchvision, which TensorFlow does not need, and it is what "another
framework's implementation" looks like anyway.
Each environment is (re)installed only when its requirements change.
"""

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
REF_VENV = ROOT / ".venv-ref"
REF_REQUIREMENTS = ROOT / "tools" / "reference-requirements.txt"


def _bin(env, name):
    return env / "bin" / name


def _run(*cmd, **kwargs):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def _digest(*paths):
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def _ensure(env, inputs, install):
    """Creates `env` and runs `install(pip)` unless the stamp says `inputs` did not change."""
    stamp = env / ".installed"
    digest = _digest(*inputs)
    if stamp.exists() and stamp.read_text() == digest and _bin(env, "python").exists():
        return
    if not _bin(env, "python").exists():
        print(f"creating {env.name}/", flush=True)
        venv.create(env, with_pip=True)
    pip = [_bin(env, "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    install(pip)
    stamp.write_text(digest)


def setup_main():
    _ensure(
        VENV,
        [ROOT / "setup.cfg", ROOT / "pyproject.toml"],
        lambda pip: _run(*pip, "-q", "-e", f"{ROOT}[test,notebooks]"),
    )


def setup_reference():
    _ensure(REF_VENV, [REF_REQUIREMENTS], lambda pip: _run(*pip, "-q", "-r", REF_REQUIREMENTS))


def main(argv):
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"keras-csp needs Python 3.11; this is {sys.version.split()[0]}.")
    command, rest = (argv[0], argv[1:]) if argv else ("demo", [])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    if command == "setup":
        setup_main()
        setup_reference()
    elif command == "demo":
        setup_main()
        _run(_bin(VENV, "keras-csp"), "demo", *rest, env=env)
    elif command == "test":
        setup_main()
        setup_reference()
        env["KERAS_CSP_REFERENCE_PYTHON"] = str(_bin(REF_VENV, "python"))
        _run(_bin(VENV, "python"), "-m", "pytest", *(rest or ["tests"]), cwd=ROOT, env=env)
    elif command == "notebooks":
        setup_main()
        args = list(rest)
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in args:
            args.append("--allow-root")  # jupyter refuses to run as root without it
        _run(_bin(VENV, "jupyter"), "lab", ROOT / "notebooks", *args, cwd=ROOT, env=env)
    else:
        sys.exit(f"unknown command {command!r}; allowed: demo, test, notebooks, setup.")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except subprocess.CalledProcessError as e:
        sys.exit(e.returncode)
