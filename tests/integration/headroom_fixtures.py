"""Fixtures for the search tests (test_headroom.py): the cache app (tests/lab/cache_app.py), a service whose
latency rises when memory pressure evicts its page cache, as a runc lab pod on this host and on each node of
the fleet, and a real Prometheus scraping all of them.

- ``cache_pod``: the app in a pod of this worker's lab (``lab``), limit 298 MiB, a 96 MiB file (module scope).
- ``cache_pod_factory``: more such pods, with their own limits and app options, removed after the test.
- ``fleet_cache_pods``: the app in a pod named ``cache`` on every fleet node, each node with its own limit
  (FLEET_LIMITS), so their edges differ; the inventory's ``fleet_pods.cache`` names it (module scope).
- ``headroom_prometheus``: a real Prometheus (service_fixtures.Prometheus) whose job ``cache-app`` scrapes every
  cache pod the fixtures above started, each labelled ``node`` (``host`` or the node's name) and ``pod``.

Measured by hand (2026-12-06, the collection's stressor holding each size for 8 s in the pod, p50/p95 of the app's
own requests from its histogram).

The configuration the tests use: a 96 MiB file, 16384 touches per request, 10 requests/s; the app holds 114 MiB
(12 MiB anonymous + the file, all active), in a 298 MiB pod, so the knee is at 184 MiB (61.7%); load 0.1:

| stress | share of limit | p50 / p95 (ms) | working set | file resident |
|---|---|---|---|---|
| 0 | 0% | 5 / 10 | 112 MiB | 100% |
| 119-179 MiB | 40-60% | 4-6 / 9-10 | 232-291 MiB | 100% |
| 194 MiB (knee + 10) | 65% | 245 / 433 | 295 MiB | 89% |
| 209 MiB | 70% | 200 / 617 | 256 MiB | 86% |
| 238 MiB | 80% | 719 / 1000 | 262 MiB | 43% |

The first configuration measured: a 128 MiB file, 8192 touches, 20 requests/s; the app holds 144 MiB:

| pod limit | stress | share of limit | p50 / p95 (ms), quiet machine | p50 / p95 (ms), load 8 on 2 cores |
|---|---|---|---|---|
| 320 MiB | 0-128 MiB | 0-40% | 3 / 5-7 | 6 / 17-19 |
| 320 MiB | 160 MiB | 50% | 3 / 5 | 9 / 25 |
| 320 MiB | 176 MiB (limit - app) | 55% | 18 / 95 | |
| 320 MiB | 192 MiB | 60% | 29 / 126 | 350 / 980 |
| 320 MiB | 224 MiB | 70% | 253 / 770 | 1278 / 1928 |
| 320 MiB | 256 MiB | 80% | 1222 / 1922 | 1563 / 4350 |
| 384 MiB | 192-224 MiB | 50-58% | 5 / 16-17 (load 8) | |
| 384 MiB | 240 MiB (limit - app) | 62% | 39 / 129 (load 8) | |
| 384 MiB | 256 / 288 MiB | 66 / 75% | 44 / 177, 1000 / 2600 (load 8) | |

No OOM kill at any of these sizes: the kernel reclaims the file instead. The knee follows limit - app (176 MiB of
320, 240 of 384). After a level past the knee the app is fast again within seconds (its file refaults), but
its working set stays ~40% lower: the kernel left half the file on the inactive list.

The app's pod is added with ``lab.py add-pod`` (on a node: over SSH, as the fleet builds its pods) and removed
with ``lab.py remove-pod``, pass or fail; a lab's or fleet's teardown removes anything left. Figures come from
the pod's cgroup (memory.stat, memory.oom_control) and the app's own histogram, never from the code under test.
"""

