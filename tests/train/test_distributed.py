"""tf.distribute: MirroredStrategy on two logical CPUs, MultiWorkerMirroredStrategy on two processes."""

import json
import os

import numpy as np

import train_helpers as helpers


def _weights(path):
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


def test_mirrored_on_two_logical_cpus(tmp_path):
    out = tmp_path / "mirrored"
    args = helpers.TINY_RUN + [
        "--train-size", "64", "--batch-size", "16", "--epochs", "1",
        "--strategy", "mirrored", "--cpu-replicas", "2", "--output-dir", str(out), "--verbose", "0",
    ]
    code, log = helpers.run(args, hooks=["--dump-weights", str(tmp_path / "w.npz")])
    assert code == 0, log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["replicas"] == 2 and summary["strategy"] == "mirrored"
    assert np.isfinite(summary["history"][0]["loss"])
    assert all(np.isfinite(w).all() for w in _weights(tmp_path / "w.npz"))


def test_multiworker_two_processes_end_with_identical_weights(tmp_path):
    ports = helpers.free_ports(2)
    procs = []
    for i in range(2):
        args = helpers.TINY_RUN + [
            "--train-size", "96", "--batch-size", "16", "--epochs", "2", "--steps-per-epoch", "3",
            "--strategy", "multiworker", "--output-dir", str(tmp_path / "run"), "--verbose", "2",
        ]
        hooks = ["--dump-weights", str(tmp_path / f"worker{i}.npz")]
        procs.append(
            helpers.start(args, hooks, extra_env={"TF_CONFIG": helpers.tf_config(ports, i)})
        )
    logs = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        logs.append(out)
        assert p.returncode == 0, out
    w0, w1 = _weights(tmp_path / "worker0.npz"), _weights(tmp_path / "worker1.npz")
    assert len(w0) == len(w1) and len(w0) > 10
    for a, b in zip(w0, w1):
        np.testing.assert_array_equal(a, b)
    # The chief (worker 0) wrote the run's files; the other worker wrote nothing of its own.
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["replicas"] == 2
    assert len(summary["history"]) == 2
    assert "epoch 2/2" in logs[0] and "epoch 2/2" not in logs[1]
