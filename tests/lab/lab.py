#!/usr/bin/env python3
"""Lab of real runc containers laid out the way kubelet lays out pods.

Run as root. Standard library only. Works on a cgroup v1 (or hybrid) host and on a
cgroup v2 (unified) host; the mode is read from /proc/self/mountinfo.

    lab.py create  [--prefix cflab-XXXXXX] [--state-dir DIR] [--node-name NAME]
                   [--port-base N] [--netns NAME] [--keep-on-failure]
    lab.py destroy (--prefix P | --all) [--state-dir DIR]
    lab.py status  --prefix P [--state-dir DIR]
    lab.py restart --prefix P --pod NAME [--state-dir DIR]
    lab.py add-pod --prefix P --pod NAME --memory-limit BYTES [--cpu-limit CORES] [--port N]
                   [--host-runtime] [--bind SRC:DST[:ro]]... [--data-dir-at DST] -- COMMAND...
    lab.py remove-pod --prefix P --pod NAME [--state-dir DIR]

Everything a lab owns carries its prefix: the cgroup root /<prefix> in every
hierarchy, the run directory /run/<prefix> (runc root, rootfs, bundles, logs)
and the state file <state-dir>/<prefix>.json.
"""

import argparse
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
DEFAULT_STATE_DIR = LAB_DIR.parents[1] / ".lab"
RUN_BASE = Path("/run")
PREFIX_RE = re.compile(r"^cflab-[a-z0-9][a-z0-9-]{0,40}$")

RUNC = shutil.which("runc") or "/usr/sbin/runc"
BUSYBOX = "/bin/busybox"
BUSYBOX_LINKS = ("sh", "sleep", "httpd", "ps", "cat", "top", "free", "ls", "echo",
                 "env", "id", "kill", "mkdir", "rm", "sync", "true", "false",
                 "wget", "head", "tail", "grep", "dd", "yes", "uptime", "hostname")
IMAGE = "busybox:1.35"
MiB = 1024 * 1024
CPU_PERIOD_US = 100000
SLEEP_FOREVER = ["/bin/sleep", "2147483647"]

# The pods, in the layouts kubelet uses for each cgroup driver / runtime pair.
# Limits and requests are in bytes and cores; None means "not set".
POD_SPECS = (
    {"name": "hello", "qos_class": "Burstable", "cgroup_driver": "cgroupfs",
     "runtime": "containerd", "app": "httpd",
     "memory_limit": 500 * MiB, "memory_request": 100 * MiB,
     "cpu_limit": 0.5, "cpu_request": 0.1},
    {"name": "checkout", "qos_class": "Burstable", "cgroup_driver": "systemd",
     "runtime": "containerd", "app": "httpd",
     "memory_limit": 256 * MiB, "memory_request": 128 * MiB,
     "cpu_limit": 1.0, "cpu_request": 0.25},
    {"name": "payments", "qos_class": "Guaranteed", "cgroup_driver": "systemd",
     "runtime": "cri-o", "app": "httpd",
     "memory_limit": 300 * MiB, "memory_request": 300 * MiB,
     "cpu_limit": 1.0, "cpu_request": 1.0},
    {"name": "batch", "qos_class": "BestEffort", "cgroup_driver": "cgroupfs",
     "runtime": "containerd", "app": "sleep",
     "memory_limit": None, "memory_request": None,
     "cpu_limit": None, "cpu_request": None},
    {"name": "ledger", "qos_class": "Guaranteed", "cgroup_driver": "cgroupfs",
     "runtime": "containerd", "app": "httpd",
     "memory_limit": 200 * MiB, "memory_request": 200 * MiB,
     "cpu_limit": 0.5, "cpu_request": 0.5},
)


# Mount options of a v1 hierarchy that are not controller names.
V1_FLAGS = ("rw", "ro", "clone_children", "noprefix", "xattr", "cpuset_v2_mode", "favordynmods")


class LabError(Exception):
    pass


# ---------------------------------------------------------------- cgroup mounts

def cgroup_hierarchies():
    """Every mounted cgroup hierarchy as (name, mountpoint, root), one per hierarchy.

    name is the controller list of a v1 mount ("cpu", "memory", "name=systemd")
    or "unified" for cgroup2.
    """
    found = []
    seen_devices = set()
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            fields = left.split()
            fstype, _source, super_opts = (right.split() + ["", "", ""])[:3]
            if fstype not in ("cgroup", "cgroup2") or fields[2] in seen_devices:
                continue
            seen_devices.add(fields[2])
            root, mountpoint = unescape(fields[3]), unescape(fields[4])
            if fstype == "cgroup2":
                name = "unified"
            else:
                name = ",".join(
                    opt for opt in super_opts.split(",")
                    if opt not in V1_FLAGS and ("=" not in opt or opt.startswith("name=")))
            found.append((name, mountpoint, root))
    return found


def unescape(text):
    # mountinfo escapes space, tab, newline and backslash as octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def v1_hierarchies():
    return [h for h in cgroup_hierarchies() if h[0] != "unified"]


def unified_hierarchy():
    """The cgroup2 mount that shows the whole hierarchy, or None."""
    for hierarchy in cgroup_hierarchies():
        if hierarchy[0] == "unified" and hierarchy[2] == "/":
            return hierarchy
    return None


