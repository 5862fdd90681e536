"""Fixtures of the weights tests (helpers live in weights_helpers.py)."""

import socket

import pytest
from weights_helpers import FileServer


@pytest.fixture
def file_server():
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def closed_port():
    """A local port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """An empty Keras home, so that the weights cache starts empty and stays in tmp_path."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.delenv("KERAS_CSP_WEIGHTS_URL", raising=False)
    return home
