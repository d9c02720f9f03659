"""A multi-node lab: N "nodes" on this host, each reachable only over real SSH.

Run as root. Standard library only.

    python3 tests/lab/fleet.py up [--nodes 3] [--name cffleet-XXXX] [--no-pods]
    python3 tests/lab/fleet.py down (--name NAME | --all)
    python3 tests/lab/fleet.py status --name NAME
    python3 tests/lab/fleet.py ssh --name NAME --node node1 -- COMMAND...
    python3 tests/lab/fleet.py link --name NAME --node node1 (up|down)
    python3 tests/lab/fleet.py inventory --name NAME     (rewrite it after a pod restart)

Each node is:
- a network namespace with a veth pair to the host, addresses in a /30 of a private
  /24 the fleet picks after checking the host uses nothing in it;
- a PID 1 of its own (`unshare` of mount, UTS, IPC, PID and cgroup namespaces) whose
  cgroup namespace is rooted at /<fleet>-nI, with the cgroup hierarchies, /proc, /sys
  and a private /run mounted afresh, so the node sees only its own processes and
  cgroups (node A cannot see node B's pods);
- one sshd (key auth with keys the fleet generates, host keys pinned in known_hosts);
- its own lab pods, made by `tests/lab/lab.py create` run on the node over SSH.

Killing a node's `unshare` process kills its PID 1, and the kernel then kills every
process in the node (sshd, pods, stress), so `down` is complete even when the node's
state is a mess. `up` prints the path of the fleet's state file; the Ansible inventory
is next to it (inventory.json, group `fleet`, each host with `fleet_pods`).

Files: /tmp/<fleet>/ holds the state, keys, inventory and each node's /var/tmp
(nodes/nodeI/vartmp, where the node keeps its lab state in /var/tmp/cflab-state). The
node's cgroups are /<fleet>-nI/... on the host and /... on the node.
"""

import argparse
import fcntl
import ipaddress
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LAB_SCRIPT = HERE / "lab.py"
BASE = Path("/tmp")                     # fleet dirs: /tmp/cffleet-XXXX (nodes cover /var/tmp and /run)
NAME_RE = re.compile(r"^cffleet-[0-9a-f]{4}$")
NODE_PYTHON = "/usr/bin/python3"
BYTECODE_SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bytecode_site")
NODE_LAB_STATE = "/var/tmp/cflab-state"  # lab.py --state-dir, as the node sees it
READY_TIMEOUT = 20.0
SUDO_USER = "cflab-op"  # every node's non-root login with passwordless sudo, for tests of become
SUDO_HOME = "/run/cflab-home/" + SUDO_USER  # on the node's private /run
SSH_OPTIONS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
               "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=3"]


class FleetError(Exception):
    pass


def run(argv, check=True, timeout=120, **kwargs):
    result = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise FleetError("%s failed (rc %d): %s" % (" ".join(argv), result.returncode, result.stderr.strip()))
    return result


# ---------------------------------------------------------------- names and state

def fleet_dir(name):
    return BASE / name


def state_file(name):
    return fleet_dir(name) / "fleet.json"


def check_name(name):
    if not NAME_RE.match(name or ""):
        raise FleetError("fleet name %r must match %s" % (name, NAME_RE.pattern))
    return name


def node_names(name, index):
    short = name[len("cffleet-"):]
    return {
        "name": "node%d" % index,
        "netns": "%s-n%d" % (name, index),
        "host_if": "cf%sh%d" % (short, index),     # at most 15 characters
        "cgroup": "/%s-n%d" % (name, index),        # the node's cgroup namespace root (host view)
        "lab_prefix": "cflab-ff%s-n%d" % (short, index),
    }


def save_state(state):
    path = state_file(state["name"])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(str(tmp), str(path))
    return path


def load_state(name):
    try:
        return json.loads(state_file(name).read_text())
    except FileNotFoundError:
        return None


# ---------------------------------------------------------------- processes we started

