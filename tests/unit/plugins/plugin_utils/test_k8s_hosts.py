"""Inventory hosts for picked containers (plugin_utils/_k8s_hosts.py), as tables."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.chaosfleet.stress.plugins.plugin_utils._k8s_hosts import (
    K8sHostsError, as_entries, plan_hosts, skipped_hosts, with_add_host,
)

REPO = Path(__file__).resolve().parents[4]

A, B, C = "a" * 64, "b" * 64, "c" * 64


def _by_node(**nodes):
    return dict((node, {"node_ip": "10.0.0.%d" % (i + 1), "targets": [
        {"namespace": "shop", "pod": pod, "container_ids": [cid], "containers": [name]} for pod, cid, name in picked]})
        for i, (node, picked) in enumerate(sorted(nodes.items())))


@pytest.mark.parametrize("by_node, inventory, limit, expected", [
    # one container on an inventory node: that host, nothing else
    (_by_node(w1=[("web-1", A, "app")]), ["w1"], None,
     [("w1", "w1", True, "", {"namespace": "shop", "pod": "web-1", "container": "app", "node": "w1"})]),
    # a node outside the inventory: a host of its name
    (_by_node(w9=[("web-1", A, "app")]), ["w1"], None,
     [("w9", "w9", False, "", {"namespace": "shop", "pod": "web-1", "container": "app", "node": "w9"})]),
    # two containers on one node: one host each, named after the container
    (_by_node(w1=[("web-1", A, "app"), ("web-2", B, "app")]), ["w1"], None,
     [("w1--aaaaaaaaaaaa", "w1", True, "-aaaaaaaaaaaa",
       {"namespace": "shop", "pod": "web-1", "container": "app", "node": "w1"}),
      ("w1--bbbbbbbbbbbb", "w1", True, "-bbbbbbbbbbbb",
       {"namespace": "shop", "pod": "web-2", "container": "app", "node": "w1"})]),
    # limit: only the experiment's hosts
    (_by_node(w1=[("web-1", A, "app")], w2=[("web-2", C, "app")]), ["w1", "w2"], ["w2", "w3"],
     [("w2", "w2", True, "", {"namespace": "shop", "pod": "web-2", "container": "app", "node": "w2"})]),
])
def test_plan_hosts(by_node, inventory, limit, expected):
    got = plan_hosts(by_node, inventory, limit)
    assert [(h["name"], h["node"], h["in_inventory"], h["suffix"], h["kubernetes"]) for h in got] == expected
    assert all(h["container_id"] in (A, B, C) for h in got)


def test_hosts_without_a_target_are_skipped():
    assert skipped_hosts(_by_node(w1=[("web-1", A, "app")]), ["w1", "w2", "w3"]) == ["w2", "w3"]


def test_bad_input():
    with pytest.raises(K8sHostsError, match="needs the by_node mapping"):
        plan_hosts([{"node": "x"}])


# --- add_host arguments: what an added host keeps of its node ------------------------------------------

def _entries(**nodes):
    inventory = [n for n in nodes if not n.startswith("x")]
    return plan_hosts(_by_node(**nodes), inventory)


NODE_VARS = {"ansible_host": "10.1.0.1", "ansible_user": "ops", "ansible_become": True,
             "ansible_become_password": "s3cret", "ansible_become_flags": "-H -S", "ansible_private_key_file": "/k",
             "ansible_ssh_executable": "/usr/bin/ssh", "ansible_ssh_timeout": 20, "ansible_timeout": 20,
             "ansible_pipelining": True, "ansible_remote_tmp": "/var/tmp/a", "ansible_password": "p",
             "ansible_ssh_pass": "p", "ansible_become_pass": "s3cret", "ansible_become_exe": "sudo",
             "ansible_ssh_common_args": "-J jump", "group_names": ["nodes", "zone_a"], "app_port": 8080}


def test_split_hosts_copy_every_connection_variable_of_their_node():
    got = with_add_host(_entries(w1=[("web-1", A, "app"), ("web-2", B, "app")]), {"w1": NODE_VARS}, "picked")
    for entry in got:
        args = entry["add_host"]
        assert args["name"] == entry["name"] and args["groups"] == ["picked", "nodes", "zone_a"]
        for key, value in NODE_VARS.items():
            if key.startswith("ansible_"):
                assert args[key] == value, key
        assert "app_port" not in args and "group_names" not in args  # group_vars come through the groups
        assert args["experiment_container_id"] == entry["container_id"]
        assert args["experiment_k8s_target"]["pod"] in ("web-1", "web-2")


def test_an_inventory_node_that_is_its_own_host_keeps_what_it_has():
    (entry,) = with_add_host(_entries(w1=[("web-1", A, "app")]), {"w1": NODE_VARS}, "picked")
    assert entry["add_host"] == {"name": "w1", "groups": ["picked", "nodes", "zone_a"],
                                 "experiment_container_id": A, "experiment_instance_suffix": "",
                                 "experiment_k8s_target": {"namespace": "shop", "pod": "web-1", "container": "app",
                                                           "node": "w1"}}


def test_a_split_host_without_an_address_is_reached_at_the_node_name_and_outsiders_at_their_ip():
    got = with_add_host(_entries(w1=[("web-1", A, "app"), ("web-2", B, "app")], x9=[("web-9", C, "app")]),
                        {"w1": {"ansible_user": "ops", "group_names": []}}, "picked")
    by_name = dict((e["name"], e["add_host"]) for e in got)
    assert by_name["w1--aaaaaaaaaaaa"]["ansible_host"] == "w1"
    assert by_name["x9"]["ansible_host"] == "10.0.0.2" and by_name["x9"]["groups"] == ["picked"]
    assert "ansible_user" not in by_name["x9"]  # no user forced on a node outside the inventory


@pytest.mark.parametrize("value, planned", [
    (_by_node(w1=[("web-1", A, "app")], w2=[("web-2", B, "app")]), ["w1", "w2"]),   # by_node: planned here
    (plan_hosts(_by_node(w1=[("web-1", A, "app")]), ["w1"]), ["w1"]),              # planned before: as it is
    ({}, []),
    ([], []),
], ids=["by_node", "planned entries", "no node", "no entry"])
def test_as_entries_takes_by_node_or_planned_entries(value, planned):
    assert [e["name"] for e in as_entries(value, ["w1"])] == planned


@pytest.mark.parametrize("value", [[{"name": "w1"}], "w1", None, [["w1"]], 3])
def test_as_entries_refuses_anything_else(value):
    with pytest.raises(K8sHostsError, match="by_node mapping .* or the list of hosts k8s_hosts planned, got"):
        as_entries(value)


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_tasks: {tasks}
      vars:
        __k8s_group: picked
        __k8s_hosts: "{{{{ by_node | chaosfleet.stress.k8s_hosts(groups['all']) }}}}"
- hosts: picked
  gather_facts: false
  tasks:
    - ansible.builtin.copy:
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        content: "{{{{ dict(user=ansible_user | default(''), become=ansible_become | default(false),
                            become_password=ansible_become_password | default(''),
                            ssh_args=ansible_ssh_common_args | default(''), app_port=app_port | default(0),
                            address=ansible_host | default(''), groups=group_names) | to_json }}}}"
      delegate_to: localhost
"""


