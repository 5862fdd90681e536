"""A run never deletes or writes through a symlink that leads out of its output folder: with
`run/checkpoints` or `run/logs` a link to another folder, `--overwrite` deleted that folder's files
and the run wrote its own there. Refused, naming the link; the other folder survives byte for
byte."""

import os
import shutil

import pytest

from keras_csp.cli import main
from keras_csp.train import fit_classifier
from keras_csp.train.checkpoint import begin_run, prepare_output_dir

TINY = dict(
    model="cspdarknet_tiny", input_size=32, train_size=16, val_size=16, batch_size=16, verbose=0,
    learning_rate=0.05, augment="none", save_model=False,
)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "run"
    fit_classifier(epochs=1, output_dir=str(out), **TINY)
    assert os.listdir(out / "checkpoints") and os.listdir(out / "logs" / "train")
    return out


def _snapshot(folder):
    return {
        os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
        for d, _, names in os.walk(folder) for f in names
    }


def _linked_run(base_run, tmp_path, link):
    """A copy of the run whose `link` is a symlink to a folder outside it holding that folder's
    files (the run's own names among them) and a file of the user's."""
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    outside = tmp_path / "elsewhere"
    shutil.move(str(out / link), str(outside))
    (outside / "precious.txt").write_text("not the run's")
    os.symlink(outside, out / link)
    return out, outside


@pytest.mark.parametrize("link", ["checkpoints", "logs", "logs/train"])
def test_overwrite_refuses_a_link_out_of_the_run(base_run, tmp_path, link):
    out, outside = _linked_run(base_run, tmp_path, link)
    before = _snapshot(outside)
    assert any(n.startswith(("ckpt-", "events.", "train")) for n in before)
    message = rf"output_dir={str(out)!r}: {link} is a symlink to {str(outside)!r}, outside"
    with pytest.raises(ValueError, match=message) as e:
        fit_classifier(epochs=1, output_dir=str(out), overwrite=True, **TINY)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=message):
        begin_run(str(out), overwrite=True)  # the clean-up itself checks too
    assert _snapshot(outside) == before
    assert os.path.islink(out / link)


def test_a_new_run_or_a_resume_does_not_write_through_the_link(base_run, tmp_path):
    out, outside = _linked_run(base_run, tmp_path, "checkpoints")
    before = _snapshot(outside)
    with pytest.raises(ValueError, match=r"checkpoints is a symlink to .*outside"):
        fit_classifier(epochs=2, output_dir=str(out), resume=True, **TINY)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    os.symlink(outside, fresh / "logs")
    with pytest.raises(ValueError, match=r"logs is a symlink to .*outside"):
        prepare_output_dir(str(fresh), resume=False, overwrite=False)
    assert _snapshot(outside) == before


def test_the_cli_names_the_link_in_one_line(base_run, tmp_path, capsys):
    out, outside = _linked_run(base_run, tmp_path, "logs")
    before = _snapshot(outside)
    flags = ["--model", "cspdarknet_tiny", "--input-size", "32", "--overwrite"]
    assert main(["train", "--output-dir", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("keras-csp: error: ") and "\n" not in err
    assert f"logs is a symlink to {str(outside)!r}" in err
    assert _snapshot(outside) == before


def test_a_link_that_stays_inside_the_run_is_the_users_choice(base_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(base_run, out)
    shutil.move(str(out / "checkpoints"), str(out / "kept"))
    os.symlink("kept", out / "checkpoints")  # relative, inside the folder
    assert prepare_output_dir(str(out), resume=True, overwrite=False).endswith(".npz")
    prepare_output_dir(str(out), resume=False, overwrite=True)
    begin_run(str(out), overwrite=True)
    assert not [n for n in os.listdir(out / "kept") if n.startswith("ckpt-")]
