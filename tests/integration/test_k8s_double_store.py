"""The API double's writable object store, through real clients.

The kubernetes dynamic client (what kubernetes.core.k8s uses) creates, reads, lists, patches
(merge, JSON patch, server-side apply), replaces and deletes every resource; kubectl applies and
deletes a manifest; the DaemonSet controller hook, namespace deletion, watches,
SelfSubjectAccessReviews and write permissions behave as the API server's do.
"""

import json
import threading
import time

import pytest

from tests.integration.test_k8s_double_exec import kubectl_binary, need_kubectl, raw_request, run_kubectl
from tests.k8s_double import ApiDouble, make_pod, synthetic_cluster
from tests.k8s_double.patch import json_patch, merge_patch, strategic_merge_patch

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: chaos-agent
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: agent
  namespace: chaos-agent
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: agent
  namespace: chaos-agent
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: agent
  namespace: chaos-agent
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: agent}
subjects:
- {kind: ServiceAccount, name: agent, namespace: chaos-agent}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
  namespace: chaos-agent
  labels: {app: agent}
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      serviceAccountName: agent
      containers:
      - name: agent
        image: cflab/agent:IMAGE
        command: ["sleep", "infinity"]
        securityContext: {privileged: true}
      - name: reporter
        image: cflab/reporter:1
        env: [{name: MODE, value: lab}]
"""

DAEMONSET = {"apiVersion": "apps/v1", "kind": "DaemonSet",
             "metadata": {"name": "agent", "namespace": "chaos", "labels": {"app": "agent"}},
             "spec": {"selector": {"matchLabels": {"app": "agent"}},
                      "template": {"metadata": {"labels": {"app": "agent"}},
                                   "spec": {"containers": [{"name": "agent", "image": "cflab/agent:1"}]}}}}

# (apiVersion, kind, namespaced, body beyond metadata) for each stored resource.
RESOURCES = [
    ("v1", "Namespace", False, {}),
    ("v1", "ServiceAccount", True, {}),
    ("v1", "Pod", True, {"spec": {"containers": [{"name": "c", "image": "i"}]}}),
    ("v1", "Node", False, {"spec": {"podCIDR": "10.1.0.0/24"}}),
    ("apps/v1", "DaemonSet", True, {"spec": DAEMONSET["spec"]}),
    ("rbac.authorization.k8s.io/v1", "Role", True,
     {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", True,
     {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
      "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "chaos"}]}),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", False,
     {"rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]}),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", False,
     {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"},
      "subjects": [{"kind": "Group", "name": "g", "apiGroup": "rbac.authorization.k8s.io"}]}),
]


@pytest.fixture
def double(tmp_path):
    cluster = synthetic_cluster(pods=30, nodes=3, namespaces=2, seed=7)
    api = ApiDouble(cluster, workdir=str(tmp_path / "double"))
    api.namespace_grace = 0.2
    api.start()
    try:
        yield api
    finally:
        api.stop()


def _api_client(double, token=None):
    from kubernetes import client

    config = client.Configuration()
    config.host, config.ssl_ca_cert = double.url, double.ca_path
    config.api_key = {"authorization": "Bearer " + (token or double.token)}
    return client.ApiClient(config)


@pytest.fixture
def dyn(double, tmp_path):
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(_api_client(double), cache_file=str(tmp_path / "discovery.json"))


def _wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _labels(instance):
    """An object's labels, without the one the API server puts on every namespace."""
    labels = dict(instance.to_dict()["metadata"].get("labels") or {})
    labels.pop("kubernetes.io/metadata.name", None)
    return labels


def _body(api_version, kind, namespaced, extra, name, labels=None):
    metadata = {"name": name, "labels": dict(labels or {})}
    if namespaced:
        metadata["namespace"] = "chaos"
    return dict({"apiVersion": api_version, "kind": kind, "metadata": metadata}, **json.loads(json.dumps(extra)))


# ---------------------------------------------------------------- discovery

