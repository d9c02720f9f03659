#!/usr/bin/env python3
"""The chaosfleet node agent as lab containers: one agent container per lab node name.

Run as root on a cgroup v1 (or hybrid) host, offline. Standard library only.

    agents.py up     [--prefix cfagent-XXXXXX] [--state-dir DIR] [--nodes node-1,node-2]
                     [--cgroupns host|private] [--keep-on-failure]
    agents.py down   (--prefix P | --all) [--state-dir DIR]
    agents.py status --prefix P [--state-dir DIR]

The image is agent/packages.txt made into a root filesystem by mmdebstrap (no registry), cached as
<state-dir>/agent-image/<hash of packages.txt>/root.tar and built once per machine, then imported
into a private dockerd started the way tests/lab/engines.py starts one. Each agent runs as the
agent DaemonSet's pod would: the host's PIDs, the host's cgroupfs at /host/sys/fs/cgroup, its own
hostPath state dir at /run/chaosfleet, no network, a memory limit, and LAB_PRIVILEGE_FLAGS
standing in for `privileged: true`.

Everything carries the prefix: /run/<prefix> (dockerd, its storage, each node's state dir), the
cgroup /<prefix> (dockerd and its containerd), <state-dir>/<prefix>.json. The agents sit in
/docker/<id> like any Docker container; `down` removes them and /docker once it is empty.

In a test, AgentLab and DaemonSetController are used in-process (tests/integration/agent_fixtures.py):
the controller is the API double's `daemonset_controller`, and `AgentLab.exec_backend` its
`exec_backend`.
"""

import argparse
import copy
import fcntl
import hashlib
import json
import os
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
REPO = LAB_DIR.parents[1]
sys.path.insert(0, str(LAB_DIR))

import engines  # noqa: E402  (the private dockerd: start, cgroup, teardown)
import lab  # noqa: E402  (cgroup helpers, prefixes)

DEFAULT_STATE_DIR = lab.DEFAULT_STATE_DIR
PREFIX_RE = re.compile(r"^cfagent-[a-z0-9][a-z0-9-]{0,40}$")
# Kubernetes node names are DNS subdomains; Docker container names allow the same characters.
NODE_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
PACKAGES_FILE = REPO / "agent" / "packages.txt"
SUITE = "bookworm"
MMDEBSTRAP = "/usr/bin/mmdebstrap"
BUILD_TIMEOUT = 900

# What the role deploys (roles/agent): the names a pod of the agent DaemonSet carries.
NAMESPACE = "chaosfleet-agent"
DAEMONSET = "chaosfleet-agent"
CONTAINER = "agent"
APP_LABELS = {"app.kubernetes.io/name": "chaosfleet-agent", "app.kubernetes.io/part-of": "chaosfleet.stress"}
CGROUP_MOUNT = "/host/sys/fs/cgroup"
STATE_MOUNT = "/run/chaosfleet"
KEEP_ALIVE = ["sleep", "infinity"]
MEMORY = "512m"
CGROUPNS_MODES = ("host", "private")
# overlay2, not the engine lab's vfs: vfs copies the whole 250 MB root filesystem for every agent started.
STORAGE_DRIVER = "overlay2"

# The lab's stand-in for the DaemonSet's `privileged: true`. No container here can be privileged: the
# machine's capability bounding set lacks CAP_SYS_RESOURCE, so `docker run --privileged` fails in runc
# ("unable to apply caps"). This is every other capability, no seccomp or AppArmor profile and /dev/kmsg
# (OOM kills are read from it). Used only in AgentLab.start; tests and docs name it.
LAB_PRIVILEGE_FLAGS = ("--cap-add=ALL", "--cap-drop=SYS_RESOURCE", "--security-opt", "seccomp=unconfined",
                       "--security-opt", "apparmor=unconfined", "--device", "/dev/kmsg")

# Pod name suffixes as the DaemonSet controller makes them (no vowels, no look-alike digits).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
CREATED = "2026-11-28T00:00:00Z"


class AgentError(Exception):
    pass


def check_prefix(prefix):
    if not PREFIX_RE.match(prefix or ""):
        raise AgentError("prefix %r must match %s" % (prefix, PREFIX_RE.pattern))
    return prefix


def check_node(node):
    if not NODE_RE.match(node or ""):
        raise AgentError("node name %r must match %s" % (node, NODE_RE.pattern))
    return node


def new_prefix():
    return "cfagent-" + secrets.token_hex(3)


