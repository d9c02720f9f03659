"""The node agent as real containers (tests/lab/agents.py), and the agent role against the API double.

The agents run the image built from agent/packages.txt, with the host's PIDs and cgroupfs, and
agents.LAB_PRIVILEGE_FLAGS in place of `privileged: true` (no container here can be privileged: the
capability bounding set lacks CAP_SYS_RESOURCE).
"""

import inspect
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.agent_fixtures import (STATE_DIR, agent_cluster, agent_exec, agent_lab,  # noqa: F401
                                              agents, agents_for_test, kubectl)

REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

pytestmark = pytest.mark.lab


def double_has_exec():
    """True once the API double takes an exec_backend and a DaemonSet controller (pods/exec, writes)."""
    from tests.k8s_double import ApiDouble

    return "exec_backend" in inspect.signature(ApiDouble).parameters


needs_exec = pytest.mark.skipif(not double_has_exec(), reason="the API double has no pods/exec yet")


def own_cgroup(path):
    return Path("/sys/fs/cgroup/memory") / path.lstrip("/")


# ---------------------------------------------------------------- the image and the container

def test_image_holds_the_packages_of_packages_txt(agents_for_test):
    agents_for_test.start("img-1")
    wanted = agents.packages()
    assert wanted == ["python3", "stress-ng", "util-linux", "procps"]
    listed = agent_exec(agents_for_test, "img-1", "dpkg-query", "-W", "-f", "${Package} ${Status}\n",
                        *wanted).stdout
    assert sorted(line.split()[0] for line in listed.splitlines() if line.endswith("installed")) == sorted(wanted)
    assert agent_exec(agents_for_test, "img-1", "python3", "-c", "print(1)").stdout == "1\n"
    assert agent_exec(agents_for_test, "img-1", "stress-ng", "--version").stdout.startswith("stress-ng, version")
    assert "util-linux" in agent_exec(agents_for_test, "img-1", "nsenter", "--version").stdout
    # The keep-alive, and nothing else, runs in it.
    inspect_out = json.loads(subprocess.run(agents_for_test.docker + ["inspect", agents_for_test.agents["img-1"]["id"]],
                                            stdout=subprocess.PIPE, check=True).stdout)[0]
    assert inspect_out["Config"]["Cmd"] == ["sleep", "infinity"]
    assert inspect_out["Config"]["Labels"]["org.opencontainers.image.title"] == "chaosfleet-agent"


def test_agent_sees_host_pids_and_the_host_cgroupfs(agents_for_test):
    agent = agents_for_test.start("pid-1")
    # hostPID: the host's init, and this test's own process.
    host_init = Path("/proc/1/comm").read_text()
    assert agent_exec(agents_for_test, "pid-1", "cat", "/proc/1/comm").stdout == host_init
    mine = "/proc/%d/comm" % os.getpid()
    assert agent_exec(agents_for_test, "pid-1", "cat", mine).stdout == Path(mine).read_text()
    # The host's cgroupfs, v1 controllers included, and writable: a cgroup the test makes on the host is
    # there, and a limit the agent writes is what the host reads.
    probe = "/%s/probe-%s" % (agents_for_test.prefix, secrets.token_hex(2))
    own_cgroup(probe).mkdir(parents=True)
    try:
        mounted = agents.CGROUP_MOUNT + "/memory" + probe
        agent_exec(agents_for_test, "pid-1", "test", "-f", mounted + "/memory.limit_in_bytes")
        agent_exec(agents_for_test, "pid-1", "python3", "-c",
                   "open(%r, 'w').write(str(64 << 20))" % (mounted + "/memory.limit_in_bytes"))
        assert int((own_cgroup(probe) / "memory.limit_in_bytes").read_text()) == 64 * MiB
    finally:
        own_cgroup(probe).rmdir()
    # The agent's own memory cgroup, seen from inside through the mount.
    assert int(agent_exec(agents_for_test, "pid-1", "cat", agents.CGROUP_MOUNT + "/memory" + agent["cgroup_path"]
                          + "/memory.limit_in_bytes").stdout) == 512 * MiB


