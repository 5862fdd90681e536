"""The SHA-256 the export writes into a `.tflite` file (`keras_csp/export/checksum.py`), read and
checked here before the interpreter sees the file."""

import hashlib

from keras_csp.lite.flatbuffer import _scalar, _tables, _target

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