# ---------------------------------------------------------------- image

def packages(path=PACKAGES_FILE):
    """agent/packages.txt: one package a line, # comments."""
    names = []
    for line in Path(path).read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    if not names:
        raise AgentError("%s lists no packages" % path)
    return names


def image_key(path=PACKAGES_FILE):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def image_name(path=PACKAGES_FILE):
    return "chaosfleet-agent:lab-" + image_key(path)


def rootfs_tar_path(state_dir=DEFAULT_STATE_DIR, path=PACKAGES_FILE):
    return Path(state_dir) / "agent-image" / image_key(path) / "root.tar"


def apt_sources():
    """This machine's own bookworm apt sources (it may use a mirror); none means mmdebstrap's default."""
    found = []
    candidates = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) \
        + sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    for source in candidates:
        try:
            text = source.read_text()
        except OSError:
            continue
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if lines and re.search(r"\b%s\b" % SUITE, "\n".join(lines)):
            found.append(str(source))
    return found


def build_rootfs_tar(state_dir=DEFAULT_STATE_DIR, path=PACKAGES_FILE):
    """The agent root filesystem as a tarball, built once per machine (a lock serializes test workers)."""
    target = rootfs_tar_path(state_dir, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(str(target.parent / ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target, 0.0
        for stale in target.parent.glob("root.*.partial.tar"):  # from a build that was killed
            stale.unlink()
        if not os.access(MMDEBSTRAP, os.X_OK):
            raise AgentError("%s is missing (scripts/setup.sh installs mmdebstrap)" % MMDEBSTRAP)
        partial = target.with_name("root.%d.partial.tar" % os.getpid())
        argv = [MMDEBSTRAP, "--quiet", "--variant=minbase", "--format=tar",
                "--include=" + ",".join(packages(path)), SUITE, str(partial)] + apt_sources()
        started = time.monotonic()
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, timeout=BUILD_TIMEOUT)
            if result.returncode != 0:
                raise AgentError("mmdebstrap failed (rc %d): %s" % (
                    result.returncode, result.stderr.decode(errors="replace").strip()[-2000:]))
            os.replace(str(partial), str(target))
        finally:
            if partial.exists():
                partial.unlink()
        return target, time.monotonic() - started


# ---------------------------------------------------------------- state

def state_path(state_dir, prefix):
    return Path(state_dir) / (prefix + ".json")


def load_state(state_dir, prefix):
    try:
        return json.loads(state_path(state_dir, prefix).read_text())
    except FileNotFoundError:
        return None


def all_prefixes(state_dir):
    """Every agent lab on this host (cfagent- state files, /run dirs and cgroups), and nothing else."""
    return lab.all_prefixes(state_dir, "cfagent-", PREFIX_RE)


def down(prefix, state_dir=DEFAULT_STATE_DIR):
    """Remove every agent container, the dockerd and everything under the prefix; safe to repeat."""
    engines.teardown(check_prefix(prefix), state_dir)


# ---------------------------------------------------------------- the lab

class AgentLab:
    """A private dockerd with the agent image, and agent containers started per lab node.

    Thread-safe: a DaemonSetController starts and stops agents from its own thread.
    """

    def __init__(self, prefix=None, state_dir=DEFAULT_STATE_DIR, packages_file=PACKAGES_FILE):
        self.prefix = check_prefix(prefix or new_prefix())
        self.state_dir = Path(state_dir)
        self.packages_file = Path(packages_file)
        self.lock = threading.RLock()
        self.state = load_state(self.state_dir, self.prefix)
        self.timings = {}

    # ------------------------------------------------------------ layout
    @property
    def socket(self):
        return engines.docker_paths(self.prefix)["socket"]

    @property
    def docker(self):
        """The docker CLI argv prefix for this lab's daemon."""
        return engines.docker_cli(self.prefix)

    @property
    def image(self):
        return self.state["image"]

    @property
    def agents(self):
        """{node: agent dict} of the running agents."""
        return dict(self.state["agents"]) if self.state else {}

    def node_state_dir(self, node):
        """The node's hostPath state dir: the same dir for every agent started on that node."""
        return lab.run_dir(self.prefix) / "nodes" / check_node(node) / "chaosfleet"

    def _save(self):
        engines.save_state(self.state, self.state_dir)

    def _docker(self, *args, check=True, timeout=engines.CLI_TIMEOUT):
        return engines.run(self.prefix, self.docker + list(args), check=check, timeout=timeout)

    # ------------------------------------------------------------ up / down
    def check_new(self):
        """Refuse a prefix that is in use: up() must never adopt (and a failed up tear down) another lab."""
        if state_path(self.state_dir, self.prefix).exists() or lab.run_dir(self.prefix).exists() \
                or lab.cgroup_tree_dirs("/" + self.prefix):
            raise AgentError("agent lab %s already exists; take it down first" % self.prefix)

    def up(self):
        """Start the dockerd and import the image (building its root filesystem first when needed)."""
        if lab.cgroup_version() != 1:
            raise AgentError("the agent lab needs a cgroup v1 (or hybrid) host")
        self.check_new()
        started = time.monotonic()
        self.state = {"prefix": self.prefix, "run_dir": str(lab.run_dir(self.prefix)),
                      "daemon_cgroup": "/" + self.prefix, "created_at": time.time(), "complete": False,
                      "daemon_pid": None, "image": image_name(self.packages_file),
                      "rootfs_tar": str(rootfs_tar_path(self.state_dir, self.packages_file)),
                      "daemonset_uid": str(uuid.uuid4()), "agents": {}}
        # The state file comes first so down can find even a half-started lab.
        self._save()
        lab.run_dir(self.prefix).mkdir(parents=True)
        lab.make_cgroup("/" + self.prefix)
        lab.write_cgroup_file("memory", "/" + self.prefix, "memory.limit_in_bytes", engines.DAEMON_MEMORY_LIMIT)
        self.state.update(engines.docker_paths(self.prefix))
        self.state["daemon_pid"] = engines.start_dockerd(self.prefix, STORAGE_DRIVER)
        self._save()
        self.timings["dockerd_s"] = time.monotonic() - started
        tar, self.timings["image_build_s"] = build_rootfs_tar(self.state_dir, self.packages_file)
        started = time.monotonic()
        labels = {"org.opencontainers.image.title": "chaosfleet-agent",
                  "org.opencontainers.image.description": "chaosfleet.stress node agent (lab build)",
                  "org.opencontainers.image.source": "agent/packages.txt"}
        changes = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                   "CMD " + json.dumps(KEEP_ALIVE)]
        changes += ["LABEL %s=%s" % (key, json.dumps(value)) for key, value in sorted(labels.items())]
        argv = ["import"]
        for change in changes:
            argv += ["--change", change]
        self._docker(*(argv + [str(tar), self.image]), timeout=600)
        self.timings["image_import_s"] = time.monotonic() - started
        self.state["complete"] = True
        self._save()
        return self

    def down(self):
        with self.lock:
            down(self.prefix, self.state_dir)
            self.state = None

    # ------------------------------------------------------------ agents
    def start(self, node, cgroupns="host", cgroup_mount=CGROUP_MOUNT, state_mount=STATE_MOUNT, memory=MEMORY,
              pod_name=None, namespace=NAMESPACE, container=CONTAINER, command=None):
        """Start the agent of `node` (or return the one running): the same hostPath state dir every time."""
        check_node(node)
        if cgroupns not in CGROUPNS_MODES:
            raise AgentError("cgroupns must be one of %s, not %r" % (", ".join(CGROUPNS_MODES), cgroupns))
        with self.lock:
            running = self.state["agents"].get(node)
            if running:
                return dict(running)
            state_dir = self.node_state_dir(node)
            state_dir.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            container_id = self._docker(
                "run", "-d", "--name", "%s-%s" % (self.prefix, node), "--network", "none", "--pid=host",
                "--cgroupns=" + cgroupns, *LAB_PRIVILEGE_FLAGS,
                "-v", "/sys/fs/cgroup:%s" % cgroup_mount, "-v", "%s:%s" % (state_dir, state_mount),
                "--memory", str(memory), "--label", "chaosfleet.io/lab=" + self.prefix,
                "--label", "chaosfleet.io/node=" + node, self.image, *(command or KEEP_ALIVE)).splitlines()[-1].strip()
            if not _HEX64.match(container_id):
                raise AgentError("docker run printed %r, not a container ID" % container_id)
            agent = {"node": node, "id": container_id, "name": "%s-%s" % (self.prefix, node),
                     "cgroupns": cgroupns, "cgroup_path": engines.container_cgroup("docker", container_id),
                     "state_dir": str(state_dir), "cgroup_mount": cgroup_mount, "state_mount": state_mount,
                     "memory": str(memory), "pod_name": pod_name or pod_name_for(DAEMONSET),
                     "namespace": namespace, "container": container,
                     "pod_uid": str(uuid.uuid4()), "started_at": time.time(),
                     "start_s": round(time.monotonic() - started, 3)}
            self.state["agents"][node] = agent
            self._save()
            return dict(agent)

    def stop(self, node):
        """`docker rm -f` the node's agent (a pod deleted mid-run); its hostPath state dir stays."""
        with self.lock:
            agent = self.state["agents"].pop(node, None)
            if not agent:
                return None
            self._save()
            self._docker("rm", "-f", agent["id"], check=False, timeout=60)
            lab.kill_cgroup_tree(agent["cgroup_path"])
            lab.remove_cgroup_tree(agent["cgroup_path"])
            return agent

    def stop_all(self):
        for node in list(self.agents):
            self.stop(node)

    def exec_argv(self, node):
        """The argv prefix that runs a command in the node's agent, stdin attached."""
        agent = self.state["agents"].get(node)
        if not agent:
            raise AgentError("no agent runs on %s" % node)
        return self.docker + ["exec", "-i", agent["id"]]

    def find(self, namespace, pod, container=None):
        """(node, agent) of a pod name in the agent namespace, or (None, None)."""
        for node, agent in self.agents.items():
            if agent["pod_name"] != pod or agent["namespace"] != namespace:
                continue
            if container not in (None, "", agent["container"]):
                return None, None
            return node, agent
        return None, None

    def exec_backend(self, namespace, pod, container=None):
        """The API double's exec_backend: (namespace, pod, container) -> argv prefix, or None."""
        node, agent = self.find(namespace, pod, container)
        if not agent:
            return None
        return self.docker + ["exec", "-i", agent["id"]]

    def pod(self, node, daemonset=None, ready=True):
        """The agent's Kubernetes Pod object, as the DaemonSet (or the lab's default one) would make it."""
        agent = self.state["agents"][node]
        return agent_pod(agent, daemonset or default_daemonset(self.state["daemonset_uid"]), self.image, ready)


def pod_name_for(daemonset_name):
    return "%s-%s" % (daemonset_name, "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5)))


def default_daemonset(uid):
    """What roles/agent deploys, reduced to what a pod copies from it."""
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": DAEMONSET, "namespace": NAMESPACE, "uid": uid, "generation": 1,
                         "labels": dict(APP_LABELS)},
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": APP_LABELS["app.kubernetes.io/name"]}},
                     "template": {"metadata": {"labels": dict(APP_LABELS)},
                                  "spec": {"hostPID": True, "automountServiceAccountToken": False,
                                           "enableServiceLinks": False, "serviceAccountName": DAEMONSET,
                                           "containers": [{"name": CONTAINER, "command": list(KEEP_ALIVE),
                                                           "securityContext": {"privileged": True}}]}}}}