def test_discovery_names_groups_resources_and_pods_exec(double):
    status, groups = raw_request(double, "GET", "/apis")
    assert status == 200 and groups["kind"] == "APIGroupList"
    assert {g["name"]: g["preferredVersion"]["groupVersion"] for g in groups["groups"]} == {
        "apps": "apps/v1", "rbac.authorization.k8s.io": "rbac.authorization.k8s.io/v1",
        "authorization.k8s.io": "authorization.k8s.io/v1"}
    _, core = raw_request(double, "GET", "/api/v1")
    by_name = dict((r["name"], r) for r in core["resources"])
    assert by_name["pods/exec"]["verbs"] == ["create", "get"]
    assert (by_name["pods"]["kind"], by_name["pods"]["namespaced"], by_name["pods"]["shortNames"]) == (
        "Pod", True, ["po"])
    assert by_name["namespaces"]["namespaced"] is False and "serviceaccounts" in by_name
    _, apps = raw_request(double, "GET", "/apis/apps/v1")
    assert apps["groupVersion"] == "apps/v1"
    assert [(r["name"], r["kind"], r["shortNames"]) for r in apps["resources"]] == [
        ("daemonsets", "DaemonSet", ["ds"])]
    _, review = raw_request(double, "GET", "/apis/authorization.k8s.io/v1")
    assert [(r["name"], r["verbs"]) for r in review["resources"]] == [("selfsubjectaccessreviews", ["create"])]
    assert raw_request(double, "GET", "/apis/batch/v1")[0] == 404


# ---------------------------------------------------------------- the dynamic client

@pytest.mark.parametrize("api_version,kind,namespaced,extra", RESOURCES, ids=[r[1] for r in RESOURCES])
def test_every_resource_through_the_dynamic_client(double, dyn, api_version, kind, namespaced, extra):
    from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

    dyn.resources.get(api_version="v1", kind="Namespace").create(body={"metadata": {"name": "chaos"}})
    resource = dyn.resources.get(api_version=api_version, kind=kind)
    where = {"namespace": "chaos"} if namespaced else {}
    created = resource.create(body=_body(api_version, kind, namespaced, extra, "one", {"pick": "yes"}), **where)
    assert created.kind == kind and created.apiVersion == api_version
    meta = created.metadata
    assert meta.uid and meta.resourceVersion and meta.creationTimestamp and meta.generation == 1
    with pytest.raises(ConflictError, match="already exists"):
        resource.create(body=_body(api_version, kind, namespaced, extra, "one"), **where)
    resource.create(body=_body(api_version, kind, namespaced, extra, "two"), **where)

    assert resource.get(name="one", **where).metadata.uid == meta.uid
    picked = resource.get(label_selector="pick=yes", **where)
    assert [i.metadata.name for i in picked.items] == ["one"]
    assert picked.kind == kind + "List"
    assert {"one", "two"} <= set(i.metadata.name for i in resource.get(**where).items)

    merged = resource.patch(name="one", body={"metadata": {"labels": {"merged": "1"}}},
                            content_type="application/merge-patch+json", **where)
    assert _labels(merged) == {"pick": "yes", "merged": "1"}
    assert int(merged.metadata.resourceVersion) > int(meta.resourceVersion)
    patched = resource.patch(name="one", body=[{"op": "add", "path": "/metadata/annotations",
                                                "value": {"json": "patch"}},
                                               {"op": "remove", "path": "/metadata/labels/pick"}],
                             content_type="application/json-patch+json", **where)
    assert patched.to_dict()["metadata"]["annotations"] == {"json": "patch"} and _labels(patched) == {"merged": "1"}
    applied = resource.server_side_apply(
        body=_body(api_version, kind, namespaced, extra, "one", {"applied": "yes"}), name="one",
        field_manager="test", **where)
    assert _labels(applied) == {"merged": "1", "applied": "yes"} and applied.metadata.uid == meta.uid
    fresh = resource.server_side_apply(body=_body(api_version, kind, namespaced, extra, "three"), name="three",
                                       field_manager="test", **where)
    assert fresh.metadata.uid not in (None, meta.uid)  # apply creates what is missing

    current = resource.get(name="one", **where).to_dict()
    current["metadata"]["labels"] = {"replaced": "yes"}
    replaced = resource.replace(body=current, **where)
    assert _labels(replaced) == {"replaced": "yes"}
    with pytest.raises(ConflictError, match="the object has been modified"):
        resource.replace(body=current, **where)  # its resourceVersion is stale now

    deleted = resource.delete(name="two", **where)
    if kind == "Namespace":  # Terminating first, gone once the namespace controller is done
        assert deleted.status.phase == "Terminating"

        def gone():
            try:
                resource.get(name="two")
            except NotFoundError:
                return True
            return False
        assert _wait_for(gone)
    with pytest.raises(NotFoundError):
        resource.get(name="two", **where)
    with pytest.raises(NotFoundError):
        resource.delete(name="two", **where)


