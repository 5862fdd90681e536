"""A run killed with SIGKILL mid-epoch resumes to the same final weights as an uninterrupted run."""

import json
import os
import signal
import time

import numpy as np
import train_helpers as helpers

from keras_csp.train.checkpoint import list_checkpoints

RUN = helpers.TINY_RUN + [
    "--train-size", "96", "--batch-size", "16", "--epochs", "3",  # 6 steps per epoch
    "--save-every-steps", "2", "--deterministic", "--seed", "3", "--verbose", "0",
]


def _weights(path):
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files, key=lambda k: int(k.split("_")[1]))]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(tmp_path):
    marker = tmp_path / "hanging"
    # The uninterrupted reference and the run to be killed, side by side.
    reference = helpers.start(
        RUN + ["--output-dir", str(tmp_path / "ref")], ["--dump-weights", str(tmp_path / "ref.npz")]
    )
    victim = helpers.start(
        RUN + ["--output-dir", str(tmp_path / "run")], ["--hang-at", "1:5", str(marker)]
    )
    deadline = time.time() + 240
    while not marker.exists():
        assert victim.poll() is None, victim.communicate()[0]
        assert time.time() < deadline, "the run never reached epoch 2, step 5"
        time.sleep(0.1)
    # The run sits after step 5 of epoch 2 (0-based epoch 1); its last checkpoint is at step 4.
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    found = list_checkpoints(str(tmp_path / "run"))
    assert (found[-1][0], found[-1][1]) == (1, 4)  # mid-epoch
    assert not any(n.startswith(".tmp") for n in os.listdir(tmp_path / "run" / "checkpoints"))
    assert not (tmp_path / "run" / "summary.json").exists()

    code, log = helpers.run(
        RUN + ["--output-dir", str(tmp_path / "run"), "--resume"],
        ["--dump-weights", str(tmp_path / "resumed.npz")],
    )
    assert code == 0, log
    out, _ = reference.communicate(timeout=240)
    assert reference.returncode == 0, out

    ref, resumed = _weights(tmp_path / "ref.npz"), _weights(tmp_path / "resumed.npz")
    assert len(ref) == len(resumed)
    for a, b in zip(ref, resumed):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ref_summary = json.loads((tmp_path / "ref" / "summary.json").read_text())
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert len(summary["history"]) == 3
    for h_ref, h in zip(ref_summary["history"], summary["history"]):
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert abs(h_ref[key] - h[key]) < 1e-4, (key, h_ref, h)
    # The resumed run's wall time includes the killed run's time up to its last checkpoint.
    assert summary["wall_time_seconds"] > 0
