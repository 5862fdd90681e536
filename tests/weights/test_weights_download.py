"""weights="imagenet": registry, download (against a local HTTP server), conversion and cache."""

import dataclasses
import hashlib
import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file
from weights_helpers import SMALL, assert_same_weights

import keras_csp
from keras_csp.weights import (
    IMAGENET_WEIGHTS,
    WeightsDownloadError,
    cache_dir,
    fetch_imagenet_weights,
    imagenet_cache_path,
    to_timm,
)
from keras_csp.weights import registry
from keras_csp.weights.download import download

TAG_PATH = "/cspresnext50.ra_in1k/resolve/main/model.safetensors"


def _files_under(folder):
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
    )


def _use_entry(monkeypatch, arch, **changes):
    entry = dataclasses.replace(IMAGENET_WEIGHTS[arch], **changes)
    monkeypatch.setitem(registry.IMAGENET_WEIGHTS, arch, entry)
    return entry


# --------------------------------------------------------------------------- registry


def test_registry_urls_hashes_and_accuracy(monkeypatch):
    monkeypatch.delenv(registry.WEIGHTS_URL_ENV, raising=False)
    assert set(IMAGENET_WEIGHTS) == {"cspresnet50", "cspresnext50", "cspdarknet53", "darknet53"}
    tags = {arch: entry.tag for arch, entry in IMAGENET_WEIGHTS.items()}
    assert tags == {
        "cspresnet50": "cspresnet50.ra_in1k",
        "cspresnext50": "cspresnext50.ra_in1k",
        "cspdarknet53": "cspdarknet53.ra_in1k",
        "darknet53": "darknet53.c2ns_in1k",
    }
    assert IMAGENET_WEIGHTS["cspdarknet53"].url() == (
        "https://huggingface.co/timm/cspdarknet53.ra_in1k/resolve/main/model.safetensors"
    )
    for entry in IMAGENET_WEIGHTS.values():
        assert entry.sha256 is None or (
            len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        ), entry
        assert 79 < entry.top1 < 81 and entry.classes == 1000
    assert IMAGENET_WEIGHTS["cspresnet50"].sha256.startswith("f34ed53e")
    # The cache name carries the whole verified SHA-256 of the checkpoint.
    assert IMAGENET_WEIGHTS["cspresnet50"].cache_name("ab" * 32) == (
        f"cspresnet50.ra_in1k-{'ab' * 32}.weights.h5"
    )
    assert IMAGENET_WEIGHTS["darknet53"].from_hub()
    assert not IMAGENET_WEIGHTS["darknet53"].from_hub("http://mirror.local/timm")
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, "http://mirror.local/timm/")
    assert IMAGENET_WEIGHTS["darknet53"].url() == (
        "http://mirror.local/timm/darknet53.c2ns_in1k/resolve/main/model.safetensors"
    )
    assert IMAGENET_WEIGHTS["darknet53"].url("http://other") == (
        "http://other/darknet53.c2ns_in1k/resolve/main/model.safetensors"
    )


def test_imagenet_for_an_architecture_without_weights(keras_home, tiny_config):
    with pytest.raises(ValueError, match=r"weights='imagenet' is not available for 'resnet50'.*"
                       r"cspresnet50, cspresnext50, cspdarknet53, darknet53"):
        keras_csp.ResNet50(weights="imagenet", input_shape=SMALL)
    with pytest.raises(ValueError, match=r"weights='imagenet' is not available for 'resnext50'"):
        keras_csp.ResNeXt50(weights="imagenet", input_shape=SMALL)
    with pytest.raises(ValueError, match=r"needs a named architecture"):
        keras_csp.build_model(tiny_config, weights="imagenet")


def test_imagenet_with_another_number_of_classes(keras_home, monkeypatch, closed_port):
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, f"http://127.0.0.1:{closed_port}")
    with pytest.raises(ValueError, match=r"1000-class classifier, but classes=10.*include_top=False"):
        keras_csp.CSPDarknet53(weights="imagenet", classes=10, input_shape=SMALL)
    assert not os.path.exists(keras_home)  # refused before any download or cache


# --------------------------------------------------------------------------- download()


def test_download_success_and_checksum(tmp_path, file_server):
    body = np.random.default_rng(1).bytes(300_000)
    file_server.files["/f.bin"] = body
    digest = hashlib.sha256(body).hexdigest()
    target = tmp_path / "dl" / "f.bin"
    assert download(f"{file_server.base_url}/f.bin", target, sha256=digest, quiet=True) == digest
    assert target.read_bytes() == body
    assert _files_under(tmp_path / "dl") == ["f.bin"]


