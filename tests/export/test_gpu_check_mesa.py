"""The export report's GPU check where the system's Vulkan is Mesa's drivers and no GPU (issue 24,
item 9): it runs on SwiftShader and says so, instead of stopping at "no Vulkan device"."""

import pytest

from keras_csp import export


@pytest.fixture
def system_vulkan(monkeypatch, mesa_vulkan, gpu_worker_restarts):
    """The accelerator's process restarted with no variable naming a Vulkan driver (the loader
    finds the installed ones: Mesa's), then restarted back."""
    for variable in ("VK_ICD_FILENAMES", "VK_DRIVER_FILES", "VK_ADD_DRIVER_FILES"):
        monkeypatch.delenv(variable, raising=False)
    return mesa_vulkan


def test_the_report_checks_on_swiftshader_and_says_why(tiny_model, tmp_path, system_vulkan):
    report = export.tflite(tiny_model, tmp_path / "m.tflite", verbose=False)
    check = report.gpu_accelerator
    assert check["started"] and "error" not in check, check
    assert check["whole"] and check["agrees"] and check["adapter"].startswith("SwiftShader")
    why = ("on SwiftShader (software Vulkan: what the engine takes and computes, not its speed): "
           "the system's Vulkan gives the engine no device: no Vulkan device (")
    assert check["note"].startswith(why) and system_vulkan in check["note"], check["note"]
    summary = report.summary()
    assert "GPU delegate: compatible (the accelerator run)" in summary
    assert f"GPU accelerator (LiteRT ML Drift, {check['adapter']}): whole graph (" in summary
    assert why in summary
