"""Every hint the export report and the runtime give names an option that exists.

A hint such as "batch 1 (batch=1, --batch 1)" once named a flag `keras-csp export` did not have.
Here every `--flag` written in the text of the export and runtime modules (their messages, notes
and help) must be an option of a `keras-csp` command (or of the module's own `python -m` entry),
and the report's batch hints must parse with `keras-csp export`'s parser and name keywords of
`export.tflite`.
"""

import argparse
import ast
import inspect
import re
from pathlib import Path

import pytest

import keras_csp
from keras_csp import cli as main_cli
from keras_csp import export
from keras_csp.export import cli as export_cli
from keras_csp.export.verify import SHAPE_OPS_HINT
from keras_csp.lite.gpu import main as lite_gpu_main
from keras_csp.lite.model import DYNAMIC_BATCH_GPU_HINT

PACKAGE = Path(keras_csp.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# "keyword=value" in a hint: a Python argument named beside its flag.
KEYWORD = re.compile(r"\b([a-z_][a-z0-9_]*)=(?:'[^']*'|\d+)")


def _options(parser):
    """{command: its option strings} of an argparse parser with subcommands."""
    commands = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                commands[name] = {s for a in sub._actions for s in a.option_strings}
    return commands


def _texts(path):
    """The string constants of a module (f-strings' literal parts included), docstrings too."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _entry_flags(module_path):
    """Flags of `python -m keras_csp.lite.gpu` (--serve, ...), for that module and its callers."""
    source = module_path.read_text()
    if not (module_path == PACKAGE / "lite" / "gpu.py" or '"keras_csp.lite.gpu"' in source):
        return set()
    return set(FLAG.findall(inspect.getsource(lite_gpu_main)))


@pytest.mark.parametrize("folder", ["export", "lite"])
def test_every_flag_the_export_and_runtime_texts_name_exists(folder):
    commands = _options(main_cli._build_parser())
    known = set().union(*commands.values())
    modules = sorted((PACKAGE / folder).glob("*.py"))
    unknown = {
        (path.name, flag)
        for path in modules
        for text in _texts(path)
        for flag in FLAG.findall(text)
        if flag not in known | _entry_flags(path)
    }
    assert unknown == set()
    assert modules and "--batch" in commands["export"]


@pytest.mark.parametrize("hint", [SHAPE_OPS_HINT, DYNAMIC_BATCH_GPU_HINT])
def test_the_batch_hints_parse_and_name_export_keywords(hint, tmp_path):
    parser = argparse.ArgumentParser()
    export_cli.add_parser(parser.add_subparsers(dest="command"))
    export_flags = _options(parser)["export"]
    flags = re.findall(r"(--[a-z-]+) (\w+)", hint)
    assert flags, hint
    for flag, value in flags:
        assert flag in export_flags
        args = parser.parse_args(["export", "m.keras", flag, value])
        assert export.check_batch(args.batch, flag) in (None, 1)  # a batch the export takes
    keywords = KEYWORD.findall(hint)
    assert keywords, hint
    parameters = inspect.signature(export.tflite).parameters
    assert set(keywords) <= set(parameters)
