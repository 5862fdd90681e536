"""GPU vs CPU: a `.tflite` file run on LiteRT's GPU accelerator and on the CPU, compared.

`python -m keras_csp.lite.gpu MODEL.tflite` runs a file on the GPU and on the CPU and prints the
comparison as JSON (the export report runs it so, in a child process, which keeps a crashing driver
and the process-wide Vulkan set-up out of the export). Starting the accelerator and running a model
on it is `keras_csp.lite.accelerator`; its names are importable from here too.
"""

import json
import os
import sys
import time

import numpy as np

from keras_csp.lite import accelerator
from keras_csp.lite.accelerator import (  # noqa: F401
    ACCELERATORS,
    INSTALL_HINT,
    SWIFTSHADER_ICD,
    GpuPlacement,
    GpuRunner,
    GpuUnavailableError,
    check_accelerator,
    use_swiftshader,
    vulkan_drivers,
)
from keras_csp.lite.model import LiteModel

# GPU vs CPU agreement that `compare` calls "agrees": float outputs within FLOAT_TOLERANCE of
# max(1, the largest |CPU output|), quantized ones within INT8_STEPS quantization steps. With fp32
# arithmetic (what `compare` asks for; SwiftShader has no other) the two differ only by the order
# of sums: at most 1.8e-7 of that scale (1.1e-5 on a detector's 64-pixel boxes, 9e-8 on
# probabilities), measured on every family's fp32/fp16 export and the detectors' (README, "Mobile
# GPU"), so 1e-5 leaves a margin of 50 or more. int8 files run in float on the GPU with simulated
# quantization steps: measured at most 1 step.
FLOAT_TOLERANCE = 1e-5
INT8_STEPS = 2


def _output_steps(model):
    """{output name: its quantization step} of a CPU `LiteModel`'s quantized outputs, and of
    float outputs that a DEQUANTIZE makes from a quantized tensor (int8 files with float I/O)."""
    steps = {o.name: o.scale for o in model.outputs if o.quantized}
    runner = getattr(model, "_runner", None)
    if runner is None:
        return steps
    it = model._interpreter
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    # Not the DELEGATE nodes that XNNPACK adds once tensors are allocated: the ops themselves.
    ops = [op for op in it._get_ops_details() if op["op_name"] != "DELEGATE"]
    producer = {t: op for op in ops for t in op["outputs"]}
    for name, detail in runner.get_output_details().items():
        op = producer.get(detail["index"])
        if name not in steps and op is not None and op["op_name"] == "DEQUANTIZE":
            scale = tensors[op["inputs"][0]].get("quantization", (0.0, 0))[0]
            if scale:
                steps[name] = float(scale)
    return steps


def compare(path, seed=0):
    """Runs `path` on the GPU accelerator and on the CPU on one random image; a JSON-able dict.

    `started` False comes with `reason`. Otherwise `whole`, `ops`, `cpu_ops`, `refused`,
    `adapter`, `summary`, `max_difference` {output: max |GPU - CPU|, dequantized},
    `max_magnitude` {output: max |CPU|} and, for outputs of quantized tensors, `max_steps`
    {output: the difference in quantization steps}.
    """
    started = time.perf_counter()
    cpu = LiteModel(path, accelerator="cpu")
    try:
        _, options = accelerator._litert()
        # fp32 on the GPU: the check is about what the engine computes, not fp16 rounding (which
        # LiteRT allows by default and phones use).
        gpu = LiteModel(path, accelerator="gpu", gpu_options=options.GpuOptions(enforce_f32=True))
    except GpuUnavailableError as e:
        return {"started": False, "reason": str(e)}
    h, w, c = (s if s > 0 else 64 for s in cpu.input.shape[1:])
    images = np.random.default_rng(seed).integers(0, 256, (1, h, w, c)).astype("uint8")
    expected, got = cpu(images), gpu(images)
    placement = gpu.gpu_placement
    result = {
        "started": True,
        "whole": placement.whole,
        "ops": placement.ops,
        "cpu_ops": placement.cpu_ops,
        "refused": placement.refused,
        "adapter": placement.adapter,
        "summary": placement.summary(),
        "max_difference": {},
        "max_magnitude": {},
        "max_steps": {},
    }
    steps = _output_steps(cpu)
    for info in cpu.outputs:
        diff = float(np.max(np.abs(got[info.name] - expected[info.name]), initial=0.0))
        result["max_difference"][info.name] = diff
        result["max_magnitude"][info.name] = float(np.max(np.abs(expected[info.name]), initial=0))
        if info.name in steps:
            result["max_steps"][info.name] = round(diff / steps[info.name], 3)
    result["agrees"] = all(
        result["max_steps"][name] <= INT8_STEPS if name in result["max_steps"]
        else diff <= FLOAT_TOLERANCE * max(1.0, result["max_magnitude"][name])
        for name, diff in result["max_difference"].items()
    )
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _setup_vulkan(swiftshader):
    """Makes SwiftShader the Vulkan device where asked, or ("auto") where it is the one named (a
    parent that called use_swiftshader() passes the variable on, not the loaded loader) or where
    no driver is named and the installed ones give the engine no device it accepts (none, or
    Mesa's: the search runs in a child process). Returns a line saying why it was picked, or None.
    """
    named = accelerator._named_drivers()
    if swiftshader == "yes" or (swiftshader == "auto" and named == [SWIFTSHADER_ICD]):
        use_swiftshader()
        return None
    if swiftshader == "no" or named or not os.path.isfile(SWIFTSHADER_ICD):
        return None  # a named driver is the user's choice
    why = accelerator.unusable_vulkan() if vulkan_drivers() else "no Vulkan driver installed"
    if why is None:
        return None
    use_swiftshader()
    return (
        f"on SwiftShader (software Vulkan: what the engine takes and computes, not its speed): "
        f"the system's Vulkan gives the engine no device: {why}"
    )


def _compare_quietly(path):
    try:
        return compare(path)
    except GpuUnavailableError as e:
        return {"started": False, "reason": str(e)}
    except Exception as e:  # a file the engine cannot handle: reported, not raised
        return {"started": True, "error": f"{type(e).__name__}: {e}"}


def main(argv=None):
    """`python -m keras_csp.lite.gpu MODEL.tflite ...`: GPU vs CPU of each file, JSON lines.

    With `--serve`, reads one path per line from stdin and answers each with a JSON line (the
    export report keeps one such process, so that imports and Vulkan start once).
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m keras_csp.lite.gpu", description=main.__doc__)
    parser.add_argument("models", nargs="*")
    parser.add_argument(
        "--swiftshader", default="auto", choices=("auto", "yes", "no"),
        help="auto (default): SwiftShader when no driver is named and the installed ones give "
             "no device the engine accepts",
    )
    parser.add_argument("--serve", action="store_true", help="paths from stdin, one a line")
    args = parser.parse_args(argv)
    # JSON goes to a private copy of stdout; native code that prints to fd 1 lands on stderr.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    note = None
    try:
        note = _setup_vulkan(args.swiftshader)
    except GpuUnavailableError as e:
        accelerator.fail_later_starts(str(e))
    paths = (line.rstrip("\n") for line in sys.stdin) if args.serve else args.models
    for path in paths:
        result = _compare_quietly(path)
        if note:
            result["note"] = note
        out.write(json.dumps(result) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
