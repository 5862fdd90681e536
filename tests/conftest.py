import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow turns oneDNN on by default only on x86 CPUs with AVX-512/AVX-VNNI; the sessions'
# and CI's CPU changes between them. The suite runs on oneDNN everywhere (GroupedConv2D's fast
# path, the fused kernels optimize_for_inference guards against); the path without it is
# tested in a subprocess (tests/layers/test_grouped_conv.py).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import keras  # noqa: E402
import pytest  # noqa: E402

from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig  # noqa: E402

# A two-stage CSP network small enough to train a step in well under a second.
TINY_CONFIG = ModelConfig(
    stem=StemConfig(filters=16, kernel_size=3, strides=2),
    stages=StagesConfig(filters=(32, 64), depth=(1, 2), strides=2, bottle_ratio=0.5),
    default_size=32,
)


@pytest.fixture
def tiny_config():
    return TINY_CONFIG


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    yield
    keras.backend.clear_session()


# Mesa's lavapipe driver manifest (Debian's mesa-vulkan-drivers, which .ci/run installs).
MESA_LAVAPIPE_ICD = "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"


@pytest.fixture
def mesa_vulkan():
    """The Mesa situation: the system's Vulkan loader and Mesa's drivers installed (no GPU) and
    SwiftShader there. Skipped where missing, except in CI (KERAS_CSP_REQUIRE_GPU_ACCELERATOR=1).
    """
    from keras_csp.lite import gpu as lite_gpu

    missing = [p for p in (MESA_LAVAPIPE_ICD, lite_gpu.SWIFTSHADER_ICD) if not os.path.isfile(p)]
    # The system's loader: not chromium's, which use_swiftshader() loads where there is none.
    vulkan = lite_gpu.accelerator.vulkan
    system_loader = vulkan.bundled_loader is None and vulkan._loader_loadable()
    if missing or not system_loader:
        reason = (f"needs libvulkan1, mesa-vulkan-drivers and chromium (missing: "
                  f"{', '.join(missing) or 'libvulkan.so.1'})")
        if os.environ.get("KERAS_CSP_REQUIRE_GPU_ACCELERATOR") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return MESA_LAVAPIPE_ICD


@pytest.fixture(scope="session")
def gpu_accelerator():
    """LiteRT's GPU accelerator for this test process: SwiftShader (Debian's chromium, which
    .ci/run installs) where the system's Vulkan gives the engine no device (no driver, or only
    Mesa's, which Dawn refuses: asked of a child process, so none is loaded here). Without a
    device the test is skipped, except where KERAS_CSP_REQUIRE_GPU_ACCELERATOR=1 (CI) makes that
    a failure.
    """
    from keras_csp.lite import gpu as lite_gpu

    why = lite_gpu.accelerator.unusable_vulkan()
    if why is not None:
        if os.path.isfile(lite_gpu.SWIFTSHADER_ICD):
            print(f"GPU accelerator tests on SwiftShader: the system's Vulkan: {why}")
            lite_gpu.use_swiftshader()  # before this process's first GPU model: Dawn looks once
        else:
            reason = (f"{why}, and no SwiftShader ({lite_gpu.SWIFTSHADER_ICD}): "
                      "apt-get install chromium")
            if os.environ.get("KERAS_CSP_REQUIRE_GPU_ACCELERATOR") == "1":
                pytest.fail(reason)
            pytest.skip(reason)
    return lite_gpu
