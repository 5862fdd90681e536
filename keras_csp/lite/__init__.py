"""On-device runtime for keras_csp's `.tflite` models: no TensorFlow, no Keras.

Needs numpy and one interpreter runtime, tried in this order: `ai-edge-litert` (LiteRT), then
`tflite-runtime`, then TensorFlow's `tf.lite.Interpreter` as a last resort (set
`KERAS_CSP_LITE_BACKEND` to `litert`, `tflite-runtime` or `tensorflow` to choose). Image files are
decoded with Pillow (PNG, JPEG, BMP, GIF), which is small and installs everywhere numpy does.

    from keras_csp import lite
    model = lite.LiteModel("cspresnext50.tflite")
    image = lite.load_image("cat.jpg", size=model.input_size, resize="crop")
    probabilities = model(image)["probabilities"][0]
    lite.top_k(probabilities, 5)

An exported model takes raw pixel values and normalizes them itself (see
`keras_csp/export/serving.py` for the contract: input `images`, outputs `probabilities`, or
`boxes`/`scores`/`classes` for detectors, or named features).

`LiteModel(path, accelerator="gpu")` runs the file on LiteRT's GPU accelerator (ai-edge-litert
>= 2.3 and a Vulkan device; see `keras_csp/lite_gpu.py`), `"auto"` uses it when it starts and the
CPU otherwise; `model.gpu_placement` says whether the whole graph is on the GPU.
"""

import dataclasses
import hashlib
import importlib
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from keras_csp import lite_gpu as _gpu
from keras_csp.lite_gpu import (  # noqa: F401
    ACCELERATORS,
    GpuUnavailableError,
    check_accelerator,
    use_swiftshader,
)

BACKENDS = ("litert", "tflite-runtime", "tensorflow")
_BACKEND_MODULES = {
    "litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow",
}
IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
RESIZE_MODES = ("none", "crop", "stretch")
# timm's evaluation crop for the CSPNet checkpoints (resize to size / 0.887, center crop).
DEFAULT_CROP_FRACTION = 0.887


def interpreter_class(backend=None):
    """`(backend name, Interpreter class)`: the first runtime that imports, or the one asked for."""
    backend = backend or os.environ.get("KERAS_CSP_LITE_BACKEND") or None
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} does not exist; allowed: {', '.join(BACKENDS)}.")
    for name in (backend,) if backend else BACKENDS:
        try:
            module = importlib.import_module(_BACKEND_MODULES[name])
        except ImportError:
            continue
        return name, (module.lite.Interpreter if name == "tensorflow" else module.Interpreter)
    raise ImportError(
        "no TFLite runtime found; install one: pip install ai-edge-litert (or tflite-runtime, or "
        "tensorflow)" + (f" (asked for backend={backend!r})" if backend else "")
    )


def _check_model_file(path):
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model={str(path)!r} does not exist; allowed: a .tflite file.")
    with open(path, "rb") as f:
        head = f.read(8)
    # A TFLite flatbuffer carries the file identifier "TFL3" at bytes 4..8.
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ValueError(
            f"model={str(path)!r} is not a TFLite model (no TFL3 identifier); allowed: a .tflite "
            "file written by `keras-csp export --format tflite`."
        )
    return path


# The TFLite schema (tensorflow/lite/schema/schema.fbs) as far as the bounds check below needs it:
# table -> {field index: kind}. Kinds: "str", "[str]"-like vectors "[N]" of N-byte scalars,
# "[Table]" vectors of tables, "Table" a table, "*" a table of any type (unions), "$" a buffer.
_SCHEMA = {
    "Model": {1: "[OperatorCode]", 2: "[SubGraph]", 3: "str", 4: "[Buffer]", 5: "[4]",
              6: "[Metadata]", 7: "[SignatureDef]"},
    "OperatorCode": {1: "str"},
    "SubGraph": {0: "[Tensor]", 1: "[4]", 2: "[4]", 3: "[Operator]", 4: "str"},
    "Tensor": {0: "[4]", 3: "str", 4: "QuantizationParameters", 6: "*", 7: "[4]", 9: "[*]"},
    "QuantizationParameters": {0: "[4]", 1: "[4]", 2: "[4]", 3: "[8]", 5: "*"},
    "Operator": {1: "[4]", 2: "[4]", 4: "*", 5: "[1]", 7: "[1]", 8: "[4]", 12: "*"},
    "Buffer": {0: "[1]"},
    "Metadata": {0: "str"},
    "SignatureDef": {0: "[TensorMap]", 1: "[TensorMap]", 2: "str", 3: "str"},
    "TensorMap": {0: "str"},
}


