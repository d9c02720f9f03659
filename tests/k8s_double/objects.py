"""Kubernetes-shaped Pod and Node objects for the API double.

Three sources: hand-written fixtures (JSON or YAML), the lab's state file
(real containers the lab created) and a synthetic cluster generator.
"""

import json
import random
import uuid

CREATED = "2026-11-28T00:00:00Z"
QOS_CLASSES = ("Guaranteed", "Burstable", "BestEffort")


def _resources(limits=None, requests=None):
    out = {}
    if limits:
        out["limits"] = dict(limits)
    if requests:
        out["requests"] = dict(requests)
    return out


def _status_for(container, ready_default):
    """A containerStatus; a container without an id is still waiting to start."""
    cid = container.get("container_id")
    status = {
        "name": container["name"],
        "image": container.get("image", "registry.k8s.io/pause:3.9"),
        "imageID": "",
        "restartCount": container.get("restart_count", 0),
        "ready": bool(container.get("ready", ready_default)) if cid else False,
        "started": bool(cid),
    }
    if cid:
        status["containerID"] = cid
        status["imageID"] = "sha256:" + "0" * 64
        status["state"] = {"running": {"startedAt": CREATED}}
    else:
        status["state"] = {"waiting": {"reason": container.get("waiting_reason", "ContainerCreating")}}
    return status


def make_pod(name, namespace, node_name, containers, uid=None, labels=None, annotations=None,
             phase="Running", qos_class=None, init_containers=(), ephemeral_containers=(),
             host_ip=None, pod_ip=None):
    """Build a Pod as the API server returns it in a PodList item.

    ``containers`` entries: name, image, container_id ("containerd://<hex>" or None when not
    started), limits/requests (quantity dicts), ready, restart_count.
    """
    def spec_entry(c):
        entry = {"name": c["name"], "image": c.get("image", "registry.k8s.io/pause:3.9"),
                 "resources": _resources(c.get("limits"), c.get("requests")),
                 "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}
        if "target_container_name" in c:
            entry["targetContainerName"] = c["target_container_name"]
        return entry

    running = phase == "Running"
    all_ready = running and all(c.get("container_id") and c.get("ready", True) for c in containers)
    metadata = {
        "name": name, "namespace": namespace, "uid": uid or str(uuid.uuid4()),
        "resourceVersion": "1", "creationTimestamp": CREATED,
        "labels": dict(labels or {}), "annotations": dict(annotations or {}),
    }
    spec = {
        "containers": [spec_entry(c) for c in containers],
        "nodeName": node_name, "restartPolicy": "Always", "schedulerName": "default-scheduler",
        "serviceAccountName": "default", "dnsPolicy": "ClusterFirst",
        "terminationGracePeriodSeconds": 30,
    }
    status = {
        "phase": phase,
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": CREATED},
            {"type": "Ready", "status": "True" if all_ready else "False", "lastTransitionTime": CREATED},
            {"type": "ContainersReady", "status": "True" if all_ready else "False",
             "lastTransitionTime": CREATED},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": CREATED},
        ],
        "startTime": CREATED,
        "containerStatuses": [_status_for(c, running) for c in containers],
    }
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if qos_class:
        status["qosClass"] = qos_class
    if init_containers:
        spec["initContainers"] = [spec_entry(c) for c in init_containers]
        status["initContainerStatuses"] = [
            dict(_status_for(c, False), state={"terminated": {"exitCode": 0, "reason": "Completed"}})
            for c in init_containers]
    if ephemeral_containers:
        spec["ephemeralContainers"] = [spec_entry(c) for c in ephemeral_containers]
        status["ephemeralContainerStatuses"] = [_status_for(c, False) for c in ephemeral_containers]
    return {"metadata": metadata, "spec": spec, "status": status}


def make_node(name, internal_ip, labels=None, runtime="containerd://1.7.24", hostname_address=True):
    node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                   "kubernetes.io/arch": "amd64"}
    node_labels.update(labels or {})
    addresses = [{"type": "InternalIP", "address": internal_ip}]
    if hostname_address:
        addresses.append({"type": "Hostname", "address": name})
    return {
        "metadata": {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "resourceVersion": "1",
                     "creationTimestamp": CREATED, "labels": node_labels, "annotations": {}},
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {
            "addresses": addresses,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "lastTransitionTime": CREATED}],
            "nodeInfo": {"containerRuntimeVersion": runtime, "kubeletVersion": "v1.31.0",
                         "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64",
                         "kernelVersion": "6.1.0-cflab", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "bootID": str(uuid.uuid5(uuid.NAMESPACE_URL, "boot/" + name)),
                         "machineID": uuid.uuid5(uuid.NAMESPACE_URL, "machine/" + name).hex,
                         "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "system/" + name))},
        },
    }


