#!/usr/bin/env python3
"""Real container engines (Docker, Podman) as lab targets beside the runc pods.

Run as root on a cgroup v1 (or hybrid) host, offline. Standard library only.

    engines.py up     --engine docker|podman [--prefix cfdock-XXXXXX] [--state-dir DIR]
                      [--memory 300m] [--cpus N] [--keep-on-failure]
    engines.py down   (--prefix P | --all) [--state-dir DIR]
    engines.py status --prefix P [--state-dir DIR]

`up` starts one engine with private directories and one busybox container, and prints
the state file path. Everything an engine lab owns carries its prefix:

- /run/<prefix>: the busybox rootfs, the engine's storage and run dirs, dockerd's socket,
  pidfile and log;
- the cgroup /<prefix> in every v1 hierarchy: dockerd, its containerd and shims, or
  podman's conmon run there, so `down` can end every process the engine started;
- <state-dir>/<prefix>.json.

The containers themselves sit where the engine puts them on a real node (/docker/<id>,
/libpod_parent/libpod-<id>); `down` finds them from the engine's own storage, removes
them, and removes the shared parents /docker and /libpod_parent once they are empty.
"""

import argparse
import errno
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(LAB_DIR))

import lab  # noqa: E402  (the runc lab: cgroup helpers and the busybox rootfs)

DEFAULT_STATE_DIR = lab.DEFAULT_STATE_DIR
PREFIX_RE = re.compile(r"^cfdock-[a-z0-9][a-z0-9-]{0,40}$")
ENGINES = ("docker", "podman")
# Debian's engine binaries; /usr/local/bin/docker may be a different CLI without a daemon.
DOCKERD = "/usr/sbin/dockerd"
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else (shutil.which("docker") or "docker")
PODMAN = shutil.which("podman") or "/usr/bin/podman"
RUNC = lab.RUNC
IMAGE = "cfdock-busybox:1"
APP = ["/bin/sleep", "2147483647"]
# The cgroup parents the engines create for their containers (cgroupfs driver, cgroup v1).
ENGINE_PARENT = {"docker": "/docker", "podman": "/libpod_parent"}
# The daemon's own cgroup gets a memory limit: nothing in a lab runs unbounded.
DAEMON_MEMORY_LIMIT = 1024 * 1024 * 1024
CLI_TIMEOUT = 120
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class EngineError(Exception):
    pass


# ---------------------------------------------------------------- layout

def run_dir(prefix):
    return lab.RUN_BASE / prefix


def daemon_cgroup(prefix):
    return "/" + prefix


def check_prefix(prefix):
    if not PREFIX_RE.match(prefix or ""):
        raise EngineError("prefix %r must match %s" % (prefix, PREFIX_RE.pattern))
    return prefix


def state_path(state_dir, prefix):
    return Path(state_dir) / (prefix + ".json")


def docker_paths(prefix):
    base = run_dir(prefix) / "docker"
    return {"data_root": str(base / "data"), "exec_root": str(base / "exec"),
            "socket": str(base / "docker.sock"), "pidfile": str(base / "dockerd.pid"),
            "log": str(base / "dockerd.log"), "tmp": str(base / "tmp")}


def podman_paths(prefix):
    base = run_dir(prefix) / "podman"
    return {"root": str(base / "root"), "runroot": str(base / "runroot"), "tmpdir": str(base / "tmp")}


def docker_cli(prefix):
    return [DOCKER, "-H", "unix://" + docker_paths(prefix)["socket"]]


def podman_cli(prefix):
    paths = podman_paths(prefix)
    return [PODMAN, "--root", paths["root"], "--runroot", paths["runroot"], "--tmpdir", paths["tmpdir"],
            "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            # crun fails on setrlimit(RLIMIT_NOFILE) on these machines; runc works.
            "--runtime", RUNC]


def engine_cli(engine, prefix):
    return docker_cli(prefix) if engine == "docker" else podman_cli(prefix)


# ---------------------------------------------------------------- processes

def join_daemon_cgroup(prefix):
    """preexec_fn: move the child into /<prefix> in every v1 hierarchy before it runs."""
    def attach():
        for hierarchy in lab.v1_hierarchies():
            directory = lab.hierarchy_dir(hierarchy, daemon_cgroup(prefix))
            if directory and os.path.isdir(directory):
                with open(os.path.join(directory, "cgroup.procs"), "w") as handle:
                    handle.write("0")
    return attach


def run(prefix, argv, stdin=None, check=True, timeout=CLI_TIMEOUT):
    """Run an engine CLI command inside the lab's cgroup (podman's conmon stays there)."""
    result = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=join_daemon_cgroup(prefix), timeout=timeout)
    if check and result.returncode != 0:
        raise EngineError("%s failed (rc %d): %s" % (" ".join(argv[:1] + argv[-3:]), result.returncode,
                                                      result.stderr.decode(errors="replace").strip()))
    return result.stdout.decode(errors="replace").strip()


