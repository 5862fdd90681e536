"""keras_csp.explore: what the notebooks compute (small inputs; the notebooks themselves run in
tests/notebooks)."""

import os
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_csp  # noqa: E402
from keras_csp import explore  # noqa: E402


def test_gamma_grid_and_clamp_follow_the_widgets_range():
    grid = explore.gamma_grid()
    assert grid[0] == 0.05 and grid[-1] == 0.95 and len(grid) == 19
    assert explore.gamma_grid(0.25, 0.25, 0.75) == (0.25, 0.5, 0.75)
    assert explore.clamp_gamma(1.7) == 0.95 and explore.clamp_gamma(-1) == 0.05
    assert explore.clamp_gamma(0.123) == 0.1 and explore.clamp_gamma(0.5) == 0.5
    with pytest.raises(ValueError, match="allowed: 0 < low <= high < 1"):
        explore.gamma_grid(0.1, 0.0, 1.0)
    with pytest.raises(ValueError, match="family='VGG' is not allowed"):
        explore.check_family("VGG")


def test_paper_points_are_table_1_as_the_readme_quotes_it():
    t1 = explore.paper_points("PeleeNet")
    assert len(t1) == 9 and {p.table for p in t1} == {"Table 1"}
    ratios = {(p.fusion, p.gamma): round(p.flops_ratio, 3) for p in t1}
    # README.md's bracketed paper numbers (FLOPs as a fraction of PeleeNet's 1.017 BFLOPs).
    assert ratios == {
        ("full", 0.25): 0.970, ("full", 0.5): 0.873, ("full", 0.75): 0.787,
        ("last", 0.25): 0.887, ("last", 0.5): 0.791, ("last", 0.75): 0.704,
        ("first", 0.25): 0.847, ("first", 0.5): 0.742, ("first", 0.75): 0.638,
    }
    # CSPPeleeNet at γ=0.5: 0.888 BFLOPs, 70.9 % (the paper's headline row).
    best = next(p for p in t1 if p.fusion == "full" and p.gamma == 0.5)
    assert (best.bflops, best.top1) == (0.888, 70.9)
    (resnext,) = explore.paper_points("ResNeXt")
    assert resnext.table == "Table 3" and round(resnext.flops_ratio, 2) == 0.78
    assert explore.paper_points("Darknet") == []


def test_profile_cache_matches_keras_csp_profile_and_answers_from_the_cache():
    cache = explore.ProfileCache(input_size=96)
    point = cache.get("PeleeNet", 0.5, "last")
    expected = keras_csp.profile("csppeleenet", (96, 96, 3), part_ratio=0.5, fusion="last")
    assert point.ok and (point.params, point.flops, point.activation_bytes) == (
        expected.params, expected.flops, expected.activation_bytes
    )
    assert [s["name"] for s in point.stages] == [s.name for s in expected.stages]
    start = time.perf_counter()
    again = cache.get("PeleeNet", 0.50000001, "last")  # the same slider position
    assert again is point and time.perf_counter() - start < 0.05
    assert cache.cached("PeleeNet", 0.5, "last") and not cache.cached("PeleeNet", 0.5, "full")
    base = cache.baseline("PeleeNet")
    assert base.model == "peleenet" and base.params == keras_csp.profile(
        "peleenet", (96, 96, 3)
    ).params
    assert len(cache) == 2


def test_a_gamma_that_empties_a_path_is_a_cached_message_not_an_exception():
    cache = explore.ProfileCache()
    bad = cache.get("ResNeXt", 0.05, "full")  # 256 channels, groups of 32: no bypass channel
    assert not bad.ok and "part_ratio=0.05" in bad.error and bad.params is None
    assert cache.get("ResNeXt", 0.05, "full") is bad
    assert cache.latency("ResNeXt", 0.05, "full") is None
    html = explore.profile_html(bad, bad)
    assert 'class="csp-message"' in html and "gives no model" in html and "<td" not in html
    with pytest.raises(ValueError, match="fusion='middle' is not allowed"):
        cache.get("ResNeXt", 0.5, "middle")


