"""Helpers shared by the weights tests: weight snapshots and a local HTTP server."""

import http.server
import threading

import numpy as np

# Parameter counts do not depend on the input size, but building at 64x64 keeps graphs small.
SMALL = (64, 64, 3)


def snapshot(model):
    return [np.array(v.numpy()) for v in model.weights]


def assert_unchanged(model, before):
    after = snapshot(model)
    assert len(after) == len(before)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def assert_same_weights(model_a, model_b):
    a = {v.path: np.asarray(v.numpy()) for v in model_a.weights}
    b = {v.path: np.asarray(v.numpy()) for v in model_b.weights}
    common = set(a) & set(b)
    assert common
    for path in common:
        np.testing.assert_array_equal(a[path], b[path], err_msg=path)
    return common


class FileServer:
    """Serves `files` {url path: bytes} on 127.0.0.1; counts requests per path.

    `truncate` holds paths whose response announces twice the body's length, sends the body and
    closes the connection (a download dropped halfway). `headers` adds headers to a path's
    response; `redirects` {path: (target path, headers)} answers a path with a 302 to the target
    carrying those headers (as the Hugging Face hub redirects to its CDN with `X-Linked-Etag`).
    """

    def __init__(self):
        self.files = {}
        self.truncate = set()
        self.headers = {}
        self.redirects = {}
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 - http.server's naming.
                server.requests.append(self.path)
                if self.path in server.redirects:
                    target, headers = server.redirects[self.path]
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    return
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "not here")
                    return
                truncated = self.path in server.truncate
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) * (2 if truncated else 1)))
                for name, value in server.headers.get(self.path, {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                if truncated:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self):
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