def verify_tflite_bytes(data):
    """Raises ValueError if a TFLite flatbuffer points outside itself (e.g. a truncated file).

    tflite-runtime 2.14 does not verify models before reading them and crashes (SIGSEGV/SIGBUS)
    on a truncated file; this walks every table, vector and string of the schema with bounds
    checks first. It checks structure, not meaning (the interpreter checks indices itself).
    """
    size = len(data)
    seen = set()  # tables reached twice (offsets may share them) are walked once: linear time

    def u32(pos):
        if pos < 0 or pos + 4 > size:
            raise ValueError(f"offset {pos} is past the end ({size} bytes)")
        return int.from_bytes(data[pos : pos + 4], "little")

    def table(pos, kind):
        if (pos, kind) in seen:
            return
        seen.add((pos, kind))
        if pos + 4 > size:
            raise ValueError(f"table at {pos} is past the end ({size} bytes)")
        vtable = pos - int.from_bytes(data[pos : pos + 4], "little", signed=True)
        if vtable < 0 or vtable + 4 > size:
            raise ValueError(f"table at {pos} has its vtable outside the file")
        vsize = int.from_bytes(data[vtable : vtable + 2], "little")
        tsize = int.from_bytes(data[vtable + 2 : vtable + 4], "little")
        if vsize < 4 or vtable + vsize > size or pos + tsize > size:
            raise ValueError(f"table at {pos} extends past the end ({size} bytes)")
        fields = _SCHEMA.get(kind, {})
        for index, field_kind in fields.items():
            slot = 4 + 2 * index
            if slot + 2 > vsize:
                continue
            offset = int.from_bytes(data[vtable + slot : vtable + slot + 2], "little")
            if offset == 0:
                continue
            if offset + 4 > tsize:
                raise ValueError(f"field {index} of a {kind} lies outside its table")
            where = pos + offset
            value(where + u32(where), field_kind)
        if kind == "Buffer" and vsize >= 10:  # offset/size of data kept after the flatbuffer
            start, length = (_u64_field(data, vtable, pos, i) for i in (1, 2))
            if start > 1 and start + length > size:
                raise ValueError(f"buffer data at {start}+{length} is past the end ({size} bytes)")

    def value(pos, kind):
        if kind == "str":
            length = u32(pos)
            if pos + 4 + length + 1 > size:
                raise ValueError(f"string at {pos} extends past the end ({size} bytes)")
        elif kind.startswith("["):
            inner = kind[1:-1]
            length = u32(pos)
            width = int(inner) if inner.isdigit() else 4
            if pos + 4 + length * width > size:
                raise ValueError(f"vector at {pos} extends past the end ({size} bytes)")
            if not inner.isdigit():
                for i in range(length):
                    element = pos + 4 + 4 * i
                    table(element + u32(element), inner)
        else:
            table(pos, kind)

    if size < 8:
        raise ValueError(f"only {size} bytes")
    table(u32(0), "Model")


def _u64_field(data, vtable, pos, index):
    """A uint64 field of a table (0 when absent); its bytes lie inside the checked table."""
    slot = vtable + 4 + 2 * index
    offset = int.from_bytes(data[slot : slot + 2], "little")
    return int.from_bytes(data[pos + offset : pos + offset + 8], "little") if offset else 0


# ------------------------------------------------------------------------ what a file may declare

# Bytes per element of each TensorType (schema.fbs); STRING, RESOURCE and VARIANT have no size.
_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4,
               16: 2, 17: 0.5, 18: 2, 19: 0.25, 20: 0.5}
_UNSIZED_TYPES = {5, 13, 14}
# Inputs a model may leave out (index -1): the bias of convolutions and fully connected layers,
# any input of the recurrent ops. Elsewhere the kernels read a -1 input as a tensor and crash
# (SIGSEGV in tflite-runtime 2.14 and LiteRT 2.3 alike).
_OPTIONAL_INPUTS = {3: {2}, 4: {2}, 9: {2}, 67: {3}}
_RECURRENT_OPS = {16, 27, 35, 44, 46, 52}
# Conv2D, DepthwiseConv2D and Pool2D options: {options type: {field: default}} of the strides,
# dilations and filter sizes, which the kernels divide by (0, or a stride of 35841, killed
# tflite-runtime 2.14 with SIGFPE; 4096 ran) or allocate with.
_POSITIVE_OPTIONS = {
    1: {1: 0, 2: 0, 4: 1, 5: 1},
    2: {1: 0, 2: 0, 5: 1, 6: 1},
    5: {1: 0, 2: 0, 3: 0, 4: 0},
}
_MAX_STRIDE = 1 << 12
# Enum fields of common options, {options type: {field: number of values}}: the padding (SAME,
# VALID) and fused activation (NONE..SIGN_BIT) of Conv2D, DepthwiseConv2D, Pool2D,
# FullyConnected (and its weights format), Concatenation, Add, Mul and Sub. The kernels switch on
# them without a default (padding 127 killed tflite-runtime 2.14 with SIGFPE).
# The options type each of those ops reads: {op code: options type}. A CONV_2D whose options
# claim another type is read as Conv2DOptions all the same (type 73: SIGFPE in tflite-runtime).
# Convolutions and pools need theirs (without, their strides are 0); the others may have none.
_OPTIONS_OF = {3: 1, 4: 2, 1: 5, 12: 5, 17: 5, 9: 8, 2: 10, 0: 11, 18: 21, 41: 28}
_OPTIONS_REQUIRED = {1, 3, 4, 12, 17}
_ENUM_OPTIONS = {
    1: {0: 2, 3: 6}, 2: {0: 2, 4: 6}, 5: {0: 2, 5: 6}, 8: {0: 6, 1: 2}, 10: {1: 6}, 11: {0: 6},
    21: {0: 6}, 28: {0: 6},
}


def _slot(data, pos, index):
    """The vtable entry (offset in its table, 0 if absent) of field `index` of a checked table."""
    vtable = pos - int.from_bytes(data[pos : pos + 4], "little", signed=True)
    vsize = int.from_bytes(data[vtable : vtable + 2], "little")
    if 6 + 2 * index > vsize:
        return 0
    return int.from_bytes(data[vtable + 4 + 2 * index : vtable + 6 + 2 * index], "little")


