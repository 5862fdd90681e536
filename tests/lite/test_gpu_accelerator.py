"""LiteModel on LiteRT's GPU accelerator (SwiftShader here): whole graph, same outputs as the CPU,
ops it refuses named, and the errors where it cannot start or the name is wrong."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import SIZE

from keras_csp import lite
from keras_csp.lite import gpu as lite_gpu


def _images(count=3):
    return np.random.default_rng(5).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["float", "int8", "detector"])
def test_exports_run_whole_on_the_gpu_and_agree_with_the_cpu(artifacts, gpu_accelerator, name):
    cpu = lite.LiteModel(artifacts[name])
    gpu = lite.LiteModel(artifacts[name], accelerator="gpu")
    assert (cpu.accelerator, cpu.gpu_placement, gpu.accelerator) == ("cpu", None, "gpu")
    placement = gpu.gpu_placement
    assert placement.whole and placement.cpu_ops == 0 and placement.refused == []
    assert placement.ops == len([op for op in cpu.ops() if op != "DELEGATE"])
    assert placement.summary() == f"whole graph ({placement.ops} ops) on the GPU"
    assert placement.adapter  # the Vulkan device, as Dawn names it
    # Three images: the GPU runs the batch size it was compiled for, image by image.
    expected, got = cpu(_images()), gpu(_images())
    assert set(got) == set(expected)
    steps = lite_gpu._output_steps(cpu)
    for info in cpu.outputs:
        diff = np.max(np.abs(got[info.name] - expected[info.name]))
        if info.name in steps:  # the uint8 file: within two quantization steps of the output
            assert diff <= lite_gpu.INT8_STEPS * steps[info.name], (info.name, diff)
        else:  # see lite_gpu.FLOAT_TOLERANCE for the measurement behind the number
            scale = max(1.0, float(np.max(np.abs(expected[info.name]))))
            assert diff <= lite_gpu.FLOAT_TOLERANCE * scale, (info.name, diff)
    assert lite.LiteModel(artifacts[name], accelerator="auto").accelerator == "gpu"


def test_compare_reports_agreement(artifacts, gpu_accelerator):
    result = lite_gpu.compare(artifacts["int8"])
    assert result["started"] and result["whole"] and result["agrees"]
    assert set(result["max_steps"]) == {"probabilities"}
    assert result["max_steps"]["probabilities"] <= lite_gpu.INT8_STEPS


def test_ops_the_gpu_refuses_stay_on_the_cpu_and_are_named(tmp_path, gpu_accelerator):
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="images")])
    def serve(images):
        x = tf.nn.conv2d(images, tf.fill((1, 1, 3, 8), 0.01), 1, "SAME")
        return {"logits": tf.nn.conv2d(tf.nn.log_softmax(x), tf.fill((1, 1, 8, 4), 0.1), 1,
                                       "SAME")}

    holder = tf.Module()
    holder.serve = serve
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], holder
    )
    path = tmp_path / "log_softmax.tflite"
    path.write_bytes(converter.convert())
    model = lite.LiteModel(path, accelerator="gpu")
    placement = model.gpu_placement
    assert model.accelerator == "gpu" and not placement.whole
    assert placement.refused == ["LOG_SOFTMAX: Operation is not supported"]
    assert 1 <= placement.cpu_ops < placement.ops
    assert placement.summary().startswith(f"{placement.cpu_ops} of {placement.ops} ops left on "
                                          "the CPU: LOG_SOFTMAX: Operation is not supported")
    images = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(model(images)["logits"], lite.LiteModel(path)(images)["logits"],
                               rtol=1e-5, atol=1e-5)


def test_unknown_accelerator_lists_the_allowed_ones(artifacts):
    with pytest.raises(ValueError, match=r"^accelerator='tpu' does not exist; allowed: cpu, gpu, "
                                         r"auto\.$"):
        lite.LiteModel(artifacts["float"], accelerator="tpu")
    with pytest.raises(ValueError, match=r"accelerator='GPU' does not exist"):
        lite.LiteModel(artifacts["float"], accelerator="GPU")


def test_a_gpu_that_cannot_start_is_a_clear_error_and_auto_falls_back(artifacts):
    # A fresh process with a Vulkan driver manifest that does not exist (Dawn looks for Vulkan
    # once per process, so this cannot share the test process).
    code = textwrap.dedent(f"""
        import warnings
        import numpy as np
        from keras_csp import lite
        path = {str(artifacts["float"])!r}
        try:
            lite.LiteModel(path, accelerator="gpu")
            print("started")
        except lite.GpuUnavailableError as e:
            print("error:", e)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = lite.LiteModel(path, accelerator="auto")
        print("auto:", model.accelerator, len(caught), caught[0].message)
        print("runs:", model(np.zeros((1, {SIZE}, {SIZE}, 3), np.uint8))["probabilities"].shape)
    """)
    env = dict(os.environ, VK_ICD_FILENAMES="/nonexistent/vk_icd.json")
    env.pop("VK_DRIVER_FILES", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stderr[-2000:]
    # "no Vulkan loader (libvulkan.so.1 ...)" without one, "no Vulkan device" with one.
    assert lines[0].startswith("error: LiteRT's GPU accelerator cannot start: no Vulkan "), lines
    assert "allowed: a machine with a Vulkan device" in lines[0]
    assert "use_swiftshader()" in lines[0] and "VK_ICD_FILENAMES=" in lines[0]
    assert lines[1].startswith("auto: cpu 1 accelerator='auto': running on the CPU: LiteRT's GPU "
                               "accelerator cannot start: no Vulkan ")
    assert lines[2] == "runs: (1, 3)"


def test_use_swiftshader_refuses_a_missing_driver(tmp_path):
    with pytest.raises(lite.GpuUnavailableError, match=r"icd='.*nothing.json' does not exist; "
                                                       r"allowed: SwiftShader's Vulkan driver"):
        lite.use_swiftshader(tmp_path / "nothing.json")