def rootfs_tarball(prefix, state_dir):
    """The runc lab's busybox rootfs as a tar stream, for `docker import` / `podman import`."""
    rootfs = run_dir(prefix) / "rootfs"
    lab.build_rootfs(rootfs, lab.pause_binary(state_dir))
    return subprocess.run(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE, check=True).stdout


def start_dockerd(prefix, storage_driver="vfs"):
    paths = docker_paths(prefix)
    for key in ("data_root", "exec_root", "tmp"):
        os.makedirs(paths[key], exist_ok=True)
    log = open(paths["log"], "ab")
    try:
        # No bridge and no iptables rules: the daemon touches no host networking. TMPDIR in the lab: a dockerd
        # whose containerd misses its health checks (starved beside other tests) restarts it after a SIGUSR1,
        # and containerd writes its stack dump to $TMPDIR.
        proc = subprocess.Popen(
            [DOCKERD, "--iptables=false", "--ip6tables=false", "--bridge=none",
             "--storage-driver=" + storage_driver, "--data-root", paths["data_root"], "--exec-root", paths["exec_root"],
             "-H", "unix://" + paths["socket"], "--pidfile", paths["pidfile"]],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=join_daemon_cgroup(prefix),
            start_new_session=True, env=dict(os.environ, TMPDIR=paths["tmp"]))
    finally:
        log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineError("dockerd exited with %s; see %s" % (proc.returncode, paths["log"]))
        if run(prefix, docker_cli(prefix) + ["version"], check=False) and os.path.exists(paths["pidfile"]):
            return proc.pid
        time.sleep(0.2)
    raise EngineError("dockerd did not answer on %s within 60 s" % paths["socket"])


def start_container(engine, prefix, memory, cpus):
    cli = engine_cli(engine, prefix)
    argv = cli + ["run", "-d", "--name", prefix + "-app", "--network", "none", "--memory", memory,
                  "--label", "chaosfleet.io/lab=" + prefix]
    if cpus:
        argv += ["--cpus", str(cpus)]
    if engine == "podman":
        # The hard nofile limit here is 20000; conmon stays in the lab's cgroup.
        argv += ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096", "--cgroups", "no-conmon"]
    container_id = run(prefix, argv + [IMAGE] + APP).splitlines()[-1].strip()
    if not _HEX64.match(container_id):
        raise EngineError("%s run printed %r, not a container ID" % (engine, container_id))
    leaf = container_id if engine == "docker" else "libpod-" + container_id
    return {"id": container_id, "name": prefix + "-app", "runtime": engine,
            "cgroup_path": ENGINE_PARENT[engine] + "/" + leaf, "memory": memory, "cpus": cpus}


# ---------------------------------------------------------------- up / down