def _scalar(data, pos, index, size=4, signed=False, default=0):
    offset = _slot(data, pos, index)
    if not offset:
        return default
    if pos + offset + size > len(data):
        raise ValueError(f"a field at {pos + offset} is past the end ({len(data)} bytes)")
    return int.from_bytes(data[pos + offset : pos + offset + size], "little", signed=signed)


def _target(data, pos, index):
    """Where field `index` (a vector, string or table, bounds-checked by verify_tflite_bytes)
    points, or None."""
    offset = _slot(data, pos, index)
    if not offset:
        return None
    at = pos + offset
    return at + int.from_bytes(data[at : at + 4], "little")


def _ints(data, pos, index):
    at = _target(data, pos, index)
    if at is None:
        return None
    count = int.from_bytes(data[at : at + 4], "little")
    return [int.from_bytes(data[at + 4 + 4 * i : at + 8 + 4 * i], "little", signed=True)
            for i in range(count)]


def _tables(data, pos, index):
    at = _target(data, pos, index)
    if at is None:
        return []
    count = int.from_bytes(data[at : at + 4], "little")
    elements = (at + 4 + 4 * i for i in range(count))
    return [e + int.from_bytes(data[e : e + 4], "little") for e in elements]


def physical_memory():
    """Bytes of RAM of this machine (16 GiB where the system does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def check_tflite_model(data, max_memory=None):
    """Raises ValueError where a TFLite flatbuffer declares what no interpreter can safely run.

    Run after `verify_tflite_bytes`. Checks every tensor index of every operator and subgraph,
    every opcode and buffer index, every tensor's shape and type, that every constant's buffer
    holds exactly its shape's bytes, the strides, dilations and pool sizes of convolutions and
    pools, and that the non-constant tensors together declare at most `max_memory` bytes (default:
    the machine's RAM; the interpreter's arena, which reuses memory, needs less than their sum),
    so that a damaged file cannot make the interpreter read outside a tensor, divide by zero or
    allocate until the kernel kills the process.
    """
    limit = physical_memory() if max_memory is None else max_memory
    root = int.from_bytes(data[0:4], "little")
    codes = [
        max(_scalar(data, c, 0, 1, signed=True), _scalar(data, c, 3, 4, signed=True))
        for c in _tables(data, root, 1)
    ]
    buffer_sizes = []
    for buffer in _tables(data, root, 4):
        at = _target(data, buffer, 0)
        held = int.from_bytes(data[at : at + 4], "little") if at is not None else 0
        if not held and _scalar(data, buffer, 1, 8) > 1:  # data kept after the flatbuffer
            held = _scalar(data, buffer, 2, 8)
        buffer_sizes.append(held)
    declared = 0
    for s, subgraph in enumerate(_tables(data, root, 2)):
        tensors = _tables(data, subgraph, 0)
        for t, tensor in enumerate(tensors):
            where = f"subgraph {s}, tensor {t}"
            shape = _ints(data, tensor, 0) or []
            signature = _ints(data, tensor, 7)
            kind = _scalar(data, tensor, 1, 1, signed=True)
            buffer = _scalar(data, tensor, 2)
            if buffer >= max(len(buffer_sizes), 1):
                raise ValueError(f"{where} names buffer {buffer} of {len(buffer_sizes)}")
            if any(d < 0 for d in shape) or len(shape) > 16:
                raise ValueError(f"{where} has the impossible shape {shape}")
            if signature is not None and (
                len(signature) != len(shape) or any(d < -1 for d in signature)
            ):
                raise ValueError(f"{where} has shape {shape} but shape signature {signature}")
            if kind in _UNSIZED_TYPES:
                continue
            if kind not in _TYPE_BYTES:
                raise ValueError(f"{where} has the unknown type {kind}")
            count = 1
            for d in shape:
                count *= d
            size = -(-count * int(_TYPE_BYTES[kind] * 4) // 4)  # exact: sizes are quarter bytes
            held = buffer_sizes[buffer] if buffer < len(buffer_sizes) else 0
            if held and not _slot(data, tensor, 6) and held != size:  # a dense constant
                raise ValueError(
                    f"{where} of shape {shape} needs {size} bytes but its buffer holds {held}"
                )
            if not held:
                declared += size
        count = len(tensors)
        for name, index in (("inputs", 1), ("outputs", 2)):
            bad = [i for i in _ints(data, subgraph, index) or [] if not 0 <= i < count]
            if bad:
                raise ValueError(f"subgraph {s} lists {name} {bad} of {count} tensors")
        for o, op in enumerate(_tables(data, subgraph, 3)):
            _check_operator(data, op, f"subgraph {s}, operator {o}", codes, count)
    if declared > limit:
        raise ValueError(
            f"its tensors declare {declared / 2**30:.1f} GiB, more than max_memory="
            f"{limit / 2**30:.1f} GiB"
        )


def _check_operator(data, op, where, codes, count):
    opcode = _scalar(data, op, 0)
    if opcode >= len(codes):
        raise ValueError(f"{where} names opcode {opcode} of {len(codes)}")
    code = codes[opcode]
    for k, i in enumerate(_ints(data, op, 1) or []):
        optional = code in _RECURRENT_OPS or k in _OPTIONAL_INPUTS.get(code, ())
        if not (0 <= i < count or (i == -1 and optional)):
            raise ValueError(f"{where} reads tensor {i} as input {k} ({count} tensors)")
    bad = [i for i in _ints(data, op, 2) or [] if not 0 <= i < count]
    if bad:
        raise ValueError(f"{where} writes tensors {bad} ({count} tensors)")
    kind = _scalar(data, op, 3, 1)
    options = _target(data, op, 4)
    expected = _OPTIONS_OF.get(code)
    if expected is not None and (
        (kind, options is None) != (expected, False) if code in _OPTIONS_REQUIRED
        else kind not in (0, expected)
    ):
        raise ValueError(f"{where} (op {code}) has options of type {kind}, not {expected}")
    if options is None:
        return
    for field, default in _POSITIVE_OPTIONS.get(kind, {}).items():
        value = _scalar(data, options, field, 4, signed=True, default=default)
        if not 1 <= value <= _MAX_STRIDE:
            raise ValueError(f"{where} has a stride, dilation or pool size of {value}")
    for field, count in _ENUM_OPTIONS.get(kind, {}).items():
        value = _scalar(data, options, field, 1, signed=True)
        if not 0 <= value < count:
            raise ValueError(f"{where} has option {field} = {value} (allowed: 0 to {count - 1})")


# ------------------------------------------------------------------------------------- checksum

# Written by the export (keras_csp/export/checksum.py) as a TFLite metadata entry of this name,
# whose buffer holds CHECKSUM_PREFIX and the SHA-256 of the file with those 32 bytes zeroed.
CHECKSUM_NAME = "keras_csp.sha256"
CHECKSUM_PREFIX = b"keras_csp.sha256:"


def checksum_position(data):
    """Where the 32 digest bytes of the file's checksum lie, or None for a file without one.

    A file in which the name still appears (in the metadata name or the buffer's prefix) but
    whose entry cannot be followed is refused: damage that hid the checksum must not pass as "no
    checksum".
    """
    root = int.from_bytes(data[0:4], "little")
    buffers = _tables(data, root, 4)
    for entry in _tables(data, root, 6):
        at = _target(data, entry, 0)
        if at is None:
            continue
        length = int.from_bytes(data[at : at + 4], "little")
        if bytes(data[at + 4 : at + 4 + length]) != CHECKSUM_NAME.encode():
            continue
        index = _scalar(data, entry, 1)
        at = _target(data, buffers[index], 0) if index < len(buffers) else None
        want = len(CHECKSUM_PREFIX) + 32
        if at is None or int.from_bytes(data[at : at + 4], "little") != want or bytes(
            data[at + 4 : at + 4 + len(CHECKSUM_PREFIX)]
        ) != CHECKSUM_PREFIX:
            raise ValueError("its keras_csp checksum entry is damaged")
        return at + 4 + len(CHECKSUM_PREFIX)
    if CHECKSUM_NAME.encode() in data:
        raise ValueError("it holds a keras_csp checksum that its metadata no longer lists")
    return None


def file_digest(data, at):
    """SHA-256 of `data` with the 32 bytes at `at` read as zeros."""
    digest = hashlib.sha256(memoryview(data)[:at])
    digest.update(bytes(32))
    digest.update(memoryview(data)[at + 32 :])
    return digest.digest()


def verify_checksum(data):
    """True if the file's checksum matches, False if it has none; ValueError if it differs."""
    at = checksum_position(data)
    if at is None:
        return False
    if file_digest(data, at) != bytes(data[at : at + 32]):
        raise ValueError(
            "its SHA-256 differs from the one the export wrote into it: the file changed after "
            "export"
        )
    return True


@dataclasses.dataclass
class TensorInfo:
    name: str
    shape: tuple  # -1 for dynamic dimensions
    dtype: np.dtype
    scale: float
    zero_point: int

    @property
    def quantized(self):
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)


