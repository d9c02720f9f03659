"""A small kube-apiserver double: HTTPS, bearer tokens, pods and nodes, read-only.

It answers the calls k8s_targets makes, in the API server's own shapes:
GET /version, /api, /api/v1, /api/v1/pods, /api/v1/namespaces/{ns}/pods[/{name}],
/api/v1/nodes[/{name}], with labelSelector and fieldSelector on lists.
Every request is recorded so tests and the benchmark can count list calls.
"""

import base64
import json
import os
import shutil
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from .label_field_selectors import (NODE_FIELDS, POD_FIELDS, SelectorError, fields_match, labels_match,
                                    parse_field_selector, parse_label_selector)
from .tls import CertificateAuthority

ADMIN = "cflab-admin"


class Policy:
    """What one user may read: pods in some namespaces (None = all) and nodes or not."""

    def __init__(self, user, namespaces=None, nodes=True):
        self.user = user
        self.namespaces = None if namespaces is None else set(namespaces)
        self.nodes = nodes

    def may_list_pods(self, namespace):
        return self.namespaces is None or (namespace is not None and namespace in self.namespaces)


def _status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


class _Store:
    """Objects kept with their JSON bytes, so a 5,000-pod list is a join, not a dump."""

    def __init__(self, objects):
        self.resource_version = 1000
        self.pods = []
        self.nodes = []
        for pod in objects.get("pods", []):
            self.add_pod(pod)
        for node in objects.get("nodes", []):
            self.add_node(node)

    @staticmethod
    def _encode(obj):
        return json.dumps(obj, separators=(",", ":")).encode()

    def add_pod(self, pod):
        self.resource_version += 1
        self.pods.append((pod, self._encode(pod)))

    def add_node(self, node):
        self.resource_version += 1
        self.nodes.append((node, self._encode(node)))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cflab-k8s-double/1"
    timeout = 30

    def log_message(self, fmt, *args):  # keep test output clean
        pass

    # ------------------------------------------------------------ plumbing
    def _send(self, code, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return code

    def _user(self):
        """The authenticated Policy, or None. Tokens, client certificates and basic auth."""
        api = self.server.api
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return api.tokens.get(header[len("Bearer "):].strip())
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            if api.basic_users.get(user) == password:
                return Policy(user)
            return None
        peer = getattr(self.connection, "getpeercert", lambda: None)()
        if peer:
            for rdn in peer.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        return api.cert_users.get(value)
        return None

    def do_GET(self):
        api = self.server.api
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        segments = [unquote(s) for s in parts.path.strip("/").split("/") if s]
        user = self._user()
        code = self._route(user, segments, query)
        with api.lock:
            api.requests.append({"method": "GET", "path": parts.path, "query": query,
                                 "user": user.user if user else None, "code": code})

    def _deny(self, *methods):
        return self._send(405, _status(405, "MethodNotAllowed", "the server does not allow this method"))

    do_POST = do_PUT = do_PATCH = do_DELETE = _deny

    # ------------------------------------------------------------ routes
    def _route(self, user, seg, query):
        if user is None:
            return self._send(401, _status(401, "Unauthorized", "Unauthorized"))
        if seg == ["version"]:
            return self._send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-cflab",
                                    "gitCommit": "0" * 40, "gitTreeState": "clean",
                                    "buildDate": "2026-11-28T00:00:00Z", "goVersion": "go1.22.0",
                                    "compiler": "gc", "platform": "linux/amd64"})
        if seg == ["api"]:
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [
                                        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
        if seg == ["api", "v1"]:
            return self._send(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
                 "verbs": ["get", "list"], "shortNames": ["po"]},
                {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
                 "verbs": ["get", "list"], "shortNames": ["no"]},
            ]})
        if seg == ["api", "v1", "pods"]:
            return self._list_pods(user, None, query)
        if len(seg) == 5 and seg[:3] == ["api", "v1", "namespaces"] and seg[4] == "pods":
            return self._list_pods(user, seg[3], query)
        if len(seg) == 6 and seg[:3] == ["api", "v1", "namespaces"] and seg[4] == "pods":
            return self._get_pod(user, seg[3], seg[5])
        if seg == ["api", "v1", "nodes"]:
            return self._list_nodes(user, query)
        if len(seg) == 4 and seg[:3] == ["api", "v1", "nodes"]:
            return self._get_node(user, seg[3])
        return self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))

    def _forbidden(self, user, verb, resource, namespace=None, name=None):
        where = 'in the namespace "%s"' % namespace if namespace else "at the cluster scope"
        named = ' "%s"' % name if name else ""
        message = '%s%s is forbidden: User "%s" cannot %s resource "%s" in API group "" %s' % (
            resource, named, user.user, verb, resource, where)
        return self._send(403, _status(403, "Forbidden", message,
                                       {"name": name or "", "kind": resource}))

    def _selectors(self, query, fields):
        try:
            labels = parse_label_selector(query.get("labelSelector", ""))
            field_terms = parse_field_selector(query.get("fieldSelector", ""), fields)
        except SelectorError as exc:
            self._send(400, _status(400, "BadRequest", "unable to parse requirement: %s" % exc))
            return None
        return labels, field_terms

    def _list(self, kind, entries, rv):
        head = b'{"kind":"%s","apiVersion":"v1","metadata":{"resourceVersion":"%d"},"items":[' % (
            kind.encode(), rv)
        return self._send(200, head + b",".join(entries) + b"]}")

    def _list_pods(self, user, namespace, query):
        if not user.may_list_pods(namespace):
            return self._forbidden(user, "list", "pods", namespace)
        parsed = self._selectors(query, POD_FIELDS)
        if parsed is None:
            return 400
        labels, field_terms = parsed
        store = self.server.api.store
        chosen = [data for pod, data in store.pods
                  if (namespace is None or pod["metadata"].get("namespace") == namespace)
                  and labels_match(labels, pod["metadata"].get("labels"))
                  and fields_match(field_terms, pod, POD_FIELDS)]
        return self._list("PodList", chosen, store.resource_version)

    def _get_pod(self, user, namespace, name):
        if not user.may_list_pods(namespace):
            return self._forbidden(user, "get", "pods", namespace, name)
        for pod, data in self.server.api.store.pods:
            if pod["metadata"]["namespace"] == namespace and pod["metadata"]["name"] == name:
                return self._send(200, b'{"kind":"Pod","apiVersion":"v1",' + data[1:])
        return self._send(404, _status(404, "NotFound", 'pods "%s" not found' % name,
                                       {"name": name, "kind": "pods"}))

    def _list_nodes(self, user, query):
        if not user.nodes:
            return self._forbidden(user, "list", "nodes")
        parsed = self._selectors(query, NODE_FIELDS)
        if parsed is None:
            return 400
        labels, field_terms = parsed
        store = self.server.api.store
        chosen = [data for node, data in store.nodes
                  if labels_match(labels, node["metadata"].get("labels"))
                  and fields_match(field_terms, node, NODE_FIELDS)]
        return self._list("NodeList", chosen, store.resource_version)

    def _get_node(self, user, name):
        if not user.nodes:
            return self._forbidden(user, "get", "nodes", name=name)
        for node, data in self.server.api.store.nodes:
            if node["metadata"]["name"] == name:
                return self._send(200, b'{"kind":"Node","apiVersion":"v1",' + data[1:])
        return self._send(404, _status(404, "NotFound", 'nodes "%s" not found' % name,
                                       {"name": name, "kind": "nodes"}))


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, api, context):
        self.api = api
        self.context = context
        super().__init__(address, _Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the request thread, so one bad client cannot stall the others.
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


class ApiDouble:
    """Run the double on 127.0.0.1 in a background thread.

    ``objects``: {'pods': [...], 'nodes': [...]}. ``token``: the admin bearer token
    (random when None). ``workdir``: where ca.crt, the server and client certificates and
    the kubeconfig go (a temporary directory, removed on stop, when None).

    Extra identities for tests: ``add_token(token, namespaces=None, nodes=True)`` adds a
    user with narrower rights; ``client_cert`` / ``client_key`` authenticate as admin;
    ``add_basic_user(user, password)`` enables HTTP basic auth for that user.
    """

    def __init__(self, objects, token=None, workdir=None, context="cflab-double"):
        self.store = _Store(objects)
        self.token = token or base64.b32encode(os.urandom(20)).decode().lower()
        self.tokens = {self.token: Policy(ADMIN)}
        self.cert_users = {ADMIN: Policy(ADMIN)}
        self.basic_users = {}
        self.requests = []
        self.lock = threading.Lock()
        self.context = context
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="cflab-k8s-double-")
        os.makedirs(self.workdir, exist_ok=True)
        self.ca = CertificateAuthority(self.workdir)
        self.ca_path = self.ca.ca_path
        cert, key = self.ca.issue_server()
        self.client_cert, self.client_key = self.ca.issue_client(ADMIN)
        context_ = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context_.load_cert_chain(cert, key)
        context_.load_verify_locations(self.ca_path)
        context_.verify_mode = ssl.CERT_OPTIONAL  # client certificates are one way in, tokens another
        self._server = _TLSServer(("127.0.0.1", 0), self, context_)
        self.port = self._server.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.kubeconfig_path = os.path.join(self.workdir, "kubeconfig")
        with open(self.kubeconfig_path, "w") as handle:
            json.dump(self.kubeconfig_dict(), handle, indent=2)  # JSON is valid YAML
        os.chmod(self.kubeconfig_path, 0o600)
        self._thread = None

    # ------------------------------------------------------------ identities
    def add_token(self, token, user="cflab-limited", namespaces=None, nodes=True):
        self.tokens[token] = Policy(user, namespaces, nodes)

    def add_basic_user(self, user, password):
        self.basic_users[user] = password

    def kubeconfig_dict(self, token=None, inline_ca=False, context=None):
        """A kubeconfig as a dict; ``inline_ca`` embeds the CA as certificate-authority-data."""
        cluster = {"server": self.url}
        if inline_ca:
            with open(self.ca_path, "rb") as handle:
                cluster["certificate-authority-data"] = base64.b64encode(handle.read()).decode()
        else:
            cluster["certificate-authority"] = self.ca_path
        name = context or self.context
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": name, "cluster": cluster}],
            "users": [{"name": name + "-user", "user": {"token": token or self.token}}],
            "contexts": [{"name": name,
                          "context": {"cluster": name, "user": name + "-user", "namespace": "default"}}],
            "current-context": name,
        }

    # ------------------------------------------------------------ counters
    def calls(self, kind=None):
        """Recorded requests; kind 'pods' or 'nodes' keeps list calls of that resource."""
        with self.lock:
            calls = list(self.requests)
        if kind == "pods":
            return [c for c in calls if c["path"].endswith("/pods")]
        if kind == "nodes":
            return [c for c in calls if c["path"] == "/api/v1/nodes"]
        return calls

    def reset_calls(self):
        with self.lock:
            del self.requests[:]

    # ------------------------------------------------------------ lifecycle
    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="k8s-double", daemon=True)
        self._thread.start()
        # Wait until the socket accepts, so a test never races the thread.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5):
            pass
        return self

    def stop(self):
        if self._thread:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