def test_add_hosts_tasks_keep_host_and_group_vars_on_split_hosts(tmp_path):
    """playbooks/k8s_tasks/add_hosts.yml for real: a split host keeps its node's host-level become password and
    gets the node's group_vars (user, become, bastion arguments); the passwords are never printed."""
    by_node = {"w1": {"node_ip": "10.0.0.1", "targets": [
        {"namespace": "shop", "pod": p, "container_ids": [c], "containers": ["app"]} for p, c in (("a", A), ("b", B))]}}
    inventory = {"all": {"children": {"nodes": {
        "hosts": {"w1": {"ansible_connection": "local", "ansible_become_password": "cflab-s3cret",
                         "ansible_python_interpreter": sys.executable}},
        "vars": {"ansible_user": "{{ 'ops-' ~ inventory_hostname }}", "ansible_become": True,
                 "ansible_ssh_common_args": "-J jump", "app_port": 8080}}}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "vars.json").write_text(json.dumps({"by_node": by_node}))
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(tasks=REPO / "playbooks" / "k8s_tasks" / "add_hosts.yml",
                                                       out=tmp_path))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-v", "-i", str(tmp_path / "inventory.json"),
                           "-e", "@" + str(tmp_path / "vars.json"), str(tmp_path / "play.yml")],
                          cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout
    for host in ("w1--aaaaaaaaaaaa", "w1--bbbbbbbbbbbb"):
        got = json.loads((tmp_path / (host + ".json")).read_text())
        assert got == {"user": "ops-w1", "become": True, "become_password": "cflab-s3cret", "ssh_args": "-J jump",
                       "app_port": 8080, "address": "w1", "groups": ["nodes", "picked"]}
    assert "cflab-s3cret" not in proc.stdout
    assert "w1--aaaaaaaaaaaa: shop/a/app on node w1" in proc.stdout


# --- node access through the agent (k8s_node_access: agent) ---------------------------------------------

def _agent(node, ready=True, problem=None):
    return {"namespace": "chaosfleet-agent", "pod": "chaosfleet-agent-" + node, "container": "agent",
            "ready": ready, "problem": problem}