def _tensor_info(name, detail):
    scale, zero_point = detail.get("quantization", (0.0, 0))
    shape = detail.get("shape_signature", detail["shape"])
    return TensorInfo(name, tuple(int(s) for s in shape), np.dtype(detail["dtype"]), float(scale),
                      int(zero_point))


class LiteModel:
    """A keras_csp `.tflite` model, run with the best available interpreter.

    Call it with images of shape (height, width, 3) or (batch, height, width, 3) holding pixel
    values 0..255 (uint8 or float); it returns a dict of float32 arrays, dequantized when the model
    has integer outputs.

    `accelerator`: "cpu" (the interpreter, with XNNPACK), "gpu" (LiteRT's GPU accelerator; ops it
    cannot run stay on the CPU and `gpu_placement` names them; raises `GpuUnavailableError`,
    saying what is missing, where it cannot start) or "auto" (the GPU when it starts, else the
    CPU with a warning). `self.accelerator` is the one in use. `gpu_options`: LiteRT's
    `ai_edge_litert.options.GpuOptions` (e.g. `enforce_f32=True`; by default the GPU may compute
    in fp16).

    A file whose checksum (written by the export) does not match, or that fails
    `check_tflite_model`, is refused with a ValueError before the interpreter reads it;
    `self.checksum_verified` says whether it carried a matching checksum. `max_memory`: the most
    bytes its non-constant tensors may declare (default: the machine's RAM).
    """

    def __init__(self, path, num_threads=None, backend=None, accelerator="cpu", gpu_options=None,
                 max_memory=None):
        _gpu.check_accelerator(accelerator)
        self.path = _check_model_file(path)
        self.num_threads = num_threads
        self.backend, interpreter = interpreter_class(backend)
        content = self.path.read_bytes()
        try:
            verify_tflite_bytes(content)
            # True where the export's checksum matched (every byte as written), False for a file
            # without one, which then gets only the checks below.
            self.checksum_verified = verify_checksum(content)
            check_tflite_model(content, max_memory)
        except ValueError as e:
            raise ValueError(
                f"model={str(self.path)!r} is truncated or corrupt ({e}); allowed: a complete "
                ".tflite file as the export wrote it."
            ) from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
                # From the bytes just checked (a mapped file that changes could still crash).
                self._interpreter = interpreter(model_content=content, num_threads=num_threads)
            self._read_signature()
        except Exception as e:  # whatever the runtime raises (RuntimeError, ValueError, ...)
            raise self._corrupt("cannot be read as a TFLite model", e) from None
        if len(self.inputs) != 1 or len(self.inputs[0].shape) != 4:
            raise ValueError(
                f"model={str(self.path)!r} has inputs {[(i.name, i.shape) for i in self.inputs]}; "
                "allowed: one image input of shape (batch, height, width, channels)."
            )
        self._start_accelerator(accelerator, gpu_options)

    def _corrupt(self, what, error):
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return ValueError(
            f"model={str(self.path)!r} {what} (truncated or corrupt?): {type(error).__name__}: "
            f"{reason}; allowed: a complete .tflite file as the export wrote it."
        )

    def _read_signature(self):
        signatures = self._interpreter.get_signature_list()
        if signatures:
            key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
            self._runner = self._interpreter.get_signature_runner(key)
            inputs = self._runner.get_input_details()
            outputs = self._runner.get_output_details()
            self.inputs = [_tensor_info(n, d) for n, d in inputs.items()]
            self.outputs = [_tensor_info(n, d) for n, d in outputs.items()]
        else:  # a model without signatures: tensors in file order
            self._runner = None
            self._interpreter.allocate_tensors()
            inputs = self._interpreter.get_input_details()
            self.inputs = [_tensor_info(d["name"], d) for d in inputs]
            self.outputs = [
                _tensor_info(d["name"], d) for d in self._interpreter.get_output_details()
            ]

    def _start_accelerator(self, accelerator, gpu_options):
        self.accelerator, self.gpu_placement, self._gpu = "cpu", None, None
        if accelerator == "cpu":
            return
        try:
            ops = [op for op in self.ops() if op != "DELEGATE"]  # not XNNPACK's own nodes
            self._gpu = _gpu.GpuRunner(self.path, len(ops), self.num_threads, gpu_options)
        except (_gpu.GpuUnavailableError, ValueError) as e:  # ValueError: the file refused
            if accelerator == "gpu":
                raise
            warnings.warn(f"accelerator='auto': running on the CPU: {e}", stacklevel=3)
            return
        self.accelerator, self.gpu_placement = "gpu", self._gpu.placement

    @property
    def input(self):
        return self.inputs[0]

    @property
    def input_size(self):
        """(height, width) of the images the model takes."""
        return tuple(self.input.shape[1:3])

    @property
    def output_names(self):
        return [o.name for o in self.outputs]

    @property
    def kind(self):
        names = set(self.output_names)
        if "probabilities" in names:
            return "classifier"
        if {"boxes", "scores"} <= names:
            return "detector"
        return "backbone"

    def _check_images(self, images):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        h, w, c = self.input.shape[1:]
        if images.ndim != 4 or not np.issubdtype(images.dtype, np.number):
            raise ValueError(
                f"images of shape {images.shape} and dtype {images.dtype} are not allowed; "
                f"allowed: ({h}, {w}, {c}) or (batch, {h}, {w}, {c}) pixel values 0..255."
            )
        if images.shape[-1] != c:
            raise ValueError(
                f"images have {images.shape[-1]} channels; the model takes {c}: allowed: "
                f"({h}, {w}, {c}) or (batch, {h}, {w}, {c}) arrays of RGB pixels."
            )
        if (h > 0 and images.shape[1] != h) or (w > 0 and images.shape[2] != w):
            raise ValueError(
                f"images are {images.shape[2]}x{images.shape[1]}; the model takes {w}x{h}: "
                "allowed: images of that size (load_image(..., resize='crop') resizes)."
            )
        return images

    def _encode(self, images):
        info = self.input
        if info.quantized:
            limits = np.iinfo(info.dtype)
            q = np.round(images.astype("float32") / info.scale + info.zero_point)
            return np.clip(q, limits.min, limits.max).astype(info.dtype)
        return images.astype(info.dtype)

    @staticmethod
    def _decode(info, value):
        value = np.asarray(value)
        if info.quantized:
            return (value.astype("float32") - info.zero_point) * info.scale
        return value.astype("float32") if value.dtype != np.float32 else value

    def __call__(self, images):
        images = self._encode(self._check_images(images))
        # The GPU runs the shape it was compiled for (batch 1 for a dynamic batch).
        fixed = self._gpu.batch_size if self._gpu is not None else self.input.shape[0]
        if fixed > 0 and len(images) != fixed:  # a fixed-batch model: run it chunk by chunk
            chunks = []
            for start in range(0, len(images), fixed):
                chunk = images[start : start + fixed]
                pad = fixed - len(chunk)
                if pad:
                    chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
                chunks.append(self._checked_run(chunk))
            return {
                name: np.concatenate([c[name] for c in chunks])[: len(images)] for name in chunks[0]
            }
        return self._checked_run(images)

    def _checked_run(self, images):
        # The images were checked against the input; what the interpreter still refuses (a
        # tensor it cannot allocate or an op it cannot prepare) is the file's fault.
        try:
            return self._run(images)
        except (RuntimeError, MemoryError) as e:  # MemoryError: the runtime's std::bad_alloc
            raise self._corrupt("cannot run", e) from None

    def _run(self, images):
        if self._gpu is not None:
            results = self._gpu.run(images)
            return {o.name: self._decode(o, results[o.name]) for o in self.outputs}
        if self._runner is not None:
            results = self._runner(**{self.input.name: images})
            return {o.name: self._decode(o, results[o.name]) for o in self.outputs}
        it = self._interpreter
        detail = it.get_input_details()[0]
        if tuple(detail["shape"]) != images.shape:
            it.resize_tensor_input(detail["index"], images.shape)
            it.allocate_tensors()
        it.set_tensor(detail["index"], images)
        it.invoke()
        return {
            o.name: self._decode(o, it.get_tensor(d["index"]))
            for o, d in zip(self.outputs, it.get_output_details())
        }

    predict = __call__

    def ops(self):
        """Op names in execution order (a private but long-stable interpreter call)."""
        return [d["op_name"] for d in self._interpreter._get_ops_details()]

    def undelegated_ops(self):
        """Names of the ops that run outside the interpreter's delegate (XNNPACK on CPU).

        `[]` means the delegate runs the whole graph; see `undelegated_nodes`.
        """
        return [node["op_name"] for node in self.undelegated_nodes()]

    def undelegated_nodes(self):
        """The nodes (op name, output tensor names, ...) that run outside the delegate."""
        # A fresh interpreter: the delegate takes its nodes over when tensors are allocated, and
        # the one that runs the model may not have allocated yet (or must not re-allocate).
        _, interpreter = interpreter_class(self.backend)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            it = interpreter(model_content=self.path.read_bytes(), num_threads=self.num_threads)
        return undelegated_nodes(it)


