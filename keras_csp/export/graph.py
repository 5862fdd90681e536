"""Replaying a functional Keras 3 model layer by layer, with a hook for each layer call.

The tf_keras twin (`twin.py`), the GPU substitutions (`gpu.py`), the widened groups (`groups.py`)
and the int8 requantizing steps (`int8.py`) all rebuild a model this way:
they walk the same graph in the same order and decide, per layer, what to call instead. Nested
functional models (a backbone inside the export wrapper) are walked through, so the result is one
flat graph, which is also what tfmot needs.
"""

import keras


def is_functional(layer):
    return isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth")


def check_functional(model, argument="model"):
    if not is_functional(model):
        raise ValueError(
            f"{argument}={model!r} is not a functional Keras model; allowed: a model built by "
            "keras_csp (or any `keras.Model(inputs, outputs)`), not a subclassed model."
        )


def replay(model, inputs, call_layer):
    """Runs the graph of `model` on `inputs` (a flat list), calling `call_layer(layer, args,
    kwargs)` for each layer call.

    Returns the outputs in the structure of `model`'s outputs (a tensor, list or dict).
    """
    check_functional(model)
    values = {id(t): v for t, v in zip(model.inputs, inputs)}
    by_depth = model._nodes_by_depth
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            if node.is_input:
                continue
            args, kwargs = node.arguments.fill_in(values)
            layer = node.operation
            if is_functional(layer):
                result = replay(layer, keras.tree.flatten(args), call_layer)
            else:
                result = call_layer(layer, args, kwargs)
            for tensor, value in zip(node.outputs, keras.tree.flatten(result)):
                values[id(tensor)] = value
    outputs = [values[id(t)] for t in model.outputs]
    return keras.tree.pack_sequence_as(model._outputs_struct, outputs)


def rebuild(model, call_layer):
    """A new Keras 3 model: `model`'s graph replayed on fresh inputs of the same names, shapes and
    dtypes, with `call_layer` deciding each layer call (see `replay`)."""
    inputs = [
        keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=t._keras_history.operation.name)
        for t in model.inputs
    ]
    outputs = replay(model, inputs, call_layer)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)


def replace_layers(model, names, make):
    """`rebuild(model)` with each layer named in `names` replaced: `make(layer, args)` (called once
    per layer, at its first call) returns what to call instead, with the call's args and kwargs."""
    made = {}

    def call_layer(layer, args, kwargs):
        if layer.name not in names:
            return layer(*args, **kwargs)
        if id(layer) not in made:
            made[id(layer)] = make(layer, args)
        return made[id(layer)](*args, **kwargs)

    return rebuild(model, call_layer)


def layers_in_graph(model):
    """Every layer that `replay` would call, nested models flattened, in call order."""
    seen, result = set(), []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            layer = node.operation
            if node.is_input or id(layer) in seen:
                continue
            seen.add(id(layer))
            result.extend(layers_in_graph(layer) if is_functional(layer) else [layer])
    return result
