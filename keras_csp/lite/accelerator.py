"""LiteRT's GPU accelerator for `keras_csp.lite`: start it, run a model on it, say what it left.

The accelerator is ML Drift over WebGPU/Dawn (`libLiteRtWebGpuAccelerator.so` in ai-edge-litert
>= 2.3), the engine behind LiteRT's GPU path on phones. On Linux it needs a Vulkan device: a real
GPU's driver, or SwiftShader, a Vulkan implementation on the CPU that Debian's `chromium` package
ships (`use_swiftshader()`, from `keras_csp.lite.vulkan`; right for checking what the GPU engine
takes and computes, meaningless for speed). Mesa's lavapipe from Debian 12 is refused by Dawn.

Whether the engine finds a device it accepts is asked of a child process first (`start_failure`),
once per Vulkan setting: Dawn loads every driver the loader lists while it looks, the ones it then
refuses too, and Mesa's lavapipe and radeon drivers bring LLVM 15, which in a process that has
imported TensorFlow (with its own LLVM) makes the interpreter abort at exit (`free(): invalid
pointer`). So this process loads drivers only once the child has found a device to use.

Nothing here imports TensorFlow or Keras. `keras_csp.lite.gpu` compares a file's GPU and CPU
outputs (`python -m keras_csp.lite.gpu MODEL.tflite`).
"""

import contextlib
import ctypes
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from keras_csp.lite import vulkan
from keras_csp.lite.vulkan import (  # noqa: F401 (importable from here too)
    _ICD_VARIABLES,
    SWIFTSHADER_ICD,
    GpuUnavailableError,
    _loader_loadable,
    _named_drivers,
    _swiftshader_hint,
    use_swiftshader,
    vulkan_drivers,
)

ACCELERATORS = ("cpu", "gpu", "auto")
INSTALL_HINT = "pip install -U 'ai-edge-litert>=2.3'"
# What the engine logs when it finds no usable Vulkan device (as opposed to refusing a model).
_START_FAILURES = (
    "Couldn't load Vulkan", "No adapters found", "Failed to initialize WebGPU environment",
    "Failed to get or create delegate WebGPU environment",
)


# Dawn looks for a Vulkan device once per process and keeps a failure: so do we (its later
# failures only say "No adapters found").
_start_failure = None
# {this process's Vulkan settings: the child's verdict}: the device search runs once per setting.
_probes = {}
# Seconds the child may take to look for a device (SwiftShader: about a second).
PROBE_TIMEOUT = 120


def fail_later_starts(reason):
    """Makes every later GPU start of this process fail with `reason` (a Vulkan set-up failed)."""
    global _start_failure
    _start_failure = reason


def check_accelerator(accelerator, argument="accelerator"):
    if accelerator not in ACCELERATORS:
        raise ValueError(
            f"{argument}={accelerator!r} does not exist; allowed: {', '.join(ACCELERATORS)}."
        )
    return accelerator


# ----------------------------------------------------------------------- stderr of the engine


@contextlib.contextmanager
def _captured_stderr():
    """Captures what native code writes to file descriptors 2 and 1 (LiteRT and Dawn log to
    stderr, and a line or two to stdout, which would spoil JSON printed there).

    Yields a list that holds the text once the block ends.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    text = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        for fd in saved:
            os.dup2(sink.fileno(), fd)
        try:
            yield text
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            text.append(sink.read().decode("utf-8", "replace"))


def _why_not_started(log, error):
    """The missing piece, read from the engine's log of a failed start."""
    if "Couldn't load Vulkan" in log:
        match = re.search(r"Couldn't load Vulkan: ([^\n]*)", log)
        return f"no Vulkan loader ({match.group(1).strip() if match else 'libvulkan.so.1'})"
    if "Found no drivers" in log or "No adapters found" in log:
        drivers = vulkan_drivers()
        named = f" ({', '.join(drivers)} gave no device the engine accepts)" if drivers else ""
        # Dawn says why it refused a device on the line before "While initializing adapter".
        lines = log.splitlines()
        refusals = sorted({
            lines[i - 1].strip().removeprefix("Warning: ").rstrip(".")
            for i, line in enumerate(lines) if i and "While initializing adapter" in line
        })
        why = f"; Dawn refused: {'; '.join(refusals)}" if refusals else ""
        return f"no Vulkan device{named}{why}"
    lines = [line.strip() for line in log.splitlines() if "ERROR" in line or line.startswith("E0")]
    return lines[-1] if lines else (error.strip().splitlines() or ["unknown error"])[-1]


