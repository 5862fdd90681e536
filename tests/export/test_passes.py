"""The TFLite export's options object, the export-pass registry and which passes each export
runs, in order; the cascaded max pools' pass. The conversion of every pass's result runs in
tests/export/test_harness.py."""

import argparse
import dataclasses

import keras
import numpy as np
import pytest

from keras_csp import export, registry
from keras_csp.export import cli, convert
from keras_csp.export.graph import layers_in_graph
from keras_csp.export.passes import FUNCTIONS, PASSES, Plan, run_passes
from keras_csp.export.quantization import QuantizationOptions
from keras_csp.layers.attention import spatial_pyramid_pooling

SWITCHED = {p.switch: name for name, p in registry.EXPORT_PASSES.items() if p.switch}


def _applied(switches=None, **kwargs):
    plan = Plan(QuantizationOptions(**kwargs), None, registry.export_switches(switches))
    return [p.name for p in PASSES if p.applies_when(plan)]


def test_every_registered_pass_has_its_function_and_runs_in_the_registry_order():
    assert set(FUNCTIONS) == set(registry.EXPORT_PASSES)
    assert [p.name for p in PASSES] == list(registry.EXPORT_PASSES)
    assert [p.run for p in PASSES] == [FUNCTIONS[name] for name in registry.EXPORT_PASSES]


@pytest.mark.parametrize("switch", sorted(SWITCHED))
def test_a_switch_turns_its_pass_on_and_off(switch):
    entry = registry.EXPORT_PASSES[SWITCHED[switch]]
    assert (SWITCHED[switch] in _applied()) == entry.default
    assert (SWITCHED[switch] in _applied({switch: not entry.default})) != entry.default
    # What else changes is its counterpart only (the GPU equivalents' report).
    changed = set(_applied()) ^ set(_applied({switch: not entry.default}))
    assert changed - {SWITCHED[switch]} <= {f"{SWITCHED[switch]} (reported only)"}


@pytest.mark.parametrize(
    "kwargs, added, removed",
    [
        (dict(quantize="fp16"), set(), set()),
        (dict(quantize="int8", representative_data=[]), {"separate concatenation scales"}, set()),
        # Training would fill the block-diagonal zeros: no widening with QAT or pruning.
        (dict(quantize="qat", train_data=[]), {"fine-tune (prune, QAT)"}, {"widen groups"}),
        (dict(prune=0.5, train_data=[]), {"fine-tune (prune, QAT)"}, {"widen groups"}),
    ],
)
def test_the_options_add_and_remove_passes(kwargs, added, removed):
    default = _applied()
    assert "separate concatenation scales" not in default and "widen groups" in default
    expected = [n for n in registry.EXPORT_PASSES if n in (set(default) | added) - removed]
    assert _applied(**kwargs) == expected


def test_switches_are_checked_by_the_registry():
    defaults = {p.switch: p.default for p in registry.EXPORT_PASSES.values() if p.switch}
    assert registry.export_switches() == defaults
    assert registry.export_switches({"widen_groups": False})["widen_groups"] is False
    with pytest.raises(ValueError, match=r"^gpu_substitute=False is not allowed \(neither an "
                       r"argument nor a switch\); allowed as the export passes' switches: "
                       r"gpu_substitutes=True\|False, widen_groups"):
        registry.export_switches({"gpu_substitute": False})
    with pytest.raises(ValueError, match=r"^widen_groups='no' is not allowed \(not a bool\)"):
        registry.export_switches({"widen_groups": "no"})


def test_tflite_and_the_cli_take_every_switch(tiny_model, tmp_path):
    for switch in SWITCHED:  # documented where tflite's arguments are
        assert f"{switch}={registry.export_switches()[switch]}" in convert.tflite.__doc__
    with pytest.raises(ValueError, match=r"^widen_group=False is not allowed"):
        export.tflite(tiny_model, tmp_path / "m.tflite", widen_group=False, verbose=False)
    assert not (tmp_path / "m.tflite").exists()
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers(dest="command"))
    for switch, name in SWITCHED.items():
        entry = registry.EXPORT_PASSES[name]
        args = parser.parse_args(["export", "m.keras", entry.flag])
        assert getattr(args, switch) is not entry.default
        others = [s for s in SWITCHED if s != switch]
        assert all(getattr(args, s) is registry.export_switches()[s] for s in others)


def _spp_model():
    inputs = keras.Input((9, 7, 4))
    x = keras.layers.Conv2D(4, 1, name="conv")(inputs)
    x = spatial_pyramid_pooling(x, "spp")  # pools 5, 9, 13 (larger than the map: borders)
    x = keras.layers.MaxPooling2D(9, strides=2, padding="same", name="strided")(x)  # not chained
    return keras.Model(inputs, keras.layers.MaxPooling2D(3, 1, "same", name="small")(x))


def _max_pools(model):
    return [(layer.name, layer.pool_size[0]) for layer in layers_in_graph(model)
            if isinstance(layer, keras.layers.MaxPooling2D)]


def test_cascaded_max_pools_are_the_same_pools_in_one_chain():
    model = _spp_model()
    plan = Plan(QuantizationOptions(), None)
    chained, notes = FUNCTIONS["cascade max pools"](model, plan)
    assert _max_pools(chained) == [
        ("spp.pool5.cascade1", 5), ("spp.pool9.cascade2", 5), ("spp.pool13.cascade3", 5),
        ("strided", 9), ("small", 3),
    ]
    assert notes == [f"cascade max pools: spp.pool{k}: part of a chain of 5x5 pools (same values)"
                     for k in (13, 5, 9)]
    x = np.random.default_rng(0).normal(size=(2, 9, 7, 4)).astype("float32")
    np.testing.assert_array_equal(np.asarray(chained(x)), np.asarray(model(x)))
    # Off, the export keeps SPP's pools; a model without them is left as it is.
    assert run_passes(model, Plan(QuantizationOptions(), None, registry.export_switches(
        {"cascade_pools": False})))[0] is model
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.MaxPooling2D(5, 1, "same")(inputs))
    assert FUNCTIONS["cascade max pools"](plain, plan) == (plain, [])


def test_options_are_checked_once_and_frozen():
    options = QuantizationOptions(quantize="qat", io="uint8", train_data=[], prune=0.25)
    assert options.full_integer and options.fine_tunes
    assert not QuantizationOptions(quantize="dynamic").full_integer
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.quantize = "none"
    with pytest.raises(ValueError, match=r"epochs=0 is not allowed; allowed: an integer >= 1"):
        QuantizationOptions(epochs=0)
    with pytest.raises(ValueError, match=r"steps=2.5 is not allowed; allowed: an integer >= 1"):
        QuantizationOptions(steps=2.5)
