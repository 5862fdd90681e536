"""The package's layers (ARCHITECTURE.md): every import, including those inside functions, goes
from a module to one of the same or a lower layer, and no modules import each other in a circle.

Read from the source with `ast` (nothing is imported but `keras_csp` itself, which is TF-free), so
the test takes well under a second.
"""

import ast
import importlib
from pathlib import Path

import pytest

import keras_csp

PACKAGE = Path(keras_csp.__file__).parent

# Lowest first. A module belongs to the layer of the longest prefix listed here. Entry points
# (modules named `cli` or `__main__`, and `keras_csp.cli`) are the top layer: they may import
# anything and nothing imports them.
LAYERS = (
    ("foundation", ("keras_csp", "keras_csp.lazy", "keras_csp.files", "keras_csp.images",
                    "keras_csp.timing", "keras_csp.registry")),
    ("runtime (TF-free)", ("keras_csp.lite", "keras_csp.coco_eval")),
    ("layers and data", ("keras_csp.layers", "keras_csp.data")),
    ("architectures", ("keras_csp.models", "keras_csp.necks",
                       "keras_csp.preprocessing", "keras_csp.inference")),
    ("weights", ("keras_csp.weights",)),
    ("applications", ("keras_csp.applications", "keras_csp.detection", "keras_csp.profiler")),
    ("export", ("keras_csp.export", "keras_csp.bench")),
    ("training", ("keras_csp.train",)),
    ("exploration", ("keras_csp.explore",)),
)
ENTRY_POINT = len(LAYERS)


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module):
    last = module.rsplit(".", 1)[-1]
    if module == "keras_csp.cli" or last in ("cli", "__main__"):
        return ENTRY_POINT
    best, found = -1, None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # the root package is its own prefix only (its names load lazily)
            within = module.startswith(prefix + ".") and prefix != "keras_csp"
            if (module == prefix or within) and len(prefix) > best:
                best, found = len(prefix), index
    if found is None:
        raise AssertionError(f"{module} is in no layer of tests/test_architecture.py")
    return found


def resolve(name):
    """The module that `import name` / `from name import ...` loads (a lazy top-level name of
    `keras_csp` resolves to the module that defines it)."""
    if name in MODULES:
        return name
    package, _, attribute = name.rpartition(".")
    lazy = getattr(importlib.import_module(package), "_EXPORTS", {}) if package in MODULES else {}
    if attribute in lazy:
        return lazy[attribute]
    return package if package in MODULES else None


def imports_of(module):
    """`{imported module: line}` of every keras_csp import in the module's source."""
    path = MODULES[module]
    found = {}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] if base else []
            names = [n if resolve(n) not in (None, base) else base for n in names] or [base]
        for name in names:
            if name.split(".")[0] != "keras_csp":
                continue
            target = resolve(name)
            if target and target != module:
                found.setdefault(target, node.lineno)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_folders_show_the_layers():
    """Every module of a folder (a subpackage; its `cli` and `__main__` entry points aside) is in
    one layer, so that drawn as folders no import runs from a lower layer's folder to a higher
    one's. The package's own top-level modules are each their own line of the table."""
    layers = {}
    for module in MODULES:
        folder = module.rpartition(".")[0] if MODULES[module].name != "__init__.py" else module
        if folder != "keras_csp" and layer_of(module) < ENTRY_POINT:
            layers.setdefault(folder.split(".")[1], set()).add(LAYERS[layer_of(module)][0])
    mixed = {folder: sorted(names) for folder, names in layers.items() if len(names) > 1}
    assert not mixed, f"folders holding modules of more than one layer: {mixed}"


def test_imports_go_down_the_layers():
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0] if layer_of(module) < ENTRY_POINT else 'entry'}) "
        f"line {line} imports {target} ({LAYERS[layer_of(target)][0] if layer_of(target) < ENTRY_POINT else 'entry point'})"
        for module, targets in GRAPH.items()
        for target, line in targets.items()
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_circles():
    circles, state = [], {}

    def visit(module, stack):
        state[module] = "open"
        for target in GRAPH[module]:
            if state.get(target) == "open":
                circles.append(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target, stack + [target])
        state[module] = "done"

    for module in GRAPH:
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize(
    "module",
    ["keras_csp.lite", "keras_csp.coco_eval", "keras_csp.lite.cli", "keras_csp.lite.__main__"],
)
def test_runtime_reaches_no_tensorflow_module(module):
    """Everything the TF-free runtime and its commands (`python -m keras_csp.lite`) import,
    transitively, is in the two lowest layers: an entry point they reach (another package's
    `cli`) is followed and counts as outside them."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(GRAPH[current])
    heavy = sorted(m for m in seen if layer_of(m) > 1 and not m.startswith("keras_csp.lite."))
    assert not heavy, f"{module} reaches {heavy}"


# Size limits (issue 18): a module holds one idea, a function fits in one's head. Data (model
# configs, tables) may go over if a comment at the exception says why; none does today.
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 80


def test_modules_and_functions_stay_small():
    too_long = []
    for module, path in MODULES.items():
        source = path.read_text()
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{module}.{node.name} (line {node.lineno}): {length} lines")
    assert not too_long, "over the size limits:\n" + "\n".join(too_long)
