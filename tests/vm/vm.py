"""A cgroup v2 lab node: a qemu (TCG) VM on the host's root filesystem.

Run as root with python3 (not executable on purpose). Standard library only.

    vm.py up   [--name cfvm-XXXXXX] [--memory 1536] [--ssh-port N] [--timeout 120]
               [--keep-on-failure]
    vm.py down (--name N | --all)
    vm.py kill --name N              SIGKILL qemu (a node crash); `down` cleans up after
    vm.py status --name N            print the recorded state JSON
    vm.py ssh  --name N [-- cmd ...] run a command in the guest as root

The guest boots Debian's kernel with a small busybox initramfs, mounts the host's `/`
read-only over virtio-9p under a tmpfs overlay, mounts only cgroup2, starts sshd and
builds the runc lab (tests/lab/lab.py create) in v2 mode. `up` prints a JSON summary:
the loopback SSH port, the key, and the guest lab's state.

What a VM owns, all named after it (cfvm-...): the qemu process (-name), its run dir
and state file <repo>/.lab/vm/<name>{/,.json}. The initramfs and the SSH keys are
cached in <repo>/.lab/vm-build/. Processes are stopped only by the PID recorded at
start, checked against the process start time.
"""

import argparse
import hashlib
import json
import os
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

VM_DIR = Path(__file__).resolve().parent
REPO = VM_DIR.parents[1]
LAB_STATE_DIR = REPO / ".lab"
BUILD_ROOT = LAB_STATE_DIR / "vm-build"
KEY_DIR = BUILD_ROOT / "keys"
RUN_ROOT = LAB_STATE_DIR / "vm"
LAB_SCRIPT = REPO / "tests" / "lab" / "lab.py"
STAGE1 = VM_DIR / "initramfs_init.sh"

NAME_RE = re.compile(r"^cfvm-[a-z0-9][a-z0-9-]{0,30}$")
QEMU = "qemu-system-x86_64"
BUSYBOX = "/bin/busybox"
GUEST_PYTHON = "/usr/bin/python3"
GUEST_LAB_STATE_DIR = "/run/cfvm-lab"
# Kernel modules for a virtio-9p root with an overlay, in load order (dependencies
# first), plus virtio-net for SSH. Measured on Debian's 6.1 kernel.
MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
           "virtio_pci", "netfs", "fscache", "9pnet", "9pnet_virtio", "9p", "overlay",
           "failover", "net_failover", "virtio_net")
# Bump when the initramfs layout made by build_initramfs changes.
BUILD_FORMAT = "1"
SSH_OPTIONS = ("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10")


class VMError(Exception):
    pass