KUBECTL = {"kubeconfig": "/k/config", "context": "prod", "api_key": "t0ken", "host": None, "validate_certs": False}


@pytest.mark.parametrize("play_access, node_access, expected", [
    ("agent", None, "agent"),     # the play's switch
    ("ssh", None, "ssh"),         # the default stays SSH
    ("agent", "ssh", "ssh"),      # an inventory node's own k8s_node_access wins: a mixed run
    ("ssh", "agent", "agent"),
])
def test_node_access_is_the_nodes_own_or_the_plays(play_access, node_access, expected):
    node_vars = dict(NODE_VARS, **({"k8s_node_access": node_access} if node_access else {}))
    (entry,) = with_add_host(_entries(w1=[("web-1", A, "app")]), {"w1": node_vars}, "picked", play_access,
                             {"w1": _agent("w1")}, KUBECTL, which=lambda _name: "/usr/bin/kubectl")
    assert entry["access"] == expected
    assert (entry["add_host"].get("ansible_connection") == "kubernetes.core.kubectl") == (expected == "agent")


def test_an_agent_host_runs_in_its_agent_pod_with_the_api_connection_and_no_ssh_settings():
    got = with_add_host(_entries(w1=[("web-1", A, "app"), ("web-2", B, "app")], x9=[("web-9", C, "app")]),
                        {"w1": NODE_VARS}, "picked", "agent", {"w1": _agent("w1"), "x9": _agent("x9")}, KUBECTL,
                        which=lambda _name: "/usr/bin/kubectl")
    for entry in got:
        args = entry["add_host"]
        assert args["ansible_connection"] == "kubernetes.core.kubectl"
        assert (args["ansible_kubectl_namespace"], args["ansible_kubectl_pod"], args["ansible_kubectl_container"]) \
            == ("chaosfleet-agent", "chaosfleet-agent-" + entry["node"], "agent")
        assert args["ansible_kubectl_kubeconfig"] == "/k/config" and args["ansible_kubectl_context"] == "prod"
        assert args["ansible_kubectl_token"] == "t0ken" and args["ansible_kubectl_verify_ssl"] is False
        assert "ansible_kubectl_host" not in args  # unset options are left to kubectl's kubeconfig
        assert args["k8s_node_sys_root"] == "/host" and args["ansible_python_interpreter"] == "/usr/bin/python3"
        assert args["ansible_become"] is False and args["k8s_node_access"] == "agent"
        assert not any(k in args for k in ("ansible_host", "ansible_user", "ansible_ssh_common_args",
                                           "ansible_become_password"))
        assert args["experiment_container_id"] == entry["container_id"]
    groups = dict((e["name"], e["add_host"]["groups"]) for e in got)
    assert groups["w1--aaaaaaaaaaaa"] == ["picked", "nodes", "zone_a"] and groups["x9"] == ["picked"]


@pytest.mark.parametrize("agents, message", [
    ({}, r"w1 \(no agent looked up"),
    ({"w1": _agent("w1", False, "no agent pod on this node")}, r"w1 \(no agent pod on this node\)"),
    ({"w1": _agent("w1", False, "agent pod chaosfleet-agent-w1 is Pending, not Ready")}, "Pending, not Ready"),
])
def test_a_node_without_a_ready_agent_is_named_and_nothing_is_added(agents, message):
    with pytest.raises(K8sHostsError, match=message + ".*nothing was started"):
        with_add_host(_entries(w1=[("web-1", A, "app")], x2=[("web-2", B, "app")]), {"w1": NODE_VARS}, "picked",
                      "agent", dict(agents, x2=_agent("x2")), KUBECTL, which=lambda _name: "/usr/bin/kubectl")


def test_agent_access_needs_kubectl_on_the_controller():
    with pytest.raises(K8sHostsError, match="kubectl is not on its PATH"):
        with_add_host(_entries(x1=[("web-1", A, "app")]), {}, "picked", "agent", {"x1": _agent("x1")}, KUBECTL,
                      which=lambda _name: None)
    # SSH-only runs never need it
    (entry,) = with_add_host(_entries(x1=[("web-1", A, "app")]), {}, "picked", "ssh", {}, KUBECTL,
                             which=lambda _name: None)
    assert entry["access"] == "ssh"


def test_a_bad_node_access_is_refused():
    with pytest.raises(K8sHostsError, match="k8s_node_access must be ssh or agent, got 'telnet' \\(host var of w1\\)"):
        with_add_host(_entries(w1=[("web-1", A, "app")]), {"w1": dict(NODE_VARS, k8s_node_access="telnet")},
                      "picked", "agent", {}, KUBECTL)
