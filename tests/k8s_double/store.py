"""The double's object store: every resource type, kept as (object, JSON bytes) pairs.

Objects are stored without kind/apiVersion (as list items come from the API server) and with
their JSON already encoded, so a 5,000-pod list is a byte join, not a dump. Every write takes
``lock``; readers copy a collection's entries under it and filter outside it.

Writes follow the API server where clients can tell: uid, resourceVersion, creationTimestamp and
generation are the server's; a status subresource's .status is left alone by main-resource
writes; a create in a namespace that does not exist is 404, in one being deleted 403; a duplicate
create is 409; a PUT with a stale resourceVersion is 409; a write that changes nothing changes no
resourceVersion. A deleted namespace is Terminating until finalize_namespace() removes it and
everything in it (the ApiDouble calls that shortly after, as the namespace controller would).
Every change goes to a bounded log that watches read; DaemonSet changes are also queued as
(event, object) for the controller hook, in commit order.
"""

import collections
import copy
import datetime
import json
import os
import threading
import uuid

from .patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from .resources import BY_KEY, RESOURCES, SYSTEM_NAMESPACES

LOG_SIZE = 4096  # changes kept for watches; an older resourceVersion gets 410 Gone, as from etcd compaction
DAEMONSETS = ("apps/v1", "daemonsets")
PODS = ("v1", "pods")
NAMESPACES = ("v1", "namespaces")