def agent_pod(agent, daemonset, image, ready=True):
    """A Pod of `daemonset` on the agent's node, Running, with the agent container's docker:// ID."""
    meta = daemonset["metadata"]
    template = daemonset["spec"]["template"]
    spec = copy.deepcopy(template.get("spec") or {})
    spec["nodeName"] = agent["node"]
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("serviceAccountName", "default")
    container = (spec.get("containers") or [{"name": CONTAINER}])[0]
    container.setdefault("image", image)
    ready_text = "True" if ready else "False"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": agent["pod_name"], "namespace": meta.get("namespace", NAMESPACE), "uid": agent["pod_uid"],
            "resourceVersion": "1", "creationTimestamp": CREATED,
            "labels": dict((template.get("metadata") or {}).get("labels") or APP_LABELS),
            "annotations": {"chaosfleet.io/lab": agent["name"]},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": meta["name"],
                                 "uid": meta.get("uid", ""), "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": spec,
        "status": {
            "phase": "Running", "startTime": CREATED, "qosClass": "Burstable",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": CREATED},
                {"type": "Ready", "status": ready_text, "lastTransitionTime": CREATED},
                {"type": "ContainersReady", "status": ready_text, "lastTransitionTime": CREATED},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": CREATED},
            ],
            "containerStatuses": [{
                "name": container["name"], "image": container["image"], "imageID": "",
                "containerID": "docker://" + agent["id"], "ready": ready, "started": True, "restartCount": 0,
                "state": {"running": {"startedAt": CREATED}}}],
        },
    }