import json
import os
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.lab_fixtures import STATE_DIR, lab_unavailable, run_lab
from tests.integration.service_fixtures import PROMETHEUS, Prometheus

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = REPO / "tests" / "lab"
NODE_LAB_SCRIPT = str(LAB_DIR / "lab.py")
NODE_STATE_DIR = "/var/tmp/cflab-state"
MI = 1024 * 1024
JOB = "cache-app"
# The standard app: a 96 MiB file (114 MiB with the app's own memory); each request touches 16384 random pages of
# it, 10 requests a second. A small file against many touches makes a sharp knee: 12 MiB past it, 12% of the file
# is out and p50 is already 0.2 s (the table above).
FILE_MIB = 96
TOUCHES = 16384
RATE = 10
# Limits that put the knee (limit - 114 MiB) 5-7 MiB above a point of the 10% grid the tests search: the level below
# leaves the app that room, the one above takes 20 MiB or more of its file, so both sides are clear on a quiet
# machine and on a busy one. 298 MiB: knee 61.7% (60% passes, 70% breaks).
HOST_LIMIT = 298 * MI
# Different limits, so the nodes' edges differ: knees 61.7%, 71.3%, 80.8%.
FLEET_LIMITS = {"node1": 298 * MI, "node2": 397 * MI, "node3": 595 * MI}


def p95_query(node, window="10s"):
    """PromQL for the app's p95 latency on one node (seconds)."""
    return ('histogram_quantile(0.95, sum by (le) (rate(cache_app_request_seconds_bucket{job="%s",node="%s"}[%s])))'
            % (JOB, node, window))


def app_command(listen, size_mib=FILE_MIB, touches=TOUCHES, extra=()):
    return (["/usr/bin/python3", "/app/cache_app.py", "--data-dir", "/data", "--size-mib", str(size_mib),
             "--port", "{port}", "--listen", listen, "--touches", str(touches), "--rate", str(RATE)] + list(extra))


def add_pod_args(prefix, state_dir, pod, memory_limit, cpu_limit, command):
    return (["add-pod", "--prefix", prefix, "--state-dir", state_dir, "--pod", pod,
             "--memory-limit", str(memory_limit), "--cpu-limit", str(cpu_limit), "--host-runtime",
             "--bind", "%s:/app:ro" % LAB_DIR, "--data-dir-at", "/data", "--"] + list(command))