def log(message):
    print("vm: " + message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- kernel and build

def kernel_versions():
    """Installed kernels that have a modules dir, newest first."""
    found = []
    for image in Path("/boot").glob("vmlinuz-*"):
        version = image.name[len("vmlinuz-"):]
        if (Path("/lib/modules") / version / "modules.dep").is_file():
            found.append(version)
    return sorted(found, key=version_key, reverse=True)


def version_key(version):
    return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", version)]


def pick_kernel():
    versions = kernel_versions()
    if not versions:
        raise VMError("no kernel in /boot with modules in /lib/modules "
                      "(apt-get install linux-image-amd64)")
    return versions[0]


def module_paths(version):
    """Module name -> path of its .ko, for MODULES, from modules.dep."""
    base = Path("/lib/modules") / version
    by_name = {}
    for line in (base / "modules.dep").read_text().splitlines():
        path = line.split(":", 1)[0]
        name = os.path.basename(path).split(".ko", 1)[0].replace("-", "_")
        by_name[name] = base / path
    missing = [m for m in MODULES if m not in by_name]
    if missing:
        raise VMError("kernel %s lacks modules %s" % (version, " ".join(missing)))
    return [(m, by_name[m]) for m in MODULES]


def read_module(path):
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        import lzma
        data = lzma.decompress(data)
    elif path.name.endswith(".zst"):
        raise VMError("zstd-compressed module %s is not supported" % path)
    return data


def build_key(version):
    digest = hashlib.sha256()
    for part in (BUILD_FORMAT, version, STAGE1.read_bytes(), Path(BUSYBOX).read_bytes(),
                 " ".join(MODULES)):
        digest.update(part if isinstance(part, bytes) else part.encode())
    return "%s-%s" % (version, digest.hexdigest()[:12])


def build_initramfs(version):
    """The initramfs (uncompressed newc cpio) for this kernel, built once and cached."""
    out_dir = BUILD_ROOT / build_key(version)
    image = out_dir / "initramfs.cpio"
    if image.is_file():
        return image
    if not Path(BUSYBOX).is_file():
        raise VMError("%s is missing (apt-get install busybox-static)" % BUSYBOX)
    if not shutil.which("cpio"):
        raise VMError("cpio is missing (apt-get install cpio)")
    log("building the initramfs for kernel %s" % version)
    stage = BUILD_ROOT / ("staging-%d" % os.getpid())
    shutil.rmtree(str(stage), ignore_errors=True)
    try:
        for sub in ("bin", "dev", "proc", "sys", "modules"):
            (stage / sub).mkdir(parents=True)
        shutil.copy2(BUSYBOX, str(stage / "bin" / "busybox"))
        os.symlink("busybox", str(stage / "bin" / "sh"))
        shutil.copy2(str(STAGE1), str(stage / "init"))
        os.chmod(str(stage / "init"), 0o755)
        order = []
        for name, path in module_paths(version):
            (stage / "modules" / (name + ".ko")).write_bytes(read_module(path))
            order.append(name)
        (stage / "modules" / "order").write_text("\n".join(order) + "\n")
        names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*"))
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / ("initramfs.cpio.%d.tmp" % os.getpid())
        with open(str(tmp), "wb") as handle:
            subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "--owner", "0:0"],
                           input="\n".join(["."] + names).encode() + b"\n", cwd=str(stage),
                           stdout=handle, check=True)
        os.replace(str(tmp), str(image))
    finally:
        shutil.rmtree(str(stage), ignore_errors=True)
    return image


def ensure_keys():
    """The client key (root's authorized key in the guest) and the guest host key."""
    KEY_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(str(KEY_DIR), 0o700)
    for name in ("id_ed25519", "ssh_host_ed25519_key"):
        key = KEY_DIR / name
        if key.is_file() and key.with_name(name + ".pub").is_file():
            continue
        tmp = KEY_DIR / ("%s.%d.tmp" % (name, os.getpid()))
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cfvm-" + name,
                        "-f", str(tmp)], check=True, stdin=subprocess.DEVNULL)
        os.replace(str(tmp) + ".pub", str(key) + ".pub")
        os.replace(str(tmp), str(key))
    return KEY_DIR / "id_ed25519"


def ensure_pause():
    """Compile the lab's pause binary on the host; the guest copies it (gcc under TCG is slow)."""
    sys.path.insert(0, str(LAB_SCRIPT.parent))
    try:
        import lab
    finally:
        sys.path.pop(0)
    return lab.pause_binary(LAB_STATE_DIR)


# ---------------------------------------------------------------- processes

def proc_start_time(pid):
    """Start time of pid in clock ticks since boot, or None when it is gone or a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_our_qemu(state):
    """True when the recorded PID is still the very qemu process vm.py started."""
    pid = state.get("pid")
    if not pid or proc_start_time(pid) != state.get("start_time"):
        return False
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    return state["name"].encode() in b" ".join(argv)


def wait_gone(state, timeout):
    """Until the recorded qemu has exited (gone, a zombie, or its PID reused). By its start time, not by
    is_our_qemu: a dying process's command line reads empty before it has exited."""
    deadline = time.monotonic() + timeout
    while proc_start_time(state["pid"]) == state.get("start_time"):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def signal_qemu(state, signum):
    if is_our_qemu(state):
        try:
            os.kill(state["pid"], signum)
        except ProcessLookupError:
            pass


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------- state

