"""pods/exec through the Kubernetes API double, driven by real clients.

The real kubectl binaries (WebSocket v5.channel.k8s.io, 1.30 and later) and the kubernetes Python
client's ``kubernetes.stream`` run commands through the double's exec endpoint; the command runs
as a local process (``env -- CFLAB_CONTAINER=<container> <command>``), so what the clients see can
be checked against what the process did.

Clients: "PATH" is the ``kubectl`` on the PATH. On this image that is Google's dispatcher, which
runs the versioned kubectl matching the server's /version, and is itself a 1.32 build (the double
says 1.32, and a test checks the client); 1.30, 1.32 and 1.33 run directly from the versioned
copies beside it.
"""

import hashlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import time

import pytest

from tests.k8s_double import ApiDouble, make_pod

WEBSOCKET_CLIENTS = ["PATH", "1.30", "1.32", "1.33"]
TARGET_SECONDS_FOR_A_CUT = 5.0  # a dropped link must end kubectl well under 10 s


def kubectl_binary(version):
    """The kubectl to run: 'PATH' or a version like '1.30' (None when that copy is absent)."""
    found = shutil.which("kubectl")
    if found is None:
        return None
    if version == "PATH":
        return found
    path = os.path.join(os.path.dirname(os.path.realpath(found)), "kubectl." + version)
    return path if os.access(path, os.X_OK) else None


def need_kubectl(version):
    binary = kubectl_binary(version)
    if binary is None:
        pytest.skip("kubectl %s is not installed here" % version)
    return binary


def kubectl_env(kubeconfig, home):
    """kubectl with its discovery cache and home inside the test's own directory."""
    os.makedirs(str(home), exist_ok=True)
    return dict(os.environ, KUBECONFIG=str(kubeconfig), KUBECACHEDIR=os.path.join(str(home), "cache"),
                HOME=str(home))


def run_kubectl(binary, kubeconfig, home, *args, stdin=b"", timeout=30):
    return subprocess.run([binary] + list(args), input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=kubectl_env(kubeconfig, home), timeout=timeout)