def test_writes_follow_the_api_server(double, dyn):
    from kubernetes.dynamic.exceptions import NotFoundError

    daemonsets = dyn.resources.get(api_version="apps/v1", kind="DaemonSet")
    with pytest.raises(NotFoundError, match='namespaces \\\\"chaos\\\\" not found|namespaces "chaos" not found'):
        daemonsets.create(body=DAEMONSET, namespace="chaos")
    dyn.resources.get(api_version="v1", kind="Namespace").create(body={"metadata": {"name": "chaos"}})
    created = daemonsets.create(body=dict(DAEMONSET, status={"numberReady": 99}), namespace="chaos")
    assert created.status.numberReady == 0  # status is the controller's, not the client's
    same = daemonsets.patch(name="agent", namespace="chaos", body={"metadata": {"labels": {"app": "agent"}}},
                            content_type="application/merge-patch+json")
    assert same.metadata.resourceVersion == created.metadata.resourceVersion  # a no-op write changes nothing
    labelled = daemonsets.patch(name="agent", namespace="chaos", body={"metadata": {"labels": {"x": "y"}}},
                                content_type="application/merge-patch+json")
    assert labelled.metadata.generation == 1  # metadata is not spec
    spec = daemonsets.patch(name="agent", namespace="chaos", content_type="application/strategic-merge-patch+json",
                            body={"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "v2"}]}}}})
    assert spec.metadata.generation == 2
    assert spec.spec.template.spec.containers[0].to_dict() == {"name": "agent", "image": "v2"}
    dry = daemonsets.patch(name="agent", namespace="chaos", body={"metadata": {"labels": {"dry": "run"}}},
                           content_type="application/merge-patch+json", query_params=[("dryRun", "All")])
    assert dry.metadata.labels["dry"] == "run"
    assert "dry" not in daemonsets.get(name="agent", namespace="chaos").metadata.labels
    status, body = raw_request(double, "PATCH", "/apis/apps/v1/namespaces/chaos/daemonsets/agent", body={},
                               headers={"Content-Type": "text/plain"})
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


def test_pods_keep_their_read_paths(double, dyn):
    from kubernetes import client

    core = client.CoreV1Api(_api_client(double))
    everything = core.list_pod_for_all_namespaces()
    assert len(everything.items) == 33  # 30 synthetic pods + 3 in kube-system
    team = core.list_namespaced_pod("team-00", label_selector="tier in (web,api)",
                                    field_selector="status.phase=Running")
    assert team.items and all(p.metadata.labels["tier"] in ("web", "api") and p.status.phase == "Running"
                              for p in team.items)
    added = double.add_pod(make_pod("agent-node-000", "team-00", "node-000", [
        {"name": "agent", "container_id": "containerd://" + "e" * 64}], labels={"app": "agent"}))
    assert added["metadata"]["resourceVersion"]
    got = core.read_namespaced_pod("agent-node-000", "team-00")
    assert got.spec.containers[0].name == "agent"
    assert [p.metadata.name for p in core.list_namespaced_pod("team-00", label_selector="app=agent").items] == [
        "agent-node-000"]
    assert double.remove_pod("team-00", "agent-node-000") is True
    assert double.remove_pod("team-00", "agent-node-000") is False
    assert core.list_namespaced_pod("team-00", label_selector="app=agent").items == []


# ---------------------------------------------------------------- kubectl

@pytest.mark.parametrize("client", ["PATH", "1.30", "1.33"])
def test_kubectl_apply_and_delete_a_manifest(tmp_path, client):
    binary = need_kubectl(client)
    events = []
    api = ApiDouble({"pods": [], "nodes": []}, workdir=str(tmp_path / "double"))
    api.daemonset_controller = lambda event, ds: events.append((event, ds["metadata"]["generation"]))
    api.start()
    try:
        manifest = tmp_path / "agent.yaml"
        home = tmp_path / "home"
        manifest.write_text(MANIFEST.replace("IMAGE", "1"))
        created = run_kubectl(binary, api.kubeconfig_path, home, "apply", "-f", str(manifest))
        assert created.returncode == 0, created.stderr
        assert created.stdout.decode().splitlines() == [
            "namespace/chaos-agent created", "serviceaccount/agent created",
            "role.rbac.authorization.k8s.io/agent created", "rolebinding.rbac.authorization.k8s.io/agent created",
            "daemonset.apps/agent created"]
        again = run_kubectl(binary, api.kubeconfig_path, home, "apply", "-f", str(manifest))
        assert again.stdout.decode().count("unchanged") == 5, again.stdout
        manifest.write_text(MANIFEST.replace("IMAGE", "2"))
        changed = run_kubectl(binary, api.kubeconfig_path, home, "apply", "-f", str(manifest))
        assert "daemonset.apps/agent configured" in changed.stdout.decode(), changed.stderr
        daemonset = api.get_object("apps/v1", "daemonsets", "chaos-agent", "agent")
        containers = daemonset["spec"]["template"]["spec"]["containers"]
        assert [(c["name"], c["image"]) for c in containers] == [("agent", "cflab/agent:2"),
                                                                 ("reporter", "cflab/reporter:1")]
        assert containers[0]["securityContext"] == {"privileged": True} and containers[1]["env"]
        assert daemonset["metadata"]["generation"] == 2
        assert "kubectl.kubernetes.io/last-applied-configuration" in daemonset["metadata"]["annotations"]
        listed = run_kubectl(binary, api.kubeconfig_path, home, "get", "ds,sa,role,rolebinding", "-n", "chaos-agent",
                             "-o", "name")
        assert listed.stdout.decode().split() == [
            "daemonset.apps/agent", "serviceaccount/agent", "role.rbac.authorization.k8s.io/agent",
            "rolebinding.rbac.authorization.k8s.io/agent"], listed.stderr
        deleted = run_kubectl(binary, api.kubeconfig_path, home, "delete", "-f", str(manifest))
        assert deleted.returncode == 0, deleted.stderr
        assert deleted.stdout.decode().count(" deleted") == 5
        # kubectl waited (a watch) until the namespace and everything in it were gone.
        assert api.get_object("v1", "namespaces", None, "chaos-agent") is None
        assert api.get_object("v1", "serviceaccounts", "chaos-agent", "agent") is None
        assert events == [("ADDED", 1), ("MODIFIED", 2), ("DELETED", 2)]
        assert not [c for c in api.calls() if c["code"] >= 500]
    finally:
        api.stop()


def test_kubectl_server_side_apply(double, tmp_path):
    binary = need_kubectl("PATH")
    manifest = tmp_path / "agent.yaml"
    manifest.write_text(MANIFEST.replace("IMAGE", "1"))
    applied = run_kubectl(binary, double.kubeconfig_path, tmp_path / "home", "apply", "--server-side", "-f",
                          str(manifest))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.decode().count("serverside-applied") == 5
    patches = [c for c in double.calls() if c["method"] == "PATCH"]
    assert len(patches) == 5 and all(c["code"] == 201 for c in patches)
    assert double.get_object("rbac.authorization.k8s.io/v1", "roles", "chaos-agent", "agent")["rules"]


# ---------------------------------------------------------------- the controller hook, namespaces, watches

def _lab_controller(api, nodes):
    """What a lab does: one agent pod per node for each DaemonSet, and the DaemonSet's status."""
    seen = []

    def controller(event, ds):
        seen.append((event, ds["metadata"]["name"], ds["metadata"]["generation"]))
        namespace, name = ds["metadata"]["namespace"], ds["metadata"]["name"]
        pods = ["%s-%s" % (name, node) for node in nodes]
        if event == "DELETED":
            for pod in pods:
                api.remove_pod(namespace, pod)
            return
        image = ds["spec"]["template"]["spec"]["containers"][0]["image"]
        for node, pod in zip(nodes, pods):
            api.add_pod(make_pod(pod, namespace, node, [
                {"name": "agent", "image": image, "container_id": "containerd://" + "f" * 64}],
                labels=ds["spec"]["template"]["metadata"]["labels"]))
        count = len(nodes)
        api.set_status("apps/v1", "daemonsets", namespace, name, {
            "desiredNumberScheduled": count, "currentNumberScheduled": count, "updatedNumberScheduled": count,
            "numberReady": count, "numberAvailable": count, "numberMisscheduled": 0,
            "observedGeneration": ds["metadata"]["generation"]})

    return controller, seen


def test_the_daemonset_controller_hook(double, dyn):
    from kubernetes import client

    controller, seen = _lab_controller(double, ["node-000", "node-001"])
    double.daemonset_controller = controller
    core = client.CoreV1Api(_api_client(double))
    dyn.resources.get(api_version="v1", kind="Namespace").create(body={"metadata": {"name": "chaos"}})
    daemonsets = dyn.resources.get(api_version="apps/v1", kind="DaemonSet")
    daemonsets.create(body=DAEMONSET, namespace="chaos")
    # The hook ran before the create was answered: the pods and the status are there already.
    pods = core.list_namespaced_pod("chaos", label_selector="app=agent").items
    assert sorted((p.metadata.name, p.spec.node_name) for p in pods) == [
        ("agent-node-000", "node-000"), ("agent-node-001", "node-001")]
    ds = daemonsets.get(name="agent", namespace="chaos")
    assert (ds.status.numberReady, ds.status.desiredNumberScheduled, ds.status.observedGeneration) == (2, 2, 1)
    daemonsets.patch(name="agent", namespace="chaos", content_type="application/merge-patch+json",
                     body={"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "v2"}]}}}})
    assert [p.spec.containers[0].image for p in core.list_namespaced_pod("chaos", label_selector="app=agent").items
            ] == ["v2", "v2"]
    daemonsets.delete(name="agent", namespace="chaos")
    assert core.list_namespaced_pod("chaos", label_selector="app=agent").items == []
    assert seen == [("ADDED", "agent", 1), ("MODIFIED", "agent", 2), ("DELETED", "agent", 2)]
    assert double.controller_errors == []


def test_a_failing_hook_is_recorded_and_the_server_carries_on(double, dyn):
    def broken(event, ds):
        raise RuntimeError("lab controller broke on %s" % event)

    double.daemonset_controller = broken
    dyn.resources.get(api_version="v1", kind="Namespace").create(body={"metadata": {"name": "chaos"}})
    created = dyn.resources.get(api_version="apps/v1", kind="DaemonSet").create(body=DAEMONSET, namespace="chaos")
    assert created.metadata.name == "agent"
    assert [(e["event"], e["name"], "lab controller broke on ADDED" in e["error"]) for e in double.controller_errors
            ] == [("ADDED", "agent", True)]
    assert "RuntimeError" in double.controller_errors[0]["traceback"]
    assert raw_request(double, "GET", "/api/v1/namespaces/chaos")[0] == 200


def test_deleting_a_namespace_deletes_what_is_in_it(double, dyn):
    from kubernetes.dynamic.exceptions import ForbiddenError

    controller, seen = _lab_controller(double, ["node-000"])
    double.daemonset_controller = controller
    namespaces = dyn.resources.get(api_version="v1", kind="Namespace")
    namespaces.create(body={"metadata": {"name": "chaos"}})
    dyn.resources.get(api_version="apps/v1", kind="DaemonSet").create(body=DAEMONSET, namespace="chaos")
    dyn.resources.get(api_version="v1", kind="ServiceAccount").create(
        body={"metadata": {"name": "agent"}}, namespace="chaos")
    assert double.get_object("v1", "pods", "chaos", "agent-node-000")
    terminating = namespaces.delete(name="chaos")
    assert terminating.status.phase == "Terminating" and terminating.metadata.deletionTimestamp
    with pytest.raises(ForbiddenError, match="because it is being terminated"):
        dyn.resources.get(api_version="v1", kind="ServiceAccount").create(
            body={"metadata": {"name": "late"}}, namespace="chaos")
    assert _wait_for(lambda: double.get_object("v1", "namespaces", None, "chaos") is None)
    for key in (("apps/v1", "daemonsets", "agent"), ("v1", "serviceaccounts", "agent"),
                ("v1", "pods", "agent-node-000")):
        assert double.get_object(key[0], key[1], "chaos", key[2]) is None, key
    assert seen[-1] == ("DELETED", "agent", 1)
    status, body = raw_request(double, "POST", "/api/v1/namespaces/chaos/serviceaccounts",
                               body={"metadata": {"name": "x"}})
    assert (status, body["message"]) == (404, 'namespaces "chaos" not found')
    # With no grace the namespace is gone before the DELETE is answered.
    double.namespace_grace = 0
    namespaces.create(body={"metadata": {"name": "quick"}})
    double.add_pod(make_pod("p", "quick", "node-000", [{"name": "c", "container_id": None}]))
    assert namespaces.delete(name="quick").status.phase == "Terminating"
    assert double.get_object("v1", "namespaces", None, "quick") is None
    assert double.get_object("v1", "pods", "quick", "p") is None


def test_watch_streams_changes(double):
    from kubernetes import client, watch

    core = client.CoreV1Api(_api_client(double))
    listed = core.list_namespaced_pod("team-01")

    def later():
        time.sleep(0.3)
        double.add_pod(make_pod("watched", "team-01", "node-000", [{"name": "c", "container_id": None}]))
        double.remove_pod("team-01", "watched")

    thread = threading.Thread(target=later)
    thread.start()
    seen = []
    try:
        for event in watch.Watch().stream(core.list_namespaced_pod, "team-01", field_selector="metadata.name=watched",
                                          resource_version=listed.metadata.resource_version, timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                break
    finally:
        thread.join()
    assert seen == [("ADDED", "watched"), ("DELETED", "watched")]
    # A watch-list client (sendInitialEvents) gets the current objects, then the bookmark that ends them.
    first = listed.items[0].metadata.name
    status, raw = raw_request(double, "GET", "/api/v1/namespaces/team-01/pods?watch=true&sendInitialEvents=true"
                              "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
                              "&fieldSelector=metadata.name%3D" + first)
    events = [json.loads(line) for line in raw.decode().splitlines()]
    assert status == 200 and [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[0]["object"]["metadata"]["name"] == first and events[0]["object"]["kind"] == "Pod"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    # From a version the change log no longer holds: 410 Expired, and the client lists again.
    status, event = raw_request(double, "GET", "/api/v1/namespaces/team-01/pods?watch=true&resourceVersion=1")
    assert (status, event["type"], event["object"]["code"], event["object"]["reason"]) == (200, "ERROR", 410,
                                                                                        "Expired")


# ---------------------------------------------------------------- who may do what

def test_self_subject_access_reviews_answer_per_token(double, dyn, tmp_path):
    from kubernetes.dynamic import DynamicClient

    double.add_token("reader-token", user="reader")
    double.add_token("shop-exec", user="shop-ops", namespaces=["shop"], exec_namespaces=["shop"], write=True)

    def allowed(token, **attributes):
        client = DynamicClient(_api_client(double, token), cache_file=str(tmp_path / ("d-%s.json" % token)))
        reviews = client.resources.get(api_version="authorization.k8s.io/v1", kind="SelfSubjectAccessReview")
        answer = reviews.create(body={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                                      "spec": {"resourceAttributes": attributes}})
        return answer.status.allowed

    exec_in = lambda ns: dict(verb="create", resource="pods", subresource="exec", namespace=ns)  # noqa: E731
    assert allowed(double.token, **exec_in("anywhere")) is True
    assert allowed("shop-exec", **exec_in("shop")) is True
    assert allowed("shop-exec", **exec_in("other")) is False
    assert allowed("reader-token", **exec_in("shop")) is False
    assert allowed("reader-token", verb="list", resource="pods") is True
    assert allowed("reader-token", verb="create", group="apps", resource="daemonsets", namespace="shop") is False
    assert allowed("shop-exec", verb="create", group="apps", resource="daemonsets", namespace="shop") is True
    assert allowed("shop-exec", verb="create", resource="namespaces") is False
    # kubectl auth can-i: JSON from 1.30, protobuf from 1.32 on.
    kubeconfig = double.write_kubeconfig(str(tmp_path / "shop.kubeconfig"), token="shop-exec")
    for version in ("1.30", "1.32", "1.33"):
        binary = kubectl_binary(version)
        if binary is None:
            continue
        yes = run_kubectl(binary, kubeconfig, tmp_path / "home", "auth", "can-i", "create", "pods",
                          "--subresource=exec", "-n", "shop")
        no = run_kubectl(binary, kubeconfig, tmp_path / "home", "auth", "can-i", "create", "pods",
                         "--subresource=exec", "-n", "other")
        assert (yes.returncode, yes.stdout, no.returncode, no.stdout) == (0, b"yes\n", 1, b"no\n"), (
            version, yes.stderr, no.stderr)


def test_limited_tokens_get_403_on_writes(double, dyn, tmp_path):
    double.add_token("reader-token", user="reader")
    double.add_token("team-writer", user="team-writer", namespaces=["team-00"], write=True)
    status, body = raw_request(double, "POST", "/api/v1/namespaces", token="reader-token",
                               body={"metadata": {"name": "nope"}})
    assert (status, body["reason"], body["message"]) == (
        403, "Forbidden", 'namespaces is forbidden: User "reader" cannot create resource "namespaces" in API group "" '
        "at the cluster scope")
    status, body = raw_request(double, "POST", "/apis/apps/v1/namespaces/team-00/daemonsets", token="reader-token",
                               body=dict(DAEMONSET, metadata={"name": "agent"}))
    assert (status, body["message"]) == (
        403, 'daemonsets.apps is forbidden: User "reader" cannot create resource "daemonsets" in API group "apps" '
        'in the namespace "team-00"')
    assert body["details"] == {"name": "", "group": "apps", "kind": "daemonsets"}
    status, body = raw_request(double, "DELETE", "/api/v1/namespaces/team-00/pods/app-0-00000", token="reader-token")
    assert status == 403 and body["message"].startswith('pods "app-0-00000" is forbidden: User "reader" cannot '
                                                        'delete resource "pods"')
    status, _ = raw_request(double, "POST", "/apis/apps/v1/namespaces/team-00/daemonsets", token="team-writer",
                            body=dict(DAEMONSET, metadata={"name": "agent"}))
    assert status == 201
    status, body = raw_request(double, "PATCH", "/apis/apps/v1/namespaces/team-01/daemonsets/agent",
                               token="team-writer", body={}, headers={"Content-Type": "application/merge-patch+json"})
    assert status == 403 and 'cannot patch resource "daemonsets" in API group "apps"' in body["message"]
    # kubectl shows the same refusal.
    manifest = tmp_path / "ns.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: nope\n")
    kubeconfig = double.write_kubeconfig(str(tmp_path / "reader.kubeconfig"), token="reader-token")
    refused = run_kubectl(need_kubectl("PATH"), kubeconfig, tmp_path / "home", "create", "-f", str(manifest))
    assert refused.returncode != 0
    assert b'User "reader" cannot create resource "namespaces"' in refused.stderr, refused.stderr
    assert double.get_object("v1", "namespaces", None, "nope") is None


# ---------------------------------------------------------------- the patch rules themselves

def test_patch_rules():
    live = {"spec": {"containers": [{"name": "a", "image": "1", "ports": [1]}, {"name": "b", "image": "1"}],
                     "volumes": [{"name": "v"}]}, "keep": True}
    merged = strategic_merge_patch(live, {"spec": {
        "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
        "containers": [{"name": "a", "image": "2"}, {"name": "b", "$patch": "delete"}]}})
    assert merged == {"spec": {"containers": [{"name": "a", "image": "2", "ports": [1]}],
                               "volumes": [{"name": "v"}]}, "keep": True}
    assert merge_patch(live, {"spec": {"containers": [{"name": "c"}]}, "keep": None}) == {
        "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "v"}]}}  # lists replaced, null deletes
    assert json_patch({"a": [1, 2]}, [{"op": "add", "path": "/a/-", "value": 3},
                                      {"op": "move", "from": "/a", "path": "/b"},
                                      {"op": "test", "path": "/b/2", "value": 3}]) == {"b": [1, 2, 3]}
    from tests.k8s_double.patch import PatchError
    with pytest.raises(PatchError):
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    with pytest.raises(PatchError):
        json_patch({"a": 1}, [{"op": "remove", "path": "/missing"}])