def check_name(name):
    if not NAME_RE.match(name or ""):
        raise VMError("name %r must match %s" % (name, NAME_RE.pattern))
    return name


def run_dir(name):
    return RUN_ROOT / name


def state_file(name):
    return RUN_ROOT / (name + ".json")


def save_state(state):
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    path = state_file(state["name"])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(str(tmp), str(path))


def load_state(name):
    try:
        return json.loads(state_file(name).read_text())
    except FileNotFoundError:
        return None


def all_names():
    names = set()
    if RUN_ROOT.is_dir():
        for entry in RUN_ROOT.iterdir():
            name = entry.name[:-len(".json")] if entry.name.endswith(".json") else entry.name
            if NAME_RE.match(name):
                names.add(name)
    return sorted(names)


def console_tail(name, lines=40):
    try:
        text = (run_dir(name) / "console.log").read_text(errors="replace")
    except OSError:
        return "(no console log)"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------- ssh

def ssh_argv(state, command, tty=False):
    argv = ["ssh", "-i", state["key"], "-p", str(state["ssh_port"])] + list(SSH_OPTIONS)
    if tty:
        argv.append("-t")
    # ssh hands the remote shell one string: quote each word so argv survives as given.
    remote = [" ".join(shlex.quote(word) for word in command)] if command else []
    return argv + ["root@127.0.0.1", "--"] + remote


def ssh_run(state, command, timeout=30):
    return subprocess.run(ssh_argv(state, command), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout, check=False)


def guest_status(state):
    """The guest's /run/cfvm/status, or None while SSH is not up yet."""
    try:
        result = ssh_run(state, ["cat", "/run/cfvm/status"], timeout=20)
    except subprocess.TimeoutExpired:
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip()


# ---------------------------------------------------------------- up / down

def qemu_argv(state, kernel, initramfs):
    append = " ".join([
        "console=ttyS0", "loglevel=4", "panic=-1", "cgroup_no_v1=all", "psi=1",
        "cfvm.name=" + state["name"], "cfvm.lab=" + state["lab_prefix"],
        "cfvm.repo=" + str(REPO), "cfvm.keys=" + str(KEY_DIR), "cfvm.pause=" + state["pause"],
    ])
    base = run_dir(state["name"])
    return [
        QEMU, "-name", "%s,process=%s" % (state["name"], state["name"]),
        "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2",
        "-m", str(state["memory_mib"]),
        "-kernel", kernel, "-initrd", str(initramfs), "-append", append,
        "-nographic", "-vga", "none", "-monitor", "none",
        "-serial", "file:" + str(base / "console.log"),
        "-no-reboot",
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        # restrict=on: the guest reaches nothing outside; the loopback forward still works.
        "-netdev", "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:%d-:22" % state["ssh_port"],
        "-device", "virtio-net-pci,netdev=net0",
    ]