def start_time(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            text = handle.read()
    except OSError:
        return None
    return int(text[text.rfind(")") + 2:].split()[19])


def alive(record):
    return bool(record) and record.get("pid") and start_time(record["pid"]) == record.get("start_time")


def kill_recorded(record, sig=signal.SIGKILL):
    """Signal a PID we started, only while it is still the same process."""
    if alive(record):
        try:
            os.kill(record["pid"], sig)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- cgroups (host view)

def cgroup_mounts():
    """(fstype, options, mountpoint) of each cgroup hierarchy mounted at its root."""
    found, seen = [], set()
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, right = line.split(" - ", 1) if " - " in line else (line, "")
            fields, tail = left.split(), right.split()
            if len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2") or fields[3] != "/" or fields[2] in seen:
                continue
            seen.add(fields[2])
            if tail[0] == "cgroup2":
                options = ""
            else:
                options = ",".join(o for o in tail[2].split(",")
                                   if o not in ("rw", "ro") and ("=" not in o or o.startswith("name=")))
            found.append((tail[0], options, fields[4]))
    if not any(kind == "cgroup" and "memory" in opts.split(",") for kind, opts, _mountpoint in found):
        raise FleetError("the fleet needs the cgroup v1 memory hierarchy (this host has none)")
    return found


def make_node_cgroup(path):
    for kind, options, mountpoint in cgroup_mounts():
        directory = mountpoint + path
        os.makedirs(directory, exist_ok=True)
        if kind == "cgroup" and "cpuset" in options.split(","):
            for name in ("cpuset.cpus", "cpuset.mems"):
                with open(os.path.join(directory, name)) as handle:
                    if handle.read().strip():
                        continue
                with open(os.path.join(mountpoint, name)) as handle:
                    value = handle.read().strip()
                with open(os.path.join(directory, name), "w") as handle:
                    handle.write(value)


def join_node_cgroup(path):
    for _kind, _options, mountpoint in cgroup_mounts():
        with open(os.path.join(mountpoint + path, "cgroup.procs"), "w") as handle:
            handle.write(str(os.getpid()))


def cgroup_tree(path):
    """Every directory of the cgroup tree at path, in every hierarchy, deepest first."""
    out = []
    for _kind, _options, mountpoint in cgroup_mounts():
        top = mountpoint + path
        if os.path.isdir(top):
            out += [current for current, _dirs, _files in os.walk(top, topdown=False)]
    return out


def tree_pids(path):
    pids = set()
    for directory in cgroup_tree(path):
        try:
            with open(os.path.join(directory, "cgroup.procs")) as handle:
                pids.update(int(line) for line in handle if line.strip())
        except OSError:
            pass
    return pids


def in_tree(pid, path):
    try:
        with open("/proc/%d/cgroup" % pid) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return False
    return any(line.split(":", 2)[2] == path or line.split(":", 2)[2].startswith(path + "/") for line in lines)


def remove_node_cgroup(path, timeout=20.0):
    """Wait for the node's processes to die, kill stragglers in its tree, remove its cgroups."""
    deadline = time.monotonic() + timeout
    while tree_pids(path):
        if time.monotonic() > deadline:
            # Only processes still sitting in this node's cgroups; checked again right before.
            for pid in tree_pids(path):
                if in_tree(pid, path):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if time.monotonic() > deadline + 10:
                raise FleetError("processes still in %s: %s" % (path, sorted(tree_pids(path))))
        time.sleep(0.05)
    while True:
        busy = []
        for directory in cgroup_tree(path):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError:
                busy.append(directory)
        if not busy:
            return
        if time.monotonic() > deadline + 10:
            raise FleetError("cgroup dirs still busy: %s" % busy)
        time.sleep(0.05)


# ---------------------------------------------------------------- addresses

def used_networks():
    nets = []
    for argv in (["ip", "-4", "-o", "addr", "show"], ["ip", "-4", "route", "show", "table", "all"]):
        for line in run(argv).stdout.splitlines():
            for word in line.split():
                if re.match(r"^\d+\.\d+\.\d+\.\d+(/\d+)?$", word):
                    try:
                        nets.append(ipaddress.ip_network(word, strict=False))
                    except ValueError:
                        pass
    return nets


def pick_subnet():
    """A private /24 in 10.0.0.0/8 that no host address or route overlaps."""
    used = used_networks()
    rng = random.SystemRandom()
    for _attempt in range(500):
        candidate = ipaddress.ip_network("10.%d.%d.0/24" % (rng.randint(64, 250), rng.randint(0, 255)))
        if not any(candidate.overlaps(net) for net in used if net.prefixlen > 0):
            return candidate
    raise FleetError("no unused private /24 found in 10.64.0.0-10.250.255.0")


def node_addresses(subnet, index):
    """Host and node address of node ``index`` (its own /30 in the fleet's /24)."""
    base = int(subnet.network_address) + 4 * (index - 1)
    return str(ipaddress.ip_address(base + 1)), str(ipaddress.ip_address(base + 2))


# ---------------------------------------------------------------- keys

def keygen(path, comment):
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return Path(str(path) + ".pub").read_text().strip()


def ssh_argv(state, node, *command):
    return (["ssh", "-i", state["client_key"], "-o", "UserKnownHostsFile=" + state["known_hosts"],
             "-o", "StrictHostKeyChecking=yes"] + SSH_OPTIONS +
            ["root@" + node["node_ip"], "--", " ".join(shlex.quote(word) for word in command)])


# ---------------------------------------------------------------- node PID 1 (runs inside the namespaces)

def node_boot(spec_path):
    """PID 1 of a node: mount its own view of the system, start sshd, reap children."""
    spec = json.loads(Path(spec_path).read_text())
    # Private /run: the node's sshd, experiment state and lab run dirs stay on the node.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "run", "/run"], check=True)
    # Each hierarchy is the host's node directory bind-mounted at the usual place. (A fresh
    # cgroup mount made inside the cgroup namespace works too, but mountinfo then shows its
    # root as "/..", which tools that read mountinfo take for a partial view.)
    staged = []
    for index, (_kind, _options, mountpoint) in enumerate(spec["cgroup_mounts"]):
        stage = "/run/.cgroup-stage/%d" % index
        os.makedirs(stage)
        subprocess.run(["mount", "--bind", mountpoint + spec["cgroup"], stage], check=True)
        staged.append((stage, mountpoint))
    # Detach the host's /sys and /proc (with the host's whole cgroup hierarchies under /sys)
    # rather than cover them, so the node's mountinfo lists only what the node should see.
    for argv in (["umount", "--lazy", "/sys"],
                 ["umount", "--lazy", "/proc"],
                 ["mount", "-t", "proc", "proc", "/proc"],
                 ["mount", "-t", "sysfs", "sysfs", "/sys"],
                 ["mount", "-t", "tmpfs", "-o", "mode=755", "cgroup", "/sys/fs/cgroup"]):
        subprocess.run(argv, check=True)
    for stage, mountpoint in staged:
        os.makedirs(mountpoint, exist_ok=True)
        subprocess.run(["mount", "--move", stage, mountpoint], check=True)
    shutil.rmtree("/run/.cgroup-stage")
    os.makedirs("/run/sshd", 0o755)
    os.makedirs("/run/netns", 0o755)
    # lab.py --netns NAME joins /var/run/netns/NAME: make it name this node's own netns.
    netns_file = "/run/netns/" + spec["netns"]
    open(netns_file, "w").close()
    subprocess.run(["mount", "--bind", "/proc/self/ns/net", netns_file], check=True)
    subprocess.run(["mount", "--bind", spec["vartmp"], "/var/tmp"], check=True)
    # The host's root dotfiles start pyenv, whose rehash lock can stall every SSH command for 60 s
    # once a killed session leaves it behind; nodes log in like a plain server instead.
    plain_rc = Path(spec["vartmp"]).parent / "plain-rc"
    plain_rc.write_text("# chaosfleet lab node: root logs in without the host's dotfiles\n")
    for dotfile in (".bashrc", ".profile", ".bash_profile", ".bash_login"):
        if os.path.isfile("/root/" + dotfile):
            subprocess.run(["mount", "--bind", "-o", "ro", str(plain_rc), "/root/" + dotfile], check=True)
    socket.sethostname(spec["hostname"])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    add_sudo_user(Path(spec["vartmp"]).parent / "etc", spec["authorized_keys"], spec["hostname"])

    sshd = subprocess.Popen([
        "/usr/sbin/sshd", "-D", "-f", "/dev/null", "-E", spec["sshd_log"],
        "-o", "ListenAddress=%s:22" % spec["node_ip"],
        "-o", "HostKey=" + spec["host_key"],
        "-o", "AuthorizedKeysFile=%s %s/.ssh/authorized_keys" % (spec["authorized_keys"], SUDO_HOME),
        "-o", "PidFile=/run/sshd.pid",
        "-o", "StrictModes=no",
        "-o", "PermitRootLogin=prohibit-password",
        "-o", "PasswordAuthentication=no",
        "-o", "KbdInteractiveAuthentication=no",
        "-o", "UsePAM=no",
        "-o", "MaxStartups=100:30:200",
        "-o", "MaxSessions=100",
        "-o", "Subsystem=sftp internal-sftp",
        "-o", "LogLevel=ERROR",
        # Module runs keep their bytecode in the node's /run (bytecode_site/zip_bytecode_cache.py).
        "-o", "SetEnv=PYTHONPATH=%s CFLAB_BYTECODE_CACHE=/run/cflab-bytecode" % BYTECODE_SITE,
    ], stdin=subprocess.DEVNULL, close_fds=True)
    Path(spec["ready_file"]).write_text(str(sshd.pid))

    stopping = []

    def on_term(_signum, _frame):
        stopping.append(True)
        try:
            sshd.terminate()
        except OSError:
            pass

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    # Reap every orphan (experiment supervisors, container shims) until sshd is gone.
    while True:
        try:
            pid, _status = os.wait()
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
        if pid == sshd.pid:
            return 0 if stopping else 1


def add_sudo_user(etc, authorized_keys, hostname):
    """Give the node a non-root user, SUDO_USER, with passwordless sudo and the controller's key.

    The node shares the host's files, so it gets its own copies of /etc/passwd, group, shadow
    and sudoers.d with the user added (and hosts with its hostname, so sudo need not ask DNS), bind-mounted in the node's private mount namespace:
    the host's /etc is never changed. The home is on the node's private /run.
    """
    etc.mkdir(mode=0o700, exist_ok=True)
    passwd, group = Path("/etc/passwd").read_text(), Path("/etc/group").read_text()
    taken = {int(line.split(":")[2]) for text in (passwd, group) for line in text.splitlines() if line.count(":") >= 3}
    uid = next(n for n in range(60100, 65000) if n not in taken)
    entries = {"passwd": "%s:x:%d:%d:chaosfleet lab operator:%s:/bin/sh\n" % (SUDO_USER, uid, uid, SUDO_HOME),
               "group": "%s:x:%d:\n" % (SUDO_USER, uid), "shadow": "%s:*:20000:0:99999:7:::\n" % SUDO_USER,
               "hosts": "127.0.1.1 %s\n" % hostname}
    for name, entry in entries.items():
        original, copy = Path("/etc", name), etc / name
        copy.write_text(original.read_text() + entry)
        info = original.stat()
        os.chown(str(copy), info.st_uid, info.st_gid)
        os.chmod(str(copy), info.st_mode & 0o7777)
        subprocess.run(["mount", "--bind", str(copy), str(original)], check=True)
    sudoers = etc / "sudoers.d"
    shutil.copytree("/etc/sudoers.d", str(sudoers))
    rule = sudoers / SUDO_USER
    rule.write_text("%s ALL=(ALL:ALL) NOPASSWD: ALL\n" % SUDO_USER)
    os.chmod(str(rule), 0o440)
    subprocess.run(["mount", "--bind", str(sudoers), "/etc/sudoers.d"], check=True)
    ssh_dir = Path(SUDO_HOME, ".ssh")
    ssh_dir.mkdir(parents=True, mode=0o700)
    shutil.copy(authorized_keys, str(ssh_dir / "authorized_keys"))
    for path in (SUDO_HOME, str(ssh_dir), str(ssh_dir / "authorized_keys")):
        os.chown(path, uid, uid)


def node_enter(spec_path):
    """Move into the node's cgroup, then become its namespaces' parent (`unshare`)."""
    spec = json.loads(Path(spec_path).read_text())
    join_node_cgroup(spec["cgroup"])
    argv = ["nsenter", "--net=/run/netns/" + spec["netns"], "--",
            "unshare", "--mount", "--uts", "--ipc", "--pid", "--cgroup", "--fork", "--kill-child",
            "--propagation", "private", "--",
            NODE_PYTHON, str(Path(__file__).resolve()), "_node-boot", spec_path]
    os.execvp(argv[0], argv)


# ---------------------------------------------------------------- up

def add_node(state, index):
    names = node_names(state["name"], index)
    subnet = ipaddress.ip_network(state["subnet"])
    host_ip, node_ip = node_addresses(subnet, index)
    node = dict(names, host_ip=host_ip, node_ip=node_ip, init=None, ready=False)
    state["nodes"].append(node)
    save_state(state)
    root = Path(state["dir"]) / "nodes" / node["name"]
    (root / "vartmp").mkdir(parents=True, mode=0o700)
    run(["ip", "netns", "add", node["netns"]])
    run(["ip", "link", "add", node["host_if"], "type", "veth", "peer", "name", "eth0", "netns", node["netns"]])
    run(["ip", "addr", "add", host_ip + "/30", "dev", node["host_if"]])
    run(["ip", "link", "set", node["host_if"], "up"])
    run(["ip", "-n", node["netns"], "addr", "add", node_ip + "/30", "dev", "eth0"])
    run(["ip", "-n", node["netns"], "link", "set", "eth0", "up"])
    run(["ip", "-n", node["netns"], "link", "set", "lo", "up"])
    make_node_cgroup(node["cgroup"])
    host_key = root / "ssh_host_ed25519_key"
    node["host_public_key"] = keygen(host_key, "%s-%s" % (state["name"], node["name"]))
    spec = {
        "netns": node["netns"], "cgroup": node["cgroup"], "node_ip": node_ip, "hostname": node["name"],
        "cgroup_mounts": cgroup_mounts(), "vartmp": str(root / "vartmp"), "host_key": str(host_key),
        "authorized_keys": state["authorized_keys"], "sshd_log": str(root / "sshd.log"),
        "ready_file": str(root / "ready"),
    }
    spec_path = root / "node.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    with open(str(root / "init.log"), "ab") as init_log:
        proc = subprocess.Popen([NODE_PYTHON, str(Path(__file__).resolve()), "_node-enter", str(spec_path)],
                                stdin=subprocess.DEVNULL, stdout=init_log, stderr=init_log,
                                start_new_session=True, close_fds=True)
    node["init"] = {"pid": proc.pid, "start_time": start_time(proc.pid)}
    save_state(state)
    return node, proc


def wait_ready(state, node, proc):
    ready_file = Path(state["dir"]) / "nodes" / node["name"] / "ready"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log_text = (Path(state["dir"]) / "nodes" / node["name"] / "init.log").read_text()
            raise FleetError("%s did not boot (rc %s):\n%s" % (node["name"], proc.returncode, log_text))
        if ready_file.exists():
            try:
                with socket.create_connection((node["node_ip"], 22), timeout=1):
                    node["ready"] = True
                    node["pid1"] = node_pid1(node)
                    save_state(state)
                    return
            except OSError:
                pass
        time.sleep(0.05)
    raise FleetError("%s: sshd did not answer on %s:22 within %ds" % (node["name"], node["node_ip"], READY_TIMEOUT))


def node_pid1(node):
    """Host PID of the node's PID 1 (the only child of its `unshare`); /proc/<pid>/root is the node's view."""
    pid = node["init"]["pid"]
    with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
        children = [int(c) for c in handle.read().split()]
    return {"pid": children[0], "start_time": start_time(children[0])} if children else None


def node_ssh(state, node, *command, timeout=120, check=True):
    return run(ssh_argv(state, node, *command), timeout=timeout, check=check)


def create_pods(state, node):
    """Build the node's lab pods on the node itself, over SSH, as an operator would."""
    build = REPO / ".lab" / "build"
    node_build = Path(state["dir"]) / "nodes" / node["name"] / "vartmp" / "cflab-state" / "build"
    if build.is_dir():
        shutil.copytree(str(build), str(node_build))  # the cached pause binary: no gcc per node
    result = node_ssh(state, node, NODE_PYTHON, str(LAB_SCRIPT), "create", "--prefix", node["lab_prefix"],
                      "--state-dir", NODE_LAB_STATE, "--node-name", node["name"], "--netns", node["netns"])
    node["lab_state"] = str(Path(state["dir"]) / "nodes" / node["name"] / "vartmp" /
                            Path(result.stdout.strip()).relative_to("/var/tmp"))
    save_state(state)


def lab_state(node):
    """The node's lab state (tests/lab/lab.py), read from the host."""
    return json.loads(Path(node["lab_state"]).read_text())


def pod_vars(node):
    pods = {}
    for pod in lab_state(node)["pods"]:
        app = next(c for c in pod["containers"] if not c["sandbox"])
        pods[pod["name"]] = {
            "pod_uid": pod["uid"], "container_id": app["id"], "runtime_id": app["runtime_id"],
            "cgroup_path": app["cgroup_path"], "http_port": app["http_port"],
            "memory_limit_bytes": app["memory_limit_bytes"], "qos_class": pod["qos_class"],
        }
    return pods


def write_inventory(state):
    hosts = {}
    for node in state["nodes"]:
        hosts[node["name"]] = {
            "ansible_host": node["node_ip"],
            "fleet_netns": node["netns"],
            "fleet_host_if": node["host_if"],
            "fleet_lab_prefix": node["lab_prefix"],
            "fleet_lab_state_dir": NODE_LAB_STATE,
        }
        if node.get("lab_state"):
            hosts[node["name"]]["fleet_pods"] = pod_vars(node)
    inventory = {"all": {"children": {"fleet": {
        "hosts": hosts,
        "vars": {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": state["client_key"],
            "ansible_python_interpreter": NODE_PYTHON,
            "ansible_ssh_timeout": 5,
            "ansible_ssh_common_args": " ".join(
                ["-o UserKnownHostsFile=" + state["known_hosts"], "-o StrictHostKeyChecking=yes"] +
                ["%s %s" % (SSH_OPTIONS[i], SSH_OPTIONS[i + 1]) for i in range(0, len(SSH_OPTIONS), 2)]),
            "fleet_name": state["name"],
            "fleet_repo": str(REPO),
            "fleet_sudo_user": SUDO_USER,
        },
    }}}}
    path = Path(state["dir"]) / "inventory.json"
    path.write_text(json.dumps(inventory, indent=2) + "\n")
    state["inventory"] = str(path)
    save_state(state)
    return path


def up(count, name=None, pods=True):
    if count < 1 or count > 60:
        raise FleetError("--nodes must be from 1 to 60")
    name = check_name(name or "cffleet-" + secrets.token_hex(2))
    directory = fleet_dir(name)
    if directory.exists() or os.path.exists("/run/netns/%s-n1" % name):
        raise FleetError("fleet %s already exists; take it down first" % name)
    directory.mkdir(mode=0o700)
    state = {"name": name, "dir": str(directory), "created_at": time.time(), "nodes": [], "complete": False,
             "subnet": None, "repo": str(REPO)}
    save_state(state)
    try:
        client_key = directory / "id_ed25519"
        authorized = directory / "authorized_keys"
        authorized.write_text(keygen(client_key, name + "-controller") + "\n")
        state.update(client_key=str(client_key), authorized_keys=str(authorized),
                     known_hosts=str(directory / "known_hosts"))
        save_state(state)
        # No other fleet picks the same /24 meanwhile: lock this script (leaves no lock file behind).
        with open(__file__) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            state["subnet"] = str(pick_subnet())
            save_state(state)
            started = [add_node(state, index) for index in range(1, count + 1)]
        for node, proc in started:
            wait_ready(state, node, proc)
        Path(state["known_hosts"]).write_text("".join(
            "%s %s\n" % (n["node_ip"], n["host_public_key"]) for n in state["nodes"]))
        if pods:
            for node in state["nodes"]:
                create_pods(state, node)
        write_inventory(state)
        state["complete"] = True
        return save_state(state)
    except BaseException:
        down(name)
        raise


# ---------------------------------------------------------------- down

def netns_list():
    result = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def mounts_under(directory):
    prefix = directory.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as handle:
        points = [line.split()[4] for line in handle]
    return [p for p in points if p == directory or p.startswith(prefix)]


def down(name):
    """Tear a fleet down from whatever is left of it (state file or names alone)."""
    check_name(name)
    state = load_state(name) or {"name": name, "dir": str(fleet_dir(name)), "nodes": []}
    errors = []
    known = {n["netns"]: n for n in state["nodes"]}
    for netns in netns_list():
        if netns.startswith(name + "-n") and netns not in known:
            index = int(netns.rsplit("-n", 1)[1])
            known[netns] = node_names(name, index)
    nodes = list(known.values())
    for node in nodes:
        kill_recorded(node.get("init"))   # the node's unshare; its PID 1 and all in the node follow
    for node in nodes:
        try:
            remove_node_cgroup(node["cgroup"])
        except FleetError as exc:
            errors.append(str(exc))
        if node["netns"] in netns_list():
            run(["ip", "netns", "del", node["netns"]], check=False)
        if os.path.exists("/sys/class/net/" + node["host_if"]):
            run(["ip", "link", "del", node["host_if"]], check=False)
    # cgroups of nodes the state file never recorded (killed mid-up)
    for _kind, _options, mountpoint in cgroup_mounts():
        for entry in os.listdir(mountpoint):
            if entry.startswith(name + "-n") and os.path.isdir(os.path.join(mountpoint, entry)):
                try:
                    remove_node_cgroup("/" + entry)
                except FleetError as exc:
                    errors.append(str(exc))
    directory = str(fleet_dir(name))
    if os.path.isdir(directory):
        if mounts_under(directory):
            errors.append("refusing to delete %s, still mounted: %s" % (directory, mounts_under(directory)))
        else:
            shutil.rmtree(directory)
    if errors:
        raise FleetError("; ".join(errors))


def all_names():
    found = set()
    found.update(p.name for p in BASE.glob("cffleet-*") if NAME_RE.match(p.name))
    found.update(n.rsplit("-n", 1)[0] for n in netns_list() if n.startswith("cffleet-"))
    for _kind, _options, mountpoint in cgroup_mounts():
        found.update(e.rsplit("-n", 1)[0] for e in os.listdir(mountpoint) if e.startswith("cffleet-"))
    return sorted(n for n in found if NAME_RE.match(n))


# ---------------------------------------------------------------- link control (fault tests)

def set_link(state, node_name, up_or_down):
    node = next(n for n in state["nodes"] if n["name"] == node_name)
    run(["ip", "link", "set", node["host_if"], up_or_down])


# ---------------------------------------------------------------- CLI

def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_node-boot"]:
        return node_boot(argv[1])
    if argv[:1] == ["_node-enter"]:
        return node_enter(argv[1])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("up", help="build a fleet, print its state file")
    sub.add_argument("--nodes", type=int, default=3)
    sub.add_argument("--name")
    sub.add_argument("--no-pods", action="store_true", help="nodes without lab pods")
    sub = commands.add_parser("down", help="tear a fleet down")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--name")
    which.add_argument("--all", action="store_true", help="every cffleet-* on this host")
    sub = commands.add_parser("status", help="print the state JSON")
    sub.add_argument("--name", required=True)
    sub = commands.add_parser("ssh", help="run a command on a node over SSH")
    sub.add_argument("--name", required=True)
    sub.add_argument("--node", required=True)
    sub.add_argument("cmd", nargs=argparse.REMAINDER)
    sub = commands.add_parser("inventory", help="rewrite the inventory (after lab.py restart changed a pod)")
    sub.add_argument("--name", required=True)
    sub = commands.add_parser("link", help="take a node's link down or up")
    sub.add_argument("--name", required=True)
    sub.add_argument("--node", required=True)
    sub.add_argument("state", choices=["up", "down"])
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("the fleet needs root")
    signal.signal(signal.SIGTERM, lambda *_args: sys.exit(143))
    try:
        if args.command == "up":
            print(up(args.nodes, args.name, not args.no_pods))
        elif args.command == "down":
            for name in (all_names() if args.all else [args.name]):
                down(name)
                print("destroyed " + name)
        else:
            state = load_state(check_name(args.name))
            if state is None:
                raise FleetError("no fleet %s" % args.name)
            if args.command == "status":
                print(json.dumps(state, indent=2))
            elif args.command == "link":
                set_link(state, args.node, args.state)
            elif args.command == "inventory":
                print(write_inventory(state))
            else:
                node = next(n for n in state["nodes"] if n["name"] == args.node)
                command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
                return subprocess.call(ssh_argv(state, node, *command))
    except FleetError as exc:
        print("fleet: error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
