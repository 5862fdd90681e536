"""weights="imagenet": registry, download (against a local HTTP server), conversion and cache."""

import dataclasses
import hashlib
import os

import numpy as np
import pytest
from safetensors.numpy import save_file
from weights_helpers import SMALL, assert_same_weights

import keras_csp
from keras_csp.weights import (
    IMAGENET_WEIGHTS,
    WeightsDownloadError,
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
    assert IMAGENET_WEIGHTS["cspresnet50"].cache_name == "cspresnet50.ra_in1k-f34ed53e.weights.h5"
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
    assert imagenet_cache_path("cspresnext50") in message
    assert _files_under(keras_home) == []


def test_imagenet_dropped_connection(monkeypatch, small_entry, file_server, keras_home):
    _use_entry(monkeypatch, "cspresnext50", sha256=hashlib.sha256(small_entry).hexdigest())
    file_server.truncate.add(TAG_PATH)
    with pytest.raises(WeightsDownloadError, match=r"50000 of 100000 bytes|after 50000 bytes"):
        fetch_imagenet_weights("cspresnext50", quiet=True)
    assert _files_under(keras_home) == []


def test_imagenet_without_network(monkeypatch, keras_home, closed_port):
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, f"http://127.0.0.1:{closed_port}")
    url = IMAGENET_WEIGHTS["cspdarknet53"].url()
    with pytest.raises(ValueError) as info:  # WeightsDownloadError is a ValueError (and OSError)
        keras_csp.CSPDarknet53(weights="imagenet", input_shape=SMALL)
    assert isinstance(info.value, WeightsDownloadError) and isinstance(info.value, OSError)
    message = str(info.value)
    assert f"Could not download {url}" in message
    assert "refused" in message.lower()
    assert imagenet_cache_path("cspdarknet53") in message
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

    # 1. Backbone first: downloads, converts through an internal full model, caches.
    backbone = keras_csp.CSPResNeXt50(
        include_top=False, pooling="avg", weights="imagenet", input_shape=SMALL
    )
    assert file_server.requests == [TAG_PATH]
    assert len(assert_same_weights(source, backbone)) == len(backbone.weights)
    assert _files_under(keras_home) == [os.path.relpath(cache, keras_home)]

    # 2. The cache serves the next calls with no network at all.
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, f"http://127.0.0.1:{closed_port}")
    full = keras_csp.CSPResNeXt50(weights="imagenet", input_shape=(None, None, 3))
    assert len(assert_same_weights(source, full)) == len(full.weights)
    assert file_server.requests == [TAG_PATH]
    # The cached file is a plain Keras weights file of the full model.
    plain = keras_csp.CSPResNeXt50(input_shape=SMALL)
    plain.load_weights(cache)
    assert_same_weights(source, plain)

    # 3. A fresh cache with the full model first: the model converts and saves itself.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home2"))
    monkeypatch.setenv(registry.WEIGHTS_URL_ENV, file_server.base_url)
    again = keras_csp.CSPResNeXt50(weights="imagenet", input_shape=SMALL)
    assert file_server.requests == [TAG_PATH, TAG_PATH]
    assert len(assert_same_weights(source, again)) == len(again.weights)
    assert os.path.isfile(imagenet_cache_path("cspresnext50"))
    backbone2 = keras_csp.CSPResNeXt50(include_top=False, weights="imagenet", input_shape=SMALL)
    assert file_server.requests == [TAG_PATH, TAG_PATH]
    assert_same_weights(source, backbone2)


def test_damaged_cache_file(monkeypatch, keras_home):
    cache = imagenet_cache_path("darknet53")
    os.makedirs(os.path.dirname(cache))
    with open(cache, "wb") as f:
        f.write(b"\0" * 1000)
    with pytest.raises(ValueError, match=r"damaged: delete it and retry"):
        keras_csp.Darknet53(weights="imagenet", input_shape=SMALL)