def up(name, memory_mib, ssh_port, timeout, keep_on_failure, lab_prefix=None):
    check_name(name)
    if load_state(name) or run_dir(name).exists():
        raise VMError("VM %s already exists; run `vm.py down --name %s` first" % (name, name))
    if not shutil.which(QEMU):
        raise VMError("%s is missing (apt-get install qemu-system-x86)" % QEMU)
    started = time.monotonic()
    version = pick_kernel()
    initramfs = build_initramfs(version)
    key = ensure_keys()
    pause = ensure_pause()
    base = run_dir(name)
    base.mkdir(parents=True)
    state = {
        "name": name, "lab_prefix": lab_prefix or "cflab-" + name[len("cfvm-"):], "kernel": version,
        "memory_mib": memory_mib, "ssh_port": ssh_port or free_port(), "key": str(key),
        "pause": str(pause), "run_dir": str(base), "pid": None, "start_time": None,
        "status": "starting", "created_at": time.time(),
    }
    save_state(state)
    try:
        proc = start_qemu(state, version, initramfs, retry_port=not ssh_port)
        wait_ready(state, proc, timeout)
        state["lab"] = fetch_lab(state)
        state["status"] = "running"
        state["boot_seconds"] = round(time.monotonic() - started, 1)
        save_state(state)
    except BaseException as exc:
        if isinstance(exc, VMError):
            log("boot failed: %s\n--- console tail (%s) ---\n%s\n--- qemu log ---\n%s" % (
                exc, base / "console.log", console_tail(name), read_or_empty(base / "qemu.log")))
        if not keep_on_failure:
            down(name)
        raise
    return summary(state)


def start_qemu(state, version, initramfs, retry_port):
    """Launch qemu detached and record its PID; a port taken meanwhile is picked again."""
    base = run_dir(state["name"])
    for _attempt in range(3):
        argv = qemu_argv(state, "/boot/vmlinuz-" + version, initramfs)
        with open(str(base / "qemu.log"), "wb") as qemu_log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=qemu_log,
                                    stderr=subprocess.STDOUT, close_fds=True,
                                    start_new_session=True)
        state.update(pid=proc.pid, start_time=proc_start_time(proc.pid), argv=argv)
        save_state(state)
        log("qemu pid %d booting %s, ssh on 127.0.0.1:%d" % (proc.pid, version, state["ssh_port"]))
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return proc
        if not (retry_port and "host forwarding" in read_or_empty(base / "qemu.log")):
            return proc  # wait_ready reports the exit with the logs
        state["ssh_port"] = free_port()
    return proc


def read_or_empty(path):
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def boot_progress(name):
    """The guest's stage-2 outcome from the serial console: "ready", "failed: ..." or None."""
    try:
        text = (run_dir(name) / "console.log").read_text(errors="replace")
    except OSError:
        return None
    # Lines may carry terminal escapes in front (the first one does): search, do not anchor.
    for line in (raw.strip() for raw in text.splitlines()):
        if ("cfvm-boot:" in line or "cfvm-init:" in line) and "FAILED:" in line:
            return "failed: " + line.split("FAILED:", 1)[1].strip()
        if "cfvm-boot:" in line and line.endswith(" created"):
            return "ready"
    return None