class ApiError(Exception):
    """A failure the server answers with a metav1.Status."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self):
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def _details(res, name):
    details = {"name": name or "", "kind": res.plural}
    if res.group:
        details["group"] = res.group
    return details


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified, name), _details(res, name))


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def _without_kind(obj):
    return dict((k, v) for k, v in obj.items() if k not in ("kind", "apiVersion"))


def _spec_part(obj):
    """What a change of bumps metadata.generation: everything but metadata and status."""
    return dict((k, v) for k, v in obj.items() if k not in ("metadata", "status"))


def _same_but_version(a, b):
    strip = lambda o: dict(o, metadata=dict((k, v) for k, v in o["metadata"].items()  # noqa: E731
                                            if k != "resourceVersion"))
    return strip(a) == strip(b)


class _Store:
    def __init__(self, objects):
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # notified on every logged change
        self.resource_version = 1000
        self.log = collections.deque(maxlen=LOG_SIZE)  # (resourceVersion, event, key, object)
        self.log_start = 0
        self.collections = dict((r.key, []) for r in RESOURCES if r.stored)
        # The same list objects, under the names older callers use (tests/integration/test_probes.py).
        self.pods = self.collections[PODS]
        self.nodes = self.collections[("v1", "nodes")]
        self.events = []  # (event, daemonset) waiting for the controller hook
        for pod in objects.get("pods", []):
            self.add_pod(pod)
        for node in objects.get("nodes", []):
            self.add_node(node)
        names = list(SYSTEM_NAMESPACES) + sorted(set(p["metadata"]["namespace"] for p, _ in self.pods))
        with self.lock:
            for name in names:
                self._ensure_namespace(name)
        self.log_start = self.resource_version  # watches may start from here on

    # ------------------------------------------------------------ bulk loading (no checks, fast)
    def add_pod(self, pod):
        self.resource_version += 1
        self.pods.append((pod, encode(pod)))

    def add_node(self, node):
        self.resource_version += 1
        self.nodes.append((node, encode(node)))

    # ------------------------------------------------------------ lookups
    def _index(self, key, namespace, name):
        for i, (obj, _) in enumerate(self.collections[key]):
            meta = obj["metadata"]
            if meta.get("name") == name and meta.get("namespace") == namespace:
                return i
        return -1

    def find(self, key, namespace, name):
        """(object, bytes) or None."""
        with self.lock:
            i = self._index(key, namespace, name)
            return self.collections[key][i] if i >= 0 else None

    def namespace_exists(self, name):
        return self.find(NAMESPACES, None, name) is not None

    # ------------------------------------------------------------ stamping
    def _next_version(self):
        self.resource_version += 1
        return str(self.resource_version)

    def _ensure_namespace(self, name):
        if self._index(NAMESPACES, None, name) < 0:
            self._create(BY_KEY[NAMESPACES], None, {"metadata": {"name": name}}, dry_run=False)

    def _defaults(self, res, obj):
        """Fields the API server fills in on create."""
        meta = obj["metadata"]
        if res.key == NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj["spec"] = dict({"finalizers": ["kubernetes"]}, **obj.get("spec", {}))
            obj["status"] = {"phase": "Active"}
        elif res.key == DAEMONSETS:
            obj["status"] = {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                             "desiredNumberScheduled": 0, "numberReady": 0}
        elif res.key == PODS:
            obj.setdefault("spec", {})
            obj["status"] = obj.get("status") or {"phase": "Pending"}
        elif res.status_subresource:
            obj["status"] = {}

    # ------------------------------------------------------------ writes (callers hold no lock)
    def create(self, res, namespace, body, dry_run=False):
        with self.lock:
            return self._create(res, namespace, body, dry_run)

    def _check_body(self, res, namespace, body, name=None):
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body of the request was not a JSON object")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind and kind != res.kind:
            raise ApiError(400, "BadRequest", "the kind in the data (%s) does not match the expected kind (%s)"
                           % (kind, res.kind))
        if api_version and api_version != res.group_version:
            raise ApiError(400, "BadRequest", "the API version in the data (%s) does not match the expected "
                           "API version (%s)" % (api_version, res.group_version))
        obj = copy.deepcopy(_without_kind(body))
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(400, "BadRequest",
                               "the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if name is not None and meta.get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)"
                           % (meta.get("name"), name))
        return obj

    def _create(self, res, namespace, body, dry_run):
        obj = self._check_body(res, namespace, body)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + os.urandom(3).hex()[:5]
        if not meta.get("name"):
            raise ApiError(422, "Invalid", '%s "" is invalid: metadata.name: Required value: name or generateName '
                           "is required" % res.kind, {"kind": res.kind, "causes": [
                               {"reason": "FieldValueRequired", "message": "Required value: name or generateName "
                                "is required", "field": "metadata.name"}]})
        if res.namespaced:
            self._check_namespace_open(res, namespace, meta["name"])
        if self._index(res.key, namespace, meta["name"]) >= 0:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.qualified, meta["name"]),
                           _details(res, meta["name"]))
        for field in ("resourceVersion", "deletionTimestamp", "managedFields"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        self._defaults(res, obj)
        if dry_run:
            meta["resourceVersion"] = str(self.resource_version)
            return obj, False
        meta["resourceVersion"] = self._next_version()
        self.collections[res.key].append((obj, encode(obj)))
        self._log(res.key, "ADDED", obj)
        return obj, True

    def replace(self, res, namespace, name, body, dry_run=False):
        with self.lock:
            i = self._index(res.key, namespace, name)
            if i < 0:
                raise not_found(res, name)
            new = self._check_body(res, namespace, body, name)
            sent = new["metadata"].get("resourceVersion")
            current = self.collections[res.key][i][0]
            if sent and sent != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been '
                               "modified; please apply your changes to the latest version and try again"
                               % (res.qualified, name), _details(res, name))
            return self._commit(res, i, current, new, dry_run)

    def patch(self, res, namespace, name, patch_type, patch, dry_run=False):
        """Apply a patch; server-side apply creates what is missing. Returns (object, created)."""
        with self.lock:
            i = self._index(res.key, namespace, name)
            if i < 0:
                if patch_type != "apply":
                    raise not_found(res, name)
                body = self._check_body(res, namespace, patch, name)
                body["metadata"]["name"] = name
                return self._create(res, namespace, body, dry_run)
            current = self.collections[res.key][i][0]
            try:
                if patch_type == "json":
                    new = json_patch(current, patch)
                elif patch_type == "merge":
                    new = merge_patch(copy.deepcopy(current), patch)
                else:  # strategic, and apply as create-or-merge
                    if patch_type == "apply":
                        patch = _without_kind(self._check_body(res, namespace, patch, name))
                    new = strategic_merge_patch(copy.deepcopy(current), patch)
            except PatchError as exc:
                raise ApiError(422, "Invalid", str(exc))
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise ApiError(422, "Invalid", "the patch removed the object's metadata")
            if new["metadata"].get("name") != name or new["metadata"].get("namespace") != namespace:
                raise ApiError(400, "BadRequest", "a patch may not change an object's name or namespace")
            sent = new["metadata"].get("resourceVersion")
            if sent and sent != current["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the object has been '
                               "modified; please apply your changes to the latest version and try again"
                               % (res.qualified, name), _details(res, name))
            return self._commit(res, i, current, new, dry_run)

    def _commit(self, res, i, current, new, dry_run):
        # Stored objects carry no kind/apiVersion; a patch body that names them changes nothing.
        new = _without_kind(new)
        meta, old_meta = new["metadata"], current["metadata"]
        for field in ("uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        if res.key == NAMESPACES:  # the API server keeps this label on every namespace
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        if res.status_subresource:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        if _spec_part(new) != _spec_part(current):
            meta["generation"] = old_meta.get("generation", 1) + 1
        if _same_but_version(new, current) or dry_run:
            return (current if not dry_run else new), False
        meta["resourceVersion"] = self._next_version()
        self.collections[res.key][i] = (new, encode(new))
        self._log(res.key, "MODIFIED", new)
        return new, False

    def _check_namespace_open(self, res, namespace, name):
        found = self._index(NAMESPACES, None, namespace)
        if found < 0:
            raise not_found(BY_KEY[NAMESPACES], namespace)
        if self.collections[NAMESPACES][found][0]["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", '%s "%s" is forbidden: unable to create new content in namespace %s '
                           "because it is being terminated" % (res.qualified, name, namespace),
                           dict(_details(res, name), causes=[{
                               "reason": "NamespaceTerminating", "field": "metadata.namespace",
                               "message": "namespace %s is being terminated" % namespace}]))

    def delete(self, res, namespace, name, dry_run=False):
        """Remove one object. A namespace is only marked Terminating: finalize_namespace() ends it."""
        with self.lock:
            i = self._index(res.key, namespace, name)
            if i < 0:
                raise not_found(res, name)
            obj = copy.deepcopy(self.collections[res.key][i][0])
            if res.key == NAMESPACES:
                if obj["metadata"].get("deletionTimestamp"):
                    raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on namespaces "%s": The system '
                                   "is ensuring all content is removed from this namespace.  Upon completion, this "
                                   "namespace will automatically be purged by the system." % name,
                                   _details(res, name))
                obj["metadata"]["deletionTimestamp"] = _now()
                obj["status"] = {"phase": "Terminating"}
                if not dry_run:
                    obj["metadata"]["resourceVersion"] = self._next_version()
                    self.collections[res.key][i] = (obj, encode(obj))
                    self._log(res.key, "MODIFIED", obj)
                return copy.deepcopy(obj)
            obj["metadata"]["deletionTimestamp"] = _now()
            if not dry_run:
                del self.collections[res.key][i]
                self._log_deleted(res.key, obj)
            return obj

    def finalize_namespace(self, name):
        """The namespace controller's work: delete what is in the namespace, then the namespace."""
        with self.lock:
            for res in RESOURCES:
                if res.stored and res.namespaced:
                    kept, gone = [], []
                    for entry in self.collections[res.key]:
                        (gone if entry[0]["metadata"].get("namespace") == name else kept).append(entry)
                    if gone:
                        self.collections[res.key][:] = kept
                        for obj, _ in gone:
                            self._log_deleted(res.key, copy.deepcopy(obj))
            i = self._index(NAMESPACES, None, name)
            if i >= 0:
                obj = copy.deepcopy(self.collections[NAMESPACES][i][0])
                del self.collections[NAMESPACES][i]
                self._log_deleted(NAMESPACES, obj)

    def _log_deleted(self, key, obj):
        obj["metadata"]["resourceVersion"] = self._next_version()  # a deletion has its own version
        self._log(key, "DELETED", obj)

    def _log(self, key, event, obj, hook=True):
        if len(self.log) == self.log.maxlen:
            self.log_start = self.log[0][0]
        self.log.append((int(obj["metadata"]["resourceVersion"]), event, key, obj))
        if key == DAEMONSETS and hook:
            self.events.append((event, copy.deepcopy(obj)))
        self.changed.notify_all()

    def changes_since(self, key, version):
        """Logged (resourceVersion, event, object) of one collection after ``version``; None when the
        log no longer reaches back that far (the client must list again)."""
        with self.lock:
            if version < self.log_start:
                return None
            return [(rv, event, obj) for rv, event, k, obj in self.log if rv > version and k == key]

    def take_events(self):
        with self.lock:
            events, self.events = self.events, []
            return events

    # ------------------------------------------------------------ the lab's helpers
    def upsert_pod(self, pod):
        pod = json.loads(json.dumps(pod))  # our own copy
        meta = pod["metadata"]
        with self.lock:
            self._ensure_namespace(meta["namespace"])
            i = self._index(PODS, meta["namespace"], meta["name"])
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            meta["resourceVersion"] = self._next_version()
            entry = (pod, encode(pod))
            if i >= 0:
                self.pods[i] = entry
            else:
                self.pods.append(entry)
            self._log(PODS, "MODIFIED" if i >= 0 else "ADDED", pod)
            return copy.deepcopy(pod)

    def remove(self, key, namespace, name):
        with self.lock:
            i = self._index(key, namespace, name)
            if i < 0:
                return False
            obj = copy.deepcopy(self.collections[key][i][0])
            del self.collections[key][i]
            self._log_deleted(key, obj)
            return True

    def set_status(self, key, namespace, name, status):
        with self.lock:
            i = self._index(key, namespace, name)
            if i < 0:
                raise KeyError("%s %s/%s not found" % (key[1], namespace, name))
            obj = copy.deepcopy(self.collections[key][i][0])
            obj["status"] = json.loads(json.dumps(status))
            obj["metadata"]["resourceVersion"] = self._next_version()
            self.collections[key][i] = (obj, encode(obj))
            self._log(key, "MODIFIED", obj, hook=False)  # a controller's own write does not call it back
            return copy.deepcopy(obj)