def undelegated_nodes(interpreter):
    """The nodes of `interpreter` (an Interpreter of any backend, with its default delegates) that
    its delegate leaves to the interpreter: `{"op_name", "index", "outputs", "output_names"}`.

    The node list keeps the ops a delegate took over, next to the DELEGATE nodes that run them.
    Walking back from the model's outputs, a tensor no DELEGATE node produces must come from an
    op the interpreter runs itself.
    """
    interpreter.allocate_tensors()  # the delegate takes its nodes over here
    nodes = interpreter._get_ops_details()
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}
    delegates = [n for n in nodes if n["op_name"] == "DELEGATE"]
    from_delegate = {t for n in delegates for t in n["outputs"]}
    producer = {t: n for n in nodes if n["op_name"] != "DELEGATE" for t in n["outputs"]}
    needed = [d["index"] for d in interpreter.get_output_details()]
    needed += [t for n in delegates for t in n["inputs"]]
    seen, outside = set(), {}  # outside: node index -> node
    while needed:
        t = needed.pop()
        if t in seen or t < 0 or t in from_delegate or t not in producer:
            continue  # model inputs and constants have no producer
        seen.add(t)
        node = producer[t]
        if node["index"] not in outside:
            outside[node["index"]] = node
            needed.extend(node["inputs"])
    return [
        {
            "op_name": outside[i]["op_name"],
            "index": i,
            "outputs": [int(t) for t in outside[i]["outputs"]],
            "output_names": [names.get(int(t), "") for t in outside[i]["outputs"]],
        }
        for i in sorted(outside)
    ]