@pytest.mark.parametrize("mode", ["host", "private"])
def test_cgroup_namespace_is_a_parameter(agents_for_test, mode):
    node = "ns-" + mode
    agent = agents_for_test.start(node, cgroupns=mode)
    # A host process's cgroup namespace: PID 1's namespace links are unreadable on these machines (even
    # from the host), so this test's own process, in the host's namespace, stands in for it.
    assert os.readlink("/proc/self/ns/cgroup") == "cgroup:[4026531835]"  # the initial cgroup namespace
    own, host = agent_exec(agents_for_test, node, "readlink", "/proc/self/ns/cgroup",
                           "/proc/%d/ns/cgroup" % os.getpid()).stdout.split()
    self_cgroup = agent_exec(agents_for_test, node, "cat", "/proc/self/cgroup").stdout
    memory_line = [line for line in self_cgroup.splitlines() if ":memory:" in line][0]
    if mode == "host":
        assert own == host
        assert memory_line.endswith(":" + agent["cgroup_path"])
    else:
        assert own != host
        # In its own cgroup namespace the agent is at the root of every hierarchy.
        assert memory_line.endswith(":/")
    # Either way the host's tree is at the mount, with this agent's cgroup in it.
    agent_exec(agents_for_test, node, "test", "-d", agents.CGROUP_MOUNT + "/memory" + agent["cgroup_path"])


def test_agent_has_no_network_but_lo(agents_for_test):
    agents_for_test.start("net-1")
    names = agent_exec(agents_for_test, "net-1", "python3", "-c",
                       "import socket; print(' '.join(n for _, n in socket.if_nameindex()))").stdout.split()
    assert names == ["lo"]


def test_memory_limit_read_from_the_host(agents_for_test):
    agent = agents_for_test.start("mem-1")
    assert int((own_cgroup(agent["cgroup_path"]) / "memory.limit_in_bytes").read_text()) == 512 * MiB