def test_download_hash_mismatch_keeps_nothing(tmp_path, file_server):
    file_server.files["/f.bin"] = b"x" * 5000
    target = tmp_path / "dl" / "f.bin"
    with pytest.raises(WeightsDownloadError, match=r"SHA-256 mismatch.*expected 0{64}, got"):
        download(f"{file_server.base_url}/f.bin", target, sha256="0" * 64, quiet=True)
    assert _files_under(tmp_path / "dl") == []


def test_download_dropped_connection_keeps_nothing(tmp_path, file_server):
    file_server.files["/f.bin"] = b"y" * 100_000
    file_server.truncate.add("/f.bin")
    target = tmp_path / "dl" / "f.bin"
    with pytest.raises(WeightsDownloadError, match=r"100000 of 200000 bytes|after 100000 bytes"):
        download(f"{file_server.base_url}/f.bin", target, quiet=True)
    assert _files_under(tmp_path / "dl") == []


def test_download_http_error(tmp_path, file_server):
    with pytest.raises(WeightsDownloadError, match=r"HTTP 404"):
        download(f"{file_server.base_url}/missing.bin", tmp_path / "f.bin", quiet=True)
    assert _files_under(tmp_path) == []


# --------------------------------------------------------------------------- imagenet failures


@pytest.fixture
def small_entry(monkeypatch, file_server, keras_home):
    """cspresnext50's entry pointed at the local server, which holds a small file."""
    body = np.random.default_rng(2).bytes(50_000)
    file_server.files[TAG_PATH] = body
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, file_server.base_url)
    return body


def test_imagenet_hash_mismatch(monkeypatch, small_entry, file_server, keras_home):
    _use_entry(monkeypatch, "cspresnext50", sha256="ab" * 32)
    with pytest.raises(WeightsDownloadError) as info:
        fetch_imagenet_weights("cspresnext50", quiet=True)
    message = str(info.value)
    assert "SHA-256 mismatch" in message and "ab" * 32 in message
    assert cache_dir() in message
    assert _files_under(keras_home) == []


def test_imagenet_dropped_connection(monkeypatch, small_entry, file_server, keras_home):
    _use_entry(monkeypatch, "cspresnext50", sha256=hashlib.sha256(small_entry).hexdigest())
    file_server.truncate.add(TAG_PATH)
    with pytest.raises(WeightsDownloadError, match=r"50000 of 100000 bytes|after 50000 bytes"):
        fetch_imagenet_weights("cspresnext50", quiet=True)
    assert _files_under(keras_home) == []


def test_imagenet_without_network(monkeypatch, keras_home, closed_port):
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv(registry.WEIGHTS_SHA256_ENV, f"cspdarknet53={'cd' * 32}")
    url = IMAGENET_WEIGHTS["cspdarknet53"].url()
    with pytest.raises(ValueError) as info:  # WeightsDownloadError is a ValueError (and OSError)
        keras_csp.CSPDarknet53(weights="imagenet", input_shape=SMALL)
    assert isinstance(info.value, WeightsDownloadError) and isinstance(info.value, OSError)
    message = str(info.value)
    assert f"Could not download {url}" in message
    assert "refused" in message.lower()
    assert cache_dir() in message
    assert "weights='/path/to/model.safetensors'" in message
    assert "keras-csp convert-timm" in message
    assert _files_under(keras_home) == []


# --------------------------------------------------------------------------- imagenet success


