"""Issue 23's recipe switches, each off by default: EMA of the weights, mosaic closed for the last
epochs, HSV jitter; and a detector trained with all of them and scale n (tiny sizes)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_csp.data import augmenter, synthetic_shapes
from keras_csp.data.augment import hsv_jitter
from keras_csp.models.config import ModelConfig, StagesConfig, StemConfig
from keras_csp.train import fit_detector
from keras_csp.train.config import TrainConfig
from keras_csp.train.inputs import training_batches
from keras_csp.train.optimizer import ema_weights, keep_ema_weights, make_optimizer

BACKBONE = ModelConfig(
    stem=StemConfig(filters=8, kernel_size=3, strides=2),
    stages=StagesConfig(filters=(16, 16, 32, 32), depth=(1, 1, 1, 1), strides=2, block_type="dark",
                        bottle_ratio=1.0, down_growth=True),
    default_size=64,
)


def test_defaults_are_unchanged_and_bad_values_are_named():
    cfg = TrainConfig(task="detection")
    assert (cfg.ema, cfg.close_mosaic, cfg.aug_hsv) == (False, 0, None)
    assert make_optimizer(cfg, 10).use_ema is False
    with pytest.raises(ValueError, match=r"close_mosaic=-1 is not allowed; allowed: an integer"):
        TrainConfig(task="detection", close_mosaic=-1)
    with pytest.raises(ValueError, match=r"ema_momentum=1.0 is not allowed; allowed: 0 <= x < 1"):
        TrainConfig(ema=True, ema_momentum=1.0)
    with pytest.raises(ValueError, match=r"option\(s\) hsv do not exist for augment='classif"):
        augmenter("classification", 32, hsv=True)


def test_ema_weights_are_the_optimizers_average_inside_and_at_the_end():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = make_optimizer(TrainConfig(ema=True, ema_momentum=0.5, warmup_epochs=0), 10)
    optimizer.build(model.trainable_variables)
    for step in range(3):
        grads = [tf.ones_like(v) * (step + 1) for v in model.trainable_variables]
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    raw = [v.numpy() for v in model.trainable_variables]
    average = [v.numpy() for v in optimizer._model_variables_moving_average]
    assert not np.allclose(raw[0], average[0])  # momentum 0.5 lags behind the steps
    with ema_weights(optimizer, model.trainable_variables):
        np.testing.assert_allclose(model.trainable_variables[0].numpy(), average[0])
    np.testing.assert_allclose(model.trainable_variables[0].numpy(), raw[0])  # given back
    keep_ema_weights(optimizer, model.trainable_variables)
    np.testing.assert_allclose(model.trainable_variables[0].numpy(), average[0])


def test_hsv_jitter_changes_colours_within_range_and_is_off_with_zero_gains():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (4, 16, 16, 3)), tf.float32)
    out = hsv_jitter(images, seed=1).numpy()
    assert out.shape == images.shape and out.min() >= 0.0 and out.max() <= 255.0 + 1e-3
    assert np.abs(out - images.numpy()).mean() > 1.0
    same = hsv_jitter(images, gains=(0.0, 0.0, 0.0)).numpy()
    np.testing.assert_allclose(same, images.numpy(), atol=0.05)


def test_close_mosaic_switches_the_augmenter_for_the_last_epochs():
    data = synthetic_shapes("detection", num_train=8, num_validation=4, image_size=64,
                            max_objects=2, max_boxes=4)
    real = augmenter("detection", 64, bounding_box_format="xyxy", max_boxes=4, seed=0,
                     mosaic=True, hsv=True)
    traced = []

    def tagged(fn, tag):
        def call(batch):
            traced.append(tag)  # runs when tf.data traces the stream's map function
            return fn(batch)
        return call

    augment = tagged(real, "mosaic")
    augment.without_mosaic = tagged(real.without_mosaic, "closed")
    cfg = TrainConfig(task="detection", epochs=3, batch_size=4, close_mosaic=1)
    batches = training_batches(tf.distribute.get_strategy(), data, cfg, 4, 2, 0, 0, augment)
    taken = [next(batches) for _ in range(4)]  # epochs 1 and 2: 2 steps each
    assert "closed" not in traced and "mosaic" in traced
    taken += list(batches)  # epoch 3
    assert len(taken) == 6 and "closed" in traced
    assert taken[-1]["images"].shape == (4, 64, 64, 3)


def test_a_detector_trains_with_scale_n_ema_hsv_and_closed_mosaic(tmp_path):
    data = synthetic_shapes("detection", num_train=16, num_validation=8, image_size=64,
                            max_objects=2)
    result = fit_detector(
        data=data, model=BACKBONE, neck="fpn", attention="none", epochs=2, batch_size=8,
        output_dir=str(tmp_path / "det"), verbose=0, scale="n", neck_filters=(8, 16, 16),
        head_filters=(8, 16, 16), ema=True, aug_mosaic=True, close_mosaic=1, aug_hsv=True,
        save_model=False,
    )
    s = result.summary
    assert [np.isfinite(h["loss"]) for h in s["history"]] == [True, True]
    assert s["flops"] > 0 and result.model.scale == "n"
    assert result.model.get_layer("backbone.stem.conv1.conv").filters == 8  # 8 x 0.75, at least 8
    written = json.loads(open(os.path.join(tmp_path, "det", "summary.json")).read())
    assert written["flops"] == s["flops"] and written["config"]["ema"] is True