def _refusals(log):
    """`(refused ["OP: reason"], gpu op count, cpu op count)` from the engine's partition log.

    The GPU delegate logs the ops it cannot run and how many ops each side got, but only when
    some stay on the CPU (`None` counts otherwise).
    """
    refused, counting = [], False
    for line in log.splitlines():
        line = line.strip()
        if "Following operations are not supported by GPU delegate" in line:
            counting = True
            continue
        match = re.match(r"(\d+) operations? will run on the GPU, and the remaining (\d+)", line)
        if match:
            return refused, int(match.group(1)), int(match.group(2))
        if counting and re.match(r"^[A-Z0-9_]+: ", line):
            refused.append(line.rstrip("."))
    return refused, None, None


# -------------------------------------------------------------------------- starting the engine


def _litert():
    try:
        from ai_edge_litert import compiled_model, options
    except ImportError as e:
        raise GpuUnavailableError(
            f"the GPU accelerator needs ai-edge-litert >= 2.3 ({e}); allowed: {INSTALL_HINT}."
        ) from None
    package = Path(compiled_model.__file__).parent
    if not hasattr(compiled_model.CompiledModel, "is_fully_accelerated") or not (
        package / "libLiteRtWebGpuAccelerator.so"
    ).is_file():
        raise GpuUnavailableError(
            f"ai-edge-litert in {str(package)!r} is too old for the GPU accelerator (no "
            f"libLiteRtWebGpuAccelerator.so); allowed: ai-edge-litert >= 2.3: {INSTALL_HINT}."
        )
    return compiled_model, options


def _start_engine(create, setup=None):
    """`(compiled model or None, error text or None, the engine's log)` of `create()` (and
    `setup(model)`), with what the engine writes to stderr captured."""
    with _captured_stderr() as log:
        try:
            model, error = create(), None
        except RuntimeError as e:  # kept as text: the error holds the engine until freed
            model, error = None, str(e)
        if model is not None and setup is not None:
            setup(model)
    return model, error, log[0]


def _is_start_failure(log):
    return any(sign in log for sign in _START_FAILURES)


# ------------------------------------------------------- the device search, in a child process


def _tiny_model():
    """A 300-byte `.tflite` file's bytes: one ADD of a 1x2x2x4 float tensor to itself."""
    import flatbuffers  # a dependency of ai-edge-litert
    from ai_edge_litert import schema_py_generated as schema

    tensors = []
    for name in ("x", "y"):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = (
            name, [1, 2, 2, 4], schema.TensorType.FLOAT32, 0
        )
        tensors.append(tensor)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ADD
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 0], [1]
    op.builtinOptionsType = schema.BuiltinOptions.AddOptions
    op.builtinOptions = schema.AddOptionsT()
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [1], [op]
    model = schema.ModelT()
    model.version, model.operatorCodes, model.buffers, model.subgraphs = (
        3, [code], [schema.BufferT()], [graph]
    )
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _probe_child(argv):
    """The child's side: compiles a one-op model on the GPU with the Vulkan settings it got,
    prints the verdict as one JSON line and leaves without exit handlers (a driver's teardown
    cannot spoil the answer)."""
    if argv:  # chromium's loader, which the parent loaded by hand (use_swiftshader)
        ctypes.CDLL(argv[0], mode=ctypes.RTLD_GLOBAL)
    try:
        compiled_model, options = _litert()
        accelerators = compiled_model.HardwareAccelerator
        opts = options.Options(hardware_accelerators=accelerators.GPU | accelerators.CPU)
        data = _tiny_model()
        model, error, log = _start_engine(
            lambda: compiled_model.CompiledModel.from_buffer(data, options=opts)
        )
        adapter = re.search(r"Selected adapter: ([^\n]*)", log)
        if model is not None and adapter:
            line = adapter.group(1)
            verdict = {
                "started": True, "adapter": line.split(",")[0].strip(),
                "software": "adapterType=CPU" in line, "swiftshader": "arch=swiftshader" in line,
            }
        elif model is None and _is_start_failure(log):
            verdict = {"started": False, "reason": _why_not_started(log, error)}
        else:
            why = (error or "no adapter named in its log").strip().splitlines()[-1]
            verdict = {"started": False, "reason": f"the engine failed on a one-op model: {why}"}
    except Exception as e:  # an answer, whatever happened
        verdict = {"started": False, "reason": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(verdict) + "\n")
    sys.stdout.flush()
    os._exit(0)