# ---------------------------------------------------------------- DaemonSet controller

def _quantity_bytes(text):
    """A memory quantity ("512Mi", "1G", "268435456") in bytes, or None."""
    match = re.match(r"^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$", str(text or "").strip())
    if not match:
        return None
    scale = {None: 1, "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12,
             "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[match.group(2)]
    return int(match.group(1)) * scale


class DaemonSetController:
    """The DaemonSet controller the API double lacks; set it as ``api.daemonset_controller``.

    ADDED / MODIFIED: start an agent per lab node (when none runs), add its pod, set the DaemonSet's
    status. DELETED: remove the agents and their pods. Events are handled in order on one worker
    thread, so the API answers at once and `kubernetes.core.k8s wait: true` really waits on the status.
    A changed pod template does not roll running agents (the lab has one image); delete or restart them.
    The DaemonSet's hostPath volumes are mapped onto the lab: /sys/fs/cgroup is the host's, any other
    hostPath is the node's own state dir (lab nodes share one host); its container's memory limit is kept.
    """

    def __init__(self, agent_lab, api, nodes, cgroupns="host"):
        self.lab = agent_lab
        self.api = api
        self.nodes = [check_node(node) for node in nodes]
        self.cgroupns = cgroupns
        self.daemonset = None
        self.errors = []
        self._events = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="agent-ds-controller", daemon=True)
        self._worker.start()

    def __call__(self, event, daemonset):
        self._events.put((event, copy.deepcopy(daemonset)))

    def settle(self, timeout=120):
        """Wait until every event so far is handled."""
        done = threading.Event()
        self._events.put(("_SETTLE", done))
        if not done.wait(timeout):
            raise AgentError("the DaemonSet controller did not settle within %s s" % timeout)
        if self.errors:
            raise AgentError("the DaemonSet controller failed: %s" % "; ".join(self.errors))

    def close(self):
        """Stop the worker, then remove every agent and pod it made."""
        self._events.put(("_STOP", None))
        self._worker.join(120)
        for node in list(self.lab.agents):
            self.delete_agent(node)

    # ------------------------------------------------------------ fault injection
    def delete_agent(self, node):
        """A pod deleted mid-run: its container goes (`docker rm -f`) and its pod disappears."""
        agent = self.lab.stop(node)
        if agent:
            self.api.remove_pod(agent["namespace"], agent["pod_name"])
        self._set_status()
        return agent

    def restart_agent(self, node):
        """A new pod on the node, as the DaemonSet would make it: same hostPath state dir, new container."""
        self.delete_agent(node)
        agent = self._start(node)
        self._set_status()
        return agent

    # ------------------------------------------------------------ worker
    def _run(self):
        while True:
            event, payload = self._events.get()
            if event == "_STOP":
                return
            if event == "_SETTLE":
                payload.set()
                continue
            try:
                self._handle(event, payload)
            except Exception as exc:  # a failed event is reported by settle(), the worker goes on
                self.errors.append("%s %s: %s" % (event, (payload.get("metadata") or {}).get("name"), exc))

    def _handle(self, event, daemonset):
        meta = daemonset.get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        if self.daemonset and (self.daemonset["metadata"].get("namespace"),
                               self.daemonset["metadata"].get("name")) != key:
            raise AgentError("the lab runs one agent DaemonSet; %s/%s is already there" % (
                self.daemonset["metadata"].get("namespace"), self.daemonset["metadata"].get("name")))
        if event == "DELETED":
            for node in list(self.lab.agents):
                self.delete_agent(node)
            self.daemonset = None
            return
        if event not in ("ADDED", "MODIFIED"):
            raise AgentError("unknown event %r" % event)
        self.daemonset = daemonset
        self._set_status()
        for node in self.nodes:
            if node not in self.lab.agents:
                self._start(node)
                self._set_status()

    def _container(self):
        return ((self.daemonset["spec"]["template"].get("spec") or {}).get("containers") or [{}])[0]

    def _mounts(self):
        """(cgroup mount, state mount) inside the container, from the DaemonSet's hostPath volumes."""
        pod_spec = self.daemonset["spec"]["template"].get("spec") or {}
        host_paths = {v["name"]: v["hostPath"]["path"] for v in pod_spec.get("volumes") or [] if v.get("hostPath")}
        cgroup_mount, state_mount = CGROUP_MOUNT, STATE_MOUNT
        for mount in self._container().get("volumeMounts") or []:
            path = host_paths.get(mount.get("name"))
            if path is None:
                continue
            if path.rstrip("/") == "/sys/fs/cgroup":
                cgroup_mount = mount["mountPath"]
            else:
                state_mount = mount["mountPath"]
        return cgroup_mount, state_mount

    def _start(self, node):
        container = self._container()
        cgroup_mount, state_mount = self._mounts()
        limit = _quantity_bytes(((container.get("resources") or {}).get("limits") or {}).get("memory"))
        # One mode for every node, or {node: mode} to run both kinds side by side.
        cgroupns = self.cgroupns.get(node, "host") if isinstance(self.cgroupns, dict) else self.cgroupns
        agent = self.lab.start(node, cgroupns=cgroupns, cgroup_mount=cgroup_mount, state_mount=state_mount,
                               memory=limit or MEMORY,
                               pod_name=pod_name_for(self.daemonset["metadata"]["name"]),
                               namespace=self.daemonset["metadata"].get("namespace", NAMESPACE),
                               container=container.get("name", CONTAINER),
                               command=list(container.get("command") or []) + list(container.get("args") or []))
        ready = self._probe(agent, container)
        self.api.add_pod(agent_pod(agent, self.daemonset, self.lab.image, ready))
        return agent

    def _probe(self, agent, container):
        """Run the DaemonSet's readiness probe (exec) in the new agent: Ready follows its exit code."""
        command = ((container.get("readinessProbe") or {}).get("exec") or {}).get("command")
        if not command:
            return True
        result = subprocess.run(self.lab.docker + ["exec", agent["id"]] + list(command), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        return result.returncode == 0

    def _set_status(self):
        if not self.daemonset:
            return
        meta = self.daemonset["metadata"]
        running = [self.lab.agents[node] for node in self.nodes if node in self.lab.agents]
        desired = len(self.nodes)
        status = {"desiredNumberScheduled": desired, "currentNumberScheduled": len(running),
                  "updatedNumberScheduled": len(running), "numberReady": len(running),
                  "numberAvailable": len(running), "numberMisscheduled": 0,
                  "observedGeneration": meta.get("generation", 1)}
        if len(running) < desired:
            status["numberUnavailable"] = desired - len(running)
        try:
            self.api.set_status("apps/v1", "daemonsets", meta.get("namespace"), meta["name"], status)
        except KeyError:
            pass  # deleted meanwhile; its DELETED event is queued


# ---------------------------------------------------------------- CLI

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name, help_text):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR),
                         help="where <prefix>.json and the image cache live (default %(default)s)")
        return sub

    sub = add("up", "start a dockerd with the agent image and one agent per node, print the state file path")
    sub.add_argument("--prefix", default=None, help="default: cfagent-<random>")
    sub.add_argument("--nodes", default="node-1", help="comma-separated lab node names (default %(default)s)")
    sub.add_argument("--cgroupns", choices=CGROUPNS_MODES, default="host",
                     help="the agents' cgroup namespace (default %(default)s)")
    sub.add_argument("--keep-on-failure", action="store_true", help="leave a half-started lab for inspection")
    sub = add("down", "remove an agent lab and everything it made")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--prefix")
    which.add_argument("--all", action="store_true", help="every cfagent-* lab on this host")
    sub = add("status", "print the state JSON")
    sub.add_argument("--prefix", required=True)
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        parser.error("the agent lab needs root")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.command == "up":
            agent_lab = AgentLab(args.prefix, args.state_dir)
            nodes = [check_node(n.strip()) for n in args.nodes.split(",") if n.strip()]
            agent_lab.check_new()
            try:
                agent_lab.up()
                for node in nodes:
                    agent_lab.start(node, args.cgroupns)
            except BaseException:
                if not args.keep_on_failure:
                    down(agent_lab.prefix, args.state_dir)
                raise
            print(state_path(args.state_dir, agent_lab.prefix))
        elif args.command == "down":
            for prefix in all_prefixes(args.state_dir) if args.all else [args.prefix]:
                down(prefix, args.state_dir)
                print("down " + prefix)
        else:
            state = load_state(args.state_dir, check_prefix(args.prefix))
            if state is None:
                raise AgentError("no state file for %s" % args.prefix)
            print(json.dumps(state, indent=2))
    except (AgentError, engines.EngineError, lab.LabError) as exc:
        print("agents: error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
