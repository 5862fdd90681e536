"""`LiteModel`: one keras_csp `.tflite` file, checked, then run with the best available interpreter
(or on LiteRT's GPU accelerator), taking raw pixels and returning float32 outputs by name."""

import dataclasses
import warnings
from pathlib import Path

import numpy as np

from keras_csp.lite import accelerator as _gpu
from keras_csp.lite.checks import check_tflite_model
from keras_csp.lite.checksum import verify_checksum
from keras_csp.lite.delegate import undelegated_nodes
from keras_csp.lite.flatbuffer import verify_tflite_bytes
from keras_csp.lite.runtime import interpreter_class


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


# Why the GPU engine refuses a file with a dynamic batch, and what to export instead.
DYNAMIC_BATCH_GPU_HINT = (
    "the file has a dynamic batch, whose shape computations the GPU engine cannot run: export it "
    "with batch 1 (the default of `keras-csp export`, or --batch 1; batch=1 in Python)"
)


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
    `self.checksum_verified` says whether it carried a matching checksum (a file without one gets
    a warning). Outputs holding NaN get a warning, once per model. `max_memory`: the most
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
        if not self.checksum_verified:
            warnings.warn(
                f"model={str(self.path)!r}: no keras-csp checksum: integrity not verified (a file "
                "the export did not write, or one rewritten since; the export's checksum detects "
                "damage, not deliberate changes).",
                UserWarning, stacklevel=2,
            )
        self._nan_warned = False
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
            if not isinstance(e, _gpu.GpuUnavailableError) and self.input.shape[0] < 1:
                # The engine's own words ("Failed to modify graph with delegate") do not say why.
                e = ValueError(f"{e}; {DYNAMIC_BATCH_GPU_HINT}")
            if accelerator == "gpu":
                raise e from None
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
            outputs = self._run(images)
        except (RuntimeError, MemoryError) as e:  # MemoryError: the runtime's std::bad_alloc
            raise self._corrupt("cannot run", e) from None
        if not self._nan_warned:
            self._warn_nan(outputs)
        return outputs

    def _warn_nan(self, outputs):
        """Warns once per model when outputs hold NaN: nothing downstream (top-k, NMS) would."""
        names = [name for name, value in outputs.items() if np.isnan(value).any()]
        if names:
            self._nan_warned = True
            warnings.warn(
                f"model={str(self.path)!r} returned NaN in {', '.join(map(repr, names))}: the "
                "images (NaN pixels?) or the file's weights are broken, and the results mean "
                "nothing (said once per model).",
                UserWarning, stacklevel=4,
            )

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