class CachePod(object):
    """One cache app pod, read from the host: its lab state file, its cgroup, its HTTP endpoints."""

    def __init__(self, node, pod, state_file, cgroup_prefix, address, lab_prefix, size_mib=FILE_MIB):
        self.node, self.pod, self.state_file, self.size_mib = node, pod, Path(state_file), size_mib
        self.cgroup_prefix, self.address, self.lab_prefix = cgroup_prefix, address, lab_prefix
        self.reload()

    def reload(self):
        state = json.loads(self.state_file.read_text())
        entry = next(p for p in state["pods"] if p["name"] == self.pod)
        self.pod_uid = entry["uid"]
        self.container = next(c for c in entry["containers"] if not c["sandbox"])
        self.port = self.container["http_port"]
        self.limit = self.container["memory_limit_bytes"]
        self.url = "http://%s:%d" % (self.address, self.port)      # from this host (controller, Prometheus)
        self.node_url = "http://127.0.0.1:%d" % self.port           # from the node itself
        self.target = "%s:%d" % (self.address, self.port)
        return self

    # ---- the cgroup (host view)
    @property
    def cgroup(self):
        return self.cgroup_prefix + self.container["cgroup_path"]

    def _file(self, name, controller="memory"):
        return Path("/sys/fs/cgroup/%s%s/%s" % (controller, self.cgroup, name))

    def stat(self):
        lines = self._file("memory.stat").read_text().splitlines()
        return dict((key, int(value)) for key, value in (line.split() for line in lines))

    def usage(self):
        return int(self._file("memory.usage_in_bytes").read_text())

    def working_set(self):
        return self.usage() - self.stat()["total_inactive_file"]

    def oom_kills(self):
        text = self._file("memory.oom_control").read_text()
        return int(text.split("oom_kill ")[1].split()[0]) if "oom_kill " in text else 0

    def pids(self):
        return [int(p) for p in self._file("cgroup.procs").read_text().split()]

    def app_memory(self):
        """What the app holds at rest: its anonymous memory plus its file's page cache, from the cgroup."""
        return self.usage()

    def knee_percent(self):
        """Where the edge should be, as a share of the limit: a stress bigger than limit - app memory evicts the
        app's file, and the kernel makes it slow."""
        return 100.0 * (self.limit - self.app_memory()) / self.limit

    # ---- the app
    def get(self, path="/", timeout=30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return response.status, response.read().decode()

    def metrics(self):
        return self.get("/metrics", timeout=10)[1]

    def histogram(self):
        """{bound: cumulative count} of cache_app_request_seconds, plus "resident" (share of the file cached)."""
        found = {}
        for line in self.metrics().splitlines():
            if line.startswith("cache_app_request_seconds_bucket"):
                bound = line.split('le="')[1].split('"')[0]
                found[float("inf") if bound == "+Inf" else float(bound)] = int(line.split()[-1])
            elif line.startswith("cache_app_resident_ratio"):
                found["resident"] = float(line.split()[-1])
        return found

    def latency(self, seconds):
        """(p50, p95, requests) of the app's own requests over the next `seconds`, from its histogram (as
        Prometheus' histogram_quantile computes them)."""
        before = self.histogram()
        time.sleep(seconds)
        after = self.histogram()
        delta = dict((k, after[k] - before.get(k, 0)) for k in after if k != "resident")
        return quantile(delta, 0.5), quantile(delta, 0.95), delta.get(float("inf"), 0)

    def wait_ready(self, timeout=60):
        """The app answers, its file is fully cached and charged to the pod, and its histogram has data."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                found = self.histogram()
                stat = self.stat()
                last = (found.get("resident"), found.get(float("inf")), stat["total_cache"] // MI)
                if found.get("resident", 0) > 0.99 and found.get(float("inf"), 0) >= 10 and \
                        stat["total_cache"] >= self.size_mib * MI * 0.95:
                    return self
            except OSError as exc:
                last = exc
            time.sleep(0.3)
        raise AssertionError("cache app %s/%s not ready: resident, requests, cache MiB = %r" % (
            self.node, self.pod, last))

    def __repr__(self):
        return "CachePod(%s/%s, limit %d MiB, %s)" % (self.node, self.pod, self.limit // MI, self.url)


def quantile(delta, q):
    """histogram_quantile over a {bound: cumulative count} delta (linear inside a bucket)."""
    total = delta.get(float("inf"), 0)
    if not total:
        return None
    rank, previous_bound, previous_count = q * total, 0.0, 0
    for bound in sorted(delta):
        if delta[bound] >= rank:
            if bound == float("inf"):
                return previous_bound
            share = (rank - previous_count) / max(1, delta[bound] - previous_count)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, delta[bound]
    return previous_bound


# ------------------------------------------------------------------ on this host's lab

def add_lab_cache_pod(lab, pod, memory_limit=HOST_LIMIT, cpu_limit=1.0, size_mib=FILE_MIB, touches=TOUCHES,
                      extra=()):
    run_lab(*add_pod_args(lab["prefix"], str(STATE_DIR), pod, memory_limit, cpu_limit,
                          app_command("127.0.0.1", size_mib, touches, extra)), timeout=180)
    return CachePod("host", pod, STATE_DIR / (lab["prefix"] + ".json"), "", "127.0.0.1", lab["prefix"], size_mib)


def remove_lab_cache_pod(lab, pod):
    state = json.loads((STATE_DIR / (lab["prefix"] + ".json")).read_text())
    if any(p["name"] == pod for p in state["pods"]):
        run_lab("remove-pod", "--prefix", lab["prefix"], "--state-dir", str(STATE_DIR), "--pod", pod)


class _Registry(object):
    """The cache pods Prometheus scrapes: each fixture adds its pods and takes them out at its end."""

    def __init__(self, prometheus):
        self.prometheus, self.pods = prometheus, {}

    def add(self, pods):
        for pod in pods:
            self.pods[(pod.node, pod.pod)] = pod
        self._write()

    def remove(self, pods):
        for pod in pods:
            self.pods.pop((pod.node, pod.pod), None)
        self._write()

    def _write(self):
        self.prometheus.set_targets(JOB, [{"targets": [pod.target], "labels": {"node": pod.node, "pod": pod.pod}}
                                          for pod in self.pods.values()])

    def wait_scraped(self, pods, timeout=60):
        for pod in pods:
            self.prometheus.wait_for('cache_app_request_seconds_count{job="%s",node="%s",pod="%s"}' % (
                JOB, pod.node, pod.pod), lambda result: len(result) == 1, timeout=timeout)


@pytest.fixture(scope="module")
def headroom_prometheus():
    """A real Prometheus on a loopback port; job cache-app scrapes the cache pods (registry: .cache_pods)."""
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail("prometheus is not installed (scripts/setup.sh installs Debian's package)")
    workdir = tempfile.mkdtemp(prefix="cflab-prometheus-")
    server = None
    try:
        server = Prometheus(workdir, file_sd_jobs=[JOB])
        server.cache_pods = _Registry(server)
        server.wait_for("up", lambda result: True, timeout=30)
        yield server
    finally:
        if server:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def cache_pod(lab, headroom_prometheus):
    """The cache app in a HOST_LIMIT pod of this worker's lab, scraped by headroom_prometheus."""
    name = "cache-%d" % os.getpid()
    pod = None
    try:
        pod = add_lab_cache_pod(lab, name).wait_ready()
        headroom_prometheus.cache_pods.add([pod])
        headroom_prometheus.cache_pods.wait_scraped([pod])
        yield pod
    finally:
        if pod:
            headroom_prometheus.cache_pods.remove([pod])
        remove_lab_cache_pod(lab, name)


@pytest.fixture
def cache_pod_factory(lab, headroom_prometheus):
    """cache_pod_factory(suffix, memory_limit=..., cpu_limit=..., size_mib=..., extra=[app options]) -> CachePod,
    scraped by headroom_prometheus; every pod made is removed after the test."""
    made = []

    def build(suffix, scraped=True, **options):
        name = "cache-%s-%d" % (suffix, os.getpid())
        made.append(name)
        pod = add_lab_cache_pod(lab, name, **options).wait_ready()
        if scraped:
            headroom_prometheus.cache_pods.add([pod])
            headroom_prometheus.cache_pods.wait_scraped([pod])
        return pod

    try:
        yield build
    finally:
        headroom_prometheus.cache_pods.remove([p for p in headroom_prometheus.cache_pods.pods.values()
                                               if p.node == "host" and p.pod in made])
        for name in made:
            remove_lab_cache_pod(lab, name)


# ------------------------------------------------------------------ on the fleet's nodes

FLEET_POD = "cache"


def add_fleet_cache_pod(fleet, node, memory_limit, cpu_limit=1.0, extra=()):
    remove_fleet_cache_pod(fleet, node)  # one a previous, killed run may have left (the fleet outlives pytest)
    args = add_pod_args(fleet.node(node)["lab_prefix"], NODE_STATE_DIR, FLEET_POD, memory_limit, cpu_limit,
                        app_command("0.0.0.0", extra=extra))
    fleet.ssh(node, "/usr/bin/python3", NODE_LAB_SCRIPT, *args, timeout=180)
    info = fleet.node(node)
    return CachePod(node, FLEET_POD, info["lab_state"], info["cgroup"], info["node_ip"], info["lab_prefix"])


def remove_fleet_cache_pod(fleet, node):
    state = fleet.lab(node)
    if any(p["name"] == FLEET_POD for p in state["pods"]):
        fleet.ssh(node, "/usr/bin/python3", NODE_LAB_SCRIPT, "remove-pod", "--prefix", fleet.node(node)["lab_prefix"],
                  "--state-dir", NODE_STATE_DIR, "--pod", FLEET_POD)


@pytest.fixture(scope="module")
def fleet_cache_pods(fleet, headroom_prometheus):
    """{node: CachePod}: the cache app in a pod `cache` on each node (limits FLEET_LIMITS), scraped by
    headroom_prometheus over the nodes' veths; the inventory's fleet_pods.cache names it. Removed at the end."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    pods = {}
    try:
        for node in fleet.nodes:
            pods[node] = add_fleet_cache_pod(fleet, node, FLEET_LIMITS.get(node, HOST_LIMIT))
        fleet.refresh_inventory()
        for pod in pods.values():
            pod.wait_ready()
        headroom_prometheus.cache_pods.add(pods.values())
        headroom_prometheus.cache_pods.wait_scraped(pods.values())
        yield pods
    finally:
        headroom_prometheus.cache_pods.remove(pods.values())
        errors = []
        for node in fleet.nodes:
            try:
                remove_fleet_cache_pod(fleet, node)
            except Exception as exc:  # pylint: disable=broad-except
                errors.append("%s: %s" % (node, exc))
        fleet.refresh_inventory()
        if errors:
            raise AssertionError("removing the cache pods failed: %s" % "; ".join(errors))
