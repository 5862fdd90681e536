"""Running `tests/train/driver.py` (the `keras-csp train` command with test hooks) in subprocesses."""

import json
import os
import socket
import subprocess
import sys

DRIVER = os.path.join(os.path.dirname(__file__), "driver.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A run that takes seconds: a tiny CSPDarknet on 32x32 synthetic shapes, no augmentation.
TINY_RUN = [
    "--model", "cspdarknet_tiny", "--input-size", "32", "--val-size", "32",
    "--augment", "none", "--learning-rate", "0.05", "--warmup-epochs", "0",
]


def env(extra=None):
    e = dict(os.environ)
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    # Each process gets the machine's threads; keep them few so parallel workers do not thrash.
    e.setdefault("TF_NUM_INTEROP_THREADS", "1")
    e.update(extra or {})
    return e


def start(args, hooks=(), extra_env=None):
    cmd = [sys.executable, DRIVER, *hooks, "--", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env(extra_env)
    )


def run(args, hooks=(), extra_env=None, timeout=240):
    proc = start(args, hooks, extra_env)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def free_ports(count):
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def tf_config(ports, index):
    return json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index},
        }
    )