def cgroup_version():
    """1 when a v1 memory hierarchy is mounted (v1 or hybrid host), 2 on a unified host."""
    if hierarchy_with("memory"):
        return 1
    if unified_hierarchy():
        return 2
    raise LabError("no cgroup v1 memory hierarchy and no cgroup2 mount in /proc/self/mountinfo")


def hierarchy_dir(hierarchy, cgroup_path):
    """Host directory of cgroup_path in a hierarchy, or None when the mount cannot see it."""
    _name, mountpoint, root = hierarchy
    root = root.rstrip("/")
    if root and not (cgroup_path == root or cgroup_path.startswith(root + "/")):
        return None
    return mountpoint + cgroup_path[len(root):]


def hierarchy_with(controller):
    for hierarchy in v1_hierarchies():
        if controller in hierarchy[0].split(","):
            return hierarchy
    return None


def controller_dir(controller, cgroup_path):
    hierarchy = hierarchy_with(controller)
    return hierarchy_dir(hierarchy, cgroup_path) if hierarchy else None


def write_cgroup_file(controller, cgroup_path, filename, value):
    """Write a v1 controller file, or a unified file when controller is "unified"."""
    if controller == "unified":
        hierarchy = unified_hierarchy()
        directory = hierarchy_dir(hierarchy, cgroup_path) if hierarchy else None
    else:
        directory = controller_dir(controller, cgroup_path)
    if directory is None:
        return
    with open(os.path.join(directory, filename), "w") as handle:
        handle.write(str(value))


# Controllers kubelet needs on every level above a container on a v2 node.
V2_CONTROLLERS = ("memory", "cpu", "pids")


def enable_v2_controllers(directory):
    """Add V2_CONTROLLERS to directory's cgroup.subtree_control (they must be offered)."""
    with open(os.path.join(directory, "cgroup.controllers")) as handle:
        offered = handle.read().split()
    missing = [c for c in V2_CONTROLLERS if c not in offered]
    if missing:
        raise LabError("cgroup2 controllers %s are not available in %s (enable them in the "
                       "parent's cgroup.subtree_control)" % (" ".join(missing), directory))
    with open(os.path.join(directory, "cgroup.subtree_control")) as handle:
        enabled = handle.read().split()
    wanted = ["+" + c for c in V2_CONTROLLERS if c not in enabled]
    if wanted:
        with open(os.path.join(directory, "cgroup.subtree_control"), "w") as handle:
            handle.write(" ".join(wanted))


def make_cgroup(cgroup_path):
    """mkdir -p cgroup_path as kubelet does for QoS and pod dirs.

    v1: in every v1 hierarchy. v2: in the unified hierarchy, with memory, cpu and pids
    enabled in cgroup.subtree_control from the root down to cgroup_path itself, since
    containers (or deeper dirs) go below it.
    """
    parts = [p for p in cgroup_path.split("/") if p]
    if cgroup_version() == 2:
        current = hierarchy_dir(unified_hierarchy(), "/").rstrip("/")
        enable_v2_controllers(current + "/")
        for part in parts:
            current = current + "/" + part
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
            enable_v2_controllers(current)
        return
    for hierarchy in v1_hierarchies():
        base = hierarchy_dir(hierarchy, "/")
        if base is None:
            continue
        current = base.rstrip("/")
        for part in parts:
            parent, current = current, current + "/" + part
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
            if "cpuset" in hierarchy[0].split(","):
                # A new cpuset dir starts empty and then refuses tasks.
                for name in ("cpuset.cpus", "cpuset.mems"):
                    copy_if_empty(os.path.join(parent, name), os.path.join(current, name))


def copy_if_empty(source, target):
    with open(target) as handle:
        if handle.read().strip():
            return
    with open(source) as handle:
        value = handle.read().strip()
    with open(target, "w") as handle:
        handle.write(value)


def cgroup_tree_dirs(cgroup_root):
    """Every directory under cgroup_root in every hierarchy, deepest first."""
    dirs = []
    for hierarchy in cgroup_hierarchies():
        top = hierarchy_dir(hierarchy, cgroup_root)
        if top is None or not os.path.isdir(top):
            continue
        for current, _subdirs, _files in os.walk(top, topdown=False):
            dirs.append(current)
    return dirs


def pids_in_tree(cgroup_root):
    pids = set()
    for directory in cgroup_tree_dirs(cgroup_root):
        try:
            with open(os.path.join(directory, "cgroup.procs")) as handle:
                pids.update(int(line) for line in handle if line.strip())
        except OSError:
            pass
    return pids


def pid_in_cgroup_root(pid, cgroup_root):
    """True when any hierarchy line of /proc/<pid>/cgroup sits at or under cgroup_root."""
    try:
        with open("/proc/%d/cgroup" % pid) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return False
    for line in lines:
        path = line.split(":", 2)[-1]
        if path == cgroup_root or path.startswith(cgroup_root + "/"):
            return True
    return False


# ---------------------------------------------------------------- lab layout

def run_dir(prefix):
    return RUN_BASE / prefix


def runc_root(prefix):
    return run_dir(prefix) / "runc"


def state_path(state_dir, prefix):
    return Path(state_dir) / (prefix + ".json")


def check_prefix(prefix):
    if not PREFIX_RE.match(prefix or ""):
        raise LabError("prefix %r must match %s" % (prefix, PREFIX_RE.pattern))
    return prefix


