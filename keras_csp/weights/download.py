"""Fetching a file over HTTP(S) into a directory, all or nothing.

The body is streamed into a temporary file next to the destination while its SHA-256 is computed;
only a complete file (every byte the server announced, and the expected hash when one is given) is
renamed to the destination. Any failure removes the temporary file, so neither a cache nor a target
path ever holds a partial download.
"""

import hashlib
import http.client
import os
import socket
import sys
import urllib.error
import urllib.request

from keras_csp.export import files

CHUNK = 1 << 20
TIMEOUT_S = 60


class WeightsDownloadError(OSError, ValueError):
    """A download failed (network, HTTP status, truncated body or checksum).

    It is an `OSError` (an I/O problem) and also a `ValueError`, like every other problem with
    `weights=`, so `except ValueError` around a model builder catches it too.
    """


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(error):
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"{error.reason}"
    return f"{error.__class__.__name__}: {error}"


def download(url, destination, sha256=None, timeout=TIMEOUT_S, quiet=False, hint=""):
    """Downloads `url` to `destination` atomically and returns the file's SHA-256.

    Args:
        url: http(s) URL.
        destination: the final path; it only appears once the file is complete and verified.
        sha256: expected hex digest, or None to skip the check (the digest is still returned).
        timeout: seconds of socket inactivity before giving up.
        quiet: no progress lines on stderr.
        hint: text appended to every error message (what to do instead).

    Raises:
        WeightsDownloadError: the server could not be reached, answered with an error, closed
            the connection early, or sent a file with another SHA-256.
    """
    destination = os.fspath(destination)
    directory = os.path.dirname(os.path.abspath(destination))
    os.makedirs(directory, exist_ok=True)
    suffix = f"\n{hint}" if hint else ""
    # Permissions as open() gives them, or those of the file replaced (mkstemp's were 0600).
    partial = files.new_temporary_file(destination, suffix=".part")
    fd = os.open(partial, os.O_WRONLY)
    try:
        digest = hashlib.sha256()
        received = 0
        request = urllib.request.Request(url, headers={"User-Agent": "keras-csp"})
        out = os.fdopen(fd, "wb")
        fd = None
        try:
            with out, urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                if not quiet:
                    size = f" ({expected / 2**20:.1f} MiB)" if expected else ""
                    print(f"Downloading {url}{size}", file=sys.stderr, flush=True)
                show = not quiet and expected and sys.stderr.isatty()
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if show:
                        print(f"\r  {100 * received // expected:3d}%", end="", file=sys.stderr)
                if show:
                    print(file=sys.stderr, flush=True)
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, OSError) as e:
            if isinstance(e, http.client.IncompleteRead):
                received += len(e.partial)
            raise WeightsDownloadError(
                f"Could not download {url}: {_describe(e)}"
                + (f" after {received} bytes" if received else "")
                + f". Nothing was saved.{suffix}"
            ) from None
        if expected is not None and received != expected:
            raise WeightsDownloadError(
                f"Could not download {url}: the connection closed after {received} of "
                f"{expected} bytes. Nothing was saved.{suffix}"
            )
        actual = digest.hexdigest()
        if sha256 is not None and actual != sha256.lower():
            raise WeightsDownloadError(
                f"SHA-256 mismatch for {url}: expected {sha256}, got {actual} ({received} "
                f"bytes). The file was discarded; nothing was saved.{suffix}"
            )
        os.replace(partial, destination)
        partial = None
        return actual
    finally:
        if fd is not None:
            os.close(fd)
        if partial is not None and os.path.exists(partial):
            os.remove(partial)
