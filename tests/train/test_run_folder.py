"""What a run may do to its folder: only a marked folder is a run, --overwrite removes only the
package's files, a failed start writes nothing, resume survives damaged checkpoints and refuses
changed options unless asked."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from keras_csp.train import fit_classifier
from keras_csp.train.checkpoint import (
    MARKER,
    begin_run,
    list_checkpoints,
    prepare_output_dir,
    read_checkpoint,
)

TINY = dict(
    model="cspdarknet_tiny", input_size=32, train_size=32, val_size=16, batch_size=16, verbose=0,
    learning_rate=0.05, augment="none", save_model=False,
)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """One epoch of two steps with a mid-epoch checkpoint: checkpoints (0, 1) and (1, 0)."""
    out = str(tmp_path_factory.mktemp("base") / "run")
    fit_classifier(epochs=1, output_dir=out, save_every_steps=1, **TINY)
    assert [(e, s) for e, s, _ in list_checkpoints(out)] == [(0, 1), (1, 0)]
    return out


def _copy(base_run, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(base_run, out)
    return out


def _listing(folder):
    return sorted(
        os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files
    )


def test_overwrite_removes_only_the_package_files(base_run, tmp_path):
    out = _copy(base_run, tmp_path)
    assert os.path.isfile(os.path.join(out, MARKER))
    mine = ["logs/app.log", "checkpoints/README", "notes.txt"]
    for name in mine:
        with open(os.path.join(out, name), "w") as f:
            f.write("the user's")
    with pytest.raises(ValueError, match=r"already holds a run \(checkpoints/ckpt-0000-000001.npz"):
        prepare_output_dir(out, resume=False, overwrite=False)
    prepare_output_dir(out, resume=False, overwrite=True)
    begin_run(out, overwrite=True)  # what a run with --overwrite does first
    assert _listing(out) == sorted([*mine, MARKER])
    for name in mine:
        assert open(os.path.join(out, name)).read() == "the user's"


def test_a_folder_the_package_did_not_write_is_not_a_run(tmp_path):
    proj = tmp_path / "proj"
    (proj / "logs").mkdir(parents=True)
    (proj / "logs" / "app.log").write_text("app")
    (proj / "config.yaml").write_text("my: own config\n")
    before = _listing(proj)
    for extra in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(ValueError, match=r"holds config.yaml, which a run would replace, but it "
                                             r"is not a keras-csp run \(no keras-csp-run.json\)"):
            fit_classifier(epochs=1, output_dir=str(proj), **TINY, **extra)
    assert _listing(proj) == before and (proj / "config.yaml").read_text() == "my: own config\n"
    # Without a file of the package's names, the run goes next to the user's files.
    (proj / "config.yaml").unlink()
    assert prepare_output_dir(str(proj), resume=False, overwrite=False) is None
    begin_run(str(proj), overwrite=True)
    assert _listing(proj) == ["keras-csp-run.json", "logs/app.log"]


def test_output_dir_that_is_a_file(tmp_path):
    path = tmp_path / "afile"
    path.write_text("x")
    with pytest.raises(ValueError, match=r"output_dir='.*afile' is a file; nothing was changed"):
        fit_classifier(epochs=1, output_dir=str(path), **TINY)
    assert path.read_text() == "x"


def _folder(root, readable, unreadable, classes=("a", "b")):
    rng = np.random.default_rng(0)
    for c in classes:
        os.makedirs(os.path.join(root, c))
        for i in range(readable):
            image = rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)
            Image.fromarray(image).save(os.path.join(root, c, f"{i}.png"))
        for i in range(unreadable):
            with open(os.path.join(root, c, f"bad{i}.jpg"), "wb") as f:
                f.write(b"\xff\xd8\xff\xe0 not a jpeg")
    return str(root)


def test_unreadable_images_leave_nothing_behind(tmp_path):
    from keras_csp.data import image_folder

    out = tmp_path / "run"
    options = {**TINY, "data": "folder", "input_size": 32}
    del options["train_size"], options["val_size"]
    bad = _folder(tmp_path / "bad", 0, 3)
    with pytest.raises(ValueError, match=r"none of its 6 image file\(s\) can be decoded"):
        fit_classifier(epochs=1, output_dir=str(out), data_path=bad, **options)
    assert not out.exists()
    # A folder too large to verify up front: the first batch is fetched before anything is written.
    data = image_folder(bad, image_size=32, validation_split=0.5, verify=False)
    del options["data"]
    with pytest.raises(ValueError, match=r"yields no batch of batch_size=2 \(\d unreadable image"):
        fit_classifier(data=data, epochs=1, output_dir=str(out), **{**options, "batch_size": 2})
    assert not out.exists()
    # The batch-size check counts readable images only: 2 x 3 readable, 1 per class validates.
    few = _folder(tmp_path / "few", 3, 5)
    with pytest.raises(ValueError, match=r"training split has 4 images, fewer than one batch"):
        fit_classifier(epochs=1, output_dir=str(out), data="folder", data_path=few,
                       validation_split=0.3, **{**options, "batch_size": 8})
    assert not out.exists()


def test_truncated_latest_checkpoint_falls_back_to_the_older_one(base_run, tmp_path, capsys):
    out = _copy(base_run, tmp_path)
    latest = list_checkpoints(out)[-1][2]
    data = open(latest, "rb").read()
    open(latest, "wb").write(data[: len(data) // 2])
    # A temporary checkpoint that a kill during a write left behind.
    leftover = os.path.join(out, "checkpoints", ".tmp-k1ll3dckpt-0001-000000.npz")
    open(leftover, "wb").write(data[:1000])
    # One resume for three things (each a few seconds of training): the fallback, the clean-up,
    # and a changed learning rate that is allowed and recorded.
    result = fit_classifier(epochs=1, output_dir=out, resume=True, allow_config_change=True,
                            **{**TINY, "learning_rate": 0.01})
    err = capsys.readouterr().err
    assert "ckpt-0001-000000.npz' is truncated or corrupt (BadZipFile" in err
    assert "resuming from the older ckpt-0000-000001.npz instead" in err
    assert "removed 1 temporary file(s) that an interrupted write left" in err
    assert not os.path.exists(leftover)
    assert [h["epoch"] for h in result.history] == [1]  # the last step of epoch 1, again
    read_checkpoint(list_checkpoints(out)[-1][2])  # the rewritten one reads
    changes = json.load(open(os.path.join(out, "config_changes.json")))
    assert len(changes) == 1 and changes[0]["resumed_from"] == "checkpoints/ckpt-0000-000001.npz"
    assert changes[0]["changes"] == {"learning_rate": [0.05, 0.01], "save_every_steps": [1, 0]}
    assert changes[0]["position"] == {"epoch": 0, "step": 1}
    assert "learning_rate: 0.01" in open(os.path.join(out, "config.yaml")).read()


def test_random_bytes_checkpoint(base_run, tmp_path):
    out = _copy(base_run, tmp_path)
    for _, _, path in list_checkpoints(out):
        open(path, "wb").write(np.random.default_rng(1).bytes(3000))
    with pytest.raises(ValueError, match=r"not a keras-csp checkpoint \(not a .npz archive") as e:
        read_checkpoint(path)
    assert "pickled" not in str(e.value)
    with pytest.raises(ValueError, match=r"none of its 2 checkpoint\(s\) can be read .*not a "
                                         r"keras-csp checkpoint.*overwrite=True"):
        fit_classifier(epochs=2, output_dir=out, resume=True, **TINY)


def test_resume_refuses_changed_options_unless_allowed(base_run, tmp_path):
    out = _copy(base_run, tmp_path)
    config = open(os.path.join(out, "config.yaml")).read()
    for change, shown in (
        ({"data_seed": 7}, "data_seed: 0 -> 7"),
        ({"train_size": 48}, "train_size: 32 -> 48"),
        ({"learning_rate": 0.01}, "learning_rate: 0.05 -> 0.01"),
        ({"data": "folder", "data_path": str(tmp_path)}, "data_path: None -> "),
    ):
        with pytest.raises(ValueError, match=r"resume=True would continue .* with changed "
                                             r"option\(s\) \(.*" + shown) as e:
            fit_classifier(epochs=2, output_dir=out, resume=True, **{**TINY, **change})
        assert "--allow-config-change" in str(e.value)
    assert open(os.path.join(out, "config.yaml")).read() == config
    assert not os.path.exists(os.path.join(out, "config_changes.json"))