# ---------------------------------------------------------------------------------------- images


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "decoding image files needs Pillow: pip install pillow (or pass decoded arrays)"
        ) from None
    return Image


def check_resize(resize, argument="resize"):
    if resize not in RESIZE_MODES:
        raise ValueError(
            f"{argument}={resize!r} does not exist; allowed: {', '.join(RESIZE_MODES)}."
        )


class UnreadableImageError(ValueError):
    """An image file that cannot be decoded (corrupt, truncated, not an image at all).

    Where many files are read (`read_images`: evaluation, calibration, `keras-csp predict`) such
    files are skipped and counted, as training skips them; `load_image` on one file raises it.
    """


def check_image_size(size, argument="size"):
    """`None`, an int (a square) or (height, width) -> `None` or (height, width) of ints >= 1."""
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    try:
        height, width = size
    except (TypeError, ValueError):
        height = width = None
    for value in (height, width):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(
                f"{argument}={size!r} is not allowed; allowed: None, an integer >= 1 (a square) or "
                "(height, width) of integers >= 1."
            )
    return int(height), int(width)


def _to_rgb(img):
    """A decoded PIL image as RGB, the way training's decoder (`tf.io.decode_image(channels=3)`)
    sees it: grey replicated, alpha dropped, palettes looked up, 16-bit values scaled to 8 bits."""
    if img.mode == "RGB":
        return img
    if img.mode.startswith("I"):  # 16/32-bit grey: PIL's own conversion clips at 255
        grey = np.asarray(img, dtype=np.float64) / 257.0
        grey = np.clip(np.round(grey), 0, 255).astype(np.uint8)
        return _pil().fromarray(np.repeat(grey[..., None], 3, axis=-1), "RGB")
    if img.mode == "P":  # a palette with transparency converts through RGBA without a warning
        img = img.convert("RGBA")
    return img.convert("RGB")


