import numpy as np
import pytest
from export_helpers import SIZE, TINY, tiny_classifier, write_png


@pytest.fixture(scope="module")
def tiny_model():
    return tiny_classifier(TINY)


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(1).integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def calibration():
    rng = np.random.default_rng(2)
    return [rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8) for _ in range(4)]


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    """Three classes of two 32x32 PNGs each, in class subfolders."""
    root = tmp_path_factory.mktemp("classes")
    rng = np.random.default_rng(3)
    for name in ("ant", "bee", "cat"):
        for i in range(2):
            write_png(root / name / f"{i}.png", rng.integers(0, 256, (SIZE, SIZE, 3)))
    return root


@pytest.fixture
def gpu_worker_restarts():
    """Restarts the export report's accelerator process now and after the test: a new one takes
    the Vulkan settings (environment variables) of the moment it starts."""
    from keras_csp.export import gpu

    def restart():
        if gpu._worker is not None:
            gpu._worker.kill()
            gpu._worker.wait()
            gpu._worker = None

    restart()
    yield
    restart()
