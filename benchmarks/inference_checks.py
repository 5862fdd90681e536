"""What a TFLite row of `benchmarks.inference` reports besides its time: which nodes XNNPACK took,
and how often a quantized file's top-1 class agrees with the float one's.

Only the standard library is imported at module level (it runs in the LiteRT venv's worker).
"""


def xnnpack_coverage(ops):
    """Which nodes the XNNPACK delegate took, from the interpreter's op details after allocation.

    After delegation the interpreter lists the original nodes plus one DELEGATE node per partition.
    A partition is the set of original nodes between its DELEGATE node's inputs and outputs: walk
    back from its outputs through producers, stopping at its inputs. Nodes in no partition run on
    the builtin kernels (a fallback).
    """
    original = [o for o in ops if o["op_name"] != "DELEGATE"]
    delegates = [o for o in ops if o["op_name"] == "DELEGATE"]
    producer = {int(t): o["index"] for o in original for t in o["outputs"]}
    by_index = {o["index"]: o for o in original}
    covered = set()
    for node in delegates:
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        seen = set()
        while stack:
            tensor = stack.pop()
            if tensor in seen or tensor in boundary:
                continue
            seen.add(tensor)
            index = producer.get(tensor)
            if index is None or index in covered:
                continue
            covered.add(index)
            stack.extend(int(t) for t in by_index[index]["inputs"] if int(t) >= 0)
    fallback = {}
    for o in original:
        if o["index"] not in covered:
            fallback[o["op_name"]] = fallback.get(o["op_name"], 0) + 1
    return {
        "nodes": len(original),
        "delegated": len(covered),
        "partitions": len(delegates),
        "fallback_ops": fallback,
        "full": bool(original) and len(covered) == len(original) and len(delegates) == 1,
    }


def agreement(expected_scores, got_scores):
    """Top-1 agreement of two (N, classes) score arrays, plain and tie-aware.

    Quantized outputs tie: an int8 softmax has 1/256 steps, so for flat probabilities several
    classes share the maximum and argmax takes the first. `tie_aware` counts an image as agreeing
    when the float top-1 class is among the tied maxima of the other output.
    """
    import numpy as np

    expected = np.argmax(expected_scores, axis=1)
    got = np.argmax(got_scores, axis=1)
    maxima = got_scores.max(axis=1, keepdims=True)
    tied = (got_scores == maxima).sum(axis=1)
    in_ties = got_scores[np.arange(len(expected)), expected] == maxima[:, 0]
    return {
        "images": int(len(expected)),
        "top1_agreement": float(np.mean(expected == got)),
        "tie_aware_agreement": float(np.mean(in_ties)),
        "images_with_tied_top1": int(np.sum(tied > 1)),
        "distinct_float_top1": int(len(set(expected.tolist()))),
    }