def load_image(path, size=None, resize="none", crop_fraction=DEFAULT_CROP_FRACTION):
    """An image file as a uint8 (height, width, 3) RGB array.

    `size` is (height, width) the model takes, or an int for a square. `resize="none"` requires
    the file to have that size already; "stretch" resizes to it; "crop" resizes so that the
    center `crop_fraction` of the image covers it and cuts the center out (timm's evaluation
    transform). Grey, grey+alpha, RGBA, palette and 16-bit files are converted to RGB as training
    converts them (alpha is dropped, not blended). A file that cannot be decoded raises
    `UnreadableImageError` (a ValueError).
    """
    check_resize(resize)
    size = check_image_size(size)
    Image = _pil()
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"image={str(path)!r} is a folder; allowed: an image file.")
    if not path.is_file():
        raise ValueError(f"image={str(path)!r} does not exist; allowed: an image file.")
    undecodable = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
    try:
        opened = Image.open(path)
    except undecodable as e:
        raise _unreadable(path, e) from None
    with opened:  # closing the file also discards the pixels: everything happens inside
        try:
            opened.load()
            img = _to_rgb(opened)
        except undecodable as e:
            raise _unreadable(path, e) from None
        if size is not None:
            img = _fit(img, size, resize, crop_fraction, path, Image)
        return np.asarray(img, dtype=np.uint8).copy()


def _unreadable(path, error):
    return UnreadableImageError(
        f"image={str(path)!r} is not an image file that can be decoded ({type(error).__name__}: "
        f"{error}); allowed: {', '.join(IMAGE_EXTENSIONS)} files."
    )


def read_images(paths, size, resize="none", crop_fraction=DEFAULT_CROP_FRACTION, skipped=None):
    """`(images, kept)`: the files of `paths` that decode, as one uint8 (n, h, w, 3) array, and
    their indices in `paths`.

    The one image reader of evaluation, calibration and `keras-csp predict`: a file that cannot
    be decoded is skipped and appended to `skipped` (a list, if given) as `(path, reason)`; any
    other problem (a wrong size with resize="none", a missing file) is raised. `images` is None
    when no file decodes.
    """
    images, kept = [], []
    for index, path in enumerate(paths):
        try:
            images.append(load_image(path, size, resize, crop_fraction))
        except UnreadableImageError as e:
            if skipped is not None:
                skipped.append((str(path), str(e)))
            continue
        kept.append(index)
    return (np.stack(images) if images else None), kept


def describe_skipped(skipped, limit=5):
    """'2 unreadable image(s) skipped: a.png, b.png' for `read_images`' list (or '')."""
    if not skipped:
        return ""
    names = [path for path, _ in skipped]
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{len(names)} unreadable image(s) skipped: {shown}"


def _fit(img, size, resize, crop_fraction, path, Image):
    h, w = size
    if img.size == (w, h):
        return img
    if resize == "none":
        raise ValueError(
            f"image={str(path)!r} is {img.size[0]}x{img.size[1]}; the model takes {w}x{h}: "
            "allowed: an image of that size, or resize='crop' or 'stretch'."
        )
    if resize == "stretch":
        return img.resize((w, h), Image.BILINEAR)
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction={crop_fraction!r}; allowed: 0 < crop_fraction <= 1.")
    scale = max(h / crop_fraction / img.size[1], w / crop_fraction / img.size[0])
    new_w = max(w, int(round(img.size[0] * scale)))
    new_h = max(h, int(round(img.size[1] * scale)))
    img = img.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - w) // 2, (new_h - h) // 2
    return img.crop((left, top, left + w, top + h))


