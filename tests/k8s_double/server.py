"""A small kube-apiserver double over HTTPS: discovery, a writable object store, pods/exec.

Routes, in the API server's own shapes (see __init__.py for the whole picture):
GET /version, /api, /api/v1, /apis, /apis/{group}[/{version}] (legacy JSON discovery) and
/openapi/v3; /api/v1/... and /apis/{group}/{version}/... for the resources in resources.py: get,
list (labelSelector, fieldSelector), watch, create, replace, patch (merge, strategic, JSON patch,
server-side apply), delete; POST selfsubjectaccessreviews; and
/api/v1/namespaces/{ns}/pods/{name}/exec over WebSocket (exec.py; kubectl 1.30 or later).
Every request is recorded so tests and the benchmark can count calls.
"""

import base64
import copy
import json
import logging
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from .exec import ExecSession, choose_protocol
from . import openapi
from .label_field_selectors import SelectorError, fields_match, labels_match, parse_field_selector, parse_label_selector
from .policy import Policy, forbidden_message
from .protobuf import decode_access_review
from .resources import BY_KEY, api_group, api_group_list, api_resource_list, api_versions
from .store import NAMESPACES, PODS, ApiError, _details, _Store, status_body
from .tls import CertificateAuthority
from .websocket import accept_key

ADMIN = "cflab-admin"
# The PATH's kubectl here is Google's dispatcher: it runs the kubectl.1.NN matching this version,
# so claiming 1.32 makes a plain `kubectl` the 1.32 client everyone expects on this image.
SERVER_VERSION = "v1.32.0-cflab"
log = logging.getLogger("k8s_double")

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
SPDY_MESSAGE = ("SPDY/3.1 upgrades are not supported: this API double serves WebSocket exec (kubectl 1.30 or later); "
                "subprotocols v5.channel.k8s.io and v4.channel.k8s.io")

