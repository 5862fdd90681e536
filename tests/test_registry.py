"""keras_csp/registry.py is the one list of each kind of thing: no other copy in the package's
source, the CLI's choices and help, the docstrings and the README's lists agree with it, every
registered layer declares its tf_keras twin, and `--neck-option` / YAML `neck_options` reach the
config typed by the neck's schema.

Reads source with `ast`; imports Keras only for the twin declarations.
"""

import argparse
import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import keras_csp
from keras_csp import registry

PACKAGE = Path(keras_csp.__file__).parent
README = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
SOURCES = {p: ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))}

# Each kind's names: a tuple, list or set literal holding two or more of them is a copy.
KINDS = {
    "necks": set(registry.NECKS),
    "box losses": set(registry.BOX_LOSSES),
    "fusions": set(registry.MODEL_FUSIONS) - {"none"},
    "attentions": {a for a in registry.ATTENTIONS if a},
}


def test_no_other_copy_of_a_registry_list_in_the_package():
    copies = []
    for path, tree in SOURCES.items():
        if path.name == "registry.py":
            continue
        # `fusion in ("full", "last")` picks a branch for some names: not a list of the kind.
        branches = {id(c) for n in ast.walk(tree) if isinstance(n, ast.Compare)
                    for c in n.comparators}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                values = {e.value for e in node.elts if isinstance(e, ast.Constant)}
                for kind, names in KINDS.items():
                    branch = id(node) in branches and not names <= values
                    if len(values & names) >= 2 and not branch:
                        copies.append(f"{path.relative_to(PACKAGE)}:{node.lineno} ({kind})")
    assert not copies, "copies of registry lists (read keras_csp.registry instead): " + str(copies)


def test_the_registry_imports_the_standard_library_only():
    code = ("import sys, keras_csp.registry, keras_csp.train.config, keras_csp.cli; "
            "print(sorted(m for m in ('keras', 'tensorflow', 'tf_keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    imported = {alias.name for node in ast.walk(SOURCES[PACKAGE / "registry.py"])
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in getattr(node, "names", [])}
    assert imported <= {"dataclasses", "math", "Optional"}


def test_model_families_are_the_architectures():
    from keras_csp.models.config import ARCHITECTURES

    assert registry.MODEL_FAMILIES == tuple(ARCHITECTURES)


def test_every_neck_entry_names_its_function_in_its_own_file():
    from keras_csp.necks import NECK_LEVELS, NECKS

    assert list(NECKS) == list(registry.NECKS)
    for name, spec in registry.NECKS.items():
        assert spec.module.startswith("keras_csp.necks.") and spec.description
        assert NECKS[name] is getattr(importlib.import_module(spec.module), spec.function)
        assert NECK_LEVELS[name] == spec.levels
        for key, option in spec.options.items():  # each default passes its own schema
            assert registry.neck_options(name)[key] == option.default


def _subparser(parser, command):
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[command]


def _option(parser, flag):
    return next(a for a in parser._actions if flag in a.option_strings)


def test_cli_choices_and_help_come_from_the_registry():
    from keras_csp.cli import _build_parser

    parser = _build_parser()
    train, profile = _subparser(parser, "train"), _subparser(parser, "profile")
    assert _option(train, "--neck").choices == list(registry.NECKS)
    assert _option(train, "--box-loss").choices == list(registry.BOX_LOSSES)
    assert _option(train, "--fusion").choices == list(registry.MODEL_FUSIONS)
    for name, spec in registry.NECKS.items():
        assert name in _option(profile, "--neck").help
        for key, option in spec.options.items():
            assert f"{name}: " in _option(train, "--neck-option").help
            assert option.describe(key) in _option(train, "--neck-option").help
    for attention in filter(None, registry.ATTENTIONS):
        assert attention in _option(profile, "--attention").help
        assert attention in _option(train, "--attention").help
    assert _option(profile, "--fusion").help == ", ".join(registry.MODEL_FUSIONS)


def _class_docstring(relative, name):
    tree = SOURCES[PACKAGE / relative]
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name)
    return ast.get_docstring(node)