def list_images(folder):
    """Image files under `folder` (recursively), sorted."""
    folder = Path(folder)
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def image_folder(folder, argument="data"):
    """`(files, labels, class_names)` of a folder with one subfolder per class.

    Classes are the sorted subfolder names, as `keras.utils.image_dataset_from_directory` orders
    them, so the label indices are those a Keras model trained from such a folder uses.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(
            f"{argument}={str(folder)!r} is not a folder; allowed: a folder with one subfolder of "
            "images per class."
        )
    class_names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    files, labels = [], []
    for label, name in enumerate(class_names):
        for path in list_images(folder / name):
            files.append(path)
            labels.append(label)
    if not files:
        raise ValueError(
            f"{argument}={str(folder)!r} holds no images in class subfolders; allowed: a folder "
            f"with one subfolder per class holding {', '.join(IMAGE_EXTENSIONS)} files."
        )
    return files, np.array(labels), class_names


# --------------------------------------------------------------------------------------- results


def top_k(probabilities, k=5):
    """`[(class index, probability)]`, highest first."""
    p = np.asarray(probabilities).reshape(-1)
    order = np.argsort(-p, kind="stable")[:k]
    return [(int(i), float(p[i])) for i in order]


def detections(outputs, index=0, score_threshold=0.25, iou_threshold=0.5, max_detections=100):
    """`[(x1, y1, x2, y2, score, class)]` of one image from a detector's outputs, best first.

    Outputs after non-max suppression (`boxes` (N, K, 4), `scores` (N, K), `classes`) are read as
    they are; outputs before it (`scores` (N, A, classes), no `classes`: what a TFLite detector
    returns) are suppressed here, as keras-cv's NonMaxSuppression does: each anchor keeps its best
    class, then boxes overlapping a better one by more than `iou_threshold` are dropped.
    """
    boxes = np.asarray(outputs["boxes"], dtype="float32")[index].reshape(-1, 4)
    scores = np.asarray(outputs["scores"], dtype="float32")[index]
    if "classes" not in outputs and scores.ndim == 2:
        classes = np.argmax(scores, axis=-1)
        scores = scores[np.arange(len(scores)), classes]
        keep = _suppress(boxes, scores, score_threshold, iou_threshold, max_detections)
        return [(*map(float, boxes[i]), float(scores[i]), int(classes[i])) for i in keep]
    scores = scores.reshape(-1)
    classes = np.asarray(outputs.get("classes", np.zeros_like(scores)))[index].reshape(-1)
    count = len(scores)
    if "num_detections" in outputs:
        count = min(count, int(np.asarray(outputs["num_detections"]).reshape(-1)[index]))
    result = [
        (*map(float, boxes[i]), float(scores[i]), int(round(float(classes[i]))))
        for i in range(count)
        if scores[i] > score_threshold
    ]
    return sorted(result, key=lambda d: -d[4])[:max_detections]


def _suppress(boxes, scores, score_threshold, iou_threshold, max_detections):
    """Greedy non-max suppression: indices of the kept boxes, best score first."""
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] > score_threshold]
    x1, y1, x2, y2 = boxes.T
    area = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    keep = []
    order = np.array(order, dtype=int)
    while order.size and len(keep) < max_detections:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0)
        h = np.maximum(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0)
        overlap = w * h
        iou = overlap / np.maximum(area[best] + area[rest] - overlap, 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


def draw_boxes(image, boxes, path, class_names=None):
    """Draws `detections(...)` onto a copy of `image` (uint8 HxWx3) and writes it as PNG."""
    Image = _pil()
    from PIL import ImageDraw

    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"draw={str(path)!r}: the folder {str(path.parent)!r} does not exist.")
    canvas = Image.fromarray(np.asarray(image, dtype=np.uint8))
    pen = ImageDraw.Draw(canvas)
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48)]
    for x1, y1, x2, y2, score, cls in boxes:
        color = palette[cls % len(palette)]
        left, right = sorted((x1, x2))
        top, bottom = sorted((y1, y2))
        pen.rectangle([left, top, right, bottom], outline=color, width=2)
        label = class_names[cls] if class_names and 0 <= cls < len(class_names) else str(cls)
        pen.text((left + 2, top + 1), f"{label} {score:.2f}", fill=color)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        canvas.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    return path


def evaluate(model, folder, resize="none", batch_size=32, crop_fraction=DEFAULT_CROP_FRACTION):
    """Top-1 and top-5 accuracy of a classifier `.tflite` (or LiteModel) on a class-per-folder set.

    Images go through the same decoding and resizing as `load_image`, and the model normalizes
    them itself, so this is the number `keras_csp.export.evaluate_keras` gives for the Keras model
    on the same folder. Returns `{"top1", "top5", "count", "classes", "skipped",
    "skipped_files"}`: files that cannot be decoded are skipped and listed, not counted.
    """
    check_resize(resize)
    model = model if isinstance(model, LiteModel) else LiteModel(model)
    if model.kind != "classifier":
        raise ValueError(
            f"model={str(model.path)!r} is a {model.kind} (outputs {model.output_names}); "
            "allowed: a classifier, whose output is 'probabilities'."
        )
    files, labels, class_names = image_folder(folder)
    return _accuracy(
        lambda x: model(x)["probabilities"], model.input_size, files, labels, class_names,
        resize, batch_size, crop_fraction,
    )


def _accuracy(predict, size, files, labels, class_names, resize, batch_size, crop_fraction):
    top1 = top5 = n = 0
    skipped = []
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        images, kept = read_images(chunk, size, resize, crop_fraction, skipped)
        if images is None:
            continue
        probs = np.asarray(predict(images))
        if probs.shape[-1] < len(class_names):
            raise ValueError(
                f"the folder has {len(class_names)} classes but the model predicts "
                f"{probs.shape[-1]}; allowed: a folder whose classes are the model's."
            )
        truth = labels[start : start + batch_size][kept]
        ranked = np.argsort(-probs, axis=-1, kind="stable")
        top1 += int(np.sum(ranked[:, 0] == truth))
        top5 += int(np.sum(np.any(ranked[:, :5] == truth[:, None], axis=-1)))
        n += len(kept)
    if n == 0:
        raise ValueError(
            f"none of the {len(files)} image(s) could be decoded ({describe_skipped(skipped)}); "
            f"allowed: a folder with readable {', '.join(IMAGE_EXTENSIONS)} files."
        )
    return {
        "top1": top1 / n, "top5": top5 / n, "count": n, "classes": len(class_names),
        "skipped": len(skipped), "skipped_files": [path for path, _ in skipped],
    }


def main(argv=None):
    """`python -m keras_csp.lite predict|evaluate ...`: the same commands as `keras-csp`."""
    from keras_csp.export import cli

    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