def _flag(query, name):
    return query.get(name, "").lower() in ("true", "1")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cflab-k8s-double/1"
    timeout = 30

    def log_message(self, fmt, *args):  # keep test output clean
        pass

    # ------------------------------------------------------------ plumbing
    def _send(self, code, body):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self._record(code)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return code

    def _record(self, code):
        """Put this request in api.requests before its answer leaves, so a client that has the
        answer finds the record."""
        self.record["code"] = code
        if not self.recorded:
            self.recorded = True
            api = self.server.api
            with api.lock:
                api.requests.append(self.record)

    def _fail(self, code, reason, message, details=None):
        return self._send(code, status_body(code, reason, message, details))

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

    def _read_body(self):
        """The request body; read it all even when the answer is an error, for keep-alive."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self):
        parts = urlsplit(self.path)
        multi = parse_qs(parts.query, keep_blank_values=True)
        query = {k: v[-1] for k, v in multi.items()}
        segments = [unquote(s) for s in parts.path.strip("/").split("/") if s]
        try:
            self.body = self._read_body()
        except ValueError:
            self.close_connection = True
            self.body = b""
        user = self._user()
        self.record = {"method": self.command, "path": parts.path, "query": query,
                       "user": user.user if user else None}
        self.streaming = False  # response headers are out: an error can no longer become a Status
        self.recorded = False  # the record is in api.requests
        try:
            code = self._route(user, segments, query, multi)
        except ApiError as exc:
            code = self._send(exc.code, exc.status())
        except Exception as exc:  # a bug here answers 500 instead of dropping the connection
            log.exception("k8s double: %s %s failed", self.command, self.path)
            self.close_connection = True
            code = 500
            if not self.streaming:
                code = self._fail(500, "InternalError", "Internal error occurred: %s" % exc)
        self._record(code)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    # ------------------------------------------------------------ routes
    def _route(self, user, seg, query, multi):
        if user is None:
            return self._fail(401, "Unauthorized", "Unauthorized")
        discovery = self._discovery(seg)
        if discovery is not None:
            if self.command != "GET":
                return self._fail(405, "MethodNotAllowed", "the server does not allow this method on the "
                                  "requested resource")
            return self._send(200, discovery)
        target = self._target(seg)
        if target is None:
            return self._fail(404, "NotFound", "the server could not find the requested resource")
        res, namespace, name, sub = target
        if name is not None and res.namespaced and namespace is None:
            return self._fail(404, "NotFound", "the server could not find the requested resource")
        if sub == "exec" and res.key == PODS:
            if self.command not in ("GET", "POST"):
                return self._fail(405, "MethodNotAllowed", "the server does not allow this method on the "
                                  "requested resource")
            return self._exec(user, namespace, name, query, multi)
        if sub:
            return self._fail(404, "NotFound", "the server could not find the requested resource")
        if res.key == ("authorization.k8s.io/v1", "selfsubjectaccessreviews"):
            return self._access_review(user, res)
        verb = METHOD_VERBS.get(self.command) or ("get" if name else "list")
        if verb not in res.verbs or (name is None) != (verb in ("list", "create")) or (
                res.namespaced and namespace is None and verb != "list"):
            return self._fail(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                              "resource")
        if verb == "list" and _flag(query, "watch"):
            verb = "watch"
        if not user.allows(verb, res.group, res.plural, "", namespace):
            return self._forbidden(user, verb, res, namespace, name)
        if verb == "watch":
            return self._watch(res, namespace, query)
        if verb == "list":
            return self._list(res, namespace, query)
        if verb == "get":
            found = self.server.api.store.find(res.key, namespace, name)
            if found is None:
                raise ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified, name), _details(res, name))
            return self._send(200, b'{"kind":"%s","apiVersion":"%s",' % (
                res.kind.encode(), res.group_version.encode()) + found[1][1:])
        return self._write(res, verb, namespace, name, query)

    def _discovery(self, seg):
        if seg == ["version"]:
            return {"major": "1", "minor": "32", "gitVersion": SERVER_VERSION, "gitCommit": "0" * 40,
                    "gitTreeState": "clean", "buildDate": "2026-11-28T00:00:00Z", "goVersion": "go1.22.0",
                    "compiler": "gc", "platform": "linux/amd64"}
        if seg == ["api"]:
            return api_versions()
        if seg == ["api", "v1"]:
            return api_resource_list("v1")
        if seg == ["apis"]:
            return api_group_list()
        if len(seg) == 2 and seg[0] == "apis":
            return api_group(seg[1])
        if len(seg) == 3 and seg[0] == "apis":
            return api_resource_list("%s/%s" % (seg[1], seg[2]))
        if seg == ["openapi", "v3"]:
            return openapi.root()
        if seg[:2] == ["openapi", "v3"]:
            return openapi.group_version_doc("/".join(seg[2:]))
        return None

    @staticmethod
    def _target(seg):
        """(resource, namespace, name, subresource) for a resource path, or None."""
        if seg[:2] == ["api", "v1"]:
            group_version, rest = "v1", seg[2:]
        elif len(seg) >= 4 and seg[0] == "apis":
            group_version, rest = "%s/%s" % (seg[1], seg[2]), seg[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        res = BY_KEY.get((group_version, rest[0]))
        if res is None or (namespace is not None and not res.namespaced):
            return None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        return res, namespace, name, sub

    def _forbidden(self, user, verb, res, namespace=None, name=None, subresource=""):
        message = forbidden_message(user.user, verb, res.group, res.plural, subresource, namespace, name)
        return self._fail(403, "Forbidden", message, _details(res, name))

    # ------------------------------------------------------------ reads
    def _selectors(self, res, query):
        try:
            return (parse_label_selector(query.get("labelSelector", "")),
                    parse_field_selector(query.get("fieldSelector", ""), res.fields))
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", "unable to parse requirement: %s" % exc)

    def _list(self, res, namespace, query):
        labels, field_terms = self._selectors(res, query)
        store = self.server.api.store
        with store.lock:
            entries, version = list(store.collections[res.key]), store.resource_version
        chosen = [data for obj, data in entries
                  if (namespace is None or obj["metadata"].get("namespace") == namespace)
                  and labels_match(labels, obj["metadata"].get("labels"))
                  and fields_match(field_terms, obj, res.fields)]
        head = b'{"kind":"%sList","apiVersion":"%s","metadata":{"resourceVersion":"%d"},"items":[' % (
            res.kind.encode(), res.group_version.encode(), version)
        return self._send(200, head + b",".join(chosen) + b"]}")

    def _watch(self, res, namespace, query):
        """A chunked stream of watch events, as the informers in kubectl and client-go read it.
        From resourceVersion R it replays the store's change log after R; without one (or with
        sendInitialEvents) it starts with ADDED for every matching object, the latter then marked
        done with the BOOKMARK a watch-list client waits for."""
        api = self.server.api
        store = api.store
        labels, field_terms = self._selectors(res, query)

        def matches(obj):
            return ((namespace is None or obj["metadata"].get("namespace") == namespace)
                    and labels_match(labels, obj["metadata"].get("labels"))
                    and fields_match(field_terms, obj, res.fields))

        since = query.get("resourceVersion", "")
        try:
            cursor = int(since) if since not in ("", "0") else None
        except ValueError:
            raise ApiError(400, "BadRequest", "invalid resourceVersion %r" % since)
        deadline = time.monotonic() + min(float(query.get("timeoutSeconds") or 1800), 1800)
        initial = _flag(query, "sendInitialEvents")
        with store.lock:
            if cursor is None or initial:
                pending = [(store.resource_version, "ADDED", obj) for obj, _ in store.collections[res.key]]
                cursor = store.resource_version
            else:
                pending = store.changes_since(res.key, cursor)
        self._record(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True  # a watch ends with its connection
        self.streaming = True
        try:
            if pending is None:  # the log no longer reaches back: the client lists again
                self._chunk({"type": "ERROR", "object": status_body(
                    410, "Expired", "too old resource version: %d (%d)" % (cursor, store.log_start))})
                pending = []
                deadline = 0
            while True:
                for version, event, obj in pending:
                    cursor = max(cursor, version)
                    if matches(obj):
                        self._chunk({"type": event, "object": dict(
                            {"kind": res.kind, "apiVersion": res.group_version}, **obj)})
                if initial:
                    initial = False
                    self._chunk({"type": "BOOKMARK", "object": {
                        "kind": res.kind, "apiVersion": res.group_version, "metadata": {
                            "resourceVersion": str(cursor), "annotations": {"k8s.io/initial-events-end": "true"}}}})
                remaining = deadline - time.monotonic()
                if remaining <= 0 or api.stopping.is_set():
                    break
                with store.lock:
                    pending = store.changes_since(res.key, cursor) or []
                    if not pending:
                        store.changed.wait(min(remaining, 0.5))
                        pending = store.changes_since(res.key, cursor) or []
            self.wfile.write(b"0\r\n\r\n")
        except (OSError, ssl.SSLError):
            pass  # the client went away
        return 200

    def _chunk(self, event):
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    # ------------------------------------------------------------ writes
    def _json_body(self, patch_type=None):
        if "protobuf" in self.headers.get("Content-Type", ""):
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                           "accepted media types include: application/json, application/yaml (this API double "
                           "reads protobuf only for SelfSubjectAccessReview)")
        text = self.body.decode("utf-8", "replace")
        try:
            return json.loads(text)
        except ValueError:
            if patch_type == "apply":  # apply bodies are YAML; JSON is the usual spelling of it
                try:
                    import yaml
                    return yaml.safe_load(text)
                except Exception:
                    pass
        raise ApiError(400, "BadRequest", "the request body could not be decoded as %s"
                       % ("YAML" if patch_type == "apply" else "JSON"))

    def _write(self, res, verb, namespace, name, query):
        api = self.server.api
        store = api.store
        dry_run = query.get("dryRun") == "All"
        code = 200
        if verb == "create":
            obj, _ = store.create(res, namespace, self._json_body(), dry_run)
            code = 201
        elif verb == "update":
            obj, _ = store.replace(res, namespace, name, self._json_body(), dry_run)
        elif verb == "patch":
            content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            patch_type = PATCH_TYPES.get(content_type)
            if patch_type is None:
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                               "accepted media types include: " + ", ".join(sorted(PATCH_TYPES)))
            obj, created = store.patch(res, namespace, name, patch_type, self._json_body(patch_type), dry_run)
            code = 201 if created else 200
        else:
            obj = store.delete(res, namespace, name, dry_run)
            if res.key == NAMESPACES and not dry_run:
                api.finalize_namespace_later(name)
            if not res.delete_returns_object:
                details = dict(_details(res, name), uid=obj["metadata"].get("uid"))
                api.deliver_events()
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                        "details": details})
        api.deliver_events()  # the DaemonSet controller sees the change before the client does
        return self._send(code, dict({"kind": res.kind, "apiVersion": res.group_version}, **obj))

    def _access_review(self, user, res):
        if self.command != "POST":
            return self._fail(405, "MethodNotAllowed", "the server does not allow this method on the requested "
                              "resource")
        if "protobuf" in self.headers.get("Content-Type", ""):
            try:
                body = decode_access_review(self.body)
            except ValueError as exc:
                raise ApiError(400, "BadRequest", "the protobuf body could not be decoded: %s" % exc)
        else:
            body = self._json_body()
        spec = body.get("spec") or {} if isinstance(body, dict) else {}
        attrs, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if bool(attrs) == bool(non_resource):
            raise ApiError(422, "Invalid", "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: "
                           "spec.resourceAttributes: Invalid value: exactly one of nonResourceAttributes or "
                           "resourceAttributes must be specified")
        if attrs:
            allowed = user.allows(attrs.get("verb", ""), attrs.get("group", ""), attrs.get("resource", ""),
                                  attrs.get("subresource", ""), attrs.get("namespace") or None)
        else:
            allowed = user.allows_path(non_resource.get("path", ""))
        status = {"allowed": allowed}
        if allowed:
            status["reason"] = 'allowed by the API double\'s policy for user "%s"' % user.user
        self.record["review"] = dict(attrs or non_resource, allowed=allowed)
        return self._send(201, {"kind": res.kind, "apiVersion": res.group_version,
                                "metadata": {"creationTimestamp": None}, "spec": spec, "status": status})

    # ------------------------------------------------------------ exec
    def _exec(self, user, namespace, name, query, multi):
        api = self.server.api
        command = multi.get("command", [])
        self.record.update(command=command, container=query.get("container"), exit_code=None, cut=False)
        pods = BY_KEY[PODS]
        if not user.allows("create", "", "pods", "exec", namespace):
            return self._forbidden(user, "create", pods, namespace, name, "exec")
        found = api.store.find(PODS, namespace, name)
        if found is None:
            raise ApiError(404, "NotFound", 'pods "%s" not found' % name, _details(pods, name))
        pod = found[0]
        spec = pod.get("spec", {})
        declared = [c["name"] for key in ("containers", "initContainers", "ephemeralContainers")
                    for c in spec.get(key, [])]
        container = query.get("container") or (spec.get("containers") or [{}])[0].get("name")
        self.record["container"] = container
        if container not in declared:
            return self._fail(400, "BadRequest", "container %s is not valid for pod %s" % (container, name))
        phase = pod.get("status", {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return self._fail(400, "BadRequest", "cannot exec into a container in a completed pod; current phase "
                              "is %s" % phase)
        if not command:
            return self._fail(400, "BadRequest", "you must specify at least one command for the container")
        streams = dict((s, _flag(query, s)) for s in ("stdin", "stdout", "stderr", "tty"))
        if not (streams["stdin"] or streams["stdout"] or streams["stderr"]):
            return self._fail(400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr")
        upgrade = self.headers.get("Upgrade", "").strip().lower()
        if upgrade.startswith("spdy"):
            return self._fail(400, "BadRequest", SPDY_MESSAGE)
        if upgrade != "websocket" or "upgrade" not in self.headers.get("Connection", "").lower():
            return self._fail(400, "BadRequest", "Upgrade request required")
        protocol = choose_protocol(self.headers.get("Sec-WebSocket-Protocol"))
        if protocol is None:
            return self._fail(400, "BadRequest", "no supported WebSocket subprotocol offered; this API double speaks "
                              "v5.channel.k8s.io and v4.channel.k8s.io (kubectl 1.30 or later)")
        if not self.headers.get("Sec-WebSocket-Key"):
            return self._fail(400, "BadRequest", "missing Sec-WebSocket-Key")
        if api.exec_backend is None:
            return self._fail(404, "NotFound", "pods/exec is not served: this API double was started without an "
                              "exec_backend", _details(pods, name))
        prefix = api.exec_backend(namespace, name, container)
        if prefix is None:
            return self._fail(400, "BadRequest", "container %s is not valid for pod %s" % (container, name))
        session = ExecSession(self.connection, protocol, list(prefix) + list(command), command, namespace, name,
                              container, user.user, stdin=streams["stdin"], stdout=streams["stdout"],
                              stderr=streams["stderr"], tty=streams["tty"])
        try:
            session.start()
        except OSError as exc:
            return self._fail(500, "InternalError", "failed to start the exec backend %r: %s" % (prefix[:1], exc))
        self.close_connection = True  # the connection belongs to the stream now
        # Recorded now, and completed by the session (exit_code before the status goes out, cut
        # before the link drops), so a client that has seen the end finds it in calls().
        self.record["pid"] = session.pid
        session.record = self.record
        self.streaming = True
        self._record(101)
        with api.lock:
            api.sessions.append(session)
        try:
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept_key(self.headers["Sec-WebSocket-Key"]))
            self.send_header("Sec-WebSocket-Protocol", protocol)
            self.end_headers()
            session.leftover = self._buffered_input()
            session.run()
        finally:
            session.close()  # normally a no-op; after a bug in run() it kills the process
            with api.lock:
                api.sessions.remove(session)
        return 101

    def _buffered_input(self):
        """Bytes the HTTP parser already read past the request (a client may send frames early)."""
        sock = self.connection
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            data = self.rfile.peek()  # what is buffered, or one non-blocking read
            return self.rfile.read(len(data)) if data else b""
        except (ssl.SSLWantReadError, BlockingIOError, ssl.SSLError, OSError):
            return b""
        finally:
            sock.settimeout(timeout)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, api, context):
        self.api = api
        self.context = context
        super().__init__(address, _Handler)

    def finish_request(self, request, client_address):
        # Headers and body go out in separate writes: without NODELAY, Nagle and delayed ACKs
        # add 40 ms to every small answer.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
    ``exec_backend(namespace, pod, container)``: the argv prefix that runs a command in that
    container (the request's command is appended), or None when it cannot exec; without one,
    pods/exec answers 404.

    Extra identities for tests: ``add_token(token, user, namespaces=None, nodes=True,
    exec_namespaces=frozenset(), write=False)`` adds a user with narrower rights;
    ``client_cert`` / ``client_key`` authenticate as admin; ``add_basic_user(user, password)``
    enables HTTP basic auth for a read-only user.
    """

    def __init__(self, objects, token=None, workdir=None, context="cflab-double", exec_backend=None):
        self.store = _Store(objects)
        self.token = token or base64.b32encode(os.urandom(20)).decode().lower()
        self.tokens = {self.token: Policy.admin(ADMIN)}
        self.cert_users = {ADMIN: Policy.admin(ADMIN)}
        self.basic_users = {}
        self.requests = []
        self.lock = threading.Lock()
        self.exec_backend = exec_backend
        self.sessions = []  # live ExecSessions
        # Called as daemonset_controller(event, daemonset) with event ADDED, MODIFIED or DELETED.
        self.daemonset_controller = None
        self.controller_errors = []
        self._hook_lock = threading.Lock()
        # How long a deleted namespace stays Terminating before its content and it are gone
        # (0: gone before the DELETE is answered).
        self.namespace_grace = 1.0
        self._timers = []
        self.stopping = threading.Event()
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
        self.kubeconfig_path = self.write_kubeconfig(os.path.join(self.workdir, "kubeconfig"))
        self._thread = None

    # ------------------------------------------------------------ identities
    def add_token(self, token, user="cflab-limited", namespaces=None, nodes=True, exec_namespaces=frozenset(),
                  write=False):
        """A bearer token for a user who may read ``namespaces`` (None = all) and nodes, exec in
        ``exec_namespaces`` (None = everywhere) and, with ``write``, change what it may read."""
        self.tokens[token] = Policy(user, namespaces, nodes, exec_namespaces, write)

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

    def write_kubeconfig(self, path, token=None):
        """Write kubeconfig_dict(token) to ``path`` (mode 0600); returns the path."""
        with open(path, "w") as handle:
            json.dump(self.kubeconfig_dict(token), handle, indent=2)  # JSON is valid YAML
        os.chmod(path, 0o600)
        return path

    # ------------------------------------------------------------ counters
    def calls(self, kind=None):
        """Recorded requests; kind 'pods' or 'nodes' keeps list calls of that resource.
        An exec is recorded when its stream opens (code 101) and gets exit_code or cut=True
        before its client can see the end."""
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

    # ------------------------------------------------------------ objects, for the lab (thread-safe)
    def add_pod(self, pod):
        """Add or replace a pod (by namespace and name); its namespace is created if missing."""
        return self.store.upsert_pod(pod)

    def remove_pod(self, namespace, name):
        """Remove a pod; False when there was none."""
        return self.store.remove(PODS, namespace, name)

    def set_status(self, group_version, plural, namespace, name, status):
        """Replace an object's .status (a controller's write; it does not call daemonset_controller).
        KeyError when the object does not exist."""
        return self.store.set_status((group_version, plural), namespace, name, status)

    def get_object(self, group_version, plural, namespace, name):
        """A copy of one stored object (without kind/apiVersion), or None."""
        found = self.store.find((group_version, plural), namespace, name)
        return copy.deepcopy(found[0]) if found else None

    def finalize_namespace_later(self, name):
        """What the namespace controller does some time after a delete: empty it and remove it.
        With namespace_grace <= 0 it is done before the DELETE is answered."""
        def finalize():
            self.store.finalize_namespace(name)
            self.deliver_events()
        if self.namespace_grace <= 0:
            return finalize()
        timer = threading.Timer(self.namespace_grace, finalize)
        timer.daemon = True
        with self.lock:
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def deliver_events(self):
        """Hand queued DaemonSet events to daemonset_controller, in commit order, one at a time."""
        with self._hook_lock:
            for event, daemonset in self.store.take_events():
                hook = self.daemonset_controller
                if hook is None:
                    continue
                try:
                    hook(event, daemonset)
                except Exception as exc:  # a broken lab controller must not take the server down
                    log.exception("daemonset_controller failed on %s %s", event, daemonset["metadata"].get("name"))
                    self.controller_errors.append({
                        "event": event, "namespace": daemonset["metadata"].get("namespace"),
                        "name": daemonset["metadata"].get("name"), "error": repr(exc),
                        "traceback": traceback.format_exc()})

    # ------------------------------------------------------------ exec streams
    def exec_sessions(self):
        """Live exec streams: namespace, pod, container, command, argv, pid, user, protocol."""
        with self.lock:
            return [s.describe() for s in self.sessions]

    def cut_exec_streams(self, namespace=None, pod=None):
        """Drop matching live exec connections like a lost link and kill their backend processes.
        Returns how many were cut."""
        with self.lock:
            chosen = [s for s in self.sessions if not s.was_cut and (namespace is None or s.namespace == namespace)
                      and (pod is None or s.pod == pod)]
        for session in chosen:
            session.cut()
        return len(chosen)

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
        self.stopping.set()  # watches end
        with self.lock:
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        self.cut_exec_streams()  # no backend process outlives the double
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
