"""Calibration inputs: NaN/Inf refused with the images named, unreadable files skipped and
reported (as training does), refusal only when no image is left. Fine-tuning inputs (QAT, pruning):
tests/export/test_optimize.py, which imports tfmot anyway (once tfmot is imported, a later
`import keras_cv` picks Keras 2, so this file must not be the first to import it)."""

import numpy as np
import pytest
from export_helpers import SIZE, write_png
from PIL import Image

from keras_csp import export


def _images(count, bad=(), value=np.nan):
    rng = np.random.default_rng(4)
    images = [rng.uniform(0, 255, (SIZE, SIZE, 3)).astype("float32") for _ in range(count)]
    for i in bad:
        images[i][3, 5, 1] = value  # one pixel is enough to ruin the calibrated ranges
    return images


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_calibration_images_are_refused_and_named(tiny_model, tmp_path, value):
    # Without the check NaN gives a model that predicts one class; Inf kills the process.
    with pytest.raises(ValueError, match=r"representative_data=<list of 8 element\(s\)>: 2 of the 8 "
                                         r"image\(s\) it yields hold NaN or Inf values: image\(s\) "
                                         r"2, 5 \(counted from 0"):
        export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                      representative_data=_images(8, bad=(2, 5), value=value), verbose=False)
    # In batches: images are counted across batches; only the `calibration_steps` used count.
    batched = [np.stack(_images(4)), np.stack(_images(4, bad=(1, 3)))]
    with pytest.raises(ValueError, match=r"1 of the first 6 image\(s\) read hold NaN or Inf "
                                         r"values: image\(s\) 5 "):
        export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                      representative_data=batched, calibration_steps=6, verbose=False)
    assert list(tmp_path.iterdir()) == []


def _calibration_folder(root, good):
    rng = np.random.default_rng(6)
    for i in range(good):
        write_png(root / f"{i}.png", rng.integers(0, 256, (SIZE, SIZE, 3)))
    root.mkdir(parents=True, exist_ok=True)
    (root / "notes.png").write_text("not an image")
    (root / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(30))
    return root


def test_unreadable_calibration_files_are_skipped_and_reported(tiny_model, tmp_path):
    folder = _calibration_folder(tmp_path / "calib", good=3)
    Image.new("RGBA", (SIZE, SIZE), (10, 20, 30, 0)).save(folder / "rgba.png")
    Image.new("L", (SIZE, SIZE), 77).save(folder / "grey.png")
    report = export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                           representative_data=folder, verbose=False)
    assert "calibrated on 5 image(s)" in report.notes
    why = "(UnidentifiedImageError: not an image file Pillow can identify)"
    assert (f"calibration: 2 unreadable image(s) skipped: {folder / 'cut.jpg'} {why}, "
            f"{folder / 'notes.png'} {why}") in report.notes
    assert (tmp_path / "m.tflite").is_file()


def test_a_folder_with_no_readable_image_is_refused(tiny_model, tmp_path):
    folder = _calibration_folder(tmp_path / "calib", good=0)
    with pytest.raises(ValueError, match=r"representative_data='.*calib' yielded no images \(2 "
                                         r"unreadable image\(s\) skipped: .*cut.jpg \(.*\), .*notes.png \(.*\)\)"):
        export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                      representative_data=folder, verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib"]


@pytest.mark.parametrize("scale, shown", [(257.0, r"65\d{3}\.\d"), (None, r"3e\+38")])
def test_calibration_pixels_outside_0_255_are_refused_and_named(tiny_model, tmp_path, scale,
                                                                shown):
    # x257 (8-bit to 16-bit) or 3e38 pixels calibrate a model that outputs a constant.
    images = _images(6)
    for i in (1, 4):
        if scale is None:
            images[i][0, 0, 0] = 3e38
        else:
            images[i] = images[i] * scale
    with pytest.raises(ValueError, match=rf"representative_data=<list of 6 element\(s\)>: 2 of "
                                         rf"the 6 image\(s\) it yields hold pixel values outside "
                                         rf"0..255 \(up to {shown}\): image\(s\) 1, 4 \(counted "
                                         r"from 0.*; allowed: raw pixel values 0..255"):
        export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                      representative_data=images, verbose=False)
    assert list(tmp_path.iterdir()) == []


def test_preprocessed_calibration_images_are_refused_with_a_hint(tiny_model, tmp_path):
    from keras_csp.preprocessing import preprocess_input

    normalized = [np.asarray(preprocess_input(image)) for image in _images(4)]
    message = (r"4 of the 4 image\(s\) it yields hold pixel values outside 0..255 \(down to "
               r"-2.1\d*\).*normalized.*preprocess_input")
    with pytest.raises(ValueError, match=message):
        export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                      representative_data=normalized, verbose=False)
    assert list(tmp_path.iterdir()) == []


def test_calibration_images_within_0_1_get_a_warning(tiny_model, tmp_path):
    scaled = [image / 255.0 for image in _images(4)]  # what convert_image_dtype gives
    with pytest.warns(UserWarning, match=r"representative_data=<list of 4 element\(s\)>: all 4 "
                                         r"image\(s\) read hold values within 0..1 .*look "
                                         r"normalized.*takes raw pixel values 0..255"):
        export.tflite(tiny_model, tmp_path / "m.tflite", quantize="int8",
                      representative_data=scaled, calibration_steps=4, verbose=False)
    assert (tmp_path / "m.tflite").is_file()  # a warning: the export goes on


def test_ordinary_calibration_images_get_no_warning(tiny_model, tmp_path):
    import warnings

    from keras_csp.export.quantization import QuantizationOptions, calibration_samples

    images = _images(3) + [np.full((SIZE, SIZE, 3), 255, np.uint8), np.zeros((SIZE, SIZE, 3))]
    options = QuantizationOptions(quantize="int8", representative_data=images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        samples, notes = calibration_samples(options, (SIZE, SIZE))
    assert len(samples) == 5 and notes == ["calibrated on 5 image(s)"]


def test_float_rounding_around_0_and_255_is_no_error():
    # A float resize or blend of 0..255 images lands a hair outside (255.00002, -1e-5).
    from keras_csp.export.quantization import QuantizationOptions, calibration_samples

    images = _images(2)
    images[0][0, 0] = [255.00002, -1e-5, 255.4]
    options = QuantizationOptions(quantize="int8", representative_data=images)
    samples, _ = calibration_samples(options, (SIZE, SIZE))
    assert len(samples) == 2