def test_the_detector_docstring_and_readme_lists_follow_the_registry():
    detector = _class_docstring("detection/detector.py", "CSPDetector")
    neck_arg = detector[detector.index("neck: "):detector.index("attention: ")]
    section = README[README.index("## Necks and the CSP detector"):]
    section = section[:section.index("```")]  # the section's first paragraphs
    layout = re.search(r"^  necks/ .*$", README, re.M).group(0)
    assert "keras_csp.registry.NECKS" in neck_arg  # it points to the list rather than copy it
    for name, spec in registry.NECKS.items():
        assert f"`{spec.function}`" in section, name
        assert spec.function in layout, name


def test_the_readme_lists_every_fusion():
    start = README.index("`fusion` (`")
    listed = README[start:README.index(")", start)]
    assert all(f'`"{fusion}"`' in listed for fusion in registry.MODEL_FUSIONS), listed


def _registered_layer_classes():
    """Every class decorated with register_keras_serializable in the package's source."""
    import keras

    found = []
    for path, tree in SOURCES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                "register_keras_serializable" in ast.unparse(d) for d in node.decorator_list
            ):
                module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
                cls = getattr(importlib.import_module(module), node.name)
                if issubclass(cls, keras.layers.Layer) and not issubclass(cls, keras.Model):
                    found.append(cls)
    return found


def test_every_registered_layer_declares_its_tf_keras_twin():
    from keras_csp.export.twin import TWINS, declared_twin

    classes = _registered_layer_classes()
    assert {"WeightedFusion", "Maxout", "ChannelSplit"} <= {c.__name__ for c in classes}
    missing = [c.__name__ for c in classes if declared_twin(c) is None]
    assert not missing, f"registered layers without TF_KERAS_TWIN: {missing}"
    # TWINS holds Keras' own layers only; the package's layers declare theirs.
    assert not {c.__name__ for c in classes} & set(TWINS)


def test_neck_option_flags_and_yaml_reach_the_config(tmp_path):
    from keras_csp.cli import _build_parser
    from keras_csp.train.cli import config_from_args
    from keras_csp.train.config import load_config

    args = _build_parser().parse_args(
        ["train", "--task", "detection", "--neck", "bifpn", "--neck-option", "repeats=3",
         "--neck-option", "epsilon=0.001"])
    assert config_from_args(args).neck_options == {"repeats": 3, "epsilon": 0.001}
    path = tmp_path / "run.yaml"
    path.write_text("task: detection\nneck: bifpn\nneck_options:\n  repeats: 4\n")
    cfg = load_config(str(path))
    assert cfg.neck_options == {"repeats": 4}  # only what was given: the neck keeps its defaults
    assert load_config(task="detection").neck_options is None


@pytest.mark.parametrize("overrides,message", [
    (dict(neck="bifpn", neck_options=["repeats"]),
     r"--neck-option='repeats' is not allowed; allowed: KEY=VALUE, e.g. repeats=3\."),
    (dict(neck="bifpn", neck_options=["repeats=many"]),
     r"neck_options=\{'repeats': 'many'\} is not allowed for neck='bifpn'; allowed: repeats "
     r"\(int > 0, default 2\)\."),
    (dict(neck="fpn", neck_options={"repeats": 2}),
     r"for neck='fpn': unknown key 'repeats'; allowed keys: none \(no options\)\."),
    (dict(neck="bifpn", neck_options=3), r"neck_options=3 is not allowed; allowed: a mapping"),
    (dict(neck="bifpn", neck_options=["epsilon=inf"]),
     r"neck_options=\{'epsilon': inf\} is not allowed for neck='bifpn'; allowed: epsilon "),
    (dict(task="classification", neck_options={"repeats": 2}),
     r"neck_options=\{'repeats': 2\} is a detector option; allowed: task='detection'\."),
])
def test_bad_neck_options_in_a_config_are_one_line_errors(overrides, message):
    from keras_csp.train.config import load_config

    with pytest.raises(ValueError, match=message) as error:
        load_config(**{"task": "detection", **overrides})
    assert "\n" not in str(error.value)
