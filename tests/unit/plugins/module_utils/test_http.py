"""One HTTP request (module_utils/_http.py), against a server on loopback."""

import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.chaosfleet.stress.plugins.module_utils._http import request


class Handler(BaseHTTPRequestHandler):
    """/status/<code> answers that code; /echo answers the request as JSON; /slow never answers in time."""

    def log_message(self, *args):
        pass

    def _answer(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        sent = self.rfile.read(length).decode() if length else ""
        if self.path.startswith("/status/"):
            return self._answer(int(self.path.split("/")[2]), "answer %s" % self.path.split("/")[2])
        if self.path == "/big":
            return self._answer(200, "x" * 100)
        if self.path == "/slow":
            self.server.release.wait(5)
            return self._answer(200, "late")
        return self._answer(200, json.dumps({"method": self.command, "body": sent,
                                             "header": self.headers.get("X-Cflab")}))

    do_GET = do_POST = do_PUT = _handle


def _serve(tls_context=None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.release = threading.Event()
    if tls_context:
        server.socket = tls_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def plain():
    server = _serve()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.release.set()
    server.shutdown()


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    from tests.k8s_double.tls import CertificateAuthority
    ca = CertificateAuthority(str(tmp_path_factory.mktemp("ca")))
    cert, key = ca.issue_server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _serve(context)
    yield "https://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("path, kwargs, status, body", [
    ("/echo", {}, 200, {"method": "GET", "body": "", "header": None}),
    ("/echo", {"method": "POST", "body": "caf\u00e9", "headers": {"X-Cflab": "h1"}}, 200,
     {"method": "POST", "body": "caf\u00e9", "header": "h1"}),
    ("/echo", {"method": "PUT", "body": b"raw bytes"}, 200, {"method": "PUT", "body": "raw bytes", "header": None}),
    # an error status is an answer, with its body
    ("/status/404", {}, 404, "answer 404"),
    ("/status/503", {"method": "POST", "body": ""}, 503, "answer 503"),
    # only max_body bytes are read
    ("/big", {"max_body": 10}, 200, "x" * 10),
])
def test_answers(plain, path, kwargs, status, body):
    got, text, seconds, error = request(plain + path, **kwargs)
    assert (got, error) == (status, None)
    assert (json.loads(text) if isinstance(body, dict) else text) == body
    assert 0 <= seconds < 5


def test_no_answer_is_a_reason_not_an_exception(plain):
    refused = request("http://127.0.0.1:%d/" % _free_port(), timeout=2)
    assert refused[0] is None and refused[1] == "" and "refused" in refused[3].lower()
    late = request(plain + "/slow", timeout=0.3)
    assert late[0] is None and "timed out" in late[3] and late[2] < 3
    assert request("ftp+bad://x/")[0] is None and "unknown url type" in request("ftp+bad://x/")[3]


def test_the_clock_measures_the_request(plain):
    ticks = iter([10.0, 10.25])
    assert request(plain + "/echo", clock=lambda: next(ticks))[2] == 0.25


def test_tls_is_verified_unless_told_not_to(tls):
    refused = request(tls + "/status/200", timeout=3)
    assert refused[0] is None and "CERTIFICATE_VERIFY_FAILED" in refused[3]
    assert request(tls + "/status/200", timeout=3, validate_certs=False)[:2] == (200, "answer 200")
