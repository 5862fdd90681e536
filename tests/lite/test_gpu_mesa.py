"""The Mesa situation (issue 24, items 8 and 9): the system's Vulkan loader with Mesa's drivers
(lavapipe, radeon, intel) installed and no GPU. Dawn refuses every device there; a process that
imported TensorFlow must refuse the GPU, fall back, and exit 0 (loading Mesa's LLVM-based drivers
next to TensorFlow's LLVM made it abort at exit with `free(): invalid pointer`), and the GPU check
must run on SwiftShader instead, saying so."""

import json
import os
import subprocess
import sys
import textwrap

from conftest import SIZE

_VARIABLES = ("VK_ICD_FILENAMES", "VK_DRIVER_FILES", "VK_ADD_DRIVER_FILES")


def _system_vulkan_env():
    """This environment without the variables that name Vulkan drivers: the loader then finds
    the installed ones (Mesa's), as on a user's machine."""
    return {k: v for k, v in os.environ.items() if k not in _VARIABLES}


def test_a_tensorflow_process_refuses_mesa_falls_back_and_exits_cleanly(artifacts, mesa_vulkan):
    code = textwrap.dedent(f"""
        import os, warnings
        import numpy as np
        import tensorflow as tf
        from keras_csp import lite

        path = {str(artifacts["float"])!r}
        images = np.zeros((1, {SIZE}, {SIZE}, 3), np.uint8)
        # The installed drivers, then lavapipe named alone.
        for icd in (None, {mesa_vulkan!r}):
            if icd:
                os.environ["VK_ICD_FILENAMES"] = icd
            try:
                model = lite.LiteModel(path, accelerator="gpu")
                print("gpu: started on", model.gpu_placement.adapter)
            except lite.GpuUnavailableError as e:
                print("gpu: error:", e)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = lite.LiteModel(path, accelerator="auto")
            print("auto:", model.accelerator, len(caught), model(images)["probabilities"].shape)
        # No Mesa driver was loaded here (the search ran in a child), and TF still computes.
        with open("/proc/self/maps") as maps:
            print("lavapipe loaded:", "libvulkan_lvp" in maps.read())
        conv = tf.nn.conv2d(tf.ones((1, 4, 4, 2)), tf.ones((3, 3, 2, 1)), 1, "SAME")
        print("conv:", float(tf.reduce_sum(conv)))
        # The refusal did not spoil the process: SwiftShader, asked for, still starts.
        lite.use_swiftshader()
        print("swiftshader:", lite.LiteModel(path, accelerator="gpu").gpu_placement.summary())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_system_vulkan_env(), timeout=300)
    # Exit 0, not 134 (free(): invalid pointer at exit).
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert len(lines) == 7, out.stdout
    for gpu_line, auto_line in (lines[0:2], lines[2:4]):
        assert gpu_line.startswith("gpu: error: LiteRT's GPU accelerator cannot start: "), gpu_line
        # Dawn refuses Debian 12's lavapipe (and says why); a newer one it accepted would still
        # be refused here: a software device is not a GPU.
        assert (mesa_vulkan in gpu_line and "gave no device the engine accepts" in gpu_line
                or "only a software Vulkan device (llvmpipe" in gpu_line), gpu_line
        assert "allowed: a machine with a Vulkan device" in gpu_line
        assert "use_swiftshader()" in gpu_line
        assert auto_line == "auto: cpu 1 (1, 3)"
    assert lines[4] == "lavapipe loaded: False"
    assert lines[5] == "conv: 200.0"  # 3x3 ones over 4x4x2 ones: 4 x 8 + 8 x 12 + 4 x 18
    assert lines[6].startswith("swiftshader: whole graph (") and lines[6].endswith(" on the GPU")


def _gpu_check(path, env):
    out = subprocess.run([sys.executable, "-m", "keras_csp.lite.gpu", str(path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_the_gpu_check_runs_on_swiftshader_where_mesa_gives_no_device(artifacts, mesa_vulkan):
    result = _gpu_check(artifacts["int8"], _system_vulkan_env())
    assert result["started"] and result["whole"] and result["agrees"], result
    assert result["adapter"].startswith("SwiftShader")
    assert result["max_steps"]["probabilities"] <= 2
    assert result["note"].startswith(
        "on SwiftShader (software Vulkan: what the engine takes and computes, not its speed): the "
        "system's Vulkan gives the engine no device: no Vulkan device ("
    ), result["note"]
    assert mesa_vulkan in result["note"]
    # A driver named by VK_ICD_FILENAMES is the user's choice: no SwiftShader in its place.
    named = _gpu_check(artifacts["int8"], dict(_system_vulkan_env(), VK_ICD_FILENAMES=mesa_vulkan))
    assert named["started"] is False and "note" not in named, named
    assert named["reason"].startswith("LiteRT's GPU accelerator cannot start: ")
    assert mesa_vulkan in named["reason"] or "llvmpipe" in named["reason"]
