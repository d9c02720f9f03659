"""Run the collection's modules through real Ansible, and read cgroups directly for assertions."""

import json
import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = str(REPO / ".venv" / "bin" / "ansible")
ENV = dict(os.environ, ANSIBLE_DEPRECATION_WARNINGS="False", ANSIBLE_LOCALHOST_WARNING="False",
           ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")


def run_module(module, args, check_mode=False, timeout=120):
    """Run chaosfleet.stress.<module> on localhost through `ansible`; return (ok, result dict)."""
    cmd = [ANSIBLE, "localhost", "-m", "chaosfleet.stress." + module] + (["-a", json.dumps(args)] if args else [])
    if check_mode:
        cmd.append("--check")
    proc = subprocess.run(cmd, cwd=str(REPO), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)
    out = proc.stdout
    if "=> " not in out:
        raise AssertionError("no module result from ansible (rc %d):\n%s\n%s" % (proc.returncode, out, proc.stderr))
    result = json.loads(out.split("=> ", 1)[1])
    return proc.returncode == 0 and not result.get("failed"), result


def ok(module, args, **kwargs):
    good, result = run_module(module, args, **kwargs)
    assert good, result.get("msg", result)
    return result


def failed(module, args, **kwargs):
    good, result = run_module(module, args, **kwargs)
    assert not good, "expected %s to fail, got %s" % (module, result)
    return result["msg"]


def cgroup_file(controller, cgroup_path, name):
    return Path("/sys/fs/cgroup") / controller / cgroup_path.lstrip("/") / name


def read_int(controller, cgroup_path, name):
    return int(cgroup_file(controller, cgroup_path, name).read_text().split()[0])


def working_set(cgroup_path):
    """usage - total_inactive_file, read straight from the v1 memory cgroup."""
    usage = read_int("memory", cgroup_path, "memory.usage_in_bytes")
    stat = dict(line.split() for line in cgroup_file("memory", cgroup_path, "memory.stat").read_text().splitlines())
    return usage - int(stat["total_inactive_file"])


def cgroup_pids(cgroup_path):
    text = cgroup_file("memory", cgroup_path, "cgroup.procs").read_text()
    return [int(p) for p in text.split()]


def comm(pid):
    try:
        return Path("/proc/%d/comm" % pid).read_text().strip()
    except OSError:
        return None


def is_zombie(pid):
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def stress_pids(cgroup_path):
    """Live stress-ng processes in the cgroup (zombies awaiting a slow reaper do not count)."""
    return [p for p in cgroup_pids(cgroup_path) if (comm(p) or "").startswith("stress-ng") and not is_zombie(p)]


def thp_enabled(pid):
    """Whether the kernel may back the process with transparent huge pages (prctl PR_SET_THP_DISABLE clears it)."""
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("THP_enabled:"):
            return line.split()[1] == "1"
    raise AssertionError("no THP_enabled in /proc/%d/status (kernel older than 5.0?)" % pid)


def wait_for(predicate, timeout, interval=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
