"""What a TFLite file may declare: `check_tflite_model` refuses what no interpreter can safely run
(indices outside their lists, impossible shapes, buffers of the wrong size, zero strides, unknown
enum values, more tensor memory than the machine has)."""

import os

from keras_csp.lite.flatbuffer import _ints, _scalar, _slot, _tables, _target

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

