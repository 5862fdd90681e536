"""One epoch of training in-process: the files of a run, the Python API, and the bad cases."""

import json
import os

import numpy as np
import pytest

from keras_csp.data import synthetic_shapes
from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig
from keras_csp.train import fit_classifier, fit_detector
from keras_csp.train.checkpoint import list_checkpoints
from keras_csp.train.distribute import check_batch_size

TINY = dict(
    model="cspdarknet_tiny", input_size=32, train_size=64, val_size=24, batch_size=16, verbose=0,
    learning_rate=0.05,
)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run") / "out")
    result = fit_classifier(
        epochs=1,
        output_dir=out,
        augment="classification",
        aug_randaugment_ops=0,
        aug_mix="mixup",
        **TINY,
    )
    return out, result


def test_one_epoch_writes_every_file(first_run):
    import keras_csp

    out, result = first_run
    s = result.summary
    for key in ("val_accuracy", "val_top5_accuracy", "params", "flops", "wall_time_seconds",
                "train_images_per_second", "skipped_images"):
        assert key in s
    assert 0.0 <= s["val_accuracy"] <= s["val_top5_accuracy"] <= 1.0
    assert s["params"] > 1000 and s["flops"] > 1e5 and s["wall_time_seconds"] > 0
    assert s["classes"] == ["circle", "ring", "triangle", "square", "star", "cross"]
    assert json.load(open(os.path.join(out, "summary.json")))["val_accuracy"] == s["val_accuracy"]
    assert [(e, st) for e, st, _ in list_checkpoints(out)] == [(1, 0)]
    with open(os.path.join(out, "learning_curves.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    events = [f for d in ("train", "validation") for f in os.listdir(os.path.join(out, "logs", d))]
    assert len(events) == 2 and all(f.startswith("events.out.tfevents") for f in events)
    assert "model: cspdarknet_tiny" in open(os.path.join(out, "config.yaml")).read()
    # The saved model: float32, softmax, same predictions as the returned one.
    model = keras_csp.load_model(os.path.join(out, "model.keras"))
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    p = model.predict(x, verbose=0)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p, result.model.predict(x, verbose=0), atol=1e-6)


def test_existing_run_is_not_overwritten_and_resume_checks_the_model(first_run):
    out, _ = first_run
    snapshot = {
        name: open(os.path.join(out, name), "rb").read()
        for name in ("summary.json", "model.keras", "config.yaml")
    }
    with pytest.raises(ValueError, match="already holds a run .*checkpoints/.*resume=True"):
        fit_classifier(epochs=1, output_dir=out, **TINY)
    with pytest.raises(ValueError, match="belongs to another model") as e:
        fit_classifier(epochs=2, output_dir=out, resume=True, fusion="none", **TINY)
    assert "fusion='full'" in str(e.value) and "fusion='none'" in str(e.value)
    for name, content in snapshot.items():
        assert open(os.path.join(out, name), "rb").read() == content
    assert [(e, st) for e, st, _ in list_checkpoints(out)] == [(1, 0)]
    # The same model resumes: one more epoch, the history continues.
    result = fit_classifier(epochs=2, output_dir=out, resume=True, augment="none", **TINY)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert [(e, st) for e, st, _ in list_checkpoints(out)] == [(1, 0), (2, 0)]


def test_overwrite(tmp_path):
    out = str(tmp_path / "out")
    os.makedirs(os.path.join(out, "checkpoints"))
    open(os.path.join(out, "checkpoints", "ckpt-0005-000000.npz"), "wb").write(b"old")
    open(os.path.join(out, "notes.txt"), "w").write("mine")
    data = synthetic_shapes(num_train=32, num_validation=16, image_size=32)
    result = fit_classifier(
        data=data, epochs=1, output_dir=out, overwrite=True, augment="none",
        **{k: v for k, v in TINY.items() if k not in ("train_size", "val_size")},
    )
    assert [(e, st) for e, st, _ in list_checkpoints(out)] == [(1, 0)]
    assert open(os.path.join(out, "notes.txt")).read() == "mine"  # not ours: kept
    assert result.summary["epochs"] == 1


def test_bad_input(tmp_path):
    out = str(tmp_path / "x")
    with pytest.raises(ValueError, match="unknown option.*'epoch'.*allowed: task"):
        fit_classifier(epoch=3, output_dir=out)
    with pytest.raises(ValueError, match="model='resnet9000' is not a known architecture"):
        fit_classifier(model="resnet9000", output_dir=out, train_size=32, val_size=8, input_size=32)
    with pytest.raises(ValueError, match="fewer than one batch"):
        fit_classifier(output_dir=out, **{**TINY, "train_size": 8})
    with pytest.raises(ValueError, match="detection data"):
        fit_classifier(data=synthetic_shapes("detection", num_train=8), output_dir=out, verbose=0)
    with pytest.raises(ValueError, match="augment='detection' is the detection preset"):
        fit_classifier(output_dir=out, augment="detection", **TINY)
    with pytest.raises(ValueError, match="no validation split"):
        fit_classifier(output_dir=out, **{**TINY, "val_size": 0})
    assert not os.path.exists(os.path.join(out, "checkpoints"))

    class TwoReplicas:
        num_replicas_in_sync = 2

    assert check_batch_size(16, TwoReplicas()) == 8
    with pytest.raises(ValueError, match="batch_size=15 is not divisible by the 2 replicas"):
        check_batch_size(15, TwoReplicas())


# A backbone with the levels up to P5 that CSPDetector needs, small enough for a test.
DETECTION_BACKBONE = ModelConfig(
    stem=StemConfig(filters=8, kernel_size=3, strides=2),
    stages=StagesConfig(filters=(16, 16, 32, 32), depth=(1, 1, 1, 1), strides=2, block_type="dark",
                        bottle_ratio=1.0, down_growth=True),
    default_size=64,
)


def test_one_epoch_detection_reports_coco_map(tmp_path):
    data = synthetic_shapes("detection", num_train=16, num_validation=8, image_size=64, max_objects=2)
    result = fit_detector(
        data=data,
        model=DETECTION_BACKBONE,
        neck="fpn",
        attention="none",
        epochs=1,
        batch_size=8,
        optimizer="adamw",
        output_dir=str(tmp_path / "det"),
        verbose=0,
        aug_mosaic=True,
    )
    s = result.summary
    assert s["task"] == "detection" and "val_mAP" in s and "val_mAP50" in s
    for key in ("val_mAP", "val_mAP50"):
        assert s[key] is None or 0.0 <= s[key] <= 1.0
    assert np.isfinite(s["history"][0]["loss"])
    assert os.path.exists(tmp_path / "det" / "model.keras")


def test_mixed_precision_xla_and_adamw(tmp_path):
    result = fit_classifier(
        epochs=1,
        steps_per_epoch=2,
        output_dir=str(tmp_path / "mp"),
        mixed_precision="bfloat16",
        jit_compile=True,
        optimizer="adamw",
        augment="none",
        save_model=False,
        **TINY,
    )
    assert np.isfinite(result.history[0]["loss"])
    assert result.model.dtype_policy.name == "float32"  # the returned model is float32
    assert not os.path.exists(tmp_path / "mp" / "model.keras")


def test_coco_map_of_perfect_and_shifted_predictions():
    import tensorflow as tf

    from keras_csp.train.tasks import coco_map

    data = synthetic_shapes("detection", num_train=8, num_validation=0, image_size=64, max_objects=3)
    batches = list(data.train.as_dataset(4, shuffle=False))

    def predictions(shift):
        for b in batches:
            truth = b["bounding_boxes"]
            valid = truth["classes"] >= 0
            boxes = tf.where(valid[..., None], truth["boxes"] + shift, -1.0)
            yield truth, {
                "boxes": boxes,
                "classes": truth["classes"],
                "confidence": tf.where(valid, 1.0, -1.0),
            }

    perfect = coco_map(predictions(0.0), "xyxy")
    assert perfect["val_mAP"] == pytest.approx(1.0, abs=1e-3)
    assert perfect["val_mAP50"] == pytest.approx(1.0, abs=1e-3)
    shifted = coco_map(predictions(4.0), "xyxy")
    assert shifted["val_mAP"] < 0.9


def test_unreadable_images_are_skipped_and_reported(tmp_path):
    from PIL import Image

    from keras_csp.data import image_folder

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        os.makedirs(tmp_path / "imgs" / c)
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                tmp_path / "imgs" / c / f"{i}.png"
            )
    (tmp_path / "imgs" / "a" / "bad.jpg").write_bytes(b"garbage, not a JPEG")
    data = image_folder(str(tmp_path / "imgs"), image_size=32, validation_split=0.25)
    result = fit_classifier(
        data=data, model="cspdarknet_tiny", epochs=1, batch_size=4, augment="none",
        output_dir=str(tmp_path / "run"), verbose=0,
    )
    skipped = result.summary["skipped_images"]
    assert skipped["count"] == 1 and skipped["files"][0].endswith("bad.jpg")
    why = "UnidentifiedImageError: not an image file Pillow can identify"
    assert skipped["reasons"] == {skipped["files"][0]: why}
    assert json.load(open(tmp_path / "run" / "summary.json"))["skipped_images"]["count"] == 1