def test_imagenet_download_convert_cache(monkeypatch, file_server, keras_home, closed_port, tmp_path):
    source = keras_csp.CSPResNeXt50(input_shape=SMALL)
    checkpoint = tmp_path / "model.safetensors"
    save_file(to_timm(source), str(checkpoint))
    body = checkpoint.read_bytes()
    file_server.files[TAG_PATH] = body
    _use_entry(monkeypatch, "cspresnext50", sha256=hashlib.sha256(body).hexdigest())
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, file_server.base_url)
    cache = imagenet_cache_path("cspresnext50")
    assert os.path.basename(cache) == f"cspresnext50.ra_in1k-{hashlib.sha256(body).hexdigest()}" \
        ".weights.h5"

    # 1. Backbone first: downloads (from a mirror: checked against the registry's SHA-256),
    # converts through an internal full model, caches.
    backbone = keras_csp.CSPResNeXt50(
        include_top=False, pooling="avg", weights="imagenet", input_shape=SMALL
    )
    assert file_server.requests == [TAG_PATH]
    assert len(assert_same_weights(source, backbone)) == len(backbone.weights)
    cached = [os.path.relpath(p, keras_home) for p in (cache, cache + ".json")]
    assert _files_under(keras_home) == cached  # the file and the record of its SHA-256

    # 2. The cache serves the next calls with no network at all.
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, f"http://127.0.0.1:{closed_port}")
    full = keras_csp.CSPResNeXt50(weights="imagenet", input_shape=(None, None, 3))
    assert len(assert_same_weights(source, full)) == len(full.weights)
    assert file_server.requests == [TAG_PATH]
    # The cached file is a plain Keras weights file of the full model.
    plain = keras_csp.CSPResNeXt50(input_shape=SMALL)
    plain.load_weights(cache)
    assert_same_weights(source, plain)

    # 3. A fresh cache, from the hub (this server standing in for it), with no SHA-256 in the
    # registry: the hub's X-Linked-Etag on its redirect is checked. The full model converts and
    # saves itself.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home2"))
    announced = f'"{hashlib.sha256(body).hexdigest()}"'
    _use_hub(monkeypatch, file_server, body, {"X-Linked-Etag": announced})
    _use_entry(monkeypatch, "cspresnext50", sha256=None)
    assert imagenet_cache_path("cspresnext50") is None  # unknown until the hub says it
    again = keras_csp.CSPResNeXt50(weights="imagenet", input_shape=SMALL)
    assert file_server.requests == [TAG_PATH, TAG_PATH, CDN_PATH]
    assert len(assert_same_weights(source, again)) == len(again.weights)
    cache2 = imagenet_cache_path("cspresnext50")
    assert os.path.basename(cache2) == os.path.basename(cache)  # named by the verified hash
    with open(cache2 + ".json") as f:
        assert "X-Linked-Etag" in json.load(f)["checkpoint_verified_against"]
    backbone2 = keras_csp.CSPResNeXt50(include_top=False, weights="imagenet", input_shape=SMALL)
    assert file_server.requests == [TAG_PATH, TAG_PATH, CDN_PATH]
    assert_same_weights(source, backbone2)

    # 4. A cached file changed afterwards is refused, not loaded.
    with open(cache2, "r+b") as f:
        f.seek(os.path.getsize(cache2) // 2)
        f.write(b"tampered")
    with pytest.raises(ValueError, match=r"is damaged or was changed after it was cached: its "
                                         r"SHA-256 is [0-9a-f]{64}, [0-9a-f]{64} was recorded"):
        keras_csp.CSPResNeXt50(weights="imagenet", input_shape=SMALL)
    assert file_server.requests == [TAG_PATH, TAG_PATH, CDN_PATH]


def test_a_cache_file_without_its_record_is_refused(monkeypatch, keras_home):
    monkeypatch.setenv(registry.WEIGHTS_SHA256_ENV, "ef" * 32)
    cache = imagenet_cache_path("darknet53")
    assert os.path.basename(cache) == f"darknet53.c2ns_in1k-{'ef' * 32}.weights.h5"
    os.makedirs(os.path.dirname(cache))
    with open(cache, "wb") as f:
        f.write(b"\0" * 1000)
    with pytest.raises(ValueError, match=r"has no readable record of its SHA-256 .* cannot be "
                                         r"trusted: delete it"):
        keras_csp.Darknet53(weights="imagenet", input_shape=SMALL)


# --------------------------------------------------------------------------- what is trusted

CDN_PATH = "/cdn/model.safetensors"


def _use_hub(monkeypatch, file_server, body, headers):
    """This server as the Hugging Face hub: TAG_PATH redirects to CDN_PATH with `headers`."""
    monkeypatch.setattr(registry, "DEFAULT_BASE_URL", file_server.base_url)
    monkeypatch.delenv(registry.WEIGHTS_URL_ENV, raising=False)
    file_server.redirects[TAG_PATH] = (CDN_PATH, headers)
    file_server.files[CDN_PATH] = body


GOOD = np.random.default_rng(7).bytes(40_000)
TAMPERED = GOOD[:20_000] + b"!" + GOOD[20_001:]


@pytest.mark.parametrize(
    "where, header",
    [("redirect", "X-Linked-Etag"), ("redirect", "X-Linked-ETag"), ("file", "ETag")],
)
def test_the_hubs_announced_sha256_catches_a_tampered_file(tmp_path, file_server, where, header):
    announced = f'W/"{hashlib.sha256(GOOD).hexdigest()}"' if header == "ETag" else \
        f'"{hashlib.sha256(GOOD).hexdigest()}"'
    file_server.files["/f"] = TAMPERED
    if where == "redirect":
        file_server.redirects["/hub"] = ("/f", {header: announced})
    else:
        file_server.files["/hub"] = TAMPERED
        file_server.headers["/hub"] = {header: announced}
    target = tmp_path / "dl" / "f.bin"
    with pytest.raises(WeightsDownloadError, match=r"SHA-256 mismatch .*expected "
                                                   + hashlib.sha256(GOOD).hexdigest()):
        download(f"{file_server.base_url}/hub", target, quiet=True, header_sha256=True,
                 require_sha256=True)
    assert _files_under(tmp_path / "dl") == []
    # Without header_sha256 (a mirror) the same headers are not trusted to vouch for anything.
    with pytest.raises(WeightsDownloadError, match=r"The SHA-256 of .* is not known: none was "
                                                   r"given"):
        download(f"{file_server.base_url}/hub", target, quiet=True, require_sha256=True)


def test_the_hub_without_a_sha256_is_refused(monkeypatch, file_server, keras_home):
    # No header, or an ETag that is a Git blob's SHA-1 (a file not stored with LFS).
    for headers in ({}, {"ETag": '"' + "a" * 40 + '"'}):
        _use_hub(monkeypatch, file_server, TAMPERED, headers)
        with pytest.raises(WeightsDownloadError, match=r"(?s)is not known: the server announced none"
                                                       r".*weights_sha256="):
            fetch_imagenet_weights("cspresnext50", quiet=True)
        assert _files_under(keras_home) == []


def test_a_hub_announcement_that_contradicts_the_registry_is_refused(
    monkeypatch, file_server, keras_home
):
    _use_hub(monkeypatch, file_server, GOOD, {"X-Linked-Etag": hashlib.sha256(GOOD).hexdigest()})
    _use_entry(monkeypatch, "cspresnext50", sha256="12" * 32)
    with pytest.raises(WeightsDownloadError, match=r"expected (12){32}, but the server announces"):
        fetch_imagenet_weights("cspresnext50", quiet=True)
    assert _files_under(keras_home) == []


def test_a_mirror_needs_a_known_sha256(monkeypatch, file_server, keras_home):
    # The mirror serves a tampered file and announces the tampered file's own hash.
    file_server.files[TAG_PATH] = TAMPERED
    file_server.headers[TAG_PATH] = {"X-Linked-Etag": hashlib.sha256(TAMPERED).hexdigest()}
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, file_server.base_url)
    with pytest.raises(WeightsDownloadError) as info:
        fetch_imagenet_weights("cspresnext50", quiet=True)
    message = str(info.value)
    assert "registry records no SHA-256 for cspresnext50.ra_in1k" in message
    assert "weights_sha256='<64 hex digits>'" in message
    assert "KERAS_CSP_WEIGHTS_SHA256=cspresnext50=<64 hex digits>" in message
    assert file_server.requests == [] and _files_under(keras_home) == []

    # The user's hash, as an argument or in the environment, is what the file must match.
    good = hashlib.sha256(GOOD).hexdigest()
    with pytest.raises(WeightsDownloadError, match=rf"SHA-256 mismatch .*expected {good}, got"):
        keras_csp.CSPResNeXt50(weights="imagenet", input_shape=SMALL, weights_sha256=good.upper())
    for value in (good, f"darknet53=00,cspresnext50={good}", f"cspresnext50.ra_in1k={good}"):
        monkeypatch.setenv(registry.WEIGHTS_SHA256_ENV, value)
        with pytest.raises(WeightsDownloadError, match=rf"expected {good}, got"):
            fetch_imagenet_weights("cspresnext50", quiet=True)
    assert _files_under(keras_home) == []
    for value, message in (("xyz", r"\$KERAS_CSP_WEIGHTS_SHA256='xyz' is not allowed"),
                           ("cspresnext50=", r"allowed: one SHA-256, or name=sha256 pairs")):
        monkeypatch.setenv(registry.WEIGHTS_SHA256_ENV, value)
        with pytest.raises(ValueError, match=message):
            fetch_imagenet_weights("cspresnext50", quiet=True)
    with pytest.raises(ValueError, match=r"weights_sha256='f00' is not allowed; allowed: a "
                                         r"SHA-256 as 64 hex digits"):
        keras_csp.CSPDarknet53(weights="imagenet", input_shape=SMALL, weights_sha256="f00")


def test_weights_sha256_checks_a_local_file(tmp_path, tiny_config):
    path = tmp_path / "model.safetensors"
    path.write_bytes(GOOD)
    with pytest.raises(ValueError, match=rf"has the SHA-256 {hashlib.sha256(GOOD).hexdigest()}, "
                                         r"not weights_sha256='(00){32}'; the model is unchanged"):
        keras_csp.build_model(tiny_config, weights=str(path), input_shape=SMALL,
                              weights_sha256="00" * 32)
    with pytest.raises(ValueError, match=r"weights_sha256='(00){32}' checks a weights file, but "
                                         r"weights=None"):
        keras_csp.build_model(tiny_config, input_shape=SMALL, weights_sha256="00" * 32)