def _result(params, flops, fusion="full", gamma=0.5, error=None):
    name = "csppeleenet" if fusion != "none" else "peleenet"
    if error is not None:
        return explore.ProfileResult("PeleeNet", name, gamma, fusion, 224, error=error)
    return explore.ProfileResult(
        "PeleeNet", name, gamma, fusion, 224,
        params=params, flops=flops, activation_bytes=flops // 10,
        stages=[{"name": "stem", "flops": flops // 4, "activation_bytes": 100, "params": 1,
                 "output_shape": ()},
                {"name": "features.2", "flops": 3 * flops // 4, "activation_bytes": 50,
                 "params": 1, "output_shape": ()}],
    )


def test_profile_html_shows_numbers_with_stable_classes():
    point, base = _result(2_643_656, 880_642_048), _result(2_802_248, 1_015_515_136, "none")
    lat = explore.LatencyResult("csppeleenet", 224, 3, 12.34, 11.0, [12.34])
    html = explore.profile_html(point, base, latency=lat)
    assert '<td class="csp-params">2,643,656</td>' in html
    assert '<td class="csp-params-baseline">2,802,248</td>' in html
    assert '<td class="csp-flops">0.881</td>' in html and "0.867" in html  # ratio
    assert '<td class="csp-latency">12.3</td>' in html
    assert '<td class="csp-latency-baseline">not measured</td>' in html


class _FakeCache:
    """What plot_sweep reads, without building models."""

    def __init__(self):
        self.points = {(g, f): _result(1000, int(1e9 * (1 - g * {"full": 0.3, "first": 0.5,
                                                                   "last": 0.4}[f])), f, g)
                       for g in (0.25, 0.5, 0.75) for f in explore.FUSIONS}
        self.points[(0.75, "first")] = _result(None, None, "first", 0.75, error="empty")

    def baseline(self, family):
        return _result(2000, int(1e9), "none", None)

    def get(self, family, gamma, fusion):
        return self.points[(gamma, fusion)]

    def sweep(self, family, gammas, fusions=explore.FUSIONS, progress=None):
        return {f: [self.points[(g, f)] for g in gammas] for f in fusions}

    def cached_latency(self, family, gamma, fusion):
        if (gamma, fusion) == (0.5, "full"):
            return explore.LatencyResult("m", 224, 1, 5.0, 5.0, [5.0])
        return None


def test_plot_sweep_draws_fusions_baseline_paper_points_and_latency():
    fig = explore.plot_sweep(_FakeCache(), "PeleeNet", (0.25, 0.5, 0.75), current=(0.5, "last"))
    ax_flops, ax_lat = fig.axes
    labels = [t.get_text() for t in ax_flops.get_legend().get_texts()]
    assert labels[:3] == ["fusion full", "fusion first", "fusion last"]
    assert "peleenet (no CSP)" in labels and "selected" in labels
    assert any(label.startswith("paper Table 1") for label in labels)
    first = next(line for line in ax_flops.get_lines() if line.get_label() == "fusion first")
    assert list(first.get_xdata()) == [0.25, 0.5]  # the empty point is left out
    assert [line.get_label() for line in ax_lat.get_lines()] == ["fusion full"]
    png = explore.figure_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_stages_takes_profiles_and_profile_results(tiny_config):
    model = keras_csp.build_model(tiny_config, input_shape=(32, 32, 3), classes=3)
    real = keras_csp.profile(model)
    fig = explore.plot_stages({"full": real, "none": _result(1, 1000, "none")}, title="t")
    names = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert names[: len(real.stages)] == [s.name for s in real.stages]
    assert "features.2" in names


def test_one_timing_loop_counts_warmup_calls_and_summarizes():
    from keras_csp import timing

    calls = []
    times = timing.time_calls(lambda: calls.append(1), runs=3, warmup=2)
    assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)
    assert explore.time_calls is timing.time_calls  # the benchmarks time with the same loop
    assert timing.summary([4.0, 1.0, 3.0, 2.0, 10.0]) == {
        "ms": 3.0, "min_ms": 1.0, "p90_ms": 10.0, "runs": 5}
    with pytest.raises(ValueError, match="at least one time"):
        timing.summary([])


def test_time_calls_and_measure_latency_of_a_small_model(tiny_config):
    assert len(explore.time_calls(lambda: None, runs=4, warmup=0)) == 4
    with pytest.raises(ValueError, match="runs >= 1"):
        explore.time_calls(lambda: None, runs=0)
    model = keras_csp.build_model(tiny_config, input_shape=(32, 32, 3), classes=3)
    lat = explore.measure_latency(model, runs=3)
    assert lat.runs == 3 and len(lat.times_ms) == 3 and 0 < lat.min_ms <= lat.median_ms
    assert "batch 1" in str(lat) and lat.input_size == 32