def save_state(state, state_dir):
    path = state_path(state_dir, state["prefix"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=False) + "\n")
    os.replace(str(tmp), str(path))
    return path


def load_state(state_dir, prefix):
    path = state_path(state_dir, prefix)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def pod_cgroup_path(cgroup_root, driver, qos_class, uid):
    """The pod directory kubelet creates for a QoS class and cgroup driver."""
    qos = qos_class.lower()
    if driver == "cgroupfs":
        parent = cgroup_root + "/kubepods"
        if qos_class != "Guaranteed":
            parent += "/" + qos
        return parent + "/pod" + uid
    flat_uid = uid.replace("-", "_")
    parent = cgroup_root + "/kubepods.slice"
    if qos_class == "Guaranteed":
        return parent + "/kubepods-pod%s.slice" % flat_uid
    return parent + "/kubepods-%s.slice/kubepods-%s-pod%s.slice" % (qos, qos, flat_uid)


def container_leaf(driver, runtime, container_id):
    if driver == "cgroupfs":
        return container_id
    if runtime == "cri-o":
        return "crio-%s.scope" % container_id
    return "cri-containerd-%s.scope" % container_id


def runtime_id(runtime, container_id):
    return "%s://%s" % ("cri-o" if runtime == "cri-o" else "containerd", container_id)


def cpu_shares(request_cores):
    # kubelet: milliCPU * 1024 / 1000, at least 2 (the BestEffort value).
    if not request_cores:
        return 2
    return max(2, int(round(request_cores * 1024)))


# ---------------------------------------------------------------- rootfs and pause

def pause_binary(state_dir):
    """The compiled pause binary, built once per source version and cached."""
    source = LAB_DIR / "pause.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    cache = Path(state_dir) / "build"
    binary = cache / ("pause-" + digest)
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / ("pause-%s.%d.tmp" % (digest, os.getpid()))
    result = subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(tmp), str(source)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise LabError("gcc failed building pause:\n" + result.stdout.decode(errors="replace"))
    os.replace(str(tmp), str(binary))
    return binary


def build_rootfs(rootfs, pause):
    for sub in ("bin", "proc", "dev", "sys", "tmp", "www", "etc"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, str(rootfs / "bin" / "busybox"))
    for name in BUSYBOX_LINKS:
        os.symlink("busybox", str(rootfs / "bin" / name))
    shutil.copy2(str(pause), str(rootfs / "pause"))
    (rootfs / "www" / "index.html").write_text(
        "<!DOCTYPE html>\n<html><head><title>Hello Kubernetes!</title></head>\n"
        "<body><h1>Hello Kubernetes!</h1><p>chaosfleet lab</p></body></html>\n")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")


# ---------------------------------------------------------------- runc

_SPEC_TEMPLATE = None


