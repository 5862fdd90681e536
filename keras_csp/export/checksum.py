"""A SHA-256 of the `.tflite` file inside the file, which `keras_csp.lite` checks before loading.

TFLite's interpreters do not verify what a model's numbers mean: a flipped byte in a weight gives
silently different answers, and one in an operator's indices or options can crash the process.
The export therefore stores, as TFLite metadata (`Model.metadata`, the place TFLite reserves for
such data), an entry named `keras_csp.sha256` whose buffer holds `keras_csp.sha256:` and the
SHA-256 of the whole file with those 32 digest bytes set to zero. `keras_csp.lite` recomputes it
and refuses a file that does not match.
"""

import hashlib

import numpy as np

from keras_csp.lite.checksum import CHECKSUM_NAME, CHECKSUM_PREFIX, checksum_position, file_digest


def add_checksum(content):
    """`content` (a `.tflite` flatbuffer) with the checksum entry added (or renewed)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    metadata = [m for m in (model.metadata or []) if _name(m) != CHECKSUM_NAME]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(CHECKSUM_PREFIX + bytes(hashlib.sha256().digest_size), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = CHECKSUM_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = metadata + [entry]
    out = bytearray(flatbuffer_utils.convert_object_to_bytearray(model))
    at = checksum_position(out)
    out[at : at + 32] = file_digest(out, at)
    return bytes(out)


def _name(metadata):
    name = metadata.name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name
