"""`.tflite` files and images for the runtime tests, made once per session in the main venv."""

import keras
import numpy as np
import pytest
from PIL import Image

import keras_csp
from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig

SIZE = 32
TINY = ModelConfig(
    stem=StemConfig(filters=16, kernel_size=3, strides=2),
    stages=StagesConfig(filters=(32, 64), depth=(1, 2), strides=2, bottle_ratio=0.5),
    default_size=SIZE,
)
CLASSES = ("ant", "bee", "cat")


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
    return path


def _detector():
    """A minimal model with the detector contract (decoded boxes, scores, classes)."""
    images = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(4, 3, strides=4, name="conv")(images)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    corners = keras.layers.Dense(8, activation="sigmoid", name="corners")(x)
    boxes = keras.layers.Rescaling(SIZE, name="to_pixels")(
        keras.layers.Reshape((2, 4), name="boxes")(corners)
    )
    scores = keras.layers.Dense(2, activation="sigmoid", name="scores")(x)
    classes = keras.layers.Dense(2, activation="relu", name="classes")(x)
    return keras.Model(images, {"boxes": boxes, "scores": scores, "classes": classes})


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """{"float", "int8", "detector": .tflite paths, "images": [png], "folder": class folder}."""
    from keras_csp import export

    root = tmp_path_factory.mktemp("lite")
    rng = np.random.default_rng(0)
    model = keras_csp.build_model(TINY, input_shape=(SIZE, SIZE, 3), classes=len(CLASSES))
    calibration = [rng.integers(0, 256, (4, SIZE, SIZE, 3), dtype=np.uint8)]
    export.tflite(model, root / "float.tflite", verbose=False)
    export.tflite(model, root / "int8.tflite", quantize="int8", io="uint8",
                  representative_data=calibration, verbose=False)
    export.tflite(_detector(), root / "detector.tflite", batch=1, verbose=False)
    images = [_png(root / "images" / f"{i}.png", rng.integers(0, 256, (SIZE, SIZE, 3)))
              for i in range(3)]
    for name in CLASSES:
        for i in range(2):
            _png(root / "folder" / name / f"{i}.png", rng.integers(0, 256, (SIZE, SIZE, 3)))
    return {
        "root": root,
        "float": root / "float.tflite",
        "int8": root / "int8.tflite",
        "detector": root / "detector.tflite",
        "images": images,
        "folder": root / "folder",
        "keras_model": model,
    }