# ---------------------------------------------------------------- lab state

def _first(mapping, *keys):
    for key in keys:
        if mapping.get(key) is not None:
            return mapping[key]
    return None


def _quantity(value, cpu=False):
    """Lab numbers (bytes, cores) as Kubernetes quantity strings; strings pass through."""
    if value is None or isinstance(value, str):
        return value
    if cpu:
        return "%dm" % round(float(value) * 1000)
    return str(int(value))


def _lab_resources(container):
    limits, requests = {}, {}
    nested_limits = container.get("limits") or container.get("resources", {}).get("limits") or {}
    nested_requests = container.get("requests") or container.get("resources", {}).get("requests") or {}
    for kind, is_cpu in (("memory", False), ("cpu", True)):
        unit = "cores" if is_cpu else "bytes"
        limit = _first(container, "%s_limit_%s" % (kind, unit), "%s_limit" % kind)
        if limit is None:
            limit = nested_limits.get(kind)
        request = _first(container, "%s_request_%s" % (kind, unit), "%s_request" % kind)
        if request is None:
            request = nested_requests.get(kind)
        if limit is not None:
            limits[kind] = _quantity(limit, is_cpu)
        if request is not None:
            requests[kind] = _quantity(request, is_cpu)
    return limits, requests


def _lab_container_id(container, default_runtime):
    """'containerd://<id>' from the lab's record; a runtime_id that already has a scheme wins."""
    runtime_id = container.get("runtime_id")
    if isinstance(runtime_id, str) and "://" in runtime_id:
        return runtime_id
    cid = container.get("id") or runtime_id
    if not cid:
        return None
    runtime = container.get("runtime") or default_runtime or "containerd"
    return "%s://%s" % (runtime, cid)


def _is_sandbox(container):
    return bool(container.get("sandbox")) or container.get("kind") in ("sandbox", "pause") \
        or container.get("role") in ("sandbox", "pause")


def objects_from_lab_state(state, node_name=None, node_ip="127.0.0.1"):
    """Turn the lab's state (tests/lab/lab.py) into {'pods': [...], 'nodes': [...]}.

    Each lab pod keeps its real UID, container IDs, limits and requests, so that
    what k8s_targets returns can be found as cgroups on the lab node. Sandbox
    (pause) containers are not part of a pod spec and are left out.
    ``node_name`` overrides the pods' own node; ``node_ip`` is every node's InternalIP.
    """
    pods, node_names = [], []
    default_runtime = state.get("runtime")
    for lab_pod in state.get("pods", []):
        node = node_name or lab_pod.get("node_name") or lab_pod.get("node") or state.get("node_name") or "cflab-node"
        if node not in node_names:
            node_names.append(node)
        containers = []
        for c in lab_pod.get("containers", []):
            if _is_sandbox(c):
                continue
            limits, requests = _lab_resources(c)
            containers.append({
                "name": c["name"], "image": c.get("image") or "busybox:static",
                "container_id": _lab_container_id(c, lab_pod.get("runtime") or default_runtime),
                "limits": limits, "requests": requests,
                "ready": c.get("ready", True), "restart_count": c.get("restart_count", 0),
            })
        pods.append(make_pod(
            lab_pod["name"], lab_pod.get("namespace", "default"), node, containers,
            uid=lab_pod.get("uid"), labels=lab_pod.get("labels"), annotations=lab_pod.get("annotations"),
            phase=lab_pod.get("phase", "Running"), qos_class=lab_pod.get("qos_class"), host_ip=node_ip,
        ))
    nodes = [make_node(name, node_ip) for name in node_names]
    return {"pods": pods, "nodes": nodes}


# ---------------------------------------------------------------- fixtures

def load_fixture(path):
    """Read {'pods': [...], 'nodes': [...]} (or a v1 List of Pods and Nodes) from JSON or YAML."""
    with open(path) as handle:
        text = handle.read()
    if path.endswith((".yml", ".yaml")):
        import yaml  # only needed for YAML fixtures
        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if isinstance(data, dict) and "items" in data and "pods" not in data:
        items = data["items"]
        return {"pods": [o for o in items if o.get("kind", "Pod") == "Pod"],
                "nodes": [o for o in items if o.get("kind") == "Node"]}
    if isinstance(data, dict) and data.get("pods") and "containers" in data["pods"][0] \
            and "spec" not in data["pods"][0]:
        return objects_from_lab_state(data)
    return {"pods": list(data.get("pods", [])), "nodes": list(data.get("nodes", []))}


