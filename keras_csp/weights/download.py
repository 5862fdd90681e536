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
import urllib.parse
import urllib.request

from keras_csp import files

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


class _RecordingRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects like urllib does, keeping each redirect response's URL and headers."""

    def __init__(self):
        self.hops = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.hops.append((req.full_url, headers))
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def announced_sha256(url, hops, response):
    """The SHA-256 the server of `url` announces for the file, or None.

    The Hugging Face hub stores large files with Git LFS; its answer for such a file carries the
    file's SHA-256 as `X-Linked-Etag` on the redirect to its CDN (or as the `ETag` when it serves
    the file itself), which is what `huggingface_hub` checks. Only headers from `url`'s own host
    count (not the CDN's), and only values that are a SHA-256 (a Git blob's ETag is a SHA-1).
    """
    host = urllib.parse.urlsplit(url).netloc
    answers = [(u, h, False) for u, h in hops] + [(response.url, response.headers, True)]
    for where, headers, final in answers:
        if urllib.parse.urlsplit(where).netloc != host:
            continue
        for name in ("X-Linked-Etag",) + (("ETag",) if final else ()):
            value = (headers.get(name) or "").strip()
            value = value[2:] if value.startswith("W/") else value
            value = value.strip('"').lower()
            if len(value) == 64 and all(c in "0123456789abcdef" for c in value):
                return value
    return None


def download(url, destination, sha256=None, timeout=TIMEOUT_S, quiet=False, hint="",
             header_sha256=False, require_sha256=False):
    """Downloads `url` to `destination` atomically and returns the file's SHA-256.

    Args:
        url: http(s) URL.
        destination: the final path; it only appears once the file is complete and verified.
        sha256: expected hex digest, or None (the digest is still returned).
        timeout: seconds of socket inactivity before giving up.
        quiet: no progress lines on stderr.
        hint: text appended to every error message (what to do instead).
        header_sha256: also check the file against the SHA-256 the server announces
            (`announced_sha256`: the Hugging Face hub's, for Git LFS files). Only for a server
            that is trusted to say it: a mirror that serves a tampered file can announce its hash.
        require_sha256: refuse the file, before its body is read, unless `sha256` or an announced
            SHA-256 is there to check it against.

    Raises:
        WeightsDownloadError: the server could not be reached, answered with an error, closed
            the connection early, announced another SHA-256 than `sha256` or none when one is
            required, or sent a file with another SHA-256.
    """
    destination = os.fspath(destination)
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    suffix = f"\n{hint}" if hint else ""
    expected = None if sha256 is None else sha256.lower()
    # Permissions as open() gives them, or those of the file replaced (mkstemp's were 0600).
    partial = files.new_temporary_file(destination, suffix=".part")
    fd = os.open(partial, os.O_WRONLY)
    try:
        received = _Received()
        request = urllib.request.Request(url, headers={"User-Agent": "keras-csp"})
        redirects = _RecordingRedirects()
        opener = urllib.request.build_opener(redirects)
        out = os.fdopen(fd, "wb")
        fd = None
        try:
            with out, opener.open(request, timeout=timeout) as response:
                announced = None
                if header_sha256:
                    announced = announced_sha256(url, redirects.hops, response)
                expected = _sha256_to_check(
                    url, expected, announced, header_sha256, require_sha256, suffix
                )
                size = _copy_body(url, response, out, received, quiet)
        except WeightsDownloadError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, socket.timeout, OSError) as e:
            if isinstance(e, http.client.IncompleteRead):
                received.bytes += len(e.partial)
            raise WeightsDownloadError(
                f"Could not download {url}: {_describe(e)}"
                + (f" after {received.bytes} bytes" if received.bytes else "")
                + f". Nothing was saved.{suffix}"
            ) from None
        actual = _check_received(url, received, size, expected, suffix)
        os.replace(partial, destination)
        partial = None
        return actual
    finally:
        if fd is not None:
            os.close(fd)
        if partial is not None and os.path.exists(partial):
            os.remove(partial)


class _Received:
    """What has arrived of a body: its SHA-256 so far and its byte count (for error messages)."""

    def __init__(self):
        self.digest = hashlib.sha256()
        self.bytes = 0

    def add(self, chunk):
        self.digest.update(chunk)
        self.bytes += len(chunk)


def _sha256_to_check(url, expected, announced, header_sha256, require_sha256, suffix):
    """The SHA-256 the body must have (`expected`, else the announced one), before it is read."""
    if announced and expected and announced != expected:
        raise WeightsDownloadError(
            f"SHA-256 mismatch for {url}: expected {expected}, but the server "
            f"announces {announced}. Nothing was downloaded or saved.{suffix}"
        )
    if require_sha256 and not (expected or announced):
        raise WeightsDownloadError(
            f"The SHA-256 of {url} is not known: "
            + ("the server announced none" if header_sha256 else "none was given")
            + f", and a file that cannot be verified is not accepted. Nothing was "
            f"downloaded or saved.{suffix}"
        )
    return expected or announced


def _copy_body(url, response, out, received, quiet):
    """Streams the body into `out` (progress on a terminal); returns the size it announced."""
    length = response.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    if not quiet:
        shown = f" ({size / 2**20:.1f} MiB)" if size else ""
        print(f"Downloading {url}{shown}", file=sys.stderr, flush=True)
    show = not quiet and size and sys.stderr.isatty()
    while True:
        chunk = response.read(CHUNK)
        if not chunk:
            break
        out.write(chunk)
        received.add(chunk)
        if show:
            print(f"\r  {100 * received.bytes // size:3d}%", end="", file=sys.stderr)
    if show:
        print(file=sys.stderr, flush=True)
    return size


def _check_received(url, received, size, expected, suffix):
    """The body's SHA-256, once every announced byte arrived and the hash is the expected one."""
    if size is not None and received.bytes != size:
        raise WeightsDownloadError(
            f"Could not download {url}: the connection closed after {received.bytes} of "
            f"{size} bytes. Nothing was saved.{suffix}"
        )
    actual = received.digest.hexdigest()
    if expected is not None and actual != expected:
        raise WeightsDownloadError(
            f"SHA-256 mismatch for {url}: expected {expected}, got {actual} ({received.bytes} "
            f"bytes). The file was discarded; nothing was saved.{suffix}"
        )
    return actual