def test_train_variants_shares_data_and_reports_progress(tmp_path):
    calls = []
    runs = explore.train_variants(
        model="cspdarknet_tiny", epochs=1, image_size=32, train_size=64, val_size=32,
        batch_size=32, fusions=("full", "none"), on_progress=lambda *a: calls.append(a),
        output_dir=str(tmp_path),
    )
    assert list(runs) == ["full", "none"]
    assert runs["none"].profile.params > runs["full"].profile.params
    assert [c[:3] for c in calls] == [(0, 1, 2), (0, 2, 2), (1, 1, 2), (1, 2, 2)]
    assert calls[-1][3] == "no CSP (plain twin)"
    rows = explore.variants_table(runs)
    assert [r["variant"] for r in rows] == ["CSP, fusion full", "no CSP (plain twin)"]
    html = explore.html_table(rows)
    assert f"{rows[0]['params']:,}" in html and "val accuracy" in html
    fig = explore.plot_learning_curves(runs)
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == [
        "CSP, fusion full", "no CSP (plain twin)"
    ]
    with pytest.raises(ValueError, match="fusion='half' is not allowed"):
        explore.train_variants(fusions=("half",))
    with pytest.raises(ValueError, match="part_ratio=1.0"):
        explore.train_variants(part_ratio=1.0)


def test_load_or_train_takes_the_first_file_that_loads(tmp_path):
    from keras_csp.train.models import build_classifier

    (tmp_path / "notebook02_model.keras").write_bytes(b"not a keras file")
    model = build_classifier("cspdarknet_tiny", 6, 32, activation="softmax")
    model.save(tmp_path / "cspdarknet_small.keras")
    loaded = explore.load_or_train(str(tmp_path))
    assert not loaded.trained_now and loaded.path.endswith("cspdarknet_small.keras")
    assert loaded.image_size == 32 and "Loaded the trained model" in loaded.message


def test_held_out_images_are_not_the_training_images():
    images, labels, names = explore.held_out_images(8, 32)
    assert images.shape == (8, 32, 32, 3) and labels.shape == (8,) and len(names) == 6
    assert 0 <= images.min() and images.max() <= 255
    from keras_csp.data import synthetic_shapes

    train = next(iter(synthetic_shapes(num_train=8, num_validation=0, image_size=32)
                      .train.as_dataset(8, shuffle=False)))[0].numpy()
    assert not np.allclose(train, images)
    images2, truth, classes, _ = explore.held_out_detection_images(3, 64)
    assert images2.shape == (3, 64, 64, 3) and len(truth) == len(classes) == 3
    assert all(len(b) == len(c) >= 1 and b.shape[-1] == 4 for b, c in zip(truth, classes))


def test_export_table_rows_and_quick_mode(monkeypatch):
    rows = [explore.ExportRow("fp16", "m.tflite", 2048, True, "ok", [], 1.234, 0.5),
            explore.ExportRow("int8", "n.tflite", 1024, False, "ok", ["op X"], None, None)]
    table = explore.export_table_rows(rows, keras_top1=0.75)
    assert table[0]["format"] == "Keras (float32)" and table[1]["size KiB"] == 2.0
    assert table[1]["GPU delegate"] == "compatible" and table[1]["latency ms"] == 1.23
    assert table[2]["GPU delegate"] == "NOT compatible: op X" and table[2]["top-1"] == "–"
    assert table[1]["GPU accelerator"] == "–"
    whole = {"started": True, "summary": "whole graph (9 ops) on the GPU", "agrees": True,
             "max_difference": {"probabilities": 0.0039}, "max_steps": {"probabilities": 1.0}}
    assert explore.accelerator_cell(whole) == ("whole graph (9 ops) on the GPU; agrees with the "
                                               "CPU (max difference 1 quantization step(s))")
    assert explore.accelerator_cell({"started": False, "reason": "no Vulkan"}) == (
        "did not start: no Vulkan"
    )
    monkeypatch.setenv(explore.QUICK_ENV, "1")
    assert explore.quick_mode()
    monkeypatch.setenv(explore.QUICK_ENV, "0")
    assert not explore.quick_mode()
    monkeypatch.delenv(explore.QUICK_ENV)
    assert not explore.quick_mode() and os.environ.get(explore.QUICK_ENV) is None