# ---------------------------------------------------------------- synthetic

def _hex(rng, length=64):
    return "%0*x" % (length, rng.getrandbits(length * 4))


def synthetic_cluster(pods=100, nodes=5, namespaces=3, seed=1, protected_pods=3):
    """A deterministic cluster: ``pods`` pods over ``nodes`` nodes and ``namespaces`` namespaces.

    Label layout (for selector tests): app=app-<i % 7>, tier web/api/db by i % 3, track
    canary (i % 10 == 0) or stable, and no track label when i % 13 == 0; annotation
    chaos.cflab.io/allowed "true" on even pods, "false" on odd ones. QoS class by (i // 2) % 3.
    Pods with i % 25 == 24 are Pending with no container started; with i % 15 == 0 they are
    Pending with main started and the sidecar still being created; i % 40 == 39 are Succeeded.
    Every 5th pod has a sidecar, every 4th an init container, every 50th an ephemeral
    debugger. ``protected_pods`` extra pods live in kube-system.
    """
    rng = random.Random(seed)
    node_objs = [make_node("node-%03d" % n, "10.0.%d.%d" % (n // 250, n % 250 + 1),
                           labels={"topology.kubernetes.io/zone": "zone-%s" % "abc"[n % 3],
                                   "cflab.io/pool": "stress" if n % 2 == 0 else "general"})
                 for n in range(nodes)]
    tiers = ("web", "api", "db")
    qos_shapes = {
        "Guaranteed": ({"memory": "256Mi", "cpu": "500m"}, {"memory": "256Mi", "cpu": "500m"}),
        "Burstable": ({"memory": "512Mi"}, {"memory": "128Mi", "cpu": "100m"}),
        "BestEffort": ({}, {}),
    }
    out = []

    def pod(i, namespace, labels, annotations):
        node = node_objs[i % nodes]
        qos = QOS_CLASSES[(i // 2) % 3]  # not in step with tier, which follows i % 3
        limits, requests = qos_shapes[qos]
        phase = "Running"
        if i % 25 == 24 or i % 15 == 0:
            phase = "Pending"
        elif i % 40 == 39:
            phase = "Succeeded"
        # Pending pods: main not created yet, except i % 15 == 0 where only the sidecar waits.
        started = phase == "Running" or i % 15 == 0
        containers = [{"name": "main", "image": "registry.example/app:%d" % (i % 7),
                       "container_id": "containerd://" + _hex(rng) if started else None,
                       "limits": limits, "requests": requests, "restart_count": i % 3,
                       "ready": i % 17 != 0}]
        if i % 5 == 0:
            containers.append({"name": "sidecar", "image": "registry.example/proxy:1",
                               "container_id": "containerd://" + _hex(rng) if phase == "Running" else None,
                               "limits": limits, "requests": requests})
        init = [{"name": "init", "container_id": "containerd://" + _hex(rng)}] if i % 4 == 0 else ()
        ephemeral = [{"name": "debugger", "container_id": "containerd://" + _hex(rng),
                      "target_container_name": "main"}] if i % 50 == 0 and started else ()
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return make_pod("%s-%05d" % (labels["app"], i), namespace, node["metadata"]["name"], containers,
                        uid=uid, labels=labels, annotations=annotations, phase=phase, qos_class=qos,
                        init_containers=init, ephemeral_containers=ephemeral,
                        host_ip=node["status"]["addresses"][0]["address"],
                        pod_ip="10.244.%d.%d" % (i // 250 % 250, i % 250 + 1))

    for i in range(pods):
        labels = {"app": "app-%d" % (i % 7), "tier": tiers[i % 3]}
        if i % 13:  # every 13th pod has no track label, for NotIn and DoesNotExist
            labels["track"] = "canary" if i % 10 == 0 else "stable"
        annotations = {"chaos.cflab.io/allowed": "true" if i % 2 == 0 else "false"}
        out.append(pod(i, "team-%02d" % (i % namespaces), labels, annotations))
    for j in range(protected_pods):
        out.append(pod(pods + j, "kube-system", {"app": "app-%d" % (j % 7), "tier": "system",
                                                 "track": "stable", "k8s-app": "kube-proxy"}, {}))
    return {"pods": out, "nodes": node_objs}