def wait_ready(state, proc, timeout):
    """Watch the console (cheap, no SSH against a guest still booting), then confirm over SSH."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise VMError("qemu exited with rc %s before the guest was ready" % proc.returncode)
        progress = boot_progress(state["name"])
        if progress and progress.startswith("failed"):
            raise VMError("guest boot %s" % progress)
        if progress == "ready":
            status = guest_status(state)
            if status == "ready":
                log("guest ready")
                return
            if status and status.startswith("failed"):
                raise VMError("guest boot %s" % status)
        if time.monotonic() > deadline:
            raise VMError("guest not ready after %d s (console says: %s)" % (timeout, progress))
        time.sleep(0.5)


def fetch_lab(state):
    path = "%s/%s.json" % (GUEST_LAB_STATE_DIR, state["lab_prefix"])
    result = ssh_run(state, ["cat", path])
    if result.returncode != 0:
        raise VMError("cannot read the guest lab state %s: %s" % (path, result.stderr.strip()))
    (run_dir(state["name"]) / "lab.json").write_text(result.stdout)
    return json.loads(result.stdout)


def summary(state):
    return {
        "name": state["name"], "ssh_host": "127.0.0.1", "ssh_port": state["ssh_port"],
        "user": "root", "key": state["key"], "python": GUEST_PYTHON, "kernel": state["kernel"],
        "pid": state["pid"], "boot_seconds": state.get("boot_seconds"),
        "console_log": str(run_dir(state["name"]) / "console.log"),
        "guest_lab_state_dir": GUEST_LAB_STATE_DIR,
        "guest_lab_script": str(LAB_SCRIPT), "lab": state.get("lab"),
    }


def down(name):
    """Power the VM off (SIGTERM, then SIGKILL) and remove everything it owns."""
    check_name(name)
    state = load_state(name)
    if state and state.get("pid"):
        signal_qemu(state, signal.SIGTERM)
        if not wait_gone(state, 10):
            signal_qemu(state, signal.SIGKILL)
            if not wait_gone(state, 10):
                raise VMError("qemu pid %d of %s does not die" % (state["pid"], name))
    shutil.rmtree(str(run_dir(name)), ignore_errors=True)
    for path in (state_file(name), state_file(name).with_name(name + ".json.tmp")):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def kill(name):
    """SIGKILL qemu, as a node crash; keeps the state so `down` can clean up."""
    state = load_state(check_name(name))
    if state is None:
        raise VMError("no VM named %s" % name)
    if not is_our_qemu(state):
        raise VMError("qemu of %s is not running" % name)
    signal_qemu(state, signal.SIGKILL)
    if not wait_gone(state, 10):
        raise VMError("qemu pid %d of %s does not die" % (state["pid"], name))
    state["status"] = "killed"
    save_state(state)


# ---------------------------------------------------------------- CLI

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("up", help="boot a VM and build its lab; print a JSON summary")
    sub.add_argument("--name", default="cfvm-" + secrets.token_hex(3))
    sub.add_argument("--memory", type=int, default=1536, help="guest MiB (default %(default)s)")
    sub.add_argument("--ssh-port", type=int, default=0, help="loopback port (default: a free one)")
    sub.add_argument("--timeout", type=int, default=120,
                     help="seconds to wait for SSH and the lab (default %(default)s)")
    sub.add_argument("--keep-on-failure", action="store_true")
    # Test aid: a lab prefix lab.py refuses makes the guest's stage 2 fail.
    sub.add_argument("--lab-prefix", default=None, help=argparse.SUPPRESS)
    sub = commands.add_parser("down", help="power off and remove")
    which = sub.add_mutually_exclusive_group(required=True)
    which.add_argument("--name")
    which.add_argument("--all", action="store_true", help="every cfvm-* VM recorded here")
    sub = commands.add_parser("kill", help="SIGKILL qemu (node crash)")
    sub.add_argument("--name", required=True)
    sub = commands.add_parser("status", help="print the recorded state")
    sub.add_argument("--name", required=True)
    sub = commands.add_parser("ssh", help="run a command in the guest (default: a shell)")
    sub.add_argument("--name", required=True)
    sub.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if os.geteuid() != 0:
        parser.error("the VM needs root")
    # A TERM during `up` cleans up like an error does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if args.command == "up":
            if not 1024 <= args.memory <= 2048:
                raise VMError("--memory must be 1024 to 2048 MiB")
            print(json.dumps(up(args.name, args.memory, args.ssh_port, args.timeout,
                                args.keep_on_failure, args.lab_prefix), indent=2))
        elif args.command == "down":
            for name in (all_names() if args.all else [args.name]):
                down(name)
                print("down " + name)
        elif args.command == "kill":
            kill(args.name)
        elif args.command == "status":
            state = load_state(check_name(args.name))
            if state is None:
                raise VMError("no VM named %s" % args.name)
            state["qemu_alive"] = is_our_qemu(state)
            print(json.dumps(state, indent=2))
        elif args.command == "ssh":
            state = load_state(check_name(args.name))
            if state is None:
                raise VMError("no VM named %s" % args.name)
            command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            tty = not command and sys.stdin.isatty()
            return subprocess.call(ssh_argv(state, command, tty=tty))
    except VMError as exc:
        print("vm: error: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
