"""Reading a TFLite flatbuffer safely: a bounds check of its whole structure
(`verify_tflite_bytes`), then field readers that rely on it (`_slot`, `_scalar`, `_target`,
`_ints`, `_tables`), used by the model checks and the checksum."""

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