def save_state(state, state_dir):
    path = state_path(state_dir, state["prefix"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(str(tmp), str(path))
    return path


def load_state(state_dir, prefix):
    try:
        return json.loads(state_path(state_dir, prefix).read_text())
    except FileNotFoundError:
        return None


def check_new(prefix, state_dir):
    check_prefix(prefix)
    if state_path(state_dir, prefix).exists() or run_dir(prefix).exists() or lab.cgroup_tree_dirs(
            daemon_cgroup(prefix)):
        raise EngineError("engine lab %s already exists; take it down first" % prefix)


def up(engine, prefix, state_dir, memory, cpus):
    """Start the engine and its container; the caller has run check_new(prefix)."""
    if lab.cgroup_version() != 1:
        raise EngineError("the engine lab needs a cgroup v1 (or hybrid) host")
    state = {"prefix": prefix, "engine": engine, "run_dir": str(run_dir(prefix)),
             "daemon_cgroup": daemon_cgroup(prefix), "created_at": time.time(), "complete": False,
             "daemon_pid": None, "containers": []}
    # The state file comes first so down can find even a half-started lab.
    save_state(state, state_dir)
    run_dir(prefix).mkdir(parents=True)
    lab.make_cgroup(daemon_cgroup(prefix))
    lab.write_cgroup_file("memory", daemon_cgroup(prefix), "memory.limit_in_bytes", DAEMON_MEMORY_LIMIT)
    state.update(docker_paths(prefix) if engine == "docker" else podman_paths(prefix))
    if engine == "docker":
        state["daemon_pid"] = start_dockerd(prefix)
        save_state(state, state_dir)
    # No registry is reachable: the image is the runc lab's busybox rootfs.
    run(prefix, engine_cli(engine, prefix) + ["import", "--change", "ENV PATH=/bin", "-", IMAGE],
        stdin=rootfs_tarball(prefix, state_dir))
    state["containers"].append(start_container(engine, prefix, memory, cpus))
    state["complete"] = True
    return save_state(state, state_dir)


def stored_container_ids(engine, prefix):
    """Every container the engine ever created for this lab, from its own storage directory."""
    if engine == "docker":
        store = Path(docker_paths(prefix)["data_root"]) / "containers"
    else:
        store = Path(podman_paths(prefix)["root"]) / "vfs-containers"
    if not store.is_dir():
        return []
    return sorted(entry.name for entry in store.iterdir() if _HEX64.match(entry.name))


def container_cgroup(engine, container_id):
    leaf = container_id if engine == "docker" else "libpod-" + container_id
    return ENGINE_PARENT[engine] + "/" + leaf


def engine_of(prefix):
    base = run_dir(prefix)
    return [engine for engine in ENGINES if (base / engine).is_dir()]


def stop_dockerd(prefix, timeout=20.0):
    """TERM dockerd by its pidfile (that also ends its containerd), then wait for it."""
    pidfile = Path(docker_paths(prefix)["pidfile"])
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    # Signal only the dockerd that runs in this lab's cgroup.
    if not lab.pid_in_cgroup_root(pid, daemon_cgroup(prefix)):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while lab.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def remove_if_empty(cgroup_path):
    """rmdir an engine's shared parent cgroup in every hierarchy once no container is left in it."""
    for hierarchy in lab.cgroup_hierarchies():
        directory = lab.hierarchy_dir(hierarchy, cgroup_path)
        if not directory:
            continue
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise


def unmount_under(directory):
    """Lazily unmount what an engine left mounted in the lab's run dir (deepest first)."""
    for point in sorted(lab.mounts_under(directory), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def down(prefix, state_dir):
    teardown(check_prefix(prefix), state_dir)


def teardown(prefix, state_dir):
    """down() for a prefix the caller has checked (tests/lab/agents.py runs its dockerd this way)."""
    engines = engine_of(prefix)
    for engine in engines:
        ids = stored_container_ids(engine, prefix)
        if ids:
            # The engine's own removal first (it cleans its state); kill-by-cgroup below covers a dead daemon.
            run(prefix, engine_cli(engine, prefix) + ["rm", "-f"] + (["-t", "0"] if engine == "podman" else [])
                + ids, check=False, timeout=60)
        if engine == "docker":
            stop_dockerd(prefix)
        else:
            # podman hands its containers to runc's default root; a podman killed mid-run leaves them listed there.
            for container_id in ids:
                subprocess.run(["runc", "delete", "--force", container_id], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=CLI_TIMEOUT)
        for container_id in ids:
            path = container_cgroup(engine, container_id)
            lab.kill_cgroup_tree(path)
            lab.remove_cgroup_tree(path)
    lab.kill_cgroup_tree(daemon_cgroup(prefix))
    lab.remove_cgroup_tree(daemon_cgroup(prefix))
    for engine in engines:
        remove_if_empty(ENGINE_PARENT[engine])
    base = run_dir(prefix)
    if base.exists():
        unmount_under(str(base))
        leftover = lab.mounts_under(str(base))
        if leftover:
            raise EngineError("refusing to delete %s, still mounted: %s" % (base, leftover))
        shutil.rmtree(str(base))
    for path in (state_path(state_dir, prefix), state_path(state_dir, prefix).with_name(prefix + ".json.tmp")):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def all_prefixes(state_dir):
    """Every engine lab on this host (cfdock- state files, /run dirs and cgroups), and nothing else."""
    return lab.all_prefixes(state_dir, "cfdock-", PREFIX_RE)


# ---------------------------------------------------------------- CLI

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name, help_text):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR),
                         help="where <prefix>.json lives (default %(default)s)")
        return sub

    sub = add("up", "start an engine and one container, print the state file path")
    sub.add_argument("--engine", choices=ENGINES, required=True)
    sub.add_argument("--prefix", default=None, help="default: cfdock-<engine>-<random>")
    sub.add_argument("--memory", default="300m", help="the container's memory limit (default %(default)s)")
    sub.add_argument("--cpus", type=float, default=None, help="the container's CPU quota in cores (default none)")
    sub.add_argument("--keep-on-failure", action="store_true", help="leave a half-started lab for inspection")
    sub = add("down", "stop an engine lab and remove everything it made")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--prefix")
    which.add_argument("--all", action="store_true", help="every cfdock-* engine lab on this host")
    sub = add("status", "print the state JSON")
    sub.add_argument("--prefix", required=True)
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        parser.error("the engine lab needs root")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.command == "up":
            prefix = args.prefix or "cfdock-%s-%s" % (args.engine, secrets.token_hex(3))
            check_new(prefix, args.state_dir)
            try:
                print(up(args.engine, prefix, args.state_dir, args.memory, args.cpus))
            except BaseException:
                if not args.keep_on_failure:
                    down(prefix, args.state_dir)
                raise
        elif args.command == "down":
            for prefix in all_prefixes(args.state_dir) if args.all else [args.prefix]:
                down(prefix, args.state_dir)
                print("down " + prefix)
        else:
            state = load_state(args.state_dir, check_prefix(args.prefix))
            if state is None:
                raise EngineError("no state file for %s" % args.prefix)
            print(json.dumps(state, indent=2))
    except (EngineError, lab.LabError) as exc:
        print("engines: error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
