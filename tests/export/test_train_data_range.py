"""Fine-tuning images (QAT, pruning) outside 0..255 are refused with the images named, and images
that all lie within 0..1 get a warning, on what QAT and pruning run: `optimize.finetune` with a
one-layer model (fine-tuning the real twin takes ~30 s). Calibration images:
tests/export/test_calibration_bad_input.py. (After test_optimize.py: tfmot is imported here.)"""

import warnings

import numpy as np
import pytest
from export_helpers import SIZE


def _finetune(data):
    import tf_keras

    from keras_csp.export import optimize
    from keras_csp.export.serving import CLASSIFIER

    model = tf_keras.Sequential([
        tf_keras.layers.GlobalAveragePooling2D(input_shape=(SIZE, SIZE, 3)),
        tf_keras.layers.Dense(2, activation="softmax"),
    ])
    return optimize.finetune(model, teacher=None, kind=CLASSIFIER, train_data=data,
                             input_size=(SIZE, SIZE))


def _batches(scale=1.0):
    rng = np.random.default_rng(5)
    return [(rng.uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32") * scale,
             np.array([0, 1, 0, 1])) for _ in range(2)]


@pytest.mark.parametrize("bad_batch, read", [(0, 4), (1, 8)])
def test_fine_tuning_pixels_outside_0_255_are_refused_and_named(bad_batch, read):
    data = _batches()
    data[bad_batch][0][3] *= 257.0  # one image scaled to 16 bits
    with pytest.raises(ValueError, match=rf"train_data=<list of 2 element\(s\)>: 1 of the first "
                                         rf"{read} image\(s\) read hold pixel values outside "
                                         rf"0..255 \(up to 65\d{{3}}\.\d\): image\(s\) {read - 1} "):
        _finetune(data)


def test_fine_tuning_images_within_0_1_get_a_warning_and_0_255_none():
    with pytest.warns(UserWarning, match=r"train_data=<list of 2 element\(s\)>: all 8 image\(s\) "
                                         r"read hold values within 0..1 .*look normalized"):
        _finetune(_batches(scale=1 / 255))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _finetune(_batches())
    assert not [w for w in caught if "look normalized" in str(w.message)]
