"""A full disk during an export: the old file survives, nothing is left behind, and the command
line says so in one line (naming the output and the system's reason), not with a raw OSError.

The disk is really full: a 64 KiB tmpfs, mounted for the test (root only; skipped elsewhere)."""

import subprocess

import pytest
from export_helpers import TINY, tiny_classifier


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a 64 KiB file system holding a small old export."""
    folder = tmp_path / "small"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_classifier(TINY).save(path)  # about 0.4 MB as .tflite: more than the disk holds
    return path


@pytest.mark.parametrize("output, fmt", [("m.tflite", "tflite"), ("sm", "savedmodel")])
def test_a_full_disk_keeps_the_old_export_and_says_so_in_one_line(keras_file, full_disk, output,
                                                                   fmt, capsys):
    from keras_csp import cli

    target = full_disk / output
    if fmt == "tflite":
        target.write_bytes(b"old export")
    else:
        target.mkdir()
        (target / "saved_model.pb").write_bytes(b"old export")
    assert cli.main(["export", str(keras_file), "--format", fmt, "-o", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"keras-csp: error: --output={str(target)!r} could not be written: "), err
    assert "No space left on device" in err and len(err.splitlines()) == 1, err
    assert "(writing" not in err, err  # the output's own disk: no other file to name
    old = target if fmt == "tflite" else target / "saved_model.pb"
    assert old.read_bytes() == b"old export"
    assert sorted(p.name for p in full_disk.iterdir()) == [output]  # no temporary file left