def spec_template(prefix):
    """The default `runc spec` config, generated once per process."""
    global _SPEC_TEMPLATE
    if _SPEC_TEMPLATE is None:
        scratch = run_dir(prefix) / "spec"
        scratch.mkdir()
        try:
            subprocess.run([RUNC, "spec", "--bundle", str(scratch)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _SPEC_TEMPLATE = json.loads((scratch / "config.json").read_text())
        finally:
            shutil.rmtree(str(scratch), ignore_errors=True)
    return json.loads(json.dumps(_SPEC_TEMPLATE))


def container_config(prefix, rootfs, args, hostname, cgroup_path, resources, netns, mounts=()):
    config = spec_template(prefix)
    config["mounts"] = config.get("mounts", []) + list(mounts)
    config["root"] = {"path": str(rootfs), "readonly": True}
    config["hostname"] = hostname
    process = config["process"]
    process["terminal"] = False
    process["args"] = list(args)
    process["env"] = ["PATH=/bin", "HOSTNAME=" + hostname]
    linux = config["linux"]
    namespaces = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    if netns:
        # Join a lab node's network namespace instead of the host's.
        namespaces.append({"type": "network", "path": "/var/run/netns/" + netns})
    linux["namespaces"] = namespaces
    linux["cgroupsPath"] = cgroup_path
    linux.setdefault("resources", {}).update(resources)
    return config


def cpu_weight(shares):
    # kubelet/runc on cgroup v2: cpu.shares [2, 262144] maps linearly onto cpu.weight [1, 10000].
    return 1 + ((shares - 2) * 9999) // 262142


def container_resources(memory_limit, cpu_limit, cpu_request, oom_group=False):
    """runc resources in v1 terms; runc converts them on a v2 host (weight, cpu.max, memory.max)."""
    resources = {"cpu": {"shares": cpu_shares(cpu_request)}}
    if cpu_limit:
        resources["cpu"].update({"quota": int(round(cpu_limit * CPU_PERIOD_US)),
                                 "period": CPU_PERIOD_US})
    if memory_limit:
        # No swap for pods: memory+swap equals the memory limit.
        resources["memory"] = {"limit": memory_limit, "swap": memory_limit}
    if oom_group:
        # kubelet 1.28+ on cgroup v2: an OOM kill takes the whole container.
        resources["unified"] = {"memory.oom.group": "1"}
    return resources


def runc_cmd(prefix, *args):
    log = run_dir(prefix) / "logs" / "runc.log"
    return [RUNC, "--root", str(runc_root(prefix)), "--log", str(log)] + list(args)


def start_container(prefix, runc_id, config):
    """runc run -d; returns the host PID of the container's init process."""
    base = run_dir(prefix)
    bundle = base / "bundles" / runc_id
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
    pid_file = bundle / "init.pid"
    inflight = base / "inflight"
    inflight.mkdir(exist_ok=True)
    with open(str(base / "logs" / (runc_id + ".log")), "ab") as log:
        proc = subprocess.Popen(
            runc_cmd(prefix, "run", "-d", "--pid-file", str(pid_file), "--bundle", str(bundle),
                     runc_id),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True)
    # Remember the runc process so destroy can stop it if we die mid-create.
    marker = inflight / str(proc.pid)
    marker.write_text(runc_id + "\n")
    try:
        rc = proc.wait(timeout=60)
    finally:
        if proc.returncode is not None:
            marker.unlink()
    if rc != 0:
        raise LabError("runc run %s failed (rc %d), see %s" % (
            runc_id, rc, base / "logs" / (runc_id + ".log")))
    return int(pid_file.read_text().strip())


def remove_container(prefix, runc_id):
    for args in (("kill", runc_id, "KILL"), ("delete", "-f", runc_id)):
        subprocess.run(runc_cmd(prefix, *args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def listening_inodes(pid, port):
    """Inodes of TCP sockets listening on port in pid's network namespace."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def pid_socket_inodes(pid):
    inodes = set()
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def wait_listening(pid, port, timeout=5.0):
    """True once pid itself (not some other process) listens on port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return False
        if listening_inodes(pid, port) & pid_socket_inodes(pid):
            return True
        time.sleep(0.02)
    return False


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Same option as busybox httpd, so TIME_WAIT leftovers do not count as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortPicker:
    """Free loopback ports, from --port-base upward or from the kernel."""

    def __init__(self, base):
        self.next = base
        self.given = set()

    def pick(self):
        for _ in range(1000):
            if self.next:
                port, self.next = self.next, self.next + 1
            else:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
            if port not in self.given and port_is_free(port):
                self.given.add(port)
                return port
        raise LabError("no free loopback port found")


# ---------------------------------------------------------------- create

def new_container_id():
    return secrets.token_hex(32)


def start_sandbox(state, pod, netns):
    prefix = state["prefix"]
    sandbox_id = new_container_id()
    cgroup_path = pod["cgroup_path"] + "/" + container_leaf(
        pod["cgroup_driver"], pod["runtime"], sandbox_id)
    runc_id = "%s-%s-pause-%s" % (prefix, pod["name"], sandbox_id[:12])
    config = container_config(prefix, state["rootfs"], ["/pause"], pod["name"], cgroup_path,
                              container_resources(None, None, None), netns)
    pod["sandbox"] = {"id": sandbox_id, "runc_id": runc_id, "pid": None,
                      "cgroup_path": cgroup_path,
                      "runtime_id": runtime_id(pod["runtime"], sandbox_id)}
    pod["sandbox"]["pid"] = start_container(prefix, runc_id, config)


def start_app(state, pod, spec, ports, state_dir, port=None, restart_count=0):
    """Start the pod's app container and append it to pod["containers"]."""
    prefix = state["prefix"]
    netns = state.get("netns")
    oom_group = state.get("cgroup_version") == 2
    if spec["app"] == "command":
        return start_command_app(state, pod, spec, ports, port, restart_count, oom_group, state_dir)
    for _attempt in range(3):
        container_id = new_container_id()
        cgroup_path = pod["cgroup_path"] + "/" + container_leaf(
            pod["cgroup_driver"], pod["runtime"], container_id)
        runc_id = "%s-%s-app-%s" % (prefix, pod["name"], container_id[:12])
        if spec["app"] == "httpd":
            port = port or ports.pick()
            command = ["/bin/httpd", "-f", "-p", "127.0.0.1:%d" % port, "-h", "/www"]
        else:
            port = None
            command = list(SLEEP_FOREVER)
        container = {
            "name": pod["name"], "id": container_id,
            "runtime_id": runtime_id(pod["runtime"], container_id),
            "runc_id": runc_id, "sandbox": False, "pid": None, "cgroup_path": cgroup_path,
            "memory_limit_bytes": spec["memory_limit"],
            "memory_request_bytes": spec["memory_request"],
            "cpu_limit_cores": spec["cpu_limit"], "cpu_request_cores": spec["cpu_request"],
            "image": IMAGE, "http_port": port, "command": command,
            "restart_count": restart_count, "oom_group": oom_group,
        }
        pod["containers"].append(container)
        save_state(state, state_dir)
        config = container_config(
            prefix, state["rootfs"], command, pod["name"], cgroup_path,
            container_resources(spec["memory_limit"], spec["cpu_limit"], spec["cpu_request"],
                                oom_group),
            netns)
        container["pid"] = start_container(prefix, runc_id, config)
        save_state(state, state_dir)
        if port is None or wait_listening(container["pid"], port):
            return container
        # Someone took the port between our probe and httpd's bind: retry elsewhere.
        remove_container(prefix, runc_id)
        pod["containers"].remove(container)
        port = None
    raise LabError("httpd of pod %s did not come up" % pod["name"])


def pod_spec(name):
    for spec in POD_SPECS:
        if spec["name"] == name:
            return spec
    raise LabError("no pod named %r in the lab" % name)


def set_pod_limits(pod, spec):
    """Pod-level cgroup settings as kubelet writes them (no pod overhead)."""
    path = pod["cgroup_path"]
    if cgroup_version() == 2:
        write_cgroup_file("unified", path, "cpu.weight", cpu_weight(cpu_shares(spec["cpu_request"])))
        if spec["cpu_limit"]:
            write_cgroup_file("unified", path, "cpu.max", "%d %d" % (
                int(round(spec["cpu_limit"] * CPU_PERIOD_US)), CPU_PERIOD_US))
        if spec["memory_limit"]:
            write_cgroup_file("unified", path, "memory.max", spec["memory_limit"])
        return
    write_cgroup_file("cpu", path, "cpu.shares", cpu_shares(spec["cpu_request"]))
    if spec["cpu_limit"]:
        write_cgroup_file("cpu", path, "cpu.cfs_period_us", CPU_PERIOD_US)
        write_cgroup_file("cpu", path, "cpu.cfs_quota_us",
                          int(round(spec["cpu_limit"] * CPU_PERIOD_US)))
    if spec["memory_limit"]:
        write_cgroup_file("memory", path, "memory.limit_in_bytes", spec["memory_limit"])


def set_qos_parents(cgroup_root, version):
    """QoS parent dirs with kubelet's cpu.shares (v1) or cpu.weight (v2).

    v1: both driver layouts. v2: only the systemd-driver one, the layout of v2 nodes.
    """
    burstable_shares = sum(cpu_shares(s["cpu_request"]) for s in POD_SPECS
                           if s["qos_class"] == "Burstable")
    layouts = [("/kubepods.slice", "/kubepods.slice/kubepods-burstable.slice",
                "/kubepods.slice/kubepods-besteffort.slice")]
    if version == 1:
        layouts.insert(0, ("/kubepods", "/kubepods/burstable", "/kubepods/besteffort"))
    for kubepods, burstable, besteffort in layouts:
        for sub in (kubepods, burstable, besteffort):
            make_cgroup(cgroup_root + sub)
        if version == 2:
            write_cgroup_file("unified", cgroup_root + burstable, "cpu.weight",
                              cpu_weight(burstable_shares))
            write_cgroup_file("unified", cgroup_root + besteffort, "cpu.weight", cpu_weight(2))
        else:
            write_cgroup_file("cpu", cgroup_root + burstable, "cpu.shares", burstable_shares)
            write_cgroup_file("cpu", cgroup_root + besteffort, "cpu.shares", 2)


def pod_driver(spec, version):
    # v2 nodes run kubelet with the systemd cgroup driver; keep each pod's v1 driver on v1.
    return "systemd" if version == 2 else spec["cgroup_driver"]


def check_new(prefix, state_dir):
    check_prefix(prefix)
    if state_path(state_dir, prefix).exists() or run_dir(prefix).exists() or any(
            os.path.exists(d) for d in cgroup_tree_dirs("/" + prefix)):
        raise LabError("lab %s already exists; destroy it first" % prefix)


def create(prefix, state_dir, node_name, port_base, netns, hang_after_pods=None):
    """Build the lab; the caller has run check_new(prefix)."""
    base = run_dir(prefix)
    version = cgroup_version()
    state = {
        "prefix": prefix, "node_name": node_name, "cgroup_root": "/" + prefix,
        "cgroup_version": version,
        "runc_root": str(runc_root(prefix)), "rootfs": str(base / "rootfs"),
        "run_dir": str(base), "netns": netns, "created_at": time.time(),
        "complete": False, "pods": [],
    }
    # The state file comes first so destroy can find even a half-built lab.
    save_state(state, state_dir)
    for sub in ("runc", "rootfs", "bundles", "logs"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    build_rootfs(Path(state["rootfs"]), pause_binary(state_dir))

    ports = PortPicker(port_base)
    set_qos_parents(state["cgroup_root"], version)
    for spec in POD_SPECS:
        uid = str(uuid.uuid4())
        driver = pod_driver(spec, version)
        pod = {
            "name": spec["name"], "namespace": "default", "uid": uid,
            "qos_class": spec["qos_class"], "cgroup_driver": driver,
            "runtime": spec["runtime"],
            "cgroup_path": pod_cgroup_path(state["cgroup_root"], driver,
                                           spec["qos_class"], uid),
            "labels": {"app": spec["name"], "chaosfleet.io/lab": prefix},
            "annotations": {"kubernetes.io/config.source": "api",
                            "chaosfleet.io/node": node_name},
            "containers": [], "sandbox": None,
        }
        state["pods"].append(pod)
        save_state(state, state_dir)
        make_cgroup(pod["cgroup_path"])
        set_pod_limits(pod, spec)
        start_sandbox(state, pod, netns)
        save_state(state, state_dir)
        start_app(state, pod, spec, ports, state_dir)
        if hang_after_pods is not None and len(state["pods"]) >= hang_after_pods:
            # Test aid: hold a half-built lab so a test can kill create mid-way.
            while True:
                time.sleep(60)
    state["complete"] = True
    return save_state(state, state_dir)


# ---------------------------------------------------------------- restart

def restart(prefix, state_dir, pod_name):
    """Kill the pod's app container and start it again under a new container ID."""
    state = load_state(state_dir, check_prefix(prefix))
    if state is None:
        raise LabError("no state file for %s" % prefix)
    pod = next((p for p in state["pods"] if p["name"] == pod_name), None)
    if pod is None:
        raise LabError("lab %s has no pod %r" % (prefix, pod_name))
    spec = pod.get("spec") or pod_spec(pod_name)
    old = next(c for c in pod["containers"] if not c["sandbox"])
    remove_container(prefix, old["runc_id"])
    kill_cgroup_tree(old["cgroup_path"])
    remove_cgroup_tree(old["cgroup_path"])
    pod["containers"].remove(old)
    port_base = old["http_port"] if old["http_port"] else None
    start_app(state, pod, spec, PortPicker(port_base), state_dir,
              restart_count=old.get("restart_count", 0) + 1)
    return save_state(state, state_dir)


# ---------------------------------------------------------------- pods with a command of their own

# Test aid (tests/integration/headroom_fixtures.py): a pod whose app is any command, e.g. a Python
# service run with the node's own /usr (--host-runtime), with bind mounts and a data directory on disk.
MERGED_USR = ("bin", "sbin", "lib", "lib64")


def data_dir(state_dir, prefix, pod_name):
    """Host directory a pod's --data-dir-at is bound from: on disk beside the state file, never on /run."""
    return Path(state_dir) / (prefix + ".data") / pod_name


def filesystem_type(path):
    best, fstype = "", None
    path = os.path.realpath(str(path))
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, _, right = line.partition(" - ")
            point = unescape(left.split()[4])
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, fstype = point, right.split()[0]
    return fstype


def bind_mount(source, destination, read_only):
    return {"destination": destination, "type": "bind", "source": str(source),
            "options": ["rbind", "ro" if read_only else "rw", "nosuid", "nodev"]}


def pod_rootfs(state, pod_name, host_runtime):
    """A pod's own read-only rootfs: busybox, or the host's /usr bound in (merged /usr links) for --host-runtime."""
    rootfs = Path(state["run_dir"]) / "pods" / pod_name / "rootfs"
    if rootfs.exists():
        return rootfs
    if not host_runtime:
        return Path(state["rootfs"])
    for sub in ("usr", "proc", "dev", "sys", "tmp", "etc"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    for name in MERGED_USR:
        os.symlink("usr/" + name, str(rootfs / name))
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    return rootfs


def start_command_app(state, pod, spec, ports, port, restart_count, oom_group, state_dir):
    """Start a pod's command app (spec["command"], "{port}" replaced) and append it to pod["containers"]."""
    prefix = state["prefix"]
    rootfs = pod_rootfs(state, pod["name"], spec.get("host_runtime"))
    mounts = [bind_mount("/usr", "/usr", True)] if spec.get("host_runtime") else []
    for source, destination, read_only in spec.get("binds", []):
        (rootfs / destination.lstrip("/")).mkdir(parents=True, exist_ok=True)
        mounts.append(bind_mount(source, destination, read_only))
    for _attempt in range(3):
        container_id = new_container_id()
        cgroup_path = pod["cgroup_path"] + "/" + container_leaf(
            pod["cgroup_driver"], pod["runtime"], container_id)
        runc_id = "%s-%s-app-%s" % (prefix, pod["name"], container_id[:12])
        port = port or ports.pick()
        command = [word.replace("{port}", str(port)) for word in spec["command"]]
        container = {
            "name": pod["name"], "id": container_id,
            "runtime_id": runtime_id(pod["runtime"], container_id),
            "runc_id": runc_id, "sandbox": False, "pid": None, "cgroup_path": cgroup_path,
            "memory_limit_bytes": spec["memory_limit"],
            "memory_request_bytes": spec["memory_request"],
            "cpu_limit_cores": spec["cpu_limit"], "cpu_request_cores": spec["cpu_request"],
            "image": "host-runtime" if spec.get("host_runtime") else IMAGE, "http_port": port,
            "command": command, "restart_count": restart_count, "oom_group": oom_group,
        }
        pod["containers"].append(container)
        save_state(state, state_dir)
        config = container_config(
            prefix, rootfs, command, pod["name"], cgroup_path,
            container_resources(spec["memory_limit"], spec["cpu_limit"], spec["cpu_request"], oom_group),
            state.get("netns"), mounts)
        container["pid"] = start_container(prefix, runc_id, config)
        save_state(state, state_dir)
        if wait_listening(container["pid"], port, timeout=spec.get("ready_timeout", 60)):
            return container
        remove_container(prefix, runc_id)
        kill_cgroup_tree(cgroup_path)
        remove_cgroup_tree(cgroup_path)
        pod["containers"].remove(container)
        save_state(state, state_dir)
        if spec.get("fixed_port"):
            break
        port = None
    raise LabError("the app of pod %s did not listen (see %s)" % (
        pod["name"], run_dir(prefix) / "logs"))


def add_pod(prefix, state_dir, name, memory_limit, cpu_limit, command, binds=(), data_dir_at=None,
            host_runtime=False, port=None, ready_timeout=60):
    """Add a Burstable cgroupfs pod (sandbox + one app container running command) to a lab."""
    state = load_state(state_dir, check_prefix(prefix))
    if state is None:
        raise LabError("no state file for %s" % prefix)
    if not re.match(r"^[a-z][a-z0-9-]{0,30}$", name or ""):
        raise LabError("pod name %r: lower-case letters, digits and -" % name)
    if any(p["name"] == name for p in state["pods"]) or any(s["name"] == name for s in POD_SPECS):
        raise LabError("lab %s already has a pod %r" % (prefix, name))
    binds = [list(b) for b in binds]
    if data_dir_at:
        directory = data_dir(state_dir, prefix, name)
        directory.mkdir(parents=True, exist_ok=True)
        fstype = filesystem_type(directory)
        if fstype in ("tmpfs", "ramfs"):
            raise LabError("%s is on %s, whose pages the kernel cannot evict; use a disk" % (directory, fstype))
        binds.append([str(directory), data_dir_at, False])
    spec = {"name": name, "qos_class": "Burstable", "cgroup_driver": "cgroupfs", "runtime": "containerd",
            "app": "command", "command": list(command), "binds": binds, "host_runtime": bool(host_runtime),
            "memory_limit": memory_limit, "memory_request": memory_limit // 2 if memory_limit else None,
            "cpu_limit": cpu_limit, "cpu_request": (cpu_limit / 2.0) if cpu_limit else 0.1,
            "fixed_port": bool(port), "ready_timeout": ready_timeout}
    uid = str(uuid.uuid4())
    pod = {
        "name": name, "namespace": "default", "uid": uid, "qos_class": spec["qos_class"],
        "cgroup_driver": "cgroupfs", "runtime": spec["runtime"],
        "cgroup_path": pod_cgroup_path(state["cgroup_root"], "cgroupfs", spec["qos_class"], uid),
        "labels": {"app": name, "chaosfleet.io/lab": prefix},
        "annotations": {"kubernetes.io/config.source": "api", "chaosfleet.io/node": state["node_name"]},
        "containers": [], "sandbox": None, "spec": spec,
    }
    state["pods"].append(pod)
    save_state(state, state_dir)
    try:
        make_cgroup(pod["cgroup_path"])
        set_pod_limits(pod, spec)
        start_sandbox(state, pod, state.get("netns"))
        save_state(state, state_dir)
        start_command_app(state, pod, spec, PortPicker(None), port, 0, state.get("cgroup_version") == 2, state_dir)
    except BaseException:
        remove_pod(prefix, state_dir, name)
        raise
    return save_state(state, state_dir)


def remove_pod(prefix, state_dir, name):
    """Stop a pod's containers, remove its cgroups, rootfs, bundles and data dir, and drop it from the state."""
    state = load_state(state_dir, check_prefix(prefix))
    if state is None:
        raise LabError("no state file for %s" % prefix)
    pod = next((p for p in state["pods"] if p["name"] == name), None)
    if pod is None:
        raise LabError("lab %s has no pod %r" % (prefix, name))
    for container in list(pod["containers"]) + ([pod["sandbox"]] if pod.get("sandbox") else []):
        remove_container(prefix, container["runc_id"])
        shutil.rmtree(str(run_dir(prefix) / "bundles" / container["runc_id"]), ignore_errors=True)
    kill_cgroup_tree(pod["cgroup_path"])
    remove_cgroup_tree(pod["cgroup_path"])
    shutil.rmtree(str(run_dir(prefix) / "pods" / name), ignore_errors=True)
    shutil.rmtree(str(data_dir(state_dir, prefix, name)), ignore_errors=True)
    state["pods"].remove(pod)
    return save_state(state, state_dir)


# ---------------------------------------------------------------- destroy

def kill_cgroup_tree(cgroup_root, timeout=10.0):
    """SIGKILL every process in cgroup_root (any hierarchy) until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        pids = pids_in_tree(cgroup_root)
        if not pids:
            return
        for pid in pids:
            # Only PIDs that really sit in this lab's cgroups; re-check before each kill.
            if pid_in_cgroup_root(pid, cgroup_root):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if time.monotonic() > deadline:
            raise LabError("processes still in %s: %s" % (cgroup_root, sorted(pids)))
        time.sleep(0.05)


def remove_cgroup_tree(cgroup_root, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        busy = []
        for directory in cgroup_tree_dirs(cgroup_root):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                busy.append(directory)
        if not busy:
            return
        if time.monotonic() > deadline:
            raise LabError("cgroup dirs still busy: %s" % busy)
        time.sleep(0.05)


def stop_inflight_runc(prefix):
    """Kill `runc run` processes a killed create left behind (checked by cmdline)."""
    inflight = run_dir(prefix) / "inflight"
    if not inflight.is_dir():
        return
    root_arg = str(runc_root(prefix))
    for marker in inflight.iterdir():
        try:
            pid = int(marker.name)
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                argv = handle.read().split(b"\0")
        except (ValueError, OSError):
            continue
        if root_arg.encode() in argv and os.path.basename(argv[0]) == b"runc":
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def runc_container_ids(prefix):
    root = runc_root(prefix)
    if not root.is_dir():
        return []
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir())


def mounts_under(directory):
    prefix = directory.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as handle:
        points = [unescape(line.split()[4]) for line in handle]
    return [p for p in points if p == directory or p.startswith(prefix)]


def destroy(prefix, state_dir):
    check_prefix(prefix)
    cgroup_root = "/" + prefix
    stop_inflight_runc(prefix)
    for container_id in runc_container_ids(prefix):
        remove_container(prefix, container_id)
    kill_cgroup_tree(cgroup_root)
    remove_cgroup_tree(cgroup_root)
    base = run_dir(prefix)
    if base.exists():
        leftover = mounts_under(str(base))
        if leftover:
            raise LabError("refusing to delete %s, still mounted: %s" % (base, leftover))
        shutil.rmtree(str(base))
    shutil.rmtree(str(Path(state_dir) / (prefix + ".data")), ignore_errors=True)  # add-pod data dirs
    for path in (state_path(state_dir, prefix),
                 state_path(state_dir, prefix).with_name(prefix + ".json.tmp")):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def all_prefixes(state_dir, stem="cflab-", pattern=PREFIX_RE):
    """Every lab with this name stem on the host: state files, cgroups at a hierarchy root, run dirs."""
    found = set()
    state_dir = Path(state_dir)
    if state_dir.is_dir():
        found.update(p.name[:-len(".json")] for p in state_dir.glob(stem + "*.json"))
    for _name, mountpoint, root in cgroup_hierarchies():
        if root != "/" or not os.path.isdir(mountpoint):
            continue
        found.update(entry for entry in os.listdir(mountpoint) if entry.startswith(stem))
    if RUN_BASE.is_dir():
        found.update(p.name for p in RUN_BASE.glob(stem + "*"))
    return sorted(p for p in found if pattern.match(p))


# ---------------------------------------------------------------- CLI

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name, help_text):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR),
                         help="where <prefix>.json lives (default %(default)s)")
        return sub

    sub = add("create", "build a lab, print its state file path")
    sub.add_argument("--prefix", default="cflab-" + secrets.token_hex(3))
    sub.add_argument("--node-name", default="localhost")
    sub.add_argument("--port-base", type=int, default=0,
                     help="first loopback port to try for the httpd apps (default: any free)")
    sub.add_argument("--netns", default=None,
                     help="run the containers in this `ip netns` instead of the host's")
    sub.add_argument("--keep-on-failure", action="store_true",
                     help="leave a half-built lab for inspection")
    sub.add_argument("--hang-after-pods", type=int, default=None, help=argparse.SUPPRESS)
    sub = add("destroy", "tear a lab down")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--prefix")
    which.add_argument("--all", action="store_true", help="every cflab-* lab on this host")
    sub = add("status", "print the state JSON")
    sub.add_argument("--prefix", required=True)
    sub = add("restart", "re-create a pod's app container with a new container ID")
    sub.add_argument("--prefix", required=True)
    sub.add_argument("--pod", required=True)
    sub = add("add-pod", "add a pod whose app is COMMAND (after --; {port} is its port)")
    sub.add_argument("--prefix", required=True)
    sub.add_argument("--pod", required=True)
    sub.add_argument("--memory-limit", type=int, required=True, help="bytes")
    sub.add_argument("--cpu-limit", type=float, default=None, help="cores")
    sub.add_argument("--port", type=int, default=0, help="the app's port (default: a free one)")
    sub.add_argument("--host-runtime", action="store_true",
                     help="bind the host's /usr read-only into the pod's rootfs (run host binaries)")
    sub.add_argument("--bind", action="append", default=[], metavar="SRC:DST[:ro]")
    sub.add_argument("--data-dir-at", default=None, metavar="DST",
                     help="bind <state-dir>/<prefix>.data/<pod> (on disk, never tmpfs) read-write at DST")
    sub.add_argument("--ready-timeout", type=float, default=60.0)
    sub.add_argument("cmd", nargs=argparse.REMAINDER)
    sub = add("remove-pod", "stop and remove a pod added by add-pod")
    sub.add_argument("--prefix", required=True)
    sub.add_argument("--pod", required=True)
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        parser.error("the lab needs root")
    # A TERM during create should clean up like an error does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.command == "create":
            check_new(args.prefix, args.state_dir)
            try:
                print(create(args.prefix, args.state_dir, args.node_name, args.port_base or None,
                             args.netns, args.hang_after_pods))
            except BaseException:
                if not args.keep_on_failure:
                    destroy(args.prefix, args.state_dir)
                raise
        elif args.command == "destroy":
            prefixes = all_prefixes(args.state_dir) if args.all else [args.prefix]
            for prefix in prefixes:
                destroy(prefix, args.state_dir)
                print("destroyed " + prefix)
        elif args.command == "status":
            state = load_state(args.state_dir, check_prefix(args.prefix))
            if state is None:
                raise LabError("no state file for %s" % args.prefix)
            print(json.dumps(state, indent=2))
        elif args.command == "restart":
            print(restart(args.prefix, args.state_dir, args.pod))
        elif args.command == "add-pod":
            command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not command:
                raise LabError("add-pod needs a command after --")
            binds = []
            for text in args.bind:
                parts = text.split(":")
                if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "ro"):
                    raise LabError("--bind %r: SRC:DST or SRC:DST:ro" % text)
                binds.append([parts[0], parts[1], len(parts) == 3])
            print(add_pod(args.prefix, args.state_dir, args.pod, args.memory_limit, args.cpu_limit, command,
                          binds, args.data_dir_at, args.host_runtime, args.port or None, args.ready_timeout))
        elif args.command == "remove-pod":
            print(remove_pod(args.prefix, args.state_dir, args.pod))
    except LabError as exc:
        print("lab: error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
