"""Loopback services for the probe and publish tests: an app that serves a health page and a
metrics file the test controls (and records every request), and a real Prometheus scraping it.

Everything listens on 127.0.0.1 only, lives in a unique temporary directory, and is stopped by
the PID or the server object the fixture started, pass or fail.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

PROMETHEUS = "/usr/bin/prometheus"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _AppHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def _answer(self, code, body, content_type="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body=b""):
        app = self.server.app
        with app.lock:
            app.requests.append({"method": self.command, "path": self.path, "headers": dict((k.lower(), v) for k, v in self.headers.items()),
                                 "body": body})

    def do_GET(self):
        self._record()
        app = self.server.app
        path = urllib.parse.urlsplit(self.path).path
        if path == "/metrics":
            with open(app.metrics_path, "rb") as handle:
                return self._answer(200, handle.read(), "text/plain; version=0.0.4")
        if path == "/health":
            time.sleep(app.health["delay"])
            return self._answer(app.health["status"], app.health["body"])
        return self._answer(404, "not found")

    def _upload(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._record(body)
        app = self.server.app
        status = app.upload_status.get(urllib.parse.urlsplit(self.path).path, 201)
        return self._answer(status, "stored" if status < 300 else "denied: bad signature")

    do_PUT = do_POST = _upload


class App:
    """A loopback app: /health (status, body, delay settable), /metrics (a file), PUT/POST recorded."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.metrics_path = os.path.join(workdir, "metrics.prom")
        self.health = {"status": 200, "body": '{"status": "ok"}', "delay": 0.0}
        self.upload_status = {}
        self.requests = []
        self.lock = threading.Lock()
        self.set_metrics(errors_ratio=0.01, ready=1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _AppHandler)
        self._server.daemon_threads = True
        self._server.app = self
        self.port = self._server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)
        self._thread.start()

    def set_metrics(self, errors_ratio, ready):
        text = ("# TYPE cflab_errors_ratio gauge\ncflab_errors_ratio{service=\"checkout\"} %s\n"
                "# TYPE cflab_ready gauge\ncflab_ready %s\n" % (errors_ratio, ready))
        tmp = self.metrics_path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(text)
        os.replace(tmp, self.metrics_path)

    def received(self, method=None):
        with self.lock:
            return [r for r in self.requests if method is None or r["method"] == method]

    def stop(self):
        self._server.shutdown()
        self._server.server_close()


class Prometheus:
    """A real Prometheus (Debian's 2.42) scraping the app every second, on a loopback port.

    ``file_sd_jobs``: more jobs whose targets the test sets while Prometheus runs (``set_targets``; Prometheus
    watches the file), e.g. the lab's cache apps on this host and on the fleet's nodes (headroom_fixtures.py).
    """

    def __init__(self, workdir, target_port=None, file_sd_jobs=()):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.workdir = workdir
        config = os.path.join(workdir, "prometheus.yml")
        jobs = []
        if target_port:
            jobs.append({"job_name": "cflab-app", "scrape_timeout": "1s",
                         "static_configs": [{"targets": ["127.0.0.1:%d" % target_port]}]})
        for job in file_sd_jobs:
            self.set_targets(job, [])
            jobs.append({"job_name": job, "scrape_timeout": "1s",
                         "file_sd_configs": [{"files": [self._targets_file(job)], "refresh_interval": "1s"}]})
        with open(config, "w") as handle:
            json.dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs},
                      handle)
        self.log = open(os.path.join(workdir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + config, "--storage.tsdb.path=" + os.path.join(workdir, "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _targets_file(self, job):
        return os.path.join(self.workdir, "targets-%s.json" % job)

    def set_targets(self, job, groups):
        """The targets of a file_sd job: [{"targets": ["host:port"], "labels": {...}}, ...] (atomic write)."""
        tmp = self._targets_file(job) + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(groups, handle)
        os.replace(tmp, self._targets_file(job))

    def query(self, expr):
        url = "%s/api/v1/query?%s" % (self.url, urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())["data"]["result"]

    def wait_for(self, expr, predicate, timeout=60):
        """Poll an instant query until predicate(result) holds; fail the test with the last answer."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited with %s" % self.proc.returncode)
            try:
                last = self.query(expr)
                if predicate(last):
                    return last
            except OSError as exc:
                last = exc
            time.sleep(0.3)
        raise AssertionError("prometheus: %s never matched; last answer %r" % (expr, last))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture(scope="module")
def app():
    workdir = tempfile.mkdtemp(prefix="cflab-app-")
    served = None
    try:
        served = App(workdir)
        yield served
    finally:
        if served:
            served.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def prometheus(app):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail("prometheus is not installed (scripts/setup.sh installs Debian's package)")
    workdir = tempfile.mkdtemp(prefix="cflab-prometheus-")
    server = None
    try:
        server = Prometheus(workdir, app.port)
        server.wait_for('cflab_errors_ratio{service="checkout"}', lambda r: len(r) == 1)
        yield server
    finally:
        if server:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