def test_lab_privilege_flags_are_the_one_substitute_for_privileged(agents_for_test):
    agent = agents_for_test.start("priv-1")
    host_config = json.loads(subprocess.run(agents_for_test.docker + ["inspect", agent["id"]],
                                            stdout=subprocess.PIPE, check=True).stdout)[0]["HostConfig"]
    assert host_config["Privileged"] is False  # not possible here; see agents.LAB_PRIVILEGE_FLAGS
    assert "--cap-drop=SYS_RESOURCE" in agents.LAB_PRIVILEGE_FLAGS
    assert host_config["CapAdd"] == ["ALL"] and host_config["CapDrop"] == ["SYS_RESOURCE"]
    assert {"apparmor=unconfined", "seccomp=unconfined"} <= set(host_config["SecurityOpt"])
    assert host_config["PidMode"] == "host" and host_config["NetworkMode"] == "none"
    # What the agent's work needs (nsenter, cgroup.procs writes, signals, the kernel log), within the machine's
    # bounding set and without CAP_SYS_RESOURCE; and /dev/kmsg readable for OOM kills.
    status = agent_exec(agents_for_test, "priv-1", "cat", "/proc/self/status").stdout
    cap_eff = int([line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")][0], 16)
    host_bnd = int([line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("CapBnd:")][0], 16)
    needed = {"CAP_DAC_OVERRIDE": 1, "CAP_KILL": 5, "CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21, "CAP_SYSLOG": 34}
    assert [name for name, bit in needed.items() if not cap_eff & (1 << bit)] == []
    assert not cap_eff & (1 << 24) and not cap_eff & ~host_bnd  # 24: CAP_SYS_RESOURCE
    agent_exec(agents_for_test, "priv-1", "python3", "-c",
               "import os; fd = os.open('/dev/kmsg', os.O_RDONLY | os.O_NONBLOCK); assert os.read(fd, 8192)")


def test_state_dir_outlives_the_agent(agents_for_test):
    first = agents_for_test.start("state-1")
    agent_exec(agents_for_test, "state-1", "python3", "-c",
               "open('/run/chaosfleet/marker', 'w').write('kept')")
    assert (Path(first["state_dir"]) / "marker").read_text() == "kept"
    agents_for_test.stop("state-1")
    assert not own_cgroup(first["cgroup_path"]).exists()
    second = agents_for_test.start("state-1")
    assert second["id"] != first["id"] and second["state_dir"] == first["state_dir"]
    assert agent_exec(agents_for_test, "state-1", "cat", "/run/chaosfleet/marker").stdout == "kept"


def test_cli_up_status_down_leaves_nothing():
    from tests.integration.agent_fixtures import agent_lab_unavailable

    reason = agent_lab_unavailable()
    if reason:
        pytest.skip(reason)
    prefix = "cfagent-cli-" + secrets.token_hex(3)
    script = [sys.executable, str(REPO / "tests" / "lab" / "agents.py")]

    def cli(*args):
        return subprocess.run(script + list(args) + ["--state-dir", str(STATE_DIR)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=300)

    try:
        up = cli("up", "--prefix", prefix, "--nodes", "node-a,node-b", "--cgroupns", "private")
        assert up.returncode == 0, up.stderr
        state = json.loads(cli("status", "--prefix", prefix).stdout)
        assert sorted(state["agents"]) == ["node-a", "node-b"]
        assert {a["cgroupns"] for a in state["agents"].values()} == {"private"}
        assert Path(up.stdout.strip()) == STATE_DIR / (prefix + ".json")
    finally:
        down = cli("down", "--prefix", prefix)
    assert down.returncode == 0, down.stderr
    left = subprocess.run(["bash", str(REPO / "scripts" / "leftovers.sh")], cwd=str(REPO), stdout=subprocess.PIPE,
                          universal_newlines=True).stdout
    assert prefix not in left
    for agent in state["agents"].values():
        assert not own_cgroup(agent["cgroup_path"]).exists()
    assert cli("up", "--prefix", "not-an-agent-prefix").returncode == 1


# ---------------------------------------------------------------- through the API double

def run_kubectl(api, *args, stdin=None, timeout=60):
    return subprocess.run([kubectl(), "--kubeconfig", api.kubeconfig_path] + list(args), input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)


@needs_exec
def test_kubectl_exec_into_an_agent_pod(agent_lab):
    if not kubectl():
        pytest.skip("kubectl is not on the PATH")
    with agent_cluster(agent_lab, nodes=("exec-1",)) as (api, _controller):
        agent_lab.start("exec-1")
        pod = agent_lab.pod("exec-1")
        api.add_pod(pod)
        name = pod["metadata"]["name"]
        assert pod["status"]["containerStatuses"][0]["containerID"] == "docker://" + agent_lab.agents["exec-1"]["id"]
        done = run_kubectl(api, "-n", agents.NAMESPACE, "exec", name, "-c", "agent", "--",
                           "python3", "-c", "print(1)")
        assert (done.returncode, done.stdout) == (0, "1\n"), done.stderr
        # It is the agent: the host's init, and the command's exit code comes back.
        done = run_kubectl(api, "-n", agents.NAMESPACE, "exec", name, "--", "cat", "/proc/1/comm")
        assert done.stdout == Path("/proc/1/comm").read_text()
        done = run_kubectl(api, "-n", agents.NAMESPACE, "exec", "-i", name, "--", "python3", "-c",
                           "import sys; sys.exit(len(sys.stdin.read()))", stdin="abc")
        assert done.returncode == 3, done.stderr


def ansible_playbook(api, *extra, timeout=600):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="False",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
               PATH="%s:%s" % (REPO / ".venv" / "bin", os.environ.get("PATH", "")),
               TMPDIR=api.workdir)  # kubernetes.core's discovery cache goes there, and with the double
    argv = [str(REPO / ".venv" / "bin" / "ansible-playbook"), "playbooks/agent.yml",
            "-e", json.dumps({"ansible_python_interpreter": sys.executable, "k8s_kubeconfig": api.kubeconfig_path,
                              "agent_wait_timeout": 120})] + list(extra)
    return subprocess.run(argv, cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout)


def recap(output):
    """{"ok": n, "changed": n, "failed": n} of localhost from the play recap."""
    line = [line for line in output.splitlines() if line.startswith("localhost")][-1]
    return {k: int(v) for k, v in (part.split("=") for part in line.split()[2:])
            if k in ("ok", "changed", "failed")}


def docker_ps(agent_lab):
    out = subprocess.run(agent_lab.docker + ["ps", "-q", "--no-trunc", "--filter", "label=chaosfleet.io/lab="
                                             + agent_lab.prefix], stdout=subprocess.PIPE, check=True,
                         universal_newlines=True).stdout
    return sorted(out.split())


@needs_exec
def test_role_deploys_the_agent_and_removes_it(agent_lab):
    nodes = ("role-1", "role-2")
    with agent_cluster(agent_lab, nodes=nodes) as (api, controller):
        started = time.monotonic()
        done = ansible_playbook(api, "-e", "agent_state=present", "-e", "agent_image=" + agent_lab.image)
        present_s = time.monotonic() - started
        assert done.returncode == 0, done.stdout
        controller.settle()
        assert not api.controller_errors

        namespace = api.get_object("v1", "namespaces", None, agents.NAMESPACE)
        labels = namespace["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert labels["pod-security.kubernetes.io/" + mode] == "privileged"
        assert labels["app.kubernetes.io/part-of"] == "chaosfleet.stress"
        account = api.get_object("v1", "serviceaccounts", agents.NAMESPACE, "chaosfleet-agent")
        assert account["automountServiceAccountToken"] is False
        role = api.get_object("rbac.authorization.k8s.io/v1", "roles", agents.NAMESPACE, "chaosfleet-agent-operator")
        assert {(tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]} == {
            (("pods",), ("get", "list")), (("pods/exec",), ("create", "get"))}
        # docs/examples/rbac-agent-operator.yml is the same Role.
        example = yaml.safe_load((REPO / "docs" / "examples" / "rbac-agent-operator.yml").read_text())
        assert [item["rules"] for item in example["items"] if item["kind"] == "Role"] == [role["rules"]]

        daemonset = api.get_object("apps/v1", "daemonsets", agents.NAMESPACE, "chaosfleet-agent")
        pod_spec = daemonset["spec"]["template"]["spec"]
        container = pod_spec["containers"][0]
        assert daemonset["metadata"]["labels"]["app.kubernetes.io/name"] == "chaosfleet-agent"
        assert pod_spec["hostPID"] is True and not pod_spec.get("hostNetwork")
        assert pod_spec["automountServiceAccountToken"] is False and pod_spec["enableServiceLinks"] is False
        assert pod_spec["tolerations"] == [{"operator": "Exists"}]
        assert pod_spec["terminationGracePeriodSeconds"] <= 10
        assert container["securityContext"] == {"privileged": True}
        assert container["resources"]["limits"]["memory"] == "512Mi"
        assert sorted((v["hostPath"]["path"], v["hostPath"]["type"]) for v in pod_spec["volumes"]) == [
            ("/run/chaosfleet", "DirectoryOrCreate"), ("/sys/fs/cgroup", "Directory")]
        assert all(set(v) == {"name", "hostPath"} for v in pod_spec["volumes"])
        assert sorted(m["mountPath"] for m in container["volumeMounts"]) == ["/host/sys/fs/cgroup", "/run/chaosfleet"]
        assert daemonset["spec"]["updateStrategy"]["type"] == "RollingUpdate"
        assert daemonset["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "10%"
        assert daemonset["status"]["numberReady"] == daemonset["status"]["desiredNumberScheduled"] == len(nodes)

        # Real agent containers on both lab nodes, their pods Ready (the DaemonSet's readiness probe ran in
        # each), and kubectl exec reaches them through their pods.
        assert sorted(agent_lab.agents) == sorted(nodes)
        assert docker_ps(agent_lab) == sorted(a["id"] for a in agent_lab.agents.values())
        pods = json.loads(run_kubectl(api, "-n", agents.NAMESPACE, "get", "pods", "-l",
                                      "app.kubernetes.io/name=chaosfleet-agent", "-o", "json").stdout)["items"]
        assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(nodes)
        for pod in pods:
            ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"]
            assert ready == "True"
            assert pod["metadata"]["ownerReferences"][0]["uid"] == daemonset["metadata"]["uid"]
            done = run_kubectl(api, "-n", agents.NAMESPACE, "exec", pod["metadata"]["name"], "--",
                               "python3", "-c", "print(1)")
            assert done.stdout == "1\n", done.stderr

        # A pod deleted mid-run: its container and pod go; a new one on the node keeps the hostPath state.
        agent_exec(agent_lab, "role-1", "python3", "-c", "open('/run/chaosfleet/marker', 'w').write('kept')")
        old = controller.delete_agent("role-1")
        assert old["id"] not in docker_ps(agent_lab)
        assert api.get_object("v1", "pods", agents.NAMESPACE, old["pod_name"]) is None
        assert api.get_object("apps/v1", "daemonsets", agents.NAMESPACE,
                              "chaosfleet-agent")["status"]["numberReady"] == 1
        new = controller.restart_agent("role-1")
        assert new["pod_name"] != old["pod_name"]
        assert agent_exec(agent_lab, "role-1", "cat", "/run/chaosfleet/marker").stdout == "kept"

        # Again: nothing changes (checked at the end, after everything else).
        again = ansible_playbook(api, "-e", "agent_state=present", "-e", "agent_image=" + agent_lab.image)
        assert again.returncode == 0, again.stdout

        started = time.monotonic()
        done = ansible_playbook(api, "-e", "agent_state=absent")
        absent_s = time.monotonic() - started
        assert done.returncode == 0, done.stdout
        controller.settle()
        for group_version, plural, namespace, name in (
                ("apps/v1", "daemonsets", agents.NAMESPACE, "chaosfleet-agent"),
                ("v1", "serviceaccounts", agents.NAMESPACE, "chaosfleet-agent"),
                ("rbac.authorization.k8s.io/v1", "roles", agents.NAMESPACE, "chaosfleet-agent-operator"),
                ("rbac.authorization.k8s.io/v1", "rolebindings", agents.NAMESPACE, "chaosfleet-agent-operator"),
                ("v1", "namespaces", None, agents.NAMESPACE)):
            assert api.get_object(group_version, plural, namespace, name) is None, (plural, name)
        assert agent_lab.agents == {} and docker_ps(agent_lab) == []
        # The nodes keep their state dirs.
        assert (Path(new["state_dir"]) / "marker").read_text() == "kept"
        print("agent role: present %.1f s, absent %.1f s" % (present_s, absent_s))
    # A real API server leaves a no-op patch alone (same resourceVersion and generation).
    assert recap(again.stdout)["changed"] == 0, "a second agent_state=present changed something:\n" + again.stdout


def test_role_refuses_a_system_namespace(tmp_path):
    class NoApi:
        kubeconfig_path = str(tmp_path / "unused-kubeconfig")
        workdir = str(tmp_path)

    done = ansible_playbook(NoApi, "-e", "agent_state=absent", "-e", "agent_namespace=kube-system")
    assert done.returncode != 0
    assert "agent_namespace kube-system is the cluster's own" in done.stdout
    assert "Delete the agent DaemonSet" not in done.stdout