def raw_request(api, method, path, token=None, body=None, headers=None):
    """One HTTPS request to the double; returns (status, parsed JSON or raw bytes)."""
    context = ssl.create_default_context(cafile=api.ca_path)
    conn = http.client.HTTPSConnection("127.0.0.1", api.port, context=context, timeout=30)
    try:
        all_headers = {"Authorization": "Bearer " + (token or api.token)}
        all_headers.update(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, data


def _pods():
    containers = [{"name": "app", "container_id": "containerd://" + "a" * 64},
                  {"name": "sidecar", "container_id": "containerd://" + "b" * 64}]
    return [make_pod("web", "shop", "node-1", containers, labels={"app": "web"}),
            make_pod("db", "other", "node-1", [{"name": "db", "container_id": "containerd://" + "c" * 64}]),
            make_pod("done", "shop", "node-1", [{"name": "job", "container_id": "containerd://" + "d" * 64}],
                     phase="Succeeded")]


@pytest.fixture
def backend_calls():
    return []


@pytest.fixture
def double(tmp_path, backend_calls):
    def backend(namespace, pod, container):
        backend_calls.append((namespace, pod, container))
        if container == "sidecar" and pod == "db":
            return None
        return ["env", "--", "CFLAB_CONTAINER=" + container]

    api = ApiDouble({"pods": _pods(), "nodes": []}, workdir=str(tmp_path / "double"), exec_backend=backend)
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def test_websocket_handshake_and_frames_by_hand(double):
    """The endpoint answers a hand-made RFC 6455 handshake, and masked client frames are read."""
    import base64
    import socket
    import struct

    from tests.k8s_double.websocket import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, accept_key

    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 section 1.3
    key = base64.b64encode(os.urandom(16)).decode()
    context = ssl.create_default_context(cafile=double.ca_path)
    with socket.create_connection(("127.0.0.1", double.port), timeout=10) as plain:
        with context.wrap_socket(plain, server_hostname="127.0.0.1") as sock:
            sock.sendall(("GET /api/v1/namespaces/shop/pods/web/exec?command=cat&container=app&stdin=true"
                          "&stdout=true HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                          "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n" % (double.token, key)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(1)
            assert head.startswith(b"HTTP/1.1 101"), head
            assert ("Sec-WebSocket-Accept: %s" % accept_key(key)).encode() in head
            assert b"Sec-WebSocket-Protocol: v4.channel.k8s.io" in head

            def send(opcode, payload, fin=True):
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                sock.sendall(struct.pack("!BB", (0x80 if fin else 0) | opcode, 0x80 | len(payload)) + mask + masked)

            send(OP_BINARY, b"\x00hello ", fin=False)  # one stdin message in two fragments...
            send(OP_PING, b"ping!")  # ...with a ping between them
            send(OP_CONTINUATION, b"world\n")
            frames = _read_server_frames(sock, until=lambda frames: any(
                op == OP_BINARY and data.startswith(b"\x01") and b"hello world" in data for op, data in frames))
            assert (OP_PONG, b"ping!") in frames  # the pong echoes the ping's payload
            send(OP_CLOSE, struct.pack("!H", 1000))  # v4 cannot close stdin alone: closing ends the session
            frames = _read_server_frames(sock, until=lambda frames: any(op == OP_CLOSE for op, _ in frames))
            assert frames[-1] == (OP_CLOSE, struct.pack("!H", 1000))


def _read_server_frames(sock, until):
    """Unmasked server frames, read until ``until(frames)`` or the connection ends."""
    frames, buf = [], bytearray()
    while not until(frames):
        data = sock.recv(65536)
        if not data:
            break
        buf += data
        while len(buf) >= 2:
            size, offset = buf[1] & 0x7F, 2
            if size == 126:
                size, offset = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                size, offset = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < offset + size:
                break
            frames.append((buf[0] & 0x0F, bytes(buf[offset:offset + size])))
            del buf[:offset + size]
    return frames


@pytest.mark.parametrize("client", WEBSOCKET_CLIENTS)
def test_stdin_stdout_stderr_and_exit_code(double, home, client):
    binary = need_kubectl(client)
    stdin = b"line one\nline two\n\x00binary\xff\n"
    proc = run_kubectl(binary, double.kubeconfig_path, home, "-n", "shop", "exec", "-i", "web", "-c", "app", "--",
                       "sh", "-c", "cat; echo to-stderr >&2; exit 7", stdin=stdin)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == stdin  # stdin went through untouched, and the stream closed when it ended
    assert b"to-stderr" in proc.stderr and b"to-stderr" not in proc.stdout
    assert b"command terminated with exit code 7" in proc.stderr
    ok = run_kubectl(binary, double.kubeconfig_path, home, "-n", "shop", "exec", "web", "--", "sh", "-c",
                     "echo fine")
    assert (ok.returncode, ok.stdout) == (0, b"fine\n"), ok.stderr
    execs = [c for c in double.calls() if c["path"].endswith("/exec")]
    assert [(c["method"], c["code"], c["exit_code"], c["user"]) for c in execs] == [
        ("GET", 101, 7, "cflab-admin"), ("GET", 101, 0, "cflab-admin")]
    assert execs[0]["command"] == ["sh", "-c", "cat; echo to-stderr >&2; exit 7"]


def test_kubectl_on_the_path_is_1_32_against_the_double(double, home):
    version = run_kubectl(need_kubectl("PATH"), double.kubeconfig_path, home, "version", "-o", "json")
    assert version.returncode == 0, version.stderr
    found = json.loads(version.stdout)
    assert found["serverVersion"]["gitVersion"].startswith("v1.32.")
    # The dispatcher is itself a 1.32 build: against a 1.32 server it runs as it is, not another copy.
    assert found["clientVersion"]["gitVersion"].startswith("v1.32."), found["clientVersion"]


def test_the_container_defaults_to_the_first_one(double, home, backend_calls):
    binary = need_kubectl("PATH")
    default = run_kubectl(binary, double.kubeconfig_path, home, "-n", "shop", "exec", "web", "--", "sh", "-c",
                          'echo "$CFLAB_CONTAINER"')
    chosen = run_kubectl(binary, double.kubeconfig_path, home, "-n", "shop", "exec", "web", "-c", "sidecar", "--",
                         "sh", "-c", 'echo "$CFLAB_CONTAINER"')
    assert (default.returncode, default.stdout, chosen.stdout) == (0, b"app\n", b"sidecar\n"), default.stderr
    assert backend_calls == [("shop", "web", "app"), ("shop", "web", "sidecar")]
    # Without a container parameter at all (kubectl always sends one), the double picks the first too.
    status, _ = raw_request(double, "GET", "/api/v1/namespaces/shop/pods/web/exec?command=true&stdout=true")
    refused = [c for c in double.calls() if c["code"] == 400]  # 400: no Upgrade header
    assert status == 400 and [c["container"] for c in refused] == ["app"]


@pytest.mark.parametrize("client", ["PATH", "1.33"])
def test_large_output_and_input_arrive_intact(double, home, client, tmp_path):
    binary = need_kubectl(client)
    out = run_kubectl(binary, double.kubeconfig_path, home, "-n", "shop", "exec", "web", "--", "seq", "1", "800000")
    expected = subprocess.run(["seq", "1", "800000"], stdout=subprocess.PIPE, check=True).stdout
    assert len(expected) > 5 * 1024 * 1024
    assert out.returncode == 0, out.stderr
    assert hashlib.sha256(out.stdout).hexdigest() == hashlib.sha256(expected).hexdigest()
    blob = os.urandom(5 * 1024 * 1024)
    echo = run_kubectl(binary, double.kubeconfig_path, home, "-n", "shop", "exec", "-i", "web", "--", "cat",
                       stdin=blob)
    assert echo.returncode == 0, echo.stderr
    assert hashlib.sha256(echo.stdout).hexdigest() == hashlib.sha256(blob).hexdigest()


def test_a_token_without_exec_rights_gets_403(double, home, tmp_path):
    binary = need_kubectl("PATH")
    double.add_token("reader-token", user="reader")  # reads everything, execs nowhere
    double.add_token("other-exec", user="other-ops", exec_namespaces=["other"])
    reader = double.write_kubeconfig(str(tmp_path / "reader.kubeconfig"), token="reader-token")
    other = double.write_kubeconfig(str(tmp_path / "other.kubeconfig"), token="other-exec")
    denied = run_kubectl(binary, reader, home, "-n", "shop", "exec", "web", "--", "true")
    assert denied.returncode != 0
    assert (b'pods "web" is forbidden: User "reader" cannot create resource "pods/exec" in API group "" '
            b'in the namespace "shop"') in denied.stderr, denied.stderr
    elsewhere = run_kubectl(binary, other, home, "-n", "shop", "exec", "web", "--", "true")
    allowed = run_kubectl(binary, other, home, "-n", "other", "exec", "db", "--", "sh", "-c", "echo yes")
    assert elsewhere.returncode != 0 and b'User "other-ops" cannot create resource "pods/exec"' in elsewhere.stderr
    assert (allowed.returncode, allowed.stdout) == (0, b"yes\n"), allowed.stderr
    refused = [c for c in double.calls() if c["path"].endswith("/exec") and c["code"] == 403]
    assert refused and {c["user"] for c in refused} == {"reader", "other-ops"}
    assert all(c["command"] for c in refused)
    status, body = raw_request(double, "GET", "/api/v1/namespaces/shop/pods/web/exec?command=true&stdout=true",
                               token="reader-token", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert status == 403 and body["reason"] == "Forbidden" and body["details"] == {"name": "web", "kind": "pods"}


def test_errors_before_the_upgrade_are_statuses(tmp_path, double):
    def status(path, **headers):
        code, body = raw_request(double, "GET", path, headers=dict(
            {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "x" * 24,
             "Sec-WebSocket-Protocol": "v5.channel.k8s.io"}, **headers))
        return code, body["message"]

    base = "/api/v1/namespaces/%s/pods/%s/exec?command=true&stdout=true"
    assert status(base % ("shop", "nope")) == (404, 'pods "nope" not found')
    assert status(base % ("shop", "web") + "&container=nope") == (400, "container nope is not valid for pod web")
    assert status(base % ("shop", "done")) == (
        400, "cannot exec into a container in a completed pod; current phase is Succeeded")
    assert status(base % ("other", "db") + "&container=db", **{"Sec-WebSocket-Protocol": "channel.k8s.io"})[0] == 400
    assert status("/api/v1/namespaces/shop/pods/web/exec?stdout=true")[0] == 400  # no command
    spdy = status(base % ("shop", "web"), Upgrade="SPDY/3.1")
    assert spdy[0] == 400 and "WebSocket exec (kubectl 1.30 or later)" in spdy[1]
    without = ApiDouble({"pods": _pods(), "nodes": []}, workdir=str(tmp_path / "no-backend")).start()
    try:
        code, body = raw_request(without, "GET", base % ("shop", "web"), headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "x" * 24,
            "Sec-WebSocket-Protocol": "v5.channel.k8s.io"})
        assert code == 404 and "exec_backend" in body["message"]
        assert raw_request(without, "GET", "/api/v1/namespaces/shop/pods/web")[0] == 200  # still serving
    finally:
        without.stop()


def test_a_spdy_only_client_gets_the_clear_error(double, home):
    binary = need_kubectl("1.29")
    proc = run_kubectl(binary, double.kubeconfig_path, home, "-n", "shop", "exec", "web", "--", "true")
    assert proc.returncode != 0
    assert b"WebSocket exec (kubectl 1.30 or later)" in proc.stderr, proc.stderr


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


@pytest.mark.serial  # a time bound: kubectl ends within TARGET_SECONDS_FOR_A_CUT
def test_cut_exec_streams_ends_kubectl_promptly_and_kills_the_backend(double, home):
    binary = need_kubectl("PATH")
    proc = subprocess.Popen([binary, "-n", "shop", "exec", "web", "--", "sleep", "60"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=kubectl_env(double.kubeconfig_path, home))
    try:
        sessions = _wait_for(double.exec_sessions)
        assert [(s["namespace"], s["pod"], s["command"]) for s in sessions] == [("shop", "web", ["sleep", "60"])]
        pid = sessions[0]["pid"]
        assert os.path.exists("/proc/%d" % pid)
        assert double.cut_exec_streams(namespace="other") == 0
        assert double.cut_exec_streams(pod="db") == 0
        started = time.monotonic()
        assert double.cut_exec_streams(namespace="shop", pod="web") == 1
        _, stderr = proc.communicate(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert elapsed < TARGET_SECONDS_FOR_A_CUT, "kubectl took %.1f s to notice the cut" % elapsed
    assert b"command terminated" not in stderr  # no status: the link just dropped
    assert _wait_for(lambda: not os.path.exists("/proc/%d" % pid), 5), "backend process %d still there" % pid
    record = _wait_for(lambda: [c for c in double.calls() if c["path"].endswith("/exec")])
    assert record[0]["cut"] is True and record[0]["exit_code"] is None and record[0]["code"] == 101
    assert double.exec_sessions() == []


def test_stop_kills_running_exec_backends(tmp_path, home):
    api = ApiDouble({"pods": _pods(), "nodes": []}, workdir=str(tmp_path / "d"),
                    exec_backend=lambda ns, pod, c: ["env", "--"]).start()
    binary = need_kubectl("PATH")
    proc = subprocess.Popen([binary, "-n", "shop", "exec", "web", "--", "sleep", "60"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=kubectl_env(api.kubeconfig_path, home))
    try:
        pid = _wait_for(api.exec_sessions)[0]["pid"]
    finally:
        api.stop()
        try:
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert _wait_for(lambda: not os.path.exists("/proc/%d" % pid), 5)


def test_the_python_client_streams_exec(double):
    from kubernetes import client
    from kubernetes.stream import stream

    config = client.Configuration()
    config.host, config.ssl_ca_cert = double.url, double.ca_path
    config.api_key = {"authorization": "Bearer " + double.token}
    core = client.CoreV1Api(client.ApiClient(config))
    out = stream(core.connect_get_namespaced_pod_exec, "web", "shop", command=["sh", "-c", "echo out"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert out == "out\n"
    resp = stream(core.connect_get_namespaced_pod_exec, "web", "shop", command=["sh", "-c", "cat; echo e >&2; exit 3"],
                  stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    try:
        assert resp.subprotocol == "v5.channel.k8s.io"
        resp.write_stdin("from python\n")
        resp.close_channel(0)  # v5: our stdin is done, so cat ends
        resp.run_forever(timeout=10)
        assert resp.read_stdout() == "from python\n"
        assert resp.read_stderr() == "e\n"
        assert resp.returncode == 3
    finally:
        resp.close()
