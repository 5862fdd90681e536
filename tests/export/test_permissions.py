"""Outputs get the permissions `open()`/`mkdir()` would give them, replacing keeps the old mode,
and a SIGTERM during a write leaves no temporary file or folder behind.

The modes of real exports are checked on the files test_tflite.py and test_saved_model.py write,
and convert-timm's in tests/weights/test_weights_convert.py (`open_mode` there)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from export_helpers import mode

from keras_csp import files


@pytest.fixture
def umask():
    """Sets the process umask for one test (`umask(0o027)`) and restores it afterwards."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def test_replacing_keeps_the_mode_of_the_file_or_folder_replaced(tmp_path, umask):
    umask(0o077)
    target = tmp_path / "m.tflite"
    files.write_bytes_atomic(target, b"new")
    assert mode(target) == 0o600  # a umask of 077 asks for private files
    os.chmod(target, 0o644)
    files.write_bytes_atomic(target, b"newer")
    assert target.read_bytes() == b"newer" and mode(target) == 0o644
    folder = tmp_path / "sm"
    folder.mkdir()
    os.chmod(folder, 0o751)
    with files.atomic_folder(folder) as tmp:
        (tmp / "saved_model.pb").write_bytes(b"x")
    assert mode(folder) == 0o751 and (folder / "saved_model.pb").exists()


SIGTERM_SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from keras_csp import files

    target = Path(sys.argv[1])
    with files.atomic_{kind}(target) as tmp:
        if "{kind}" == "folder":
            (tmp / "variables").mkdir()
            (tmp / "variables" / "variables.data-00000-of-00001").write_bytes(bytes(1 << 20))
        else:
            tmp.write_bytes(bytes(1 << 20))
        print("writing", flush=True)
        time.sleep(60)
""")


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_sigterm_during_a_write_leaves_nothing_behind(tmp_path, kind):
    target = tmp_path / "out" / "model"
    target.parent.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_SCRIPT.replace("{kind}", kind), str(target)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )
    try:
        assert process.stdout.readline().strip() == "writing"
        assert len(list(target.parent.iterdir())) == 1  # the temporary file or folder
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 128 + signal.SIGTERM  # was killed (-15), files left
    finally:
        process.kill()
        process.stdout.close()
    assert list(target.parent.iterdir()) == []


def test_savedmodel_subfolders_get_the_mode_mkdir_gives(tiny_model, tmp_path, umask):
    # TensorFlow makes variables/ and assets/ with mode 0755 whatever the umask: under umask 002
    # (group-writable projects) they were 755 while the folder around them was 775.
    from keras_csp import export

    umask(0o002)
    export.saved_model(tiny_model, tmp_path / "sm", verbose=False)
    folders = sorted(p for p in (tmp_path / "sm").rglob("*") if p.is_dir())
    assert [p.name for p in folders] == ["assets", "variables"]
    assert {p.name: mode(p) for p in folders} == {"assets": 0o775, "variables": 0o775}
    assert mode(tmp_path / "sm") == 0o775
    assert {mode(p) for p in (tmp_path / "sm").rglob("*") if p.is_file()} == {0o664}
