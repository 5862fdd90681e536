"""LiteRT's GPU accelerator for `keras_csp.lite`: start it, run a model on it, say what it left.

The accelerator is ML Drift over WebGPU/Dawn (`libLiteRtWebGpuAccelerator.so` in ai-edge-litert
>= 2.3), the engine behind LiteRT's GPU path on phones. On Linux it needs a Vulkan device: a real
GPU's driver, or SwiftShader, a Vulkan implementation on the CPU that Debian's `chromium` package
ships (`use_swiftshader()`; right for checking what the GPU engine takes and computes, meaningless
for speed). Mesa's lavapipe from Debian 12 is refused by Dawn.

Nothing here imports TensorFlow or Keras. `keras_csp.lite.gpu` compares a file's GPU and CPU
outputs (`python -m keras_csp.lite.gpu MODEL.tflite`).
"""

import contextlib
import ctypes
import dataclasses
import glob
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

ACCELERATORS = ("cpu", "gpu", "auto")
# Debian's chromium package: SwiftShader's Vulkan driver and, next to it, a Vulkan loader.
SWIFTSHADER_ICD = "/usr/lib/chromium/vk_swiftshader_icd.json"
# Where the Vulkan loader looks for driver manifests when no variable names one (Linux).
_ICD_DIRS = (
    "/etc/vulkan/icd.d", "/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d",
    "/etc/xdg/vulkan/icd.d",
)
_ICD_VARIABLES = ("VK_ICD_FILENAMES", "VK_DRIVER_FILES", "VK_ADD_DRIVER_FILES")
INSTALL_HINT = "pip install -U 'ai-edge-litert>=2.3'"
# What the engine logs when it finds no usable Vulkan device (as opposed to refusing a model).
_START_FAILURES = (
    "Couldn't load Vulkan", "No adapters found", "Failed to initialize WebGPU environment",
    "Failed to get or create delegate WebGPU environment",
)


class GpuUnavailableError(RuntimeError):
    """LiteRT's GPU accelerator cannot start here; the message says what is missing."""


# Dawn looks for a Vulkan device once per process and keeps a failure: so do we (its later
# failures only say "No adapters found").
_start_failure = None


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


# ------------------------------------------------------------------------------ Vulkan set-up


def vulkan_drivers():
    """Vulkan driver manifests the loader would find: named by a variable, or installed."""
    named = [
        p for variable in _ICD_VARIABLES for p in os.environ.get(variable, "").split(os.pathsep)
        if p
    ]
    if named:
        return named
    homes = [os.environ.get("XDG_DATA_HOME", os.path.expanduser("~/.local/share"))]
    homes += os.environ.get("XDG_DATA_DIRS", "").split(os.pathsep)
    dirs = list(_ICD_DIRS) + [os.path.join(h, "vulkan", "icd.d") for h in homes if h]
    return sorted({p for d in dirs for p in glob.glob(os.path.join(d, "*.json"))})


def _loader_loadable():
    try:
        ctypes.CDLL("libvulkan.so.1")
        return True
    except OSError:
        return False


def use_swiftshader(icd=SWIFTSHADER_ICD):
    """Makes SwiftShader (software Vulkan, from Debian's chromium) this process's Vulkan device.

    Call it before the first GPU model of the process: Dawn looks for Vulkan once and remembers
    a failure. Sets `VK_ICD_FILENAMES` (so a real GPU's driver is not used), `XDG_RUNTIME_DIR`
    when unset, and loads the Vulkan loader that chromium ships next to the driver when the
    system has none (Debian's chromium does not depend on libvulkan1). Returns the manifest path.
    """
    icd = Path(icd)
    if not icd.is_file():
        raise GpuUnavailableError(
            f"icd={str(icd)!r} does not exist; allowed: SwiftShader's Vulkan driver manifest "
            "(vk_swiftshader_icd.json: apt-get install chromium installs it under "
            "/usr/lib/chromium)."
        )
    os.environ["VK_ICD_FILENAMES"] = str(icd)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="keras_csp_xdg_")
    if not _loader_loadable():
        bundled = icd.parent / "libvulkan.so.1"
        if not bundled.is_file():
            raise GpuUnavailableError(
                f"no Vulkan loader (libvulkan.so.1) on this system or next to {str(icd)!r}; "
                "allowed: install one (apt-get install libvulkan1)."
            )
        # Loaded globally under its soname, it serves Dawn's later dlopen("libvulkan.so.1").
        ctypes.CDLL(str(bundled), mode=ctypes.RTLD_GLOBAL)
    return str(icd)


def _swiftshader_hint():
    if not os.path.isfile(SWIFTSHADER_ICD):
        return (
            "for a software Vulkan device (SwiftShader: checks what the GPU engine runs, not its "
            "speed), apt-get install chromium, then call keras_csp.lite.use_swiftshader() first"
        )
    loader = "" if _loader_loadable() else " LD_LIBRARY_PATH=/usr/lib/chromium"
    return (
        f"for SwiftShader (software Vulkan from chromium, installed here: checks what the GPU "
        f"engine runs, not its speed) call keras_csp.lite.use_swiftshader() before the first "
        f"GPU model, or start the process with VK_ICD_FILENAMES={SWIFTSHADER_ICD}{loader} "
        f"XDG_RUNTIME_DIR=<a writable folder> (Dawn looks for Vulkan once per process)"
    )


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
        named = f" ({', '.join(drivers)} gave no device)" if drivers else ""
        return f"no Vulkan device{named}"
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


# ------------------------------------------------------------------------------- the GPU model


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
        global _start_failure
        if _start_failure is not None:
            raise GpuUnavailableError(_start_failure)
        # The engine logs every step to stderr: kept in `placement.log`, not shown.
        with _captured_stderr() as log:
            try:
                model = compiled_model.CompiledModel.from_file(str(path), options=opts)
                error = None
            except RuntimeError as e:  # kept as text: the error holds the engine until freed
                model, error = None, str(e)
            if model is not None:
                self._setup(model)
        log = log[0]
        if model is None:
            if any(sign in log for sign in _START_FAILURES):
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