def _ask_child(timeout):
    root = str(Path(__file__).resolve().parents[2])  # where keras_csp is, for the child's import
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p
    ))
    code = "import sys; from keras_csp.lite import accelerator; accelerator._probe_child(sys.argv[1:])"
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, *([vulkan.bundled_loader] if vulkan.bundled_loader else [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"started": False, "reason": f"the search for a Vulkan device took over {timeout} s"}
    lines = done.stdout.strip().splitlines()
    with contextlib.suppress(ValueError, IndexError):
        return json.loads(lines[-1])
    code = done.returncode
    what = f"signal {-code}" if code < 0 else f"exit status {code}"
    return {"started": False, "reason": f"the search for a Vulkan device ended with {what}"}


def probe(timeout=PROBE_TIMEOUT):
    """What a child process found with this process's Vulkan settings (asked once per setting):
    `{"started": True, "adapter", "software", "swiftshader"}` or `{"started": False, "reason"}`."""
    key = tuple(
        os.environ.get(v, "") for v in (*_ICD_VARIABLES, "LD_LIBRARY_PATH", "XDG_DATA_DIRS")
    ) + (vulkan.bundled_loader,)
    if key not in _probes:
        _probes[key] = _ask_child(timeout)
    return _probes[key]


def unusable_vulkan():
    """Why this process's Vulkan settings give the engine no device to use, or None."""
    verdict = probe()
    if not verdict["started"]:
        return verdict["reason"]
    if verdict["software"] and not (verdict["swiftshader"] and _named_drivers()):
        return f"only a software Vulkan device ({verdict['adapter']}), which is not a GPU"
    return None


def start_failure():
    """Why LiteRT's GPU accelerator cannot start in this process (one line), or None when it can.

    A software Vulkan device counts only when it is SwiftShader named by `VK_ICD_FILENAMES` (or
    `use_swiftshader()`): a CPU device must not pass for a GPU, and Mesa's lavapipe brings LLVM.
    """
    if _start_failure is not None:
        return _start_failure
    if _named_drivers() == [SWIFTSHADER_ICD]:
        # Chosen by name, and safe to look for here (SwiftShader brings no LLVM): the start in
        # this process says whether it works, a child's search would only add seconds.
        return None
    why = unusable_vulkan()
    if why is None:
        return None
    return (
        f"LiteRT's GPU accelerator cannot start: {why}; allowed: a machine with a Vulkan device "
        f"({_swiftshader_hint()})."
    )


# ------------------------------------------------------------------------------- the GPU model


@dataclasses.dataclass
class GpuPlacement:
    """Where LiteRT put a model's ops: `whole` (every op on the GPU), counts, refused ops."""

    whole: bool
    ops: int  # ops in the graph
    cpu_ops: int  # ops left to the CPU (XNNPACK)
    refused: list  # "OP: reason" the GPU delegate gave for the ops it cannot run
    adapter: str  # the Vulkan device, as Dawn names it
    log: str = dataclasses.field(default="", repr=False)

    def summary(self):
        if self.whole:
            return f"whole graph ({self.ops} ops) on the GPU"
        cut = self.cpu_ops - len(self.refused)
        why = "; ".join(self.refused) or "see the engine log"
        more = (
            f" (and {cut} op(s) the GPU runs but that are cut off from its one partition)"
            if self.refused and cut > 0 else ""
        )
        return f"{self.cpu_ops} of {self.ops} ops left on the CPU: {why}{more}"


class GpuRunner:
    """One `.tflite` file compiled for LiteRT's GPU accelerator (CPU fallback for refused ops).

    `run(batch)` takes a batch of exactly `batch_size` encoded inputs and returns
    `{output name: array}` as the file stores them (quantized outputs stay integers).
    """

    def __init__(self, path, op_count, num_threads=None, gpu_options=None):
        compiled_model, options = _litert()
        accelerators = compiled_model.HardwareAccelerator
        opts = options.Options(
            hardware_accelerators=accelerators.GPU | accelerators.CPU,
            cpu_options=options.CpuOptions(num_threads=num_threads or 0),
            gpu_options=gpu_options,
        )
        failure = start_failure()  # asked of a child process: see the module's note
        if failure is not None:
            raise GpuUnavailableError(failure)
        global _start_failure
        # The engine logs every step to stderr: kept in `placement.log`, not shown.
        model, error, log = _start_engine(
            lambda: compiled_model.CompiledModel.from_file(str(path), options=opts), self._setup
        )
        if model is None:
            if _is_start_failure(log):
                _start_failure = (
                    f"LiteRT's GPU accelerator cannot start: {_why_not_started(log, error)}; "
                    f"allowed: a machine with a Vulkan device ({_swiftshader_hint()})."
                )
                raise GpuUnavailableError(_start_failure) from None
            reason = (error.strip().splitlines() or ["unknown error"])[-1]
            raise ValueError(
                f"model={str(path)!r}: LiteRT's GPU accelerator refused the file: {reason}"
            ) from None
        refused, _, cpu_ops = _refusals(log)
        whole = model.is_fully_accelerated()
        adapter = re.search(r"Selected adapter: ([^,\n]*)", log)
        self.placement = GpuPlacement(
            whole=whole,
            ops=op_count,
            cpu_ops=0 if whole else (cpu_ops if cpu_ops is not None else op_count),
            refused=refused,
            adapter=adapter.group(1).strip() if adapter else "unknown",
            log=log,
        )

    def _setup(self, model):
        self._model = model
        signatures = model.get_signature_list()
        self.signature = (
            "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
        )
        self.index = model.get_signature_index(self.signature)
        (self.input_name, detail), = model.get_input_tensor_details(self.signature).items()
        self.input_shape = tuple(int(s) for s in detail["shape"])
        self.input_dtype = np.dtype(detail["dtype"])
        self.outputs = {
            name: (tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]))
            for name, d in model.get_output_tensor_details(self.signature).items()
        }
        self._inputs = model.create_input_buffers(self.index)
        self._outputs = model.create_output_buffers(self.index)
        # A first run: the engine finishes its set-up (and logs it) there.
        self.run(np.zeros(self.input_shape, self.input_dtype))

    def close(self):
        """Releases the compiled model (its engine logs the release; kept out of stderr too)."""
        if getattr(self, "_model", None) is None:
            return
        with _captured_stderr():
            self._inputs = self._outputs = self._model = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # at interpreter exit, os may already be torn down
            pass

    @property
    def batch_size(self):
        return self.input_shape[0]

    def run(self, batch):
        self._inputs[0].write(np.ascontiguousarray(batch, dtype=self.input_dtype))
        self._model.run_by_index(self.index, self._inputs, self._outputs)
        return {
            name: buffer.read(int(np.prod(shape)), dtype).reshape(shape)
            for (name, (shape, dtype)), buffer in zip(self.outputs.items(), self._outputs)
        }


